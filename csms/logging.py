"""Structured logs: one JSON event per line on stdout (or console lines for humans)."""

from __future__ import annotations

import logging
import sys
from typing import IO

import structlog


def configure_logging(
    level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None
) -> None:
    """Route structlog and the standard library's loggers (uvicorn, websockets, alembic) through
    one renderer onto `stream` (stdout by default). In JSON, a line logged with `exc_info`
    carries the formatted traceback under `exception`."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # The console renderer formats exceptions itself; JSON needs the traceback as text.
    render: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, renderer] if fmt == "json" else [renderer]
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Library loggers (uvicorn, websockets, alembic) go through the same renderer.
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "websockets.server", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
