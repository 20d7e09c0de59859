"""A meter of a site-file block (`profile` + `modbus` keys) read through its gateway's one
owner (amenities.drivers.modbus_gateway): what apartment meters and machines' `power` blocks
use."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from amenities.drivers.modbus_gateway import ModbusGateways
from meters.profiles import MeterProfile, find_profile
from meters.reading import ModbusMeter


def meter_on_gateway(
    gateways: ModbusGateways, block: Mapping[str, Any], custom: Iterable[MeterProfile] = ()
) -> ModbusMeter:
    """The meter the block names, sharing its gateway with every device behind it."""
    profile = find_profile(str(block["profile"]), custom)
    modbus = block["modbus"]
    gateway = gateways.gateway(str(modbus["host"]), int(modbus.get("port", 502)),
                               modbus.get("transport", "tcp"))
    unit = int(modbus.get("unit", 1))
    read = functools.partial(gateway.read_registers, unit)
    return ModbusMeter(read, profile, address=f"{profile.id} {gateway.address(unit)}")
