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


# Plain ALTER TABLE ADD / DROP COLUMN on both databases (SQLite >= 3.35), not a batch rebuild of
# the station and site tables, which other tables refer to.


def upgrade() -> None:
    op.add_column("station", sa.Column("boot_pending", sa.Boolean(), nullable=False,
                                       server_default=sa.false()))
    op.add_column("site", sa.Column("max_uses_per_badge", sa.Integer(), nullable=False,
                                    server_default="1"))
    op.add_column("site", sa.Column("master_pass_account",
                                    sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("site", "master_pass_account")
    op.drop_column("site", "max_uses_per_badge")
    op.drop_column("station", "boot_pending")
