"""The Core statements that station messages are written with, built once per database dialect.

Each is meant for `GroupCommit.write` (one executemany per batch) or for one `execute` inside a
batched operation; rows are plain dicts keyed by the column names (update statements name their
parameters `b_*`, as SQLAlchemy reserves the column names for the SET clause).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, Result, Table, bindparam, select, update
from sqlalchemy.sql import Executable
from sqlmodel.ext.asyncio.session import AsyncSession

from column_types import dialect_insert
from csms.ocpp.models import (
    ConnectorStatus,
    MeterValue,
    OcppStation,
    SecurityEvent,
    StationMessage,
    StatusEvent,
    Transaction,
    TransactionMessage,
)


async def execute(
    session: AsyncSession, statement: Executable, params: Any = None
) -> Result[Any]:
    """A Core statement on the session's connection and transaction (a list of row dicts as
    `params` is one executemany)."""
    connection = await session.connection()
    return await connection.execute(statement, params)


async def insert_id(session: AsyncSession, statement: Executable, row: dict[str, Any]) -> int:
    """Insert one row with a Core insert; the new row's id."""
    result = await execute(session, statement, row)
    assert isinstance(result, CursorResult)
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def upsert(dialect: str, table: Table, key: list[str], columns: list[str]) -> Executable:
    """INSERT of `key` + `columns`; on a conflict on `key`, set `columns` to the new values."""
    insert = dialect_insert(dialect, table)
    return insert.on_conflict_do_update(
        index_elements=key, set_={name: insert.excluded[name] for name in columns}
    )


STATION = _table(OcppStation)
CONNECTED_COLUMNS = [
    "connected", "protocol", "node_id", "transport", "security_level", "connected_at",
    "last_seen_at",
]
BOOT_COLUMNS = [
    "boot_status", "last_boot_at", "vendor", "model", "serial_number", "firmware_version",
    "boot_payload",
]


TRANSACTION = _table(Transaction)
# A station's transaction by the id the station uses for it (every MeterValues names one;
# a stop ends it).
OF_STATION_COLUMNS = (
    TRANSACTION.c.id, TRANSACTION.c.station_tx_id, TRANSACTION.c.start_key,
    TRANSACTION.c.connector_id, TRANSACTION.c.ended,
)
_OF_STATION = (
    (TRANSACTION.c.station_id == bindparam("b_station_id"))
    & (TRANSACTION.c.station_tx_id == bindparam("b_station_tx_id"))
)
TRANSACTION_OF_STATION: Executable = select(*OF_STATION_COLUMNS).where(_OF_STATION)
# A 1.6 start the station sent before (its retransmission), by what it sent.
TRANSACTION_OF_START: Executable = (
    select(TRANSACTION.c.id, TRANSACTION.c.station_tx_id)
    .where(TRANSACTION.c.station_id == bindparam("b_station_id"))
    .where(TRANSACTION.c.start_key == bindparam("b_start_key"))
)
# Rows carry every column (Core applies no model defaults): see `full_row`.
TRANSACTION_INSERT: Executable = TRANSACTION.insert()
# The same with the row's id given (taken from the sequence ahead, see
# csms.ocpp.transactions_ahead), written with its batch's executemany.
TRANSACTION_INSERT_NUMBERED: Executable = TRANSACTION.insert()
# A 1.6 transaction's id for the station is our row id, known only once the row is in.
TRANSACTION_STATION_TX_ID: Executable = (
    update(TRANSACTION)
    .where(TRANSACTION.c.id == bindparam("b_id"))
    .values(station_tx_id=bindparam("b_station_tx_id"))
)
TRANSACTION_MESSAGE = _table(TransactionMessage)
TRANSACTION_MESSAGE_INSERT: Executable = TRANSACTION_MESSAGE.insert()


def full_row(table: Table, **values: Any) -> dict[str, Any]:
    """A row for a Core insert into `table`: the given columns, None for every other one but
    the generated id (Core applies no model defaults, so give those too)."""
    columns = [column.key for column in table.c if column.key != "id"]
    unknown = set(values) - set(columns)
    if unknown:
        raise ValueError(f"not columns of {table.name}: {sorted(unknown)}")
    return {name: values.get(name) for name in columns}


