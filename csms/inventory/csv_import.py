"""Bulk CSV import of badges and meters, row by row: each row is checked as the site file checks
its entry; good rows are written, refused ones reported with their line and why. Importing the
same file twice changes nothing (badges and meters are upserts by their id). Parsing is pure."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

BADGE_COLUMNS = ("uid", "account", "label")
METER_COLUMNS = ("id", "account", "profile", "host", "port", "unit", "tariff")


@dataclass
class RowReport:
    line: int  # in the file, the header being line 1
    key: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def read_rows(text: str, columns: tuple[str, ...]) -> tuple[list[dict[str, str]], list[str]]:
    """The rows (by column name) and the header's problems (missing or unknown columns).
    Comma or semicolon separated (German spreadsheets write semicolons)."""
    body = text.lstrip("\ufeff")
    first = body.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(body), delimiter=";" if first.count(";") > first.count(
        ",") else ",")
    header = [h.strip().lower() for h in reader.fieldnames or []]
    problems = [f"column {c!r} is missing" for c in columns[:2] if c not in header]
    problems += [f"column {h!r} is unknown (known: {', '.join(columns)})"
                 for h in header if h not in columns]
    rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            for row in reader]
    return rows, problems


def badge_entry(row: dict[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"uid": row.get("uid", ""), "account": row.get("account", "")}
    if row.get("label"):
        entry["label"] = row["label"]
    return entry


def meter_entry(row: dict[str, str]) -> dict[str, Any]:
    modbus: dict[str, Any] = {"host": row.get("host", "")}
    for key in ("port", "unit"):
        if row.get(key):
            modbus[key] = int(row[key]) if row[key].isdigit() else row[key]
    return {"id": row.get("id", ""), "account": row.get("account", ""),
            "profile": row.get("profile", ""), "modbus": modbus, "tariff": row.get("tariff", "")}


def entry_problems(model: Any, entry: dict[str, Any]) -> list[str]:
    try:
        model.model_validate(entry)
    except ValidationError as error:
        return [f"{'.'.join(str(p) for p in e['loc']) or '(row)'}: {e['msg']}"
                for e in error.errors()]
    return []
