"""wallet: alerts are claimed by one deliverer at a time (claimed_until)

Revision ID: 0102_wallet_alert_claim
Revises: 0101_wallet_ledger
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import column_types

revision: str = "0102_wallet_alert_claim"
down_revision: str | Sequence[str] | None = "0101_wallet_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wallet_alert") as batch:
        batch.add_column(
            sa.Column("claimed_until", column_types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("wallet_alert") as batch:
        batch.drop_column("claimed_until")
