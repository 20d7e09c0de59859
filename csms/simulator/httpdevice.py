"""A small real HTTP/1.1 server for device emulators: asyncio streams and h11 (the HTTP/1.1
state machine httpx itself runs on), on 127.0.0.1 port 0.

Not an ASGI app under uvicorn on purpose: a device emulator must fail the way devices fail,
and a framework answers for us where a device would not: it turns a handler that never answers
into a 500 at shutdown and cannot drop a connection without a reply. Here the emulator decides
byte for byte, keeps connections alive like the device, and its faults are real socket
behaviour (`unreachable`: the request is read and never answered; `stop()`: the port closes, so
connections are refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, urlsplit

import h11

Clock = Callable[[], float]


class ManualClock:
    """Seconds that move only when a test says so: device timers and energy registers read
    it, so a 60 s dead man or a 90 minute wash takes no wall time and no timed assertion."""

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now += seconds


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str  # path and query as sent
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes


@dataclass(slots=True)
class HttpAnswer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


class HttpDevice:
    """Base of a device emulator: subclasses implement `answer(request)`.

    `wall_clock` gives unix time for the fields devices report as timestamps; `clock` (the
    device's seconds, a `ManualClock` in tests) drives timers and energy."""

    def __init__(
        self, *, clock: Clock = time.monotonic, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.clock = clock
        self.unreachable = False  # read requests, never answer (a device gone quiet)
        self.malformed = False  # answer 200 with a body that is not JSON
        self.host = host
        self.port = port  # 0: any free port, known once started (and kept for a restart)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._unix_offset = time.time() - clock()

    def unix_time(self) -> float:
        return self._unix_offset + self.clock()

    def answer(self, request: HttpRequest) -> HttpAnswer:
        raise NotImplementedError

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as error:
            where = f"{type(self).__name__} cannot listen on {self.host}:{self.port}"
            if not error.errno:
                raise OSError(f"{where}: {error}") from error
            raise OSError(error.errno, f"{where}: {os.strerror(error.errno)}") from error
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the port and every open connection: the device is gone."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _read_request(connection, reader)
                if request is None:
                    return
                if self.unreachable:
                    # Hold the connection until the client gives up on it.
                    while await reader.read(65536):
                        pass
                    return
                answer = self.answer(request)
                if self.malformed and answer.status == 200:
                    answer = HttpAnswer(200, b'{"id": 1, "result": {"output": tr', "text/plain")
                writer.write(_encode(connection, answer))
                await writer.drain()
                if connection.our_state is h11.MUST_CLOSE:
                    return
                connection.start_next_cycle()
        except (h11.ProtocolError, ConnectionError):
            return
        except asyncio.CancelledError:
            # `stop()` cancels open connections. Ending quietly: Python 3.11's start_server
            # asks a cancelled handler for its exception and logs the CancelledError as an
            # unhandled error, which `volthaus serve --demo` would print at every shutdown.
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()


async def _read_request(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> HttpRequest | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            target = head.target.decode("ascii")
            split = urlsplit(target)
            return HttpRequest(
                method=head.method.decode("ascii"),
                target=target,
                path=split.path,
                query=dict(parse_qsl(split.query, keep_blank_values=True)),
                headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers},
                body=bytes(body),
            )
        else:  # ConnectionClosed, or PAUSED after a request we did not answer
            return None


def _encode(connection: h11.Connection, answer: HttpAnswer) -> bytes:
    headers = [
        ("Content-Type", answer.content_type),
        ("Content-Length", str(len(answer.body))),
        ("Server", "emulated-device"),
        *answer.headers,
    ]
    return b"".join(
        (
            connection.send(h11.Response(status_code=answer.status, headers=headers)) or b"",
            connection.send(h11.Data(data=answer.body)) or b"",
            connection.send(h11.EndOfMessage()) or b"",
        )
    )
