"""Every package's tables on one metadata (what Alembic compares and migrations create)."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlmodel import SQLModel

import amenities.models
import billing.models
import csms.audit.models
import csms.auth.models
import csms.charging.models
import csms.inventory.models
import csms.load.models
import csms.ocpp.models
import csms.ocpp.reservation_book
import csms.web.models
import meters.models
import rfid.models
import wallet.models

# Importing the modules above is what registers their tables; name them so it is not "unused".
TABLE_MODULES = (
    csms.inventory.models,
    csms.auth.models,
    wallet.models,
    rfid.models,
    billing.models,
    amenities.models,
    meters.models,
    csms.ocpp.models,
    csms.ocpp.reservation_book,
    csms.charging.models,
    csms.audit.models,
    csms.web.models,
    csms.load.models,
)


def metadata() -> MetaData:
    return SQLModel.metadata
