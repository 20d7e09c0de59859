"""wallet: an alert's audience, the household (e-mail and webhook) or staff (webhook only)

Revision ID: 0103_wallet_alert_audience
Revises: 0102_wallet_alert_claim
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0103_wallet_alert_audience"
down_revision: str | Sequence[str] | None = "0102_wallet_alert_claim"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wallet_alert") as batch:
        batch.add_column(
            sa.Column("audience", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False,
                      server_default="account")
        )


def downgrade() -> None:
    with op.batch_alter_table("wallet_alert") as batch:
        batch.drop_column("audience")
