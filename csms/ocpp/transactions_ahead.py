"""The transactions a batch of station messages names, read once for the whole batch.

Every MeterValues names its transaction and every 1.6 start first looks for its own earlier
copy (a retransmission): one select each was one round trip per message on PostgreSQL, which
the whole batch waits for (see `csms.ocpp.group_commit`). A batch reads them all in one
statement ahead (`named_ahead`, `starts_ahead` as `BatchRead` loaders) and each message takes
its row from the session (`named_read_ahead`, `start_read_ahead`); `NOT_READ` when its batch did
not read it ahead (an operation run alone), and the message then reads it itself.

A station's messages are handled one after the other, so no other message of the same batch
changes the rows one message was given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import bindparam, select, tuple_
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.ocpp.rows import OF_STATION_COLUMNS, TRANSACTION, execute

NOT_READ: Final = object()
# (station id, the station's transaction id) and (station id, a 1.6 start's key).
TransactionKey = tuple[str, str]
_NAMED = "csms.ocpp.transactions.named"
_STARTS = "csms.ocpp.transactions.starts"
_NAMED_AMONG: Final = select(TRANSACTION.c.station_id, *OF_STATION_COLUMNS).where(
    tuple_(TRANSACTION.c.station_id, TRANSACTION.c.station_tx_id).in_(
        bindparam("keys", expanding=True))
)
_STARTS_AMONG: Final = select(
    TRANSACTION.c.station_id, TRANSACTION.c.start_key, TRANSACTION.c.id,
    TRANSACTION.c.station_tx_id,
).where(
    tuple_(TRANSACTION.c.station_id, TRANSACTION.c.start_key).in_(
        bindparam("keys", expanding=True))
)


async def named_ahead(session: AsyncSession, keys: list[TransactionKey]) -> None:
    """The transactions named by (station, station's transaction id), as
    `rows.TRANSACTION_OF_STATION` reads one; None for those not stored."""
    await _read(session, _NAMED, _NAMED_AMONG, keys, lambda row: (row.station_id,
                                                                    row.station_tx_id))


async def starts_ahead(session: AsyncSession, keys: list[TransactionKey]) -> None:
    """The 1.6 transactions started with these (station, start key), as
    `rows.TRANSACTION_OF_START` reads one; None for starts not seen before."""
    await _read(session, _STARTS, _STARTS_AMONG, keys, lambda row: (row.station_id,
                                                                      row.start_key))


def named_read_ahead(session: AsyncSession, key: TransactionKey) -> Any:
    """The row `named_ahead` read for `key` (None: not stored), or NOT_READ."""
    return session.info.get(_NAMED, {}).get(key, NOT_READ)


def start_read_ahead(session: AsyncSession, key: TransactionKey) -> Any:
    """The row `starts_ahead` read for `key` (None: a new start), or NOT_READ."""
    return session.info.get(_STARTS, {}).get(key, NOT_READ)


async def _read(
    session: AsyncSession, slot: str, statement: Any, keys: list[TransactionKey],
    key_of: Callable[[Any], TransactionKey],
) -> None:
    found: dict[TransactionKey, Any] = {}
    for row in (await execute(session, statement, {"keys": keys})).all():
        found.setdefault(key_of(row), row)
    answers: dict[TransactionKey, Any] = session.info.setdefault(slot, {})
    answers.update((key, found.get(key)) for key in keys)
