"""`volthaus reader run` against a real node on 127.0.0.1 (the fake laundry service behind the
taps route), reading emulated cards through nfcpy's `udp` driver as it would a USB reader: a
Classic badge is posted once in the reader's idTag format, held or not; a DESFire never leaves
the reader; an unreachable or unavailable node is retried, not a crash."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from csms.cli.main import main
from csms.cli.reader import HeldCard, ReaderOptions, TapReader
from rfid.emulated_card import EmulatedCard, free_udp_port
from rfid.enrolment import CardRead
from rfid.uid import Uid
from tests.conftest import Api
from tests.csms.fakes import FakeLaundry, Tap
from tests.csms.test_api_readers import LINDENHOF

CLASSIC = Uid(bytes.fromhex("04A2B3C4"))
DESFIRE = Uid(bytes.fromhex("04911A8A235C80"))
WAIT_S = 60  # an upper bound for waits on things that happen, never a speed requirement


def card(uid: Uid) -> CardRead:
    return CardRead(uid, 0x0004, 0x08)


def test_a_held_card_is_one_tap() -> None:
    held = HeldCard(gone_after_polls=2)
    polls = [card(CLASSIC), card(CLASSIC), None, card(CLASSIC), card(CLASSIC), None, None,
             card(CLASSIC), card(DESFIRE), card(CLASSIC), None]
    assert [held.is_new_tap(c) for c in polls] == [
        True, False, False, False, False, False, False, True, True, True, False]


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), WAIT_S)


@dataclass
class Running:
    reader: TapReader
    out: io.StringIO
    device: str
    port: int

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()


@dataclass
class Node:
    api: Api
    laundry: FakeLaundry
    tokens: dict[str, str]


@pytest.fixture
async def node(api: Api) -> Node:
    admin = await api.admin()
    imported = await api.client.post("/api/v1/sites/import", content=LINDENHOF, headers=admin)
    assert imported.status_code == 200, imported.text
    laundry = FakeLaundry()
    api.node.app.state.laundry = laundry
    tokens = {}
    for reader in ("reader-1", "reader-2"):
        headers = await api.token("reader", site="lindenhof", reader=reader)
        tokens[reader] = headers["Authorization"].removeprefix("Bearer ")
    return Node(api, laundry, tokens)


@pytest.fixture
def start_reader() -> Callable[..., AsyncIterator[Running]]:
    """`async with` a TapReader on a fresh udp device, stopped (and its threads joined) after."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def start(**options: object) -> AsyncIterator[Running]:
        port = free_udp_port()
        device = f"udp:127.0.0.1:{port}"
        out = io.StringIO()
        reader = TapReader(ReaderOptions(devices=(device,), **options), out=out)  # type: ignore[arg-type]
        stop = asyncio.Event()
        task = asyncio.create_task(reader.run(stop))
        try:
            await until(lambda: reader.polls[device] >= 1)
            yield Running(reader, out, device, port)
        finally:
            stop.set()
            await asyncio.wait_for(task, WAIT_S)

    return start  # type: ignore[return-value]


async def test_a_classic_tap_is_posted_once_in_the_readers_format(
    node: Node, start_reader: Callable[..., AsyncIterator[Running]]
) -> None:
    async with start_reader(
        url=node.api.node.http_url, token=node.tokens["reader-2"], reader="reader-2",
        amenity="dryer-1", idtag_format="dec-reversed", language="en",
    ) as running:
        with EmulatedCard(CLASSIC, atqa=0x0004, sak=0x08, port=running.port, timeout_s=WAIT_S):
            await asyncio.wait_for(node.laundry.wait_for_taps(1), WAIT_S)
            seen = running.reader.sightings[running.device]
            # The card stays on the reader for three more polls that see it: still one tap.
            await until(lambda: running.reader.sightings[running.device] >= seen + 3)
        await until(lambda: any("accepted" in line for line in running.lines()))
    assert node.laundry.taps == [Tap("lindenhof", "reader-2", "3300106756", "dryer-1")]
    assert "3300106756 at dryer-1: accepted: dryer-1 is ready to start" in running.lines()


async def test_a_desfire_is_refused_at_the_reader_and_a_classic_after_it_is_sent(
    node: Node, start_reader: Callable[..., AsyncIterator[Running]]
) -> None:
    async with start_reader(
        url=node.api.node.http_url, token=node.tokens["reader-1"], reader="reader-1",
        amenity="washer-1",
    ) as running:
        with EmulatedCard(DESFIRE, atqa=0x0344, sak=0x20, port=running.port, timeout_s=WAIT_S):
            await until(lambda: any("not sent" in line for line in running.lines()))
        assert node.laundry.taps == []
        with EmulatedCard(CLASSIC, atqa=0x0004, sak=0x08, port=running.port, timeout_s=WAIT_S):
            await asyncio.wait_for(node.laundry.wait_for_taps(1), WAIT_S)
        await until(lambda: any("freigegeben" in line for line in running.lines()))
    refusal = next(line for line in running.lines() if "not sent" in line)
    assert refusal.startswith("refused: UID 04911A8A235C80, ATQA 0344, SAK 20 is a MIFARE "
                              "DESFire card")
    assert node.laundry.taps == [Tap("lindenhof", "reader-1", "04A2B3C4", "washer-1")]
    assert "04A2B3C4 at washer-1: accepted: washer-1 ist freigegeben" in running.lines()