# A MeterValues' transaction with its last reading set, read back in the same statement (a
# select and an update were two round trips per reading on PostgreSQL). The second form only
# matches transactions we started: one that a 1.6 station names but we never handed out is
# then refused with nothing written (see StationService._metered_transaction).
_METERED = update(TRANSACTION).values(last_meter_wh=bindparam("b_wh"))
TRANSACTION_METERED: Executable = _METERED.where(_OF_STATION).returning(*OF_STATION_COLUMNS)
TRANSACTION_METERED_STARTED_HERE: Executable = _METERED.where(
    _OF_STATION & TRANSACTION.c.start_key.is_not(None)
).returning(*OF_STATION_COLUMNS)
# The same for a transaction read ahead (csms.ocpp.transactions_ahead), written with its batch;
# never past its stop, whose reading is the last.
TRANSACTION_LAST_METER: Executable = (
    update(TRANSACTION)
    .where(TRANSACTION.c.id == bindparam("b_id"), TRANSACTION.c.ended.is_not(True))
    .values(last_meter_wh=bindparam("b_wh"))
)
# A stop ends its open transaction and reads it back in the same statement, in the same two
# forms; a stop that matches nothing (a retransmission, an unknown or foreign id) then reads the
# row to tell which (see StationService._ended_transaction).
_END = update(TRANSACTION).values(
    ended=True, ended_at=bindparam("b_ended_at"), meter_stop_wh=bindparam("b_wh"),
    last_meter_wh=bindparam("b_wh"), stop_reason=bindparam("b_reason"),
)
_OPEN_OF_STATION = _OF_STATION & TRANSACTION.c.ended.is_not(True)
TRANSACTION_ENDED: Executable = _END.where(_OPEN_OF_STATION).returning(*OF_STATION_COLUMNS)
TRANSACTION_ENDED_STARTED_HERE: Executable = _END.where(
    _OPEN_OF_STATION & TRANSACTION.c.start_key.is_not(None)
).returning(*OF_STATION_COLUMNS)
# The same for a transaction read ahead, written with its batch.
TRANSACTION_END: Executable = _END.where(
    (TRANSACTION.c.id == bindparam("b_id")) & TRANSACTION.c.ended.is_not(True)
)


@dataclass(frozen=True, slots=True)
class StationRows:
    """One dialect's statements for the OCPP tables."""

    connected: Executable
    disconnected: Executable
    last_seen: Executable
    boot: Executable
    send_after_boot: Executable
    local_list_version: Executable
    status_current: Executable
    status_event: Executable
    meter_value: Executable
    station_message: Executable
    security_event: Executable

    @classmethod
    def for_dialect(cls, dialect: str) -> StationRows:
        station = STATION
        # Rows carry boot_count=1 for a first boot; a known station counts up.
        boot = dialect_insert(dialect, station)
        boot = boot.on_conflict_do_update(
            index_elements=["station_id"],
            set_={"boot_count": station.c.boot_count + 1,
                  **{name: boot.excluded[name] for name in BOOT_COLUMNS}},
        )
        status_table = _table(ConnectorStatus)
        return cls(
            connected=upsert(dialect, station, ["station_id"], CONNECTED_COLUMNS),
            # Only if this node still owns it: a newer connection elsewhere may have taken over.
            disconnected=update(station)
            .where(station.c.station_id == bindparam("b_station_id"))
            .where(station.c.node_id == bindparam("b_node_id"))
            .values(connected=False, disconnected_at=bindparam("b_at"),
                    last_seen_at=bindparam("b_at")),
            last_seen=update(station)
            .where(station.c.station_id == bindparam("b_station_id"))
            .values(last_seen_at=bindparam("b_at")),
            boot=boot,
            send_after_boot=upsert(dialect, station, ["station_id"], ["send_after_boot"]),
            local_list_version=upsert(dialect, station, ["station_id"], ["local_list_version"]),
            status_current=upsert(
                dialect, status_table, ["station_id", "evse_id", "connector_id"],
                ["status", "error_code", "info", "timestamp", "received_at"],
            ),
            status_event=_table(StatusEvent).insert(),
            meter_value=_table(MeterValue).insert(),
            station_message=_table(StationMessage).insert(),
            security_event=_table(SecurityEvent).insert(),
        )
