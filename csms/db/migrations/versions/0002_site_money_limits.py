"""inventory: a site's maximum per top-up and per voucher

Revision ID: 0002_site_money_limits
Revises: 0001_inventory

Existing sites get the default, 500.00 in their currency (stored in the 1/10,000 units of
`column_types.Money`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import column_types

revision: str = "0002_site_money_limits"
down_revision: str | Sequence[str] | None = "0001_inventory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_UNITS = "5000000"  # 500.00


def upgrade() -> None:
    for name in ("max_top_up", "max_voucher"):
        op.add_column("site", sa.Column(name, column_types.Money(), nullable=False,
                                        server_default=DEFAULT_UNITS))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35), not a batch rebuild of the referenced site table.
    for name in ("max_voucher", "max_top_up"):
        op.drop_column("site", name)
