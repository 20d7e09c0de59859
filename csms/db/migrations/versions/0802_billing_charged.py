"""billing: what a continuous use (a flat's supply) has debited so far

Revision ID: 0802_billing_charged
Revises: 0801_billing
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import column_types

revision: str = "0802_billing_charged"
down_revision: str | Sequence[str] | None = "0801_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("charged_net", "charged_gross", "charged_recovery")


def upgrade() -> None:
    with op.batch_alter_table("billing_use", schema=None) as batch_op:
        for name in _COLUMNS:
            batch_op.add_column(sa.Column(name, column_types.Money(), nullable=True))
        batch_op.add_column(sa.Column("charged_wh", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("billing_use", schema=None) as batch_op:
        batch_op.drop_column("charged_wh")
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
