"""The one paid-use flow for every device (DESIGN.md): who pays for a badge at a device, the hold,
usage rated with pricing, the stop when credit runs out, and settling once.

Devices reach it through `Device` (stop, show cost); their adapters live with their protocol
(`csms.charging` for OCPP, `amenities`, `meters`) and call `PaidUseFlow` in `Unit`s.
"""

from billing.device import CostShown, Device, DeviceRef, ExtraPoints, UseRef
from billing.flow import (
    FlowOptions,
    NewPoint,
    PaidUseFlow,
    Unit,
    flag,
    hold_key,
    raise_key,
    settle_key,
    shown_gross,
)
from billing.models import PaidUse, UsagePoint, UseStatus
from billing.payer import CloneCheck, Payer, badge_standing, device_badge, open_uses, who_pays
from billing.rating import UseRatings, usage_of, use_ref_of
from billing.usage import BuiltUsage, Point, build_usage, effective_time, usage_document

__all__ = [
    "BuiltUsage",
    "CloneCheck",
    "CostShown",
    "Device",
    "DeviceRef",
    "ExtraPoints",
    "FlowOptions",
    "NewPoint",
    "PaidUse",
    "PaidUseFlow",
    "Payer",
    "Point",
    "Unit",
    "UsagePoint",
    "UseRatings",
    "UseRef",
    "UseStatus",
    "badge_standing",
    "build_usage",
    "device_badge",
    "effective_time",
    "flag",
    "hold_key",
    "open_uses",
    "raise_key",
    "settle_key",
    "shown_gross",
    "usage_document",
    "usage_of",
    "use_ref_of",
    "who_pays",
]
