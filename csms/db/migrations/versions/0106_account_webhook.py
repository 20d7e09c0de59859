"""wallet: a household's own alert webhook (address and signing key) on its account

Revision ID: 0106_account_webhook
Revises: 1301_load

Chained after the newest revision so that the history stays one line; it only adds two nullable
columns, so the order relative to the web and load tables does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0106_account_webhook"
down_revision: str | Sequence[str] | None = "1301_load"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE (SQLite >= 3.35), not a batch rebuild of the account table others refer to.


def upgrade() -> None:
    op.add_column("account", sa.Column("webhook_url", sqlmodel.sql.sqltypes.AutoString(length=500),
                                       nullable=True))
    op.add_column("account", sa.Column("webhook_secret",
                                       sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("account", "webhook_secret")
    op.drop_column("account", "webhook_url")
