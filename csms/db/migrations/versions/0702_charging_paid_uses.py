"""charging: sessions keep their OCPP facts; the money side and the points move to billing

Every charging session becomes a paid use of kind `charging` with the same id (so a session's
use is found at once, and replayed messages of a session opened before the upgrade still find
their hold and settlement keys), its points become the use's points, and the moved columns
leave `charging_session`.

Revision ID: 0702_charging_paid_uses
Revises: 0701_charging
Create Date: 2026-12-02 12:00:10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0702_charging_paid_uses"
down_revision: str | Sequence[str] | None = "0701_charging"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0801_billing"

_MOVED = (
    "site_id", "id_tag", "account_id", "auth_status", "tariff_id", "tariff", "currency",
    "status", "started_at", "ended_at", "stop_reason", "meter_last_wh", "energy_wh",
    "duration_s", "idle_s", "hold_id", "free", "live_gross", "net", "vat", "gross", "lines",
    "entry_id", "billed_at", "stop_requested_at", "stop_requests", "flags",
)


def upgrade() -> None:
    op.execute(
        "INSERT INTO billing_use (id, kind, device_id, use_ref, site_id, id_tag, account_id,"
        " auth_status, tariff_id, tariff, currency, status, started_at, ended_at, stop_reason,"
        " energy_wh, duration_s, idle_s, last_register_wh, hold_id, free, live_gross, net, vat,"
        " gross, lines, entry_id, billed_at, stop_requested_at, stop_requests, flags)"
        " SELECT id, 'charging', station_id, station_tx_id, site_id, id_tag, account_id,"
        " auth_status, tariff_id, tariff, currency, status, started_at, ended_at, stop_reason,"
        " energy_wh, duration_s, idle_s, meter_last_wh, hold_id, free, live_gross, net, vat,"
        " gross, lines, entry_id, billed_at, stop_requested_at, stop_requests, flags"
        " FROM charging_session"
    )
    op.execute(
        "INSERT INTO billing_point (use_id, source, idx, kind, at, device_at, received_at,"
        " implausible, register_wh, state, seq_no)"
        " SELECT session_id, source, idx, kind, at, station_at, received_at, implausible,"
        " register_wh, state, seq_no FROM charging_point"
    )
    # The use limit counts by badge: name the badge where the idTag is its canonical UID (hex
    # stations); other formats stay unnamed, as the sessions of that release did not keep it.
    op.execute(
        "UPDATE billing_use SET badge_uid = (SELECT MIN(badge.uid) FROM badge"
        " WHERE badge.uid = billing_use.id_tag AND badge.account_id = billing_use.account_id)"
    )
    op.execute(
        "UPDATE billing_use SET point_count ="
        " (SELECT COUNT(*) FROM billing_point WHERE billing_point.use_id = billing_use.id)"
    )
    if op.get_bind().dialect.name == "postgresql":
        # The copied ids were chosen by charging_session; new uses continue after them.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('billing_use', 'id'),"
            " COALESCE((SELECT MAX(id) FROM billing_use), 0) + 1, false)"
        )
    op.drop_table("charging_point")
    with op.batch_alter_table("charging_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("use_id", sa.Integer(), nullable=True))
    op.execute("UPDATE charging_session SET use_id = id")
    with op.batch_alter_table("charging_session", schema=None) as batch_op:
        batch_op.drop_index("ix_charging_session_status")
        batch_op.drop_index("ix_charging_session_site_started")
        batch_op.drop_index("ix_charging_session_account_started")
        for column in _MOVED:
            batch_op.drop_column(column)
        batch_op.alter_column("use_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint("uq_charging_session_use", ["use_id"])
        batch_op.create_foreign_key(
            "fk_charging_session_use", "billing_use", ["use_id"], ["id"]
        )


def downgrade() -> None:
    raise NotImplementedError("charging sessions moved to billing; restore from a backup")
