"""Column types every package's tables share, so SQLite and PostgreSQL store the same values.

- `UTCDateTime`: timezone-aware in Python, stored as UTC; SQLite would otherwise drop the offset.
- `Money`: exact `Decimal` stored as a 64-bit integer of 1/10,000 units. SQLite has no exact
  decimal type (NUMERIC becomes a float), and integers sum exactly in SQL on both databases.
- `dialect_insert`: the INSERT with ON CONFLICT clauses of either database (same API on both).

This is the bottom of the import graph: it imports nothing of ours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

MONEY_EXPONENT = Decimal("0.0001")
_MONEY_SCALE = 10_000


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored; give a zone")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def money_to_units(amount: Decimal) -> int:
    """Exact conversion to 1/10,000 units; an amount with finer digits is refused, not rounded."""
    units = amount * _MONEY_SCALE
    if units != units.to_integral_value():
        raise ValueError(f"amount {amount} has more than 4 decimals")
    return int(units)


def units_to_money(units: int) -> Decimal:
    return (Decimal(units) / _MONEY_SCALE).quantize(MONEY_EXPONENT)


class Money(TypeDecorator[Decimal]):
    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, never float")
        return money_to_units(Decimal(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else units_to_money(int(value))


def dialect_insert(dialect: str, table: Any) -> Any:
    """INSERT into `table` (a Table or a model) with `on_conflict_do_*` for the dialect named
    ("postgresql"; anything else is taken for "sqlite")."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
