"""The devices of a demo site, emulated: every relay and meter a site file places on 127.0.0.1
gets an emulator speaking its real protocol on the port the file names, so `volthaus serve
--demo` runs a laundry room and metered flats with nothing plugged in.

One emulator per distinct port (the host is always 127.0.0.1):

- `shelly-gen2` / `shelly-gen1` relay blocks: a Shelly emulator with as many channels as the
  blocks name (with the block's credentials). A machine's channel plays its kind's programme
  (csms.simulator.loads: WASHER, DRYER, OTHER) from each switch-on: a few seconds of low power,
  ~2 kW heating, ~200 W tumbling, a few seconds below 5 W, then 1 W standby. A Shelly used as
  a flat's disconnect relay starts on and meters a household load.
- meters (`meters[].modbus`, and a machine's `power` block): living meters
  (csms.simulator.meters.EmulatedMeter) on a Modbus server per port, TCP or RTU-over-TCP as
  the blocks say, each flat drawing a household load that wanders between 150 and 900 W.
- `modbus-coil` relay blocks: coils of a relay module on the Modbus server of their port. A
  flat's `disconnect` coil feeds its meter (`link_supply`): while it is off the flat draws
  nothing. It starts in the supplied state, as a flat has power before the backend first
  looks. A machine's coil starts off; a machine whose `power` meter sits behind that coil
  plays its programme on that meter from each switch-on.

Time comes from `clock` (seconds, default `time.monotonic`): a test passes a ManualClock and
advances it, nothing sleeps. A block on another host is left alone (a real device), a port
that two kinds of device claim is a ValueError naming both, and a port that cannot be bound
(taken, or privileged) a `DemoPortError` naming it; whatever had started is stopped again.

    async with demo_devices(read_document("examples/demo-site.yaml")) as demo:
        for line in demo.describe():
            log.info("demo_device", emulator=line)
        ...  # until the server stops
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from csms.simulator.httpdevice import Clock
from csms.simulator.loads import PROGRAMMES, ConstantLoad, LoadCurve, household_load
from csms.simulator.meters import EmulatedMeter, MeterLine, link_supply
from csms.simulator.modbus_devices import EmulatedUnit, ModbusDevices, Transport
from csms.simulator.shelly import ShellyDevice, ShellyGen1Emulator, ShellyGen2Emulator
from meters.profiles import MeterProfile, find_profile, profile_from_site_file

LOCALHOST = "127.0.0.1"
SHELLY_DRIVERS = ("shelly-gen2", "shelly-gen1")
MODULE_COILS = 8  # a relay module's coils, unless a block names a higher one


class DemoPortError(OSError):
    """An emulator of the demo could not listen on its port (taken by another program, or
    below 1024 without the right to bind it)."""

    def __init__(self, port: int, emulator: str, reason: str) -> None:
        super().__init__(f"demo device {emulator} cannot listen on {LOCALHOST}:{port}: {reason}")
        self.port = port
        self.emulator = emulator


@dataclass
class DemoDevices:
    """The running emulators, by port, and the living meters, by site id."""

    shellies: dict[int, ShellyDevice] = field(default_factory=dict)
    modbus: dict[int, MeterLine] = field(default_factory=dict)
    meters: dict[str, EmulatedMeter] = field(default_factory=dict)  # by meters[].id
    machine_meters: dict[str, EmulatedMeter] = field(default_factory=dict)  # by amenities[].id
    users: dict[int, list[str]] = field(default_factory=dict)  # port -> what the site puts there

    @property
    def ports(self) -> list[int]:
        return sorted([*self.shellies, *self.modbus])

    def kind(self, port: int) -> str:
        """`shelly-gen2`, `shelly-gen1`, `modbus tcp` or `modbus rtu-over-tcp`."""
        if port in self.shellies:
            gen2 = isinstance(self.shellies[port], ShellyGen2Emulator)
            return "shelly-gen2" if gen2 else "shelly-gen1"
        return f"modbus {self.modbus[port].transport}"

    def describe(self) -> list[str]:
        """One line per emulator: `shelly-gen2 on 127.0.0.1:8081: washer-1 relay channel 0, ...`."""
        return [
            f"{self.kind(port)} on {LOCALHOST}:{port}: {', '.join(self.users[port])}"
            for port in self.ports
        ]


# ---- what the site file asks for --------------------------------------------------------------


@dataclass
class _ShellyPlan:
    driver: str
    users: list[str]
    programmes: dict[int, LoadCurve | None] = field(default_factory=dict)  # channel -> load
    initially_on: set[int] = field(default_factory=set)
    username: str | None = None
    password: str | None = None


@dataclass
class _MeterPlan:
    key: str  # meters[].id, or the amenity id for a machine's power block
    machine: bool
    profile: MeterProfile
    unit: int
    load: LoadCurve
    supplied_by: tuple[int, int, int, bool] | None = None  # port, unit, coil, inverted


@dataclass
class _LinePlan:
    transport: Transport
    users: list[str]
    meters: dict[int, _MeterPlan] = field(default_factory=dict)  # by unit
    coils: dict[int, dict[int, bool]] = field(default_factory=dict)  # unit -> coil -> level


@dataclass
class _Plan:
    shellies: dict[int, _ShellyPlan] = field(default_factory=dict)
    lines: dict[int, _LinePlan] = field(default_factory=dict)

    def claim(self, port: int, kind: str, user: str) -> None:
        """Refuse a port that two kinds of device claim (one emulator per port)."""
        if port in self.shellies and self.shellies[port].driver != kind:
            taken = f"{self.shellies[port].driver} ({', '.join(self.shellies[port].users)})"
        elif port in self.lines and kind != "modbus":
            taken = f"modbus ({', '.join(self.lines[port].users)})"
        else:
            return
        raise ValueError(f"{LOCALHOST}:{port} is {taken} and {kind} ({user}): one device a port")

    def shelly(self, block: Mapping[str, Any], user: str) -> tuple[_ShellyPlan, int]:
        driver, port = str(block["driver"]), int(block.get("port", 80))
        self.claim(port, driver, user)
        plan = self.shellies.setdefault(port, _ShellyPlan(driver, []))
        plan.users.append(user)
        for key in ("username", "password"):
            given = block.get(key)
            if given is None:
                continue
            if getattr(plan, key) not in (None, str(given)):
                raise ValueError(f"{LOCALHOST}:{port}: {user} gives another {key}")
            setattr(plan, key, str(given))
        channel = int(block.get("channel", 0))
        if channel in plan.programmes:
            raise ValueError(f"{LOCALHOST}:{port} channel {channel} is used twice ({user})")
        plan.programmes[channel] = None
        return plan, channel

    def line(self, port: int, transport: Transport, user: str) -> _LinePlan:
        self.claim(port, "modbus", user)
        plan = self.lines.setdefault(port, _LinePlan(transport, []))
        if plan.transport != transport:
            raise ValueError(
                f"{LOCALHOST}:{port} speaks {plan.transport} and {transport} ({user}): "
                "one gateway speaks one"
            )
        plan.users.append(user)
        return plan

    def coil(self, block: Mapping[str, Any], user: str, level: bool) -> tuple[int, int, int]:
        port = int(block.get("port", 502))
        line = self.line(port, block.get("transport", "tcp"), user)
        unit, coil = int(block.get("unit", 1)), int(block.get("coil", 0))
        if unit in line.meters:
            raise ValueError(
                f"{LOCALHOST}:{port} unit {unit} is meter {line.meters[unit].key} and relay {user}"
            )
        coils = line.coils.setdefault(unit, {})
        if coil in coils:
            raise ValueError(f"{LOCALHOST}:{port} unit {unit} coil {coil} is used twice ({user})")
        coils[coil] = level
        return port, unit, coil

    def meter(self, block: Mapping[str, Any], plan: _MeterPlan, user: str) -> None:
        modbus = block["modbus"]
        port = int(modbus.get("port", 502))
        line = self.line(port, modbus.get("transport", "tcp"), user)
        if plan.unit in line.meters or plan.unit in line.coils:
            raise ValueError(f"{LOCALHOST}:{port} unit {plan.unit} is used twice ({user})")
        line.meters[plan.unit] = plan


def _local(block: Any) -> bool:
    return isinstance(block, Mapping) and str(block.get("host", "")) == LOCALHOST


def _local_meter(block: Any) -> bool:
    return isinstance(block, Mapping) and "profile" in block and _local(block.get("modbus"))


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def _plan(document: Mapping[str, Any]) -> _Plan:
    plan = _Plan()
    custom = [
        profile_from_site_file(entry, f"meter_profiles[{i}]")
        for i, entry in enumerate(document.get("meter_profiles") or [])
    ]

    def meter_plan(
        key: str, block: Mapping[str, Any], load: LoadCurve, machine: bool
    ) -> _MeterPlan:
        return _MeterPlan(
            key=key,
            machine=machine,
            profile=find_profile(str(block["profile"]), custom),
            unit=int(block["modbus"].get("unit", 1)),
            load=load,
        )

    for amenity in document.get("amenities") or []:
        name, kind = str(amenity["id"]), str(amenity.get("kind", "other"))
        programme = PROGRAMMES.get(kind, PROGRAMMES["other"])
        relay, power = amenity.get("relay"), amenity.get("power")
        coil_at: tuple[int, int, int] | None = None
        if _local(relay) and relay.get("driver") in SHELLY_DRIVERS:
            shelly, channel = plan.shelly(relay, f"{name} relay channel {relay.get('channel', 0)}")
            # The Shelly meters the machine itself unless a power meter does. Its load hangs
            # on the output as with normally-open wiring, `inverted` or not.
            shelly.programmes[channel] = None if _local_meter(power) else programme
        elif _local(relay) and relay.get("driver") == "modbus-coil":
            coil_at = plan.coil(relay, f"{name} relay", level=bool(relay.get("inverted")))
        if _local_meter(power):
            metered = meter_plan(name, power, programme if coil_at else ConstantLoad(1.0), True)
            if coil_at is not None:
                metered.supplied_by = (*coil_at, bool(relay.get("inverted")))
            plan.meter(power, metered, f"{name} power meter unit {metered.unit}")

    for flat in document.get("meters") or []:
        name = str(flat["id"])
        load = household_load(_seed(name))
        disconnect = flat.get("disconnect")
        supplied_by = None
        if _local(disconnect) and disconnect.get("driver") in SHELLY_DRIVERS:
            # Not linked to the meter (a Shelly emulator has no watchers): it switches and
            # meters the flat's load on its own.
            user = f"{name} disconnect channel {disconnect.get('channel', 0)}"
            shelly, channel = plan.shelly(disconnect, user)
            if not disconnect.get("inverted"):
                shelly.programmes[channel] = load
                shelly.initially_on.add(channel)
        elif _local(disconnect) and disconnect.get("driver") == "modbus-coil":
            inverted = bool(disconnect.get("inverted"))
            coil_at = plan.coil(disconnect, f"{name} disconnect", level=not inverted)
            supplied_by = (*coil_at, inverted)
        if _local_meter(flat):
            metered = meter_plan(name, flat, load, False)
            metered.supplied_by = supplied_by
            plan.meter(flat, metered, f"{name} unit {metered.unit}")
    building = (document.get("load") or {}).get("building_meter")
    if isinstance(building, Mapping) and _local_meter(building):
        # The whole house: a few kW that wander over the day (the wallboxes' draw is not in
        # the demo's meter: no car charges unless the demo's stations are simulated).
        house = household_load(_seed("building"), low_w=2_500.0, high_w=9_000.0)
        metered = meter_plan("building", building, house, False)
        plan.meter(building, metered, f"building meter unit {metered.unit}")
    return plan


# ---- running them -----------------------------------------------------------------------------


def _shelly(port: int, plan: _ShellyPlan, clock: Clock) -> ShellyDevice:
    channels = max(plan.programmes, default=0) + 1
    device: ShellyDevice
    if plan.driver == "shelly-gen2":
        device = ShellyGen2Emulator(
            channels=channels, password=plan.password, clock=clock, port=port,
            device_id=f"shellypro4pm-demo{port:05d}",
        )
    else:
        device = ShellyGen1Emulator(
            channels=channels, username=plan.username, password=plan.password, clock=clock,
            port=port,
        )
    for channel, load in plan.programmes.items():
        device.set_programme(channel, load)
    for channel in plan.initially_on:
        device.channel(channel).command(clock(), True, None, "init")
    return device


# 2026-01-01T00:00:00Z: the demo meters count from here at 100 W on average.
_IN_SERVICE_SINCE = 1_767_225_600


def _register_in_service(key: str) -> int:
    """A plausible register of a meter in service for some years, and one that keeps growing
    across restarts of the demo (it follows the wall clock), so the node never sees it run
    backwards; below 8192 kWh for years, so a float32 kWh register still shows single Wh."""
    hours = max(0.0, time.time() - _IN_SERVICE_SINCE) / 3600
    return (1000 + _seed(key) % 3000) * 1000 + int(hours * 100)


def _line(port: int, plan: _LinePlan, clock: Clock) -> MeterLine:
    meters = [
        EmulatedMeter(
            meter.profile,
            unit,
            meter.load,
            energy_wh=0 if meter.machine else _register_in_service(meter.key),
            clock=clock,
            load_from_supply=meter.machine,
        )
        for unit, meter in sorted(plan.meters.items())
    ]
    modules = [
        EmulatedUnit(
            unit,
            coils=[coils.get(i, False) for i in range(max(MODULE_COILS, max(coils) + 1))],
        )
        for unit, coils in sorted(plan.coils.items())
    ]
    return MeterLine(*meters, relays=modules, transport=plan.transport, port=port)


@asynccontextmanager
async def demo_devices(
    site_document: Mapping[str, Any], *, clock: Clock = time.monotonic
) -> AsyncIterator[DemoDevices]:
    """Start an emulator for every port on 127.0.0.1 the site file names, yield them, stop them
    on the way out. ValueError for a site whose local blocks contradict each other,
    DemoPortError for a port that cannot be bound."""
    plan = _plan(site_document)
    devices = DemoDevices()
    for port, shelly in plan.shellies.items():
        devices.shellies[port] = _shelly(port, shelly, clock)
        devices.users[port] = shelly.users
    for port, line_plan in plan.lines.items():
        line = _line(port, line_plan, clock)
        devices.modbus[port] = line
        devices.users[port] = line_plan.users
        for meter_plan in line_plan.meters.values():
            found = devices.machine_meters if meter_plan.machine else devices.meters
            found[meter_plan.key] = line.meters[meter_plan.unit]

    started: list[ShellyDevice | ModbusDevices] = []
    try:
        for port in devices.ports:
            emulator: ShellyDevice | ModbusDevices = (
                devices.shellies[port] if port in devices.shellies else devices.modbus[port]
            )
            try:
                await emulator.start()
            except OSError as error:
                reason = os.strerror(error.errno) if error.errno else str(error)
                what = f"{devices.kind(port)} for {', '.join(devices.users[port])}"
                raise DemoPortError(port, what, reason) from error
            started.append(emulator)
        for line_plan in plan.lines.values():
            for meter_plan in line_plan.meters.values():
                if meter_plan.supplied_by is None:
                    continue
                port, unit, coil, inverted = meter_plan.supplied_by
                found = devices.machine_meters if meter_plan.machine else devices.meters
                await link_supply(
                    found[meter_plan.key], devices.modbus[port], unit=unit, coil=coil,
                    inverted=inverted,
                )
        yield devices
    finally:
        for emulator in reversed(started):
            await emulator.stop()
