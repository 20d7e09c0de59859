"""Enrolment at a desk reader with nfcpy: read a card's UID, ATQA and SAK and register it.

nfcpy cannot authenticate to MIFARE Classic sectors (no Crypto1), and does not need to: the
anticollision answer carries everything a badge is identified by. The SAK (select acknowledge)
tells the card family (NXP AN10833, "MIFARE type identification procedure"):

* 0x08 Classic 1K, 0x18 Classic 4K, 0x09 Mini, 0x19 Classic 2K, 0x88 Classic 1K (Infineon):
  accepted. MIFARE Plus in security level 1 answers like a Classic and is a Classic to our
  chargers.
* bit 0x20 set: the card speaks ISO/IEC 14443-4 (T=CL): DESFire, Plus in SL3, bank cards, phones
  (also 0x28 / 0x38, smart cards that additionally emulate a Classic). Refused: the site's
  chargers do not support T=CL cards.
* 0x00: Ultralight / NTAG (NFC Forum Type 2); 0x10 / 0x11: Plus in SL2. Refused.

nfcpy is blocking; `wait_for_card` runs it in a worker thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import errno
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from rfid.models import Badge
from rfid.registry import register_badge
from rfid.uid import Uid, UidError

CLASSIC_SAK = {
    0x08: "MIFARE Classic 1K",
    0x18: "MIFARE Classic 4K",
    0x09: "MIFARE Mini",
    0x19: "MIFARE Classic 2K",
    0x88: "MIFARE Classic 1K (Infineon)",
}
SAK_ISO14443_4 = 0x20  # the card supports T=CL
ATQA_DESFIRE = 0x0344


class EnrolmentError(Exception):
    """Why no badge could be read or enrolled, in words for the person at the desk."""


class CardRefused(EnrolmentError):
    """The card was read but is not a MIFARE Classic badge."""


@dataclass(frozen=True, slots=True)
class CardRead:
    """What the reader saw. `atqa` is written most significant byte first (0x0004 for a Classic
    1K), the way datasheets print it; on the air it travels the other way round."""

    uid: Uid
    atqa: int
    sak: int

    def describe(self) -> str:
        return f"UID {self.uid}, ATQA {self.atqa:04X}, SAK {self.sak:02X}"


def card_type(card: CardRead) -> str:
    """The MIFARE Classic variant of `card`, or EnrolmentError saying why it cannot be a badge."""
    if card.sak & SAK_ISO14443_4:
        if len(card.uid.data) == 4 and card.uid.data[0] == 0x08:
            what = "a phone or another card with a random UID"
        elif card.atqa == ATQA_DESFIRE:
            what = "a MIFARE DESFire card"
        elif card.sak in (0x28, 0x38):
            what = "a smart card that also emulates MIFARE Classic"
        else:
            what = "a DESFire, MIFARE Plus (SL3), bank card or phone"
        raise CardRefused(
            f"refused: {card.describe()} is {what} speaking ISO/IEC 14443-4 (T=CL); "
            "the site's chargers and readers accept MIFARE Classic badges only"
        )
    if len(card.uid.data) == 4 and card.uid.data[0] == 0x08:
        raise CardRefused(
            f"refused: {card.describe()} has a random UID that changes at every tap"
        )
    name = CLASSIC_SAK.get(card.sak)
    if name is not None:
        return name
    if card.sak == 0x00:
        raise CardRefused(
            f"refused: {card.describe()} is a MIFARE Ultralight or NTAG (NFC Forum Type 2), "
            "not MIFARE Classic"
        )
    if card.sak in (0x10, 0x11):
        raise CardRefused(
            f"refused: {card.describe()} is a MIFARE Plus in security level 2, not MIFARE Classic"
        )
    raise CardRefused(f"refused: {card.describe()} is not a MIFARE Classic card")


def open_reader(device: str) -> Any:
    """An nfcpy ContactlessFrontend on `device` (`usb`, `usb:054c:06c3`, `tty:USB0:pn532`,
    `udp:HOST:PORT`), or EnrolmentError saying what is missing."""
    import nfc  # imported here: it pulls in libusb bindings the rest of the package never needs

    try:
        return nfc.ContactlessFrontend(device)
    except FileNotFoundError as error:
        if "libusb" in str(error):
            raise EnrolmentError(
                f"cannot use USB reader {device!r}: the system library libusb-1.0 is missing "
                "(Debian/Ubuntu: apt install libusb-1.0-0; macOS: brew install libusb)"
            ) from None
        raise EnrolmentError(f"cannot open reader {device!r}: {error}") from None
    except OSError as error:
        if error.errno == errno.ENODEV:
            raise EnrolmentError(
                f"no contactless reader found at {device!r}: is it plugged in and not claimed "
                "by another driver (e.g. the pn533 kernel module)?"
            ) from None
        if error.errno in (errno.EACCES, errno.EPERM):
            raise EnrolmentError(
                f"no permission to open reader {device!r}: add a udev rule for it or run as a "
                "user with access to the device"
            ) from None
        if error.errno == errno.EBUSY:
            raise EnrolmentError(f"reader {device!r} is in use by another program") from None
        raise EnrolmentError(f"cannot open reader {device!r}: {error}") from None
    except (ValueError, TypeError) as error:
        raise EnrolmentError(f"device {device!r} is not a reader path: {error}") from None


def sense_card(frontend: Any) -> CardRead | None:
    """One poll of an open reader (`open_reader`): the Type A card in its field, or None. Every
    poll switches the field off first, so a card held there answers again at the next one."""
    import nfc.clf

    try:
        target = frontend.sense(nfc.clf.RemoteTarget("106A"), iterations=1)
    except nfc.clf.CommunicationError:
        return None
    if target is None or target.sdd_res is None or not target.sel_res:
        return None
    try:
        uid = Uid(bytes(target.sdd_res))
    except UidError as error:
        raise EnrolmentError(f"the card answered with an unusable UID: {error}") from None
    atqa = int.from_bytes(bytes(target.sens_res), "little")
    return CardRead(uid, atqa, target.sel_res[0])


def read_card(device: str, *, timeout_s: float = 30.0, poll_s: float = 0.2) -> CardRead:
    """Wait up to `timeout_s` for a Type A card at `device` and read UID, ATQA and SAK."""
    frontend = open_reader(device)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            card = sense_card(frontend)
            if card is not None:
                return card
            time.sleep(poll_s)
        raise EnrolmentError(f"no card was presented to {device!r} within {timeout_s:g} s")
    finally:
        frontend.close()


async def wait_for_card(device: str, *, timeout_s: float = 30.0) -> CardRead:
    return await asyncio.to_thread(read_card, device, timeout_s=timeout_s)


async def enrol(
    session: AsyncSession,
    card: CardRead,
    *,
    account_id: str,
    now: datetime,
    label: str | None = None,
    origin: str = "issued",
) -> Badge:
    """Register a card that was read; refused cards raise EnrolmentError and store nothing."""
    return await register_badge(
        session, uid=card.uid, account_id=account_id, now=now, label=label, origin=origin,
        card_type=card_type(card),
    )
