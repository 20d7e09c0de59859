"""`volthaus reader run`: a USB badge reader at laundry machines, reporting taps to a node.

Each `--device` is polled with nfcpy through `rfid.enrolment` (UID, ATQA and SAK of the card in
the field). A card that is not MIFARE Classic (a DESFire, a phone, a bank card) is refused at the
reader and nothing is sent; a Classic badge is posted as its UID in the reader's `idtag_format`
to `POST /api/v1/readers/{reader}/taps`, and the answer's message is printed in `--language`.

A card held on the reader is one tap: the same card is tapped again only after it was away for
`GONE_AFTER_POLLS` polls in a row (one missed poll of a card lying there is not a new tap).
Network errors and a server that is unavailable for the moment (502, 503, 504) are printed and
the tap is retried, until `--retry-for` seconds after it was made: a machine must not start
minutes later for someone who has left. Every other answer is final and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from rfid.enrolment import CardRead, CardRefused, EnrolmentError, card_type, open_reader, sense_card
from rfid.uid import FORMATS, Uid, render

GONE_AFTER_POLLS = 2
# A reader that failed (unplugged, claimed by another program) is opened again this often.
REOPEN_AFTER_S = 5.0
MAX_RETRY_DELAY_S = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    reader = subparsers.add_parser("reader", help="badge readers at machines")
    actions = reader.add_subparsers(dest="reader_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run", help="read badges at a USB reader (nfcpy) and post each tap to a node"
    )
    run.add_argument("--url", required=True, help="the node's HTTP address, http://HOST:8000")
    run.add_argument("--token", required=True, help="an API token of role reader for READER")
    run.add_argument("--reader", required=True, help="the reader's id in the site file")
    run.add_argument("--amenity", help="the machine each tap is for (when the reader serves "
                                       "several)")
    run.add_argument(
        "--device", dest="devices", action="extend", nargs="+", metavar="DEVICE",
        help="nfcpy device path(s): usb (default), usb:054c:06c3, tty:USB0:pn532, "
             "udp:HOST:PORT",
    )
    run.add_argument("--language", choices=("de", "en"), default="de",
                     help="language of the messages printed (de)")
    run.add_argument("--idtag-format", choices=FORMATS, default="hex",
                     help="how the UID is sent: the reader's idtag_format in the site file (hex)")
    run.add_argument("--retry-for", type=float, default=60.0, metavar="SECONDS",
                     help="how long a tap is retried while the node cannot be reached (60)")
    run.set_defaults(handler=run_reader)


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    url: str
    token: str
    reader: str
    amenity: str | None = None
    devices: tuple[str, ...] = ("usb",)
    language: str = "de"
    idtag_format: str = "hex"
    retry_for_s: float = 60.0
    poll_s: float = 0.2


class HeldCard:
    """The card lying on one reader, so that holding it there is one tap."""

    def __init__(self, gone_after_polls: int = GONE_AFTER_POLLS) -> None:
        self.gone_after_polls = gone_after_polls
        self.uid: Uid | None = None
        self.misses = 0

    def is_new_tap(self, card: CardRead | None) -> bool:
        """Feed one poll's result; True when `card` is a tap (not the card lying there)."""
        if card is None:
            self.misses += 1
            if self.misses >= self.gone_after_polls:
                self.uid = None
            return False
        new = card.uid != self.uid
        self.uid, self.misses = card.uid, 0
        return new


@dataclass(frozen=True, slots=True)
class Tap:
    card: CardRead
    at: float  # on the reader's monotonic clock


