"""wallet: alerts about a site's device for staff, with no account; every alert names its site

Revision ID: 0105_staff_alerts
Revises: 0104_account_ref

`wallet_alert.account_id` becomes nullable (an alert about a laundry machine or a meter that
belongs to no household) and `site_id` is added, indexed, filled from the account for the alerts
already there. SQLite changes nullability only by rebuilding the table (batch mode); nothing
refers to `wallet_alert`, so the rebuild is safe with foreign keys enforced.

Downgrade deletes the alerts that have no account: the old schema cannot hold them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0105_staff_alerts"
down_revision: str | Sequence[str] | None = "0104_account_ref"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wallet_alert") as batch:
        batch.add_column(
            sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch.alter_column("account_id", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
                           nullable=True)
        batch.create_foreign_key("fk_wallet_alert_site_id_site", "site", ["site_id"], ["id"])
        batch.create_index(batch.f("ix_wallet_alert_site_id"), ["site_id"], unique=False)
    op.execute(
        "UPDATE wallet_alert SET site_id ="
        " (SELECT account.site_id FROM account WHERE account.id = wallet_alert.account_id)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM wallet_alert WHERE account_id IS NULL")
    with op.batch_alter_table("wallet_alert") as batch:
        batch.drop_index(batch.f("ix_wallet_alert_site_id"))
        batch.drop_constraint("fk_wallet_alert_site_id_site", type_="foreignkey")
        batch.drop_column("site_id")
        batch.alter_column("account_id", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
                           nullable=False)
