"""A small site with apartment meters (as a site file), emulated SDM630 meters on a real
Modbus TCP line, and a reading as the poller hands it over."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from csms.inventory.sitefile import import_site
from csms.simulator.meters import f32, sdm630
from csms.simulator.modbus_devices import EmulatedUnit, ModbusDevices
from meters.registers import MeterValues

ENERGY_REGISTER = 0x0048  # SDM630 30073 Total Import kWh (float32)
POWER_REGISTER = 0x0034  # 30053 Total system power, W


def site_document(
    site_id: str,
    meters: Iterable[dict[str, Any]],
    accounts: Sequence[str] = ("a-01", "a-02"),
) -> dict[str, Any]:
    return {
        "site": {"id": site_id, "name": f"Site {site_id}", "timezone": "Europe/Berlin",
                 "currency": "EUR", "country": "DE"},
        "tariffs": [{
            "id": "household", "name": "Haushaltsstrom", "currency": "EUR",
            "vat_percent": "19",
            "components": [{"dimension": "energy", "tiers": [{"from_wh": 0, "price": "0.30"}]}],
        }],
        "accounts": [{"id": ref, "name": f"Household {ref}"} for ref in accounts],
        "meters": list(meters),
    }


def meter_entry(
    meter_id: str, account: str, port: int, unit: int, *, host: str = "127.0.0.1",
    poll_s: int | None = None, profile: str = "eastron-sdm630",
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": meter_id, "account": account, "profile": profile, "tariff": "household",
        "modbus": {"host": host, "port": port, "unit": unit},
    }
    if poll_s is not None:
        entry["poll_s"] = poll_s
    return entry


async def add_site(engine: AsyncEngine, document: dict[str, Any]) -> None:
    await import_site(engine, document)


def sdm630_unit(unit: int, *, kwh: float = 1000.0, power_w: float = 1523.4) -> EmulatedUnit:
    """An Eastron SDM630 as one unit behind an emulated gateway: its documented input registers
    (csms/simulator/meters.py) with the import register at `kwh`."""
    dump = sdm630(unit, power_w=power_w).put(ENERGY_REGISTER, f32(kwh))
    blocks: dict[int, list[int]] = {}
    start = previous = -2
    for address in sorted(dump.words):
        if address != previous + 1:
            start = address
            blocks[start] = []
        blocks[start].append(dump.words[address])
        previous = address
    return EmulatedUnit(unit, input_registers=blocks)


async def set_energy(devices: ModbusDevices, unit: int, kwh: float) -> None:
    await devices.set_registers(unit, "input", ENERGY_REGISTER, f32(kwh))


def values(energy_wh: int | None, power_w: str | None = "1500") -> MeterValues:
    """A reading as `read_meter` decodes it (None: the register held NaN)."""
    not_a_number = set()
    if energy_wh is None:
        not_a_number.add("energy_import_wh")
    if power_w is None:
        not_a_number.add("power_w")
    return MeterValues(
        energy_import_wh=energy_wh,
        power_w=None if power_w is None else Decimal(power_w),
        not_a_number=frozenset(not_a_number),
    )
