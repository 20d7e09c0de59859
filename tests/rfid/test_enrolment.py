"""Enrolment through nfcpy without hardware: an emulated card on the udp driver, read by a
second frontend, exactly as a desk reader would."""

from __future__ import annotations

import ctypes.util

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from csms.db.engine import session_factory
from rfid.emulated_card import EmulatedCard
from rfid.enrolment import CardRead, EnrolmentError, card_type, enrol, read_card, wait_for_card
from rfid.models import Badge
from rfid.uid import Uid
from tests.rfid.conftest import NOW, add_site


def uid(text: str) -> Uid:
    return Uid(bytes.fromhex(text))


@pytest.mark.parametrize(("card", "expected"), [
    (CardRead(uid("04A2B3C4"), 0x0004, 0x08), "MIFARE Classic 1K"),
    (CardRead(uid("04A2B3C4"), 0x0002, 0x18), "MIFARE Classic 4K"),
    (CardRead(uid("04A2B3C4"), 0x0004, 0x09), "MIFARE Mini"),
    (CardRead(uid("04911A8A235C80"), 0x0044, 0x08), "MIFARE Classic 1K"),
    (CardRead(uid("04A2B3C4"), 0x0004, 0x88), "MIFARE Classic 1K (Infineon)"),
])
def test_classic_cards_are_accepted(card: CardRead, expected: str) -> None:
    assert card_type(card) == expected


@pytest.mark.parametrize(("card", "message"), [
    (CardRead(uid("04911A8A235C80"), 0x0344, 0x20), "MIFARE DESFire card speaking"),
    (CardRead(uid("08A1B2C3"), 0x0004, 0x20), "a phone or another card with a random UID"),
    (CardRead(uid("04911A8A235C80"), 0x0044, 0x20), r"DESFire, MIFARE Plus \(SL3\), bank card"),
    (CardRead(uid("04A2B3C4"), 0x0004, 0x28), "also emulates MIFARE Classic"),
    (CardRead(uid("08A1B2C3"), 0x0004, 0x08), "random UID that changes at every tap"),
    (CardRead(uid("04911A8A235C80"), 0x0044, 0x00), "Ultralight or NTAG"),
    (CardRead(uid("04911A8A235C80"), 0x0044, 0x10), "security level 2"),
    (CardRead(uid("04A2B3C4"), 0x0004, 0x01), "SAK 01 is not a MIFARE Classic card"),
])
def test_other_cards_are_refused(card: CardRead, message: str) -> None:
    with pytest.raises(EnrolmentError, match=message):
        card_type(card)


@pytest.mark.parametrize(("text", "atqa", "sak"), [
    ("04A2B3C4", 0x0004, 0x08),
    ("04911A8A235C80", 0x0044, 0x18),
    ("04911A8A235C80", 0x0344, 0x20),
])
def test_reader_sees_what_the_card_emulates(text: str, atqa: int, sak: int) -> None:
    with EmulatedCard(uid(text), atqa=atqa, sak=sak) as card:
        read = read_card(card.device, timeout_s=10)
    assert card.error is None
    assert read == CardRead(uid(text), atqa, sak)


async def test_enrol_from_an_emulated_classic(sqlite_engine: AsyncEngine) -> None:
    async with session_factory(sqlite_engine)() as session:
        await add_site(session, "lindenhof", "a-01")
        with EmulatedCard(uid("04911A8A235C80"), atqa=0x0044, sak=0x08) as card:
            read = await wait_for_card(card.device, timeout_s=10)
        badge = await enrol(session, read, account_id="a-01", now=NOW, label="Keller 2")
        await session.commit()
        stored = await session.get(Badge, ("lindenhof", "04911A8A235C80"))
        assert stored is not None
        assert (stored.account_id, stored.card_type, stored.label) == (
            "a-01", "MIFARE Classic 1K", "Keller 2")
        assert badge.uid == stored.uid


async def test_a_refused_card_stores_nothing(sqlite_engine: AsyncEngine) -> None:
    async with session_factory(sqlite_engine)() as session:
        await add_site(session, "lindenhof", "a-01")
        with EmulatedCard(uid("04911A8A235C80"), atqa=0x0344, sak=0x20) as card:
            read = await wait_for_card(card.device, timeout_s=10)
        with pytest.raises(EnrolmentError, match="DESFire"):
            await enrol(session, read, account_id="a-01", now=NOW)
        assert (await session.exec(select(Badge))).all() == []


def test_no_card_presented_times_out_with_a_message() -> None:
    with EmulatedCard(uid("04A2B3C4"), atqa=0x0004, sak=0x08) as card:
        pass  # the card is taken away before the reader looks
    with pytest.raises(EnrolmentError, match=r"no card was presented .* within 1 s"):
        read_card(card.device, timeout_s=1)


def test_a_reader_that_does_not_exist_gives_a_message() -> None:
    with pytest.raises(EnrolmentError, match="no contactless reader found at 'tty:NOPE0:pn532'"):
        read_card("tty:NOPE0:pn532", timeout_s=1)


def test_usb_without_libusb_or_reader_gives_a_message() -> None:
    expected = ("libusb-1.0 is missing" if ctypes.util.find_library("usb-1.0") is None
                else "no contactless reader found at 'usb'")
    with pytest.raises(EnrolmentError, match=expected):
        read_card("usb", timeout_s=1)


def test_ten_byte_uids_cannot_be_emulated() -> None:
    with pytest.raises(ValueError, match="third cascade"):
        EmulatedCard(uid("04112233445566778899"), atqa=0x0044, sak=0x08)
