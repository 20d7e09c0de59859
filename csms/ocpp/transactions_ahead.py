"""The transactions a batch of station messages names, read once for the whole batch.

Every MeterValues and every 1.6 stop names its transaction, and every 1.6 start first looks
for its own earlier copy (a retransmission): one statement each was one round trip per message
on PostgreSQL, which the whole batch waits for (see `csms.ocpp.group_commit`). A batch reads
them all in one statement ahead (`named_ahead`, `starts_ahead` as `BatchRead` loaders) and each
message takes its row from the session (`named_read_ahead`, `start_read_ahead`); `NOT_READ`
when its batch did not read it ahead (an operation run alone), and the message then reads it
itself. What the messages then write (a reading, a stop, a new start's row) joins the batch's
executemany.

A station's messages are handled one after the other, so no other message of the same batch
changes the rows one message was given. Another batch may run at the same time, and a
retransmitted stop may be in it while the first is still being written: the named rows are
read locked (FOR NO KEY UPDATE on PostgreSQL, what their update takes anyway), so the second
batch reads the row once the first committed, and sees the stop. SQLite runs one write
transaction at a time.

A new 1.6 start's row id is the transaction id the station is given. On PostgreSQL the batch
takes the ids of its new starts from the table's sequence in the same statement that looks for
their earlier copies, so each row is written with the batch, id and all, instead of an insert
and an update of its own (two round trips each). SQLite has no sequence, and there a statement
is no round trip: a start inserts its row itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, func, literal_column, null, select, tuple_
from sqlalchemy.sql.elements import ColumnClause
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.ocpp.group_commit import write_first
from csms.ocpp.rows import OF_STATION_COLUMNS, TRANSACTION, TRANSACTION_INSERT_NUMBERED, execute

NOT_READ: Final = object()
# (station id, the station's transaction id) and (station id, a 1.6 start's key).
TransactionKey = tuple[str, str]
_NAMED = "csms.ocpp.transactions.named"
_STARTS = "csms.ocpp.transactions.starts"
_NEW_IDS = "csms.ocpp.transactions.new_ids"
_NAMED_AMONG: Final = select(TRANSACTION.c.station_id, *OF_STATION_COLUMNS).where(
    tuple_(TRANSACTION.c.station_id, TRANSACTION.c.station_tx_id).in_(
        bindparam("keys", expanding=True))
).with_for_update(key_share=True)
_STARTS_AMONG: Final = select(
    TRANSACTION.c.station_id, TRANSACTION.c.start_key, TRANSACTION.c.id,
    TRANSACTION.c.station_tx_id,
).where(
    tuple_(TRANSACTION.c.station_id, TRANSACTION.c.start_key).in_(
        bindparam("keys", expanding=True))
)
# The same plus, in the same round trip on PostgreSQL, `n` new ids from the transactions'
# sequence (in rows whose other columns are null).
_NEW_ID: Final[ColumnClause[int]] = literal_column(
    f"nextval(pg_get_serial_sequence('{TRANSACTION.name}', 'id'))")
_STARTS_AND_NEW_IDS: Final = _STARTS_AMONG.union_all(
    select(null(), null(), _NEW_ID, null()).select_from(func.generate_series(1, bindparam("n")))
)


async def named_ahead(session: AsyncSession, keys: list[TransactionKey]) -> None:
    """The transactions named by (station, station's transaction id), as
    `rows.TRANSACTION_OF_STATION` reads one; None for those not stored."""
    await _read(session, _NAMED, _NAMED_AMONG, keys, lambda row: (row.station_id,
                                                                    row.station_tx_id))


async def starts_ahead(session: AsyncSession, keys: list[TransactionKey]) -> None:
    """The 1.6 transactions started with these (station, start key), as
    `rows.TRANSACTION_OF_START` reads one; None for starts not seen before, which on
    PostgreSQL get the id of their row ahead (`take_new_id_ahead`)."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        await _read(session, _STARTS, _STARTS_AMONG, keys, lambda row: (row.station_id,
                                                                          row.start_key))
        return
    distinct = list(dict.fromkeys(keys))
    rows = (await execute(session, _STARTS_AND_NEW_IDS, {"keys": keys, "n": len(distinct)})).all()
    found = {(row.station_id, row.start_key): row for row in rows if row.station_id is not None}
    new_ids = iter(row.id for row in rows if row.station_id is None)
    session.info.setdefault(_STARTS, {}).update((key, found.get(key)) for key in distinct)
    session.info.setdefault(_NEW_IDS, {}).update(
        (key, next(new_ids)) for key in distinct if key not in found)
    # Their messages name them: the rows go in before the messages'.
    write_first(session, TRANSACTION_INSERT_NUMBERED)


def named_read_ahead(session: AsyncSession, key: TransactionKey) -> Any:
    """The row `named_ahead` read for `key` (None: not stored), or NOT_READ."""
    return session.info.get(_NAMED, {}).get(key, NOT_READ)


def start_read_ahead(session: AsyncSession, key: TransactionKey) -> Any:
    """The row `starts_ahead` read for `key` (None: a new start), or NOT_READ."""
    return session.info.get(_STARTS, {}).get(key, NOT_READ)


def take_new_id_ahead(session: AsyncSession, key: TransactionKey) -> int | None:
    """The id `starts_ahead` took for the new start `key`, for the one start that writes its
    row (with `rows.TRANSACTION_INSERT_NUMBERED`); None where none was taken or it was taken
    already (the start then inserts its row itself)."""
    new_id: int | None = session.info.get(_NEW_IDS, {}).pop(key, None)
    return new_id


@dataclass(frozen=True, slots=True)
class WrittenAhead:
    """A transaction row as a batch's own messages left it, in place of the row read ahead."""

    id: int
    station_tx_id: str
    start_key: str | None = None
    connector_id: int | None = None
    ended: bool = False


def remember_start(session: AsyncSession, key: TransactionKey, tx_pk: int) -> None:
    """A message of the batch wrote the new start `key` as row `tx_pk`: a copy of it later in
    the same batch (a retransmission) is then answered with that row, not written again."""
    answers = session.info.get(_STARTS)
    if answers is not None and key in answers:
        answers[key] = WrittenAhead(tx_pk, str(tx_pk), key[1])


def remember_stop(session: AsyncSession, key: TransactionKey) -> None:
    """A message of the batch ended the transaction `key` names: a copy of the stop later in
    the same batch is then a retransmission."""
    answers = session.info.get(_NAMED)
    row = answers.get(key) if answers is not None else None
    if answers is not None and row is not None:
        answers[key] = WrittenAhead(row.id, row.station_tx_id, row.start_key, row.connector_id,
                                    ended=True)


async def _read(
    session: AsyncSession, slot: str, statement: Any, keys: list[TransactionKey],
    key_of: Callable[[Any], TransactionKey],
) -> None:
    found: dict[TransactionKey, Any] = {}
    for row in (await execute(session, statement, {"keys": keys})).all():
        found.setdefault(key_of(row), row)
    answers: dict[TransactionKey, Any] = session.info.setdefault(slot, {})
    answers.update((key, found.get(key)) for key in keys)
