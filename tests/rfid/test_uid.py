"""UIDs across vendor formats, with real 4- and 7-byte cards."""

from __future__ import annotations

import re

import pytest

from rfid.uid import (
    FORMATS,
    TagReading,
    Uid,
    UidError,
    match_id_tag,
    normalize,
    parse,
    read_tag,
    render,
)

# A 4-byte NUID (the site-file example), a 4-byte card whose decimal needs all 10 digits, and a
# 7-byte NXP UID (manufacturer byte 0x04). Values worked out by hand; test_table_is_right checks
# them again from the bytes.
TABLE: list[tuple[str, dict[str, str]]] = [
    ("04A2B3C4", {
        "hex": "04A2B3C4",
        "hex-reversed": "C4B3A204",
        "dec": "0077771716",
        "dec-reversed": "3300106756",
        "wiegand26": "179,41476",
        "wiegand34": "50355,41476",
    }),
    ("F1E2D3C4", {
        "hex": "F1E2D3C4",
        "hex-reversed": "C4D3E2F1",
        "dec": "4058174404",
        "dec-reversed": "3302220529",
        "wiegand26": "211,58097",
        "wiegand34": "50387,58097",
    }),
    ("04911A8A235C80", {
        "hex": "04911A8A235C80",
        "hex-reversed": "805C238A1A9104",
        "dec": "01285443079593088",
        "dec-reversed": "36130104729571588",
        "wiegand26": "026,37124",
        "wiegand34": "35354,37124",
    }),
]
CASES = [(uid, fmt, text) for uid, texts in TABLE for fmt, text in texts.items()]


def test_table_covers_every_format() -> None:
    for _uid, texts in TABLE:
        assert set(texts) == set(FORMATS)


@pytest.mark.parametrize(("uid", "fmt", "text"), CASES)
def test_table_is_right(uid: str, fmt: str, text: str) -> None:
    """Independent of rfid.uid: the table's numbers recomputed from the bytes."""
    data = bytes.fromhex(uid)
    if fmt == "hex":
        assert text == data.hex().upper()
    elif fmt == "hex-reversed":
        assert bytes.fromhex(text) == data[::-1]
    elif fmt == "dec":
        assert int(text) == int.from_bytes(data, "big")
    elif fmt == "dec-reversed":
        assert int(text) == int.from_bytes(data, "little")
    elif fmt == "wiegand26":
        facility, card = (int(x) for x in text.split(","))
        assert facility << 16 | card == int.from_bytes(data, "little") % 2**24
    else:
        facility, card = (int(x) for x in text.split(","))
        assert facility << 16 | card == int.from_bytes(data[:4], "little")


@pytest.mark.parametrize(("uid", "fmt", "text"), CASES)
def test_render(uid: str, fmt: str, text: str) -> None:
    assert render(Uid(bytes.fromhex(uid)), fmt) == text


@pytest.mark.parametrize(("uid", "fmt", "text"), CASES)
def test_read_back_reveals_leading_bytes(uid: str, fmt: str, text: str) -> None:
    reading = read_tag(text, fmt)
    assert bytes.fromhex(uid).startswith(reading.data)
    assert reading.compare(Uid(bytes.fromhex(uid))) is not None


@pytest.mark.parametrize(("uid", "fmt", "text"), [
    c for c in CASES if c[1] in ("hex", "hex-reversed", "dec", "dec-reversed")
    or (c[1] == "wiegand34" and len(c[0]) == 8)
])
def test_lossless_formats_parse_back(uid: str, fmt: str, text: str) -> None:
    assert parse(text, fmt) == Uid(bytes.fromhex(uid))
    assert normalize(text, fmt) == uid


@pytest.mark.parametrize("text", [
    "04a2b3c4", "04:A2:B3:C4", "04-a2-b3-c4", "04 A2 B3 C4", " 04A2:b3c4 ", "0x04A2B3C4",
])
def test_hex_in_any_case_with_separators(text: str) -> None:
    assert normalize(text, "hex") == "04A2B3C4"


@pytest.mark.parametrize(("text", "fmt"), [
    ("77771716", "dec"),  # unpadded
    ("179:41476", "wiegand26"), ("179 41476", "wiegand26"), ("17941476", "wiegand26"),
    ("5035541476", "wiegand34"), ("50355/41476", "wiegand34"),
])
def test_unpadded_and_unseparated_forms(text: str, fmt: str) -> None:
    assert read_tag(text, fmt).compare(Uid(bytes.fromhex("04A2B3C4"))) is not None


