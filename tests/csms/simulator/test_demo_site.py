"""`demo_devices` starts the emulators a site file places on 127.0.0.1, and Volthaus' own
drivers reach them: ShellyGen2/Gen1 and ModbusCoilRelay switch, `meters.on_gateway` reads. The
clock is a ManualClock: a washer's programme or an hour of a flat's load takes no waiting.

The first test binds the ports examples/demo-site.yaml names (8081, 5020, 5021), as the demo
does; the others take free ports of their own."""

from __future__ import annotations

import copy
import math
import socket
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from amenities.drivers.capabilities import Measurement
from amenities.drivers.modbus_coil import ModbusCoilRelay
from amenities.drivers.modbus_gateway import ModbusGateways
from amenities.drivers.shelly_gen1 import ShellyGen1
from amenities.drivers.shelly_gen2 import ShellyGen2, shelly_client
from csms.documents import read_document
from csms.simulator.demo_site import DemoPortError, demo_devices
from csms.simulator.httpdevice import ManualClock
from csms.simulator.loads import DRYER, WASHER
from meters.on_gateway import meter_on_gateway

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo-site.yaml"
HOST = "127.0.0.1"


@pytest.fixture
def site() -> dict[str, Any]:
    document = read_document(DEMO)
    assert isinstance(document, dict)
    return document


@pytest.fixture
async def gateways() -> AsyncIterator[ModbusGateways]:
    owners = ModbusGateways(timeout_s=2)
    yield owners
    await owners.close()


@pytest.fixture
def free_ports() -> Iterator[list[int]]:
    """Three ports nothing listens on, lowest first."""
    sockets = [socket.socket() for _ in range(3)]
    for each in sockets:
        each.bind((HOST, 0))
    ports = sorted(each.getsockname()[1] for each in sockets)
    for each in sockets:
        each.close()
    yield ports


async def test_the_demo_site_runs_its_shelly_and_meters_on_the_ports_it_names(
    site: dict[str, Any], gateways: ModbusGateways
) -> None:
    clock = ManualClock()
    async with demo_devices(site, clock=clock) as demo, shelly_client() as client:
        assert demo.ports == [5020, 5021, 8081]
        assert demo.describe() == [
            "modbus tcp on 127.0.0.1:5020: m-a-01 disconnect, m-a-01 unit 1, m-a-02 disconnect, "
            "m-a-02 unit 2, m-a-03 disconnect, m-a-03 unit 3",
            "modbus tcp on 127.0.0.1:5021: m-b-01 disconnect, m-b-01 unit 1, m-b-02 disconnect, "
            "m-b-02 unit 2, m-b-03 disconnect, m-b-03 unit 3, building meter unit 9",
            "shelly-gen2 on 127.0.0.1:8081: washer-1 relay channel 0, dryer-1 relay channel 1",
        ]
        washer = ShellyGen2(client, host=HOST, port=8081, channel=0)
        dryer = ShellyGen2(client, host=HOST, port=8081, channel=1)
        assert await washer.measure() == Measurement(power_w=Decimal(0), energy_wh=0)

        # Tapped: the controller switches the washer on with its dead-man timer.
        assert await washer.switch(True, auto_off_s=600) is True
        powers: dict[int, Decimal] = {}
        energies: list[int] = []
        for t in (3, 30, 80, 110, 125, 200):
            clock.advance(t - max(powers, default=0))
            reading = await washer.measure()
            powers[t] = reading.power_w
            energies.append(reading.energy_wh)
            if t == 80:  # renewing the timer does not start the programme again
                assert await washer.switch(True, auto_off_s=600) is True
        # low power, heating, tumbling, spin, below end_w, standby
        assert list(powers.values()) == [6, 2050, 210, 480, 3, 1]
        assert energies == sorted(energies) and energies[0] == 0
        assert energies[-1] == math.floor(WASHER.energy_ws(0, 200) / 3600) == 33
        assert await dryer.measure() == Measurement(power_w=Decimal(0), energy_wh=0)

        # A flat's meter, read the way the supply billing reads it.
        for block in site["meters"]:
            meter = meter_on_gateway(gateways, block)
            emulated = demo.meters[block["id"]]
            first = await meter.read_values()
            assert first.power_w is not None and 150 <= first.power_w <= 900
            assert first.voltage_l2_v == Decimal("229.8")
            assert first.energy_import_wh == math.floor(emulated.energy_wh())
        flat = meter_on_gateway(gateways, site["meters"][4])
        before = await flat.measure()
        clock.advance(3600)
        after = await flat.measure()
        assert after.energy_wh == math.floor(demo.meters["m-b-02"].energy_wh())
        assert 150 <= after.energy_wh - before.energy_wh <= 900  # an hour at 150-900 W


