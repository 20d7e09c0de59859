"""How the flow sees a device: what it is (`DeviceRef`), and the two things it may be asked to do
(`Device`: stop a use, show its cost). OCPP stations, relays and meters implement `Device` in
their own packages; the flow never knows which protocol is behind it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from billing.usage import Point


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A device that a badge may pay at, as the inventory knows it."""

    kind: str  # the ledger's service: charging | laundry | supply
    device_id: str
    site_id: str
    tariff_id: str | None  # None: the device has no tariff and cannot bill
    # How the device renders badge UIDs (rfid.uid formats).
    idtag_format: str = "hex"
    # The site's IANA time zone (local days, friendly windows).
    timezone: str = "UTC"
    # Where the device stands, for the clone check (a building, else the site).
    location: str | None = None
    # The most the device delivers (W): energy beyond it in the elapsed time is held for
    # review instead of billed. None: no limit known.
    max_power_w: int | None = None
    # The site's limit of uses one badge runs at once (a badge's own limit may be higher).
    max_uses_per_badge: int = 1


@dataclass(frozen=True, slots=True)
class UseRef:
    """One use, as a device adapter needs it to address the device."""

    use_id: int
    kind: str
    device_id: str
    use_ref: str
    account_id: str | None
    currency: str


@dataclass(frozen=True, slots=True)
class CostShown:
    """The cost to show on the device: `gross` is what the resident pays (0 for a free use)."""

    gross: Decimal
    currency: str
    final: bool
    at: datetime
    register_wh: int | None
    running: bool  # still drawing power at `at`
    language: str = "de"


class Device(Protocol):
    """What the flow may ask of a device; both move no money and may fail (asked again)."""

    async def stop(self, use: UseRef) -> bool:
        """Ask the device to end the use; True if it accepted."""
        ...

    async def show_cost(self, use: UseRef, cost: CostShown) -> None:
        """Show the running or the final cost, where the device has a display for it."""
        ...


class ExtraPoints(Protocol):
    """Usage a device reports outside its use's messages (e.g. OCPP 1.6 connector states)."""

    async def __call__(self, db: AsyncSession, use: UseRef, start: datetime | None
                       ) -> Iterable[Point]: ...