@pytest.mark.parametrize(("value", "fmt", "field", "message"), [
    ("", "hex", "uid", "empty"),
    ("04A2B3", "hex", "uid", "3 bytes; a MIFARE UID has 4, 7 or 10 bytes"),
    ("04A2B3C4D5", "hex", "uid", "5 bytes"),
    ("04A2B3C", "hex", "uid", "odd number of digits"),
    ("04::A2B3C4", "hex", "uid", "empty group"),
    ("04A2G3C4", "hex", "uid", "'G' (digit 5) is not a hex digit"),
    ("12a4", "dec", "uid", "'a' is not a decimal digit"),
    ("9" * 26, "dec", "uid", "too large"),
    ("300,41476", "wiegand26", "uid", "facility code 300 exceeds 255"),
    ("179,70000", "wiegand26", "uid", "card number 70000 exceeds 65535"),
    ("179", "wiegand26", "uid", "malformed"),
    ("179,41476", "wiegand26-ish", "format", "unknown idTag format 'wiegand26-ish'"),
])
def test_bad_input_names_what_is_wrong(value: str, fmt: str, field: str, message: str) -> None:
    with pytest.raises(UidError, match=re.escape(message)) as caught:
        read_tag(value, fmt)
    assert caught.value.field == field


def test_uid_lengths_are_checked() -> None:
    for length in (4, 7, 10):
        assert len(Uid(bytes(length)).hex) == 2 * length
    for length in (0, 3, 5, 8, 11):
        with pytest.raises(UidError, match=f"{length} bytes"):
            Uid(bytes(length))


def test_ten_byte_uid_round_trips_in_every_lossless_format() -> None:
    uid = Uid(bytes.fromhex("04112233445566778899"))
    for fmt in ("hex", "hex-reversed", "dec", "dec-reversed"):
        assert parse(render(uid, fmt), fmt) == uid
    assert len(render(uid, "dec")) == 25


def test_wiegand26_cannot_become_a_uid() -> None:
    with pytest.raises(UidError, match="wiegand26 reveals only 3 bytes"):
        parse("179,41476", "wiegand26")


def test_cascade_fragment() -> None:
    assert Uid(bytes.fromhex("8804911A")).is_cascade_fragment
    assert not Uid(bytes.fromhex("04A2B3C4")).is_cascade_fragment


SEVEN = Uid(bytes.fromhex("04911A8A235C80"))
FOUR = Uid(bytes.fromhex("04A2B3C4"))
OTHER = Uid(bytes.fromhex("F1E2D3C4"))
BADGES = [SEVEN, FOUR, OTHER]


@pytest.mark.parametrize(("id_tag", "configured", "uid", "fmt", "kind"), [
    ("04a2b3c4", "hex", FOUR, "hex", "exact"),
    ("3300106756", "dec-reversed", FOUR, "dec-reversed", "exact"),
    # station configured hex but its reader sends the 10-digit number
    ("3300106756", "hex", FOUR, "dec-reversed", "exact"),
    # configured dec-reversed, but the reader sends reversed hex
    ("C4B3A204", "dec-reversed", FOUR, "hex-reversed", "exact"),
    # reader stops after cascade level 1: first 4 bytes of the 7-byte UID
    ("04911A8A", "hex", SEVEN, "hex", "prefix"),
    # ... or reports cascade level 1 as on the air, with the cascade tag
    ("8804911A", "hex", SEVEN, "hex", "prefix"),
    # a 10-digit reader in front of a 7-byte card: first 4 bytes, little-endian
    (str(int.from_bytes(SEVEN.data[:4], "little")), "dec-reversed", SEVEN, "dec-reversed",
     "prefix"),
    ("179,41476", "wiegand26", FOUR, "wiegand26", "prefix"),
    ("35354,37124", "wiegand34", SEVEN, "wiegand34", "prefix"),
    ("50355,41476", "hex", FOUR, "wiegand34", "exact"),
])
def test_match_with_fallback(
    id_tag: str, configured: str, uid: Uid, fmt: str, kind: str
) -> None:
    found = match_id_tag(id_tag, configured, BADGES)
    assert found is not None
    assert (found.uid, found.fmt, found.configured, found.kind) == (uid, fmt, configured, kind)
    assert found.format_mismatch == (fmt != configured)


def test_no_match_and_ambiguous_prefix() -> None:
    assert match_id_tag("DEADBEEF", "hex", BADGES) is None
    assert match_id_tag("garbage!", "hex", BADGES) is None
    twins = [Uid(bytes.fromhex("04911A8A235C80")), Uid(bytes.fromhex("04911A8A000000"))]
    assert match_id_tag("04911A8A", "hex", twins) is None
    # the exact 4-byte badge wins over a 7-byte badge sharing its first 4 bytes
    both = [Uid(bytes.fromhex("04911A8A")), *twins]
    found = match_id_tag("04911A8A", "hex", both)
    assert found is not None and found.uid == both[0] and found.kind == "exact"


def test_configured_format_must_be_known() -> None:
    with pytest.raises(UidError, match="unknown idTag format") as caught:
        match_id_tag("04A2B3C4", "HEX", BADGES)
    assert caught.value.field == "format"


def test_reading_compare() -> None:
    assert TagReading("hex", SEVEN.data).compare(SEVEN) == "exact"
    assert TagReading("hex", SEVEN.data[:4]).compare(SEVEN) == "prefix"
    assert TagReading("hex", FOUR.data).compare(SEVEN) is None
