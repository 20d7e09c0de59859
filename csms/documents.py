"""Reading the documents people write (site files, tariffs, usage): YAML or JSON, numbers exact.

YAML and JSON numbers with a fraction become `Decimal` from their text, never a float, so a
price written as 0.1251 stays 0.1251. Everything else is as YAML 1.1 reads it (an unquoted
22:00 is the integer 1320, which the tariff validation then reports).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml


class DocumentError(ValueError):
    """An unreadable document; the message names the file and, where known, line and column."""


class _ExactLoader(yaml.SafeLoader):
    pass


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if text.lower() in (".inf", "+.inf", "-.inf", ".nan"):
        return text  # not a money amount; validation names the field
    return Decimal(text)


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def parse_document(text: str, *, name: str = "document") -> Any:
    """Parse YAML (a superset of the JSON people write) with exact decimals."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as error:
            raise DocumentError(
                f"{name}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
            ) from None
    try:
        return yaml.load(text, Loader=_ExactLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise DocumentError(f"{name}: invalid YAML{where}: {problem}") from None


def read_document(path: Path | str) -> Any:
    """Read and parse a YAML or JSON file; unreadable files raise DocumentError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DocumentError(f"{path}: cannot read file: {error}") from None
    return parse_document(text, name=str(path))


def to_json_safe(value: Any) -> Any:
    """The same document with Decimals as strings, for JSON columns and output."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: to_json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_safe(item) for item in value]
    return value
