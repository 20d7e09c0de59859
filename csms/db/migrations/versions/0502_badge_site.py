"""rfid: badges belong to a site; primary key (site_id, uid) instead of uid

Revision ID: 0502_badge_site
Revises: 0501_rfid_badges

The same 4-byte UID may be a badge on two sites. Existing badges get their account's site.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0502_badge_site"
down_revision: str | Sequence[str] | None = "0501_rfid_badges"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("badge", sa.Column(
        "site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
    ))
    op.execute(
        "UPDATE badge SET site_id = (SELECT account.site_id FROM account"
        " WHERE account.id = badge.account_id)"
    )
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("badge_pkey", "badge", type_="primary")
    with warnings.catch_warnings():
        # SQLite rebuilds the table from the reflected one, whose `uid` still carries the old
        # primary-key flag; SQLAlchemy warns and takes the new key (site_id, uid), as wanted.
        warnings.filterwarnings("ignore", "Table '_alembic_tmp_badge' specifies columns 'uid'")
        with op.batch_alter_table("badge") as batch:
            batch.alter_column("site_id",
                               existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
                               nullable=False)
            batch.create_primary_key("badge_pkey", ["site_id", "uid"])
            batch.create_foreign_key("badge_site_id_fkey", "site", ["site_id"], ["id"])


def downgrade() -> None:
    # Only possible while no UID is on two sites.
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("badge_site_id_fkey", "badge", type_="foreignkey")
        op.drop_constraint("badge_pkey", "badge", type_="primary")
    with op.batch_alter_table("badge") as batch:
        if op.get_bind().dialect.name == "sqlite":
            batch.drop_constraint("badge_site_id_fkey", type_="foreignkey")
        batch.create_primary_key("badge_pkey", ["uid"])
        batch.drop_column("site_id")