async def test_disconnect_coils_machine_meters_and_gen1_relays(
    free_ports: list[int], gateways: ModbusGateways
) -> None:
    meters_port, relays_port, gen1_port = free_ports
    local = {"host": HOST}
    site = {
        "meters": [
            {
                "id": "m-1",
                "profile": "carlo-gavazzi-em24",
                "modbus": {**local, "port": meters_port, "unit": 4, "transport": "rtu-over-tcp"},
                "disconnect": {"driver": "modbus-coil", **local, "port": relays_port,
                               "unit": 2, "coil": 3},
            },
        ],
        "amenities": [
            {
                "id": "washer-9",
                "kind": "washer",
                "relay": {"driver": "modbus-coil", **local, "port": relays_port, "unit": 2},
                "power": {"profile": "eastron-sdm120", "modbus": {
                    **local, "port": meters_port, "unit": 5, "transport": "rtu-over-tcp"}},
            },
            {
                "id": "dryer-9",
                "kind": "dryer",
                "relay": {"driver": "shelly-gen1", **local, "port": gen1_port, "channel": 1,
                          "username": "laundry", "password": "s3cret"},
            },
            {"id": "far", "kind": "washer", "relay": {"driver": "shelly-gen2",
                                                      "host": "10.0.4.21"}},
        ],
    }
    clock = ManualClock()
    async with demo_devices(site, clock=clock) as demo, shelly_client() as client:
        assert [demo.kind(port) for port in demo.ports] == [
            "modbus rtu-over-tcp", "modbus tcp", "shelly-gen1",
        ]
        lines = gateways.gateway(HOST, meters_port, "rtu-over-tcp")
        relays = gateways.gateway(HOST, relays_port)
        flat = meter_on_gateway(gateways, site["meters"][0])
        supply = ModbusCoilRelay(relays, unit=2, coil=3)
        machine_meter = meter_on_gateway(gateways, site["amenities"][0]["power"])
        machine = ModbusCoilRelay(relays, unit=2, coil=0)
        assert lines is not relays

        # The flat has power from the start and counts (EM24: 0.1 kWh steps).
        assert await supply.is_on() is True
        start = await flat.measure()
        clock.advance(3600)
        fed = await flat.measure()
        assert fed.power_w > 0 and fed.energy_wh >= start.energy_wh
        assert fed.energy_wh == math.floor(demo.meters["m-1"].energy_wh() / 100) * 100
        # Cut: nothing more is drawn, however long.
        assert await supply.switch(False) is False
        clock.advance(7200)
        cut = await flat.measure()
        assert (cut.power_w, cut.energy_wh) == (0, fed.energy_wh)

        # The machine behind a coil plays its programme on its own meter from switch-on.
        assert await machine.is_on() is False
        assert await machine_meter.measure() == Measurement(power_w=Decimal(0), energy_wh=0)
        assert await machine.switch(True) is True
        clock.advance(30)
        assert (await machine_meter.measure()).power_w == 2050
        clock.advance(170)
        assert await machine_meter.measure() == Measurement(
            power_w=Decimal(1), energy_wh=math.floor(WASHER.energy_ws(0, 200) / 3600)
        )

        # A Gen1 relay with basic auth, its dryer programme on channel 1.
        dryer = ShellyGen1(client, host=HOST, port=gen1_port, channel=1,
                           username="laundry", password="s3cret")
        assert await dryer.switch(True, auto_off_s=900) is True
        clock.advance(30)
        assert (await dryer.measure()).power_w == Decimal(2150)
        assert DRYER.watts_at(30) == 2150


async def test_a_taken_port_is_named_and_nothing_is_left_running(
    site: dict[str, Any],
) -> None:
    held = [socket.socket() for _ in range(2)]
    for each in held:
        each.bind((HOST, 0))
        each.listen()
    free_port, taken_port = sorted(each.getsockname()[1] for each in held)
    held.sort(key=lambda each: each.getsockname()[1])
    held[0].close()  # started first (ports go up), then stopped again by the failure
    document = copy.deepcopy(site)
    for block in document["meters"]:
        block["modbus"]["port"] = free_port
        block["modbus"]["unit"] += 3 if block["id"].startswith("m-b") else 0
    for amenity in document["amenities"]:
        amenity["relay"]["port"] = taken_port
    try:
        with pytest.raises(DemoPortError, match=f"127.0.0.1:{taken_port}") as raised:
            async with demo_devices(document, clock=ManualClock()):
                pytest.fail("started on a taken port")
        assert raised.value.port == taken_port
        assert "shelly-gen2 for washer-1 relay channel 0" in str(raised.value)
        assert "in use" in str(raised.value)
        with socket.socket() as again:
            again.bind((HOST, free_port))  # the Modbus emulator let its port go
    finally:
        held[1].close()


@pytest.mark.parametrize(
    ("relay", "message"),
    [
        (
            {"port": 5020},
            r"127.0.0.1:5020 is shelly-gen2 \(washer-1 relay channel 0, dryer-1 relay channel 1\) "
            r"and modbus \(m-a-01 disconnect",
        ),
        (
            {"driver": "shelly-gen1"},
            r"127.0.0.1:8081 is shelly-gen2 \(washer-1 relay channel 0\) and shelly-gen1 "
            r"\(dryer-1 relay channel 1\)",
        ),
        ({"channel": 0}, r"127.0.0.1:8081 channel 0 is used twice \(dryer-1 relay channel 0\)"),
    ],
)
async def test_one_kind_of_device_a_port(
    site: dict[str, Any], relay: dict[str, Any], message: str
) -> None:
    document = copy.deepcopy(site)
    document["amenities"][1]["relay"] |= relay
    if "port" in relay:
        document["amenities"][0]["relay"] |= relay
    with pytest.raises(ValueError, match=message):
        async with demo_devices(document, clock=ManualClock()):
            pytest.fail("started a site whose devices contradict each other")
