"""The poll plan over devices behind one real pymodbus server: writes first, due reads in order,
a dead unit backed off without stalling the others, overrunning cycles reported; the clock is a
fake one that the tests (and "slow" reads) move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from amenities.drivers.capabilities import DeviceUnreachable
from amenities.drivers.modbus_coil import ModbusCoilRelay
from amenities.drivers.modbus_gateway import Backoff, ModbusGateway
from amenities.drivers.poll_plan import Overrun, PollPlan
from csms.simulator.modbus_devices import EmulatedUnit, ModbusDevices
from tests.amenities.modbus_fixtures import TEST_TIMEOUT_S, FakeClock
from tests.conftest import JsonLogs

RELAY, METER_A, METER_B, DEAD = 1, 3, 4, 7


@dataclass
class Line:
    devices: ModbusDevices
    gateway: ModbusGateway
    clock: FakeClock
    results: list[tuple[str, object]] = field(default_factory=list)
    failures: list[tuple[str, Exception]] = field(default_factory=list)
    overruns: list[Overrun] = field(default_factory=list)

    def plan(self, cycle_s: float = 5) -> PollPlan[list[int]]:
        async def on_result(key: str, value: list[int]) -> None:  # async callbacks are awaited
            self.results.append((key, value))

        return PollPlan(
            cycle_s=cycle_s,
            clock=self.clock,
            on_result=on_result,
            on_failure=lambda key, error: self.failures.append((key, error)),
            on_overrun=self.overruns.append,
            name="test-line",
        )

    def meter(self, unit: int) -> Callable[[], Awaitable[list[int]]]:
        async def read() -> list[int]:
            return await self.gateway.read_registers(unit, "input", 0x0000, 2)

        return read

    def unit_requests(self, unit: int) -> int:
        return sum(1 for request in self.devices.requests if request.unit == unit)


@pytest.fixture
async def line() -> AsyncIterator[Line]:
    units = [
        EmulatedUnit(RELAY, coils=2),
        EmulatedUnit(METER_A, input_registers={0x0000: [10, 11]}),
        EmulatedUnit(METER_B, input_registers={0x0000: [20, 21]}),
        EmulatedUnit(DEAD, input_registers={0x0000: [0, 0]}, silent=True),
    ]
    clock = FakeClock()
    async with ModbusDevices(*units) as devices:
        gateway = ModbusGateway(
            devices.host,
            devices.port,
            timeout_s=TEST_TIMEOUT_S,
            backoff=Backoff(first_s=10),
            clock=clock,
        )
        yield Line(devices, gateway, clock)
        await gateway.close()


async def test_due_reads_each_cycle_and_a_dead_unit_backed_off(line: Line) -> None:
    plan = line.plan(cycle_s=5)
    plan.add("meter-a", 5, line.meter(METER_A))
    plan.add("meter-b", 10, line.meter(METER_B))
    plan.add("dead", 5, line.meter(DEAD))

    first = await plan.run_cycle()
    assert first.reads == ("meter-a", "meter-b", "dead")
    assert first.failed == ("dead",)
    assert line.results == [("meter-a", [10, 11]), ("meter-b", [20, 21])]
    [(key, error)] = line.failures
    assert key == "dead" and isinstance(error, DeviceUnreachable)
    assert error.reason == f"read input registers 0+2: no answer within {TEST_TIMEOUT_S:g} s"

    line.clock.advance(5)
    second = await plan.run_cycle()
    assert second.reads == ("meter-a", "dead")  # meter-b is due every other cycle
    assert line.results[-1] == ("meter-a", [10, 11])
    assert "backed off until" in str(line.failures[-1][1])
    assert line.unit_requests(DEAD) == 1  # skipped without costing the line a timeout

    await line.devices.set_registers(METER_B, "input", 0x0000, [22, 23])
    line.clock.advance(5)
    third = await plan.run_cycle()
    assert third.reads == ("meter-a", "meter-b", "dead")
    assert line.results[-2:] == [("meter-a", [10, 11]), ("meter-b", [22, 23])]
    assert line.unit_requests(DEAD) == 2  # its backoff ran out: tried again
    assert [key for key, _ in line.failures] == ["dead", "dead", "dead"]
    assert plan.overruns == 0


async def test_queued_writes_go_first(line: Line) -> None:
    plan = line.plan()
    plan.add("meter-a", 60, line.meter(METER_A))
    relay = ModbusCoilRelay(line.gateway, unit=RELAY, coil=1)
    read_backs: list[bool] = []

    async def switch_on() -> None:
        read_backs.append(await relay.switch(True))

    plan.queue_write("disconnect-a", switch_on)
    report = await plan.run_cycle()
    assert report.writes == ("disconnect-a",)
    assert read_backs == [True]
    assert [(r.unit, r.function) for r in line.devices.requests] == [
        (RELAY, 5),
        (RELAY, 1),
        (METER_A, 4),
    ]
    # a write runs once; its failure goes to on_failure like a read's
    line.devices.units[RELAY].silent = True
    plan.queue_write("disconnect-a", switch_on)
    line.clock.advance(60)
    report = await plan.run_cycle()
    assert report.failed == ("disconnect-a",)
    assert line.failures[-1][0] == "disconnect-a"
    assert isinstance(line.failures[-1][1], DeviceUnreachable)
    assert line.failures[-1][1].address == relay.address
    assert line.results[-1] == ("meter-a", [10, 11])
    assert (await plan.run_cycle()).writes == ()


async def test_overrunning_cycle_is_reported(line: Line, json_logs: JsonLogs) -> None:
    plan = line.plan(cycle_s=5)
    slow = True

    async def slow_meter() -> list[int]:
        words = await line.gateway.read_registers(METER_A, "input", 0x0000, 2)
        if slow:
            line.clock.advance(7)  # the line took longer than the cycle
        return words

    plan.add("meter-a", 5, slow_meter)
    plan.add("meter-b", 5, line.meter(METER_B))
    report = await plan.run_cycle()
    assert report.overrun is True and report.took_s == 7.0
    assert plan.overruns == 1
    assert line.overruns == [Overrun(report.started, 7.0, 5.0)]
    [logged] = json_logs.lines("poll_cycle_overrun")
    assert logged["plan"] == "test-line"
    assert logged["took_s"] == 7.0 and logged["cycle_s"] == 5 and logged["reads"] == 2
    # both devices were still read
    assert [key for key, _ in line.results] == ["meter-a", "meter-b"]

    slow = False
    report = await plan.run_cycle()
    assert report.overrun is False
    assert plan.overruns == 1 and len(line.overruns) == 1


async def test_a_broken_read_or_callback_stops_nothing_else(
    line: Line, json_logs: JsonLogs
) -> None:
    plan = line.plan()

    async def broken() -> list[int]:
        raise ValueError("profile decodes garbage")

    plan.add("broken", 5, broken)
    plan.add("meter-a", 5, line.meter(METER_A))
    plan.add("meter-b", 5, line.meter(METER_B))

    stored: list[str] = []

    def storage_down_for_a(key: str, value: list[int]) -> None:
        if key == "meter-a":
            raise RuntimeError("database is down")
        stored.append(key)

    plan.on_result = storage_down_for_a
    report = await plan.run_cycle()
    assert report.reads == ("broken", "meter-a", "meter-b")
    assert report.failed == ("broken",)
    [(key, error)] = line.failures
    assert key == "broken" and isinstance(error, ValueError)
    assert stored == ["meter-b"]
    assert [event["key"] for event in json_logs.lines("poll_read_crashed")] == ["broken"]
    assert len(json_logs.lines("poll_callback_failed")) == 1


async def test_run_keeps_the_cycle_period(line: Line) -> None:
    plan = line.plan(cycle_s=5)
    took = iter([2.0, 0.0, 7.0])

    async def meter() -> list[int]:
        line.clock.advance(next(took))
        return await line.gateway.read_registers(METER_A, "input", 0x0000, 2)

    plan.add("meter-a", 5, meter)
    rests: list[float] = []

    class Stop(Exception):
        pass

    async def sleep(seconds: float) -> None:
        rests.append(seconds)
        if len(rests) == 3:
            raise Stop
        line.clock.advance(seconds)

    with pytest.raises(Stop):
        await plan.run(sleep=sleep)
    # the rest of each cycle; none after an overrun
    assert rests == [3.0, 5.0, 0.0]
    assert len(line.results) == 3 and plan.overruns == 1


def test_plan_arguments_are_checked(line: Line) -> None:
    with pytest.raises(ValueError, match="cycle_s"):
        line.plan(cycle_s=0)
    plan = line.plan()
    with pytest.raises(ValueError, match="period_s"):
        plan.add("meter-a", 0, line.meter(METER_A))
    plan.add("meter-a", 5, line.meter(METER_A))
    with pytest.raises(ValueError, match="already"):
        plan.add("meter-a", 5, line.meter(METER_A))
    assert plan.keys == ["meter-a"]
    plan.remove("meter-a")
    assert plan.keys == []