async def test_an_unavailable_node_is_retried_until_it_answers(
    node: Node, start_reader: Callable[..., AsyncIterator[Running]]
) -> None:
    laundry = node.laundry
    del node.api.node.app.state.laundry  # the node answers 503 for now
    async with start_reader(
        url=node.api.node.http_url, token=node.tokens["reader-1"], reader="reader-1",
        amenity="washer-1", retry_for_s=WAIT_S,
    ) as running:
        with EmulatedCard(CLASSIC, atqa=0x0004, sak=0x08, port=running.port, timeout_s=WAIT_S):
            await until(lambda: any("trying again" in line for line in running.lines()))
        node.api.node.app.state.laundry = laundry
        await asyncio.wait_for(laundry.wait_for_taps(1), WAIT_S)
        await until(lambda: any("freigegeben" in line for line in running.lines()))
    assert ("04A2B3C4: " + node.api.node.http_url + " is unavailable (503 this node runs no "
            "laundry service); trying again in 1 s") in running.lines()
    assert len(laundry.taps) == 1


async def test_an_unreachable_node_is_printed_and_the_tap_given_up_in_time(
    start_reader: Callable[..., AsyncIterator[Running]],
) -> None:
    nobody = f"http://127.0.0.1:{free_tcp_port()}"
    async with start_reader(url=nobody, token="vh_x_y", reader="reader-1",
                            retry_for_s=1.5) as running:
        with EmulatedCard(CLASSIC, atqa=0x0004, sak=0x08, port=running.port, timeout_s=WAIT_S):
            await until(lambda: any("not sent" in line for line in running.lines()))
        polls = running.reader.polls[running.device]
        await until(lambda: running.reader.polls[running.device] > polls)  # still reading
    lines = running.lines()
    assert any(line.startswith(f"04A2B3C4: cannot reach {nobody}: ") and
               line.endswith("trying again in 1 s") for line in lines), lines
    assert any(line.startswith(f"04A2B3C4: not sent: cannot reach {nobody}") and
               line.endswith("please tap again") for line in lines), lines


async def test_the_node_refusing_the_token_is_printed(
    node: Node, start_reader: Callable[..., AsyncIterator[Running]]
) -> None:
    async with start_reader(url=node.api.node.http_url, token=node.tokens["reader-1"],
                            reader="reader-2") as running:
        with EmulatedCard(CLASSIC, atqa=0x0004, sak=0x08, port=running.port, timeout_s=WAIT_S):
            await until(lambda: any("refused the tap" in line for line in running.lines()))
    assert ("04A2B3C4: the node refused the tap: 403 this token is bound to reader 'reader-1', "
            "not 'reader-2'") in running.lines()
    assert node.laundry.taps == []


def free_tcp_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def volthaus() -> str:
    return str(Path(sys.executable).with_name("volthaus"))


async def test_the_command_posts_a_tap_and_stops_on_a_signal(node: Node) -> None:
    port = free_udp_port()
    process = await asyncio.create_subprocess_exec(
        volthaus(), "reader", "run", "--url", node.api.node.http_url,
        "--token", node.tokens["reader-1"], "--reader", "reader-1", "--amenity", "washer-1",
        "--device", f"udp:127.0.0.1:{port}", "--language", "en",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
    )
    try:
        with EmulatedCard(CLASSIC, atqa=0x0004, sak=0x08, port=port, timeout_s=WAIT_S):
            await asyncio.wait_for(node.laundry.wait_for_taps(1), WAIT_S)
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), WAIT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == (f"reader reader-1: reading udp:127.0.0.1:{port}, posting taps to "
                        f"{node.api.node.http_url}")
    assert "04A2B3C4 at washer-1: accepted: washer-1 is ready to start" in lines
    assert lines[-1] == "reader reader-1: stopped"
    assert node.laundry.taps == [Tap("lindenhof", "reader-1", "04A2B3C4", "washer-1")]


@pytest.mark.parametrize(("args", "message"), [
    (("--url", "ftp://example.org", "--device", "udp:127.0.0.1:9"),
     "volthaus reader run: url: 'ftp://example.org' is not an http(s) address"),
    (("--url", "http://127.0.0.1:9", "--device", "tty:NOPE0:pn532"),
     "volthaus reader run: device: no contactless reader found at 'tty:NOPE0:pn532': is it "
     "plugged in and not claimed by another driver (e.g. the pn533 kernel module)?"),
])
def test_bad_arguments_exit_2_naming_them(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    # In this process (a process costs seconds here); the command as a real process is the
    # signal test above.
    code = main(["reader", "run", "--token", "vh_x_y", "--reader", "reader-1", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1] == message
