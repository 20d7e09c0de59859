"""inventory: a known station held in Pending at its boots (re-commissioning); a site's limit
of uses per badge and its master-pass account

Revision ID: 0009_ocpp_site_rules
Revises: 0008_tariff_versions
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009_ocpp_site_rules"
down_revision: str | Sequence[str] | None = "0008_tariff_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("station") as batch:
        batch.add_column(sa.Column("boot_pending", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("site") as batch:
        batch.add_column(sa.Column("max_uses_per_badge", sa.Integer(), nullable=False,
                                   server_default="1"))
        batch.add_column(sa.Column("master_pass_account",
                                   sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("site") as batch:
        batch.drop_column("master_pass_account")
        batch.drop_column("max_uses_per_badge")
    with op.batch_alter_table("station") as batch:
        batch.drop_column("boot_pending")
