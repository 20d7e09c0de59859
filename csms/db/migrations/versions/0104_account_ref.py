"""wallet: accounts get `ref`, their id as their site knows it, unique per site

Revision ID: 0104_account_ref
Revises: 0103_wallet_alert_audience

`account.id` stays the internal key every foreign key uses; existing accounts keep it and get
ref = id. Unique (site_id, ref) is an index: on SQLite a constraint would mean rebuilding the
account table, which (with foreign keys enforced) its referring tables forbid.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0104_account_ref"
down_revision: str | Sequence[str] | None = "0103_wallet_alert_audience"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # SQLite adds a NOT NULL column only with a default; it is filled at once below.
    op.add_column("account", sa.Column(
        "ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=not sqlite,
        server_default="" if sqlite else None,
    ))
    op.execute("UPDATE account SET ref = id")
    if not sqlite:
        op.alter_column("account", "ref", nullable=False)
    op.create_index("uq_account_site_ref", "account", ["site_id", "ref"], unique=True)


def downgrade() -> None:
    # Only possible while no ref is on two sites. A plain DROP COLUMN (SQLite >= 3.35), not a
    # batch rebuild of the referenced account table.
    op.drop_index("uq_account_site_ref", table_name="account")
    op.drop_column("account", "ref")