class TapReader:
    """Poll the devices, post the taps, print what happens (one line each, on `out`)."""

    def __init__(
        self,
        options: ReaderOptions,
        *,
        out: TextIO,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.out = out
        self.clock = clock
        self.path = f"/api/v1/readers/{quote(options.reader, safe='')}/taps"
        # Polls made per device, and those that saw a card: what a test waits on to know a
        # held card was seen again.
        self.polls = dict.fromkeys(options.devices, 0)
        self.sightings = dict.fromkeys(options.devices, 0)

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set. EnrolmentError when a device cannot be opened at the start."""
        frontends = []
        try:
            for device in self.options.devices:
                frontends.append((device, open_reader(device)))
        except EnrolmentError:
            for _, frontend in frontends:
                frontend.close()
            raise
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Tap | str] = asyncio.Queue()
        halt = threading.Event()
        pollers = [
            asyncio.create_task(asyncio.to_thread(
                self._poll, device, frontend, lambda item: loop.call_soon_threadsafe(
                    queue.put_nowait, item), halt,
            ))
            for device, frontend in frontends
        ]
        self.say(f"reader {self.options.reader}: reading {', '.join(self.options.devices)}, "
                 f"posting taps to {self.options.url}")
        headers = {"Authorization": f"Bearer {self.options.token}",
                   "User-Agent": "volthaus-reader"}
        async with httpx.AsyncClient(base_url=self.options.url, headers=headers,
                                     timeout=10) as client:
            sender = asyncio.create_task(self._send_all(client, queue))
            try:
                await stop.wait()
            finally:
                halt.set()
                sender.cancel()
                await asyncio.gather(sender, *pollers, return_exceptions=True)
        self.say(f"reader {self.options.reader}: stopped")

    def _poll(
        self, device: str, frontend: Any, put: Callable[[Tap | str], object],
        halt: threading.Event,
    ) -> None:
        """A worker thread per device: nfcpy blocks."""
        held = HeldCard()
        try:
            while not halt.is_set():
                try:
                    card = sense_card(frontend)
                except (OSError, EnrolmentError) as error:
                    put(f"device {device}: {error}; opening it again in {REOPEN_AFTER_S:g} s")
                    frontend.close()
                    frontend = self._reopen(device, halt, put)
                    if frontend is None:
                        return
                    continue
                self.polls[device] += 1
                self.sightings[device] += card is not None
                if held.is_new_tap(card):
                    assert card is not None
                    put(Tap(card, self.clock()))
                halt.wait(self.options.poll_s)
        finally:
            if frontend is not None:
                frontend.close()

    def _reopen(
        self, device: str, halt: threading.Event, put: Callable[[Tap | str], object]
    ) -> Any:
        while not halt.wait(REOPEN_AFTER_S):
            try:
                frontend = open_reader(device)
            except EnrolmentError as error:
                put(f"device {device}: {error}")
                continue
            put(f"device {device}: reading again")
            return frontend
        return None

    async def _send_all(self, client: httpx.AsyncClient, queue: asyncio.Queue[Tap | str]) -> None:
        while True:
            item = await queue.get()
            if isinstance(item, str):
                self.say(item)
            else:
                await self.send(client, item)

    async def send(self, client: httpx.AsyncClient, tap: Tap) -> None:
        """Post one tap (refused cards are not) and print the answer."""
        try:
            card_type(tap.card)
        except CardRefused as error:
            self.say(f"{error}; not sent")
            return
        id_tag = render(tap.card.uid, self.options.idtag_format)
        body = {"id_tag": id_tag, "amenity": self.options.amenity}
        delay = 1.0
        while True:
            try:
                response = await client.post(self.path, json=body)
            except httpx.TransportError as error:
                trouble = f"cannot reach {self.options.url}: {error or type(error).__name__}"
            else:
                if response.status_code not in (502, 503, 504):
                    self.say(self.answer_line(id_tag, response))
                    return
                trouble = f"{self.options.url} is unavailable ({_detail(response)})"
            if self.clock() + delay > tap.at + self.options.retry_for_s:
                self.say(f"{id_tag}: not sent: {trouble}; please tap again")
                return
            self.say(f"{id_tag}: {trouble}; trying again in {delay:g} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY_S)

    def answer_line(self, id_tag: str, response: httpx.Response) -> str:
        if response.status_code != 200:
            return f"{id_tag}: the node refused the tap: {_detail(response)}"
        try:
            answer = response.json()
            message = answer["message"][self.options.language]
            return f"{id_tag} at {answer['amenity']}: {answer['decision']}: {message}"
        except (ValueError, KeyError, TypeError):
            return f"{id_tag}: unexpected answer: {response.text[:200]}"


def _detail(response: httpx.Response) -> str:
    """A problem answer (RFC 9457) as one line: status, detail, and each problem's path."""
    try:
        body = response.json()
        text = f"{response.status_code} {body['detail']}"
        for problem in body.get("problems") or ():
            text += f"; {problem['path']}: {problem['message']}"
        return text
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.reason_phrase}"


def run_reader(args: argparse.Namespace) -> int:
    try:
        url = httpx.URL(args.url)
    except httpx.InvalidURL:
        url = httpx.URL()
    if url.scheme not in ("http", "https") or not url.host:
        print(f"volthaus reader run: url: {args.url!r} is not an http(s) address",
              file=sys.stderr)
        return 2
    options = ReaderOptions(
        url=args.url.rstrip("/"), token=args.token, reader=args.reader, amenity=args.amenity,
        devices=tuple(args.devices or ("usb",)), language=args.language,
        idtag_format=args.idtag_format, retry_for_s=args.retry_for,
    )

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await TapReader(options, out=sys.stdout).run(stop)

    try:
        asyncio.run(go())
    except EnrolmentError as error:
        print(f"volthaus reader run: device: {error}", file=sys.stderr)
        return 2
    return 0
