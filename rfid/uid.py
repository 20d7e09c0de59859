"""MIFARE UIDs and the ways wallboxes and readers write them (pure, no I/O).

The canonical form is uppercase hex, byte 0 (the manufacturer byte of a 7-byte UID) first:
`04A2B3C4`. Every idTag format of the site-file contract maps a UID to text (`render`) and text
back to the UID's leading bytes (`read_tag`); `parse` is the lossless direction only.

Decisions the stations' quirks forced (installers: `volthaus badge render UID --to all`
shows a card in every format):

* `dec` / `dec-reversed`: the number is padded to the UID length that fits it, so
  `0012345678` (the usual 10-digit print) is a 4-byte UID; rendering pads 4-byte UIDs to 10
  digits, 7-byte to 17 and 10-byte to 25.
* `wiegand26`: the 24 bits after the parity bits are bytes 0..2 of the UID read with byte 0
  least significant, i.e. the low 24 bits of the `dec-reversed` number: facility code = byte 2,
  card number = byte 1 * 256 + byte 0. Written `FFF,CCCCC` (separators `,` `:` `/` `-` or space
  accepted, and the unseparated 8-digit `FFFCCCCC`). It reveals 3 bytes, so it only ever matches
  by prefix and cannot be turned back into a UID.
* `wiegand34`: the 32 bits are bytes 0..3 read the same way: facility code = byte 3 * 256 +
  byte 2, card number = byte 1 * 256 + byte 0; written `FFFFF,CCCCC` (or 10 digits unseparated).
  Lossless for a 4-byte UID; for 7 and 10 bytes it is the truncated form below.
* Truncated forms: readers that stop after the first cascade level report a 7- or 10-byte UID as
  its first 4 bytes (or 7 of 10); others report the cascade level-1 bytes as seen on the air,
  `88` (the cascade tag) followed by bytes 0..2. Both match a registered longer UID by prefix,
  and only when exactly one badge has that prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

UID_LENGTHS: Final = (4, 7, 10)
# ISO/IEC 14443-3: the cascade tag that precedes bytes 0..2 of a double/triple size UID in
# cascade level 1; a single-size UID never starts with it.
CASCADE_TAG: Final = 0x88

IdTagFormat = Literal["hex", "hex-reversed", "dec", "dec-reversed", "wiegand26", "wiegand34"]
FORMATS: Final[tuple[IdTagFormat, ...]] = (
    "hex", "hex-reversed", "dec", "dec-reversed", "wiegand26", "wiegand34",
)
# Decimal renderings are zero-padded to the digits the largest UID of that length needs.
_DEC_DIGITS: Final = {4: 10, 7: 17, 10: 25}
_HEX_SEPARATORS: Final = re.compile(r"[:\- ]")
_WIEGAND_SPLIT: Final = re.compile(r"^(\d+)\s*[,:/\- ]\s*(\d+)$")

MatchKind = Literal["exact", "prefix"]


class UidError(ValueError):
    """A UID or idTag that cannot be read; `field` is `uid` or `format`."""

    def __init__(self, message: str, *, field: str = "uid") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True, order=True)
class Uid:
    """A 4-, 7- or 10-byte UID; `str(uid)` is the canonical form."""

    data: bytes

    def __post_init__(self) -> None:
        if len(self.data) not in UID_LENGTHS:
            raise UidError(
                f"{len(self.data)} bytes; a MIFARE UID has 4, 7 or 10 bytes"
            )

    @classmethod
    def parse(cls, value: str, fmt: str = "hex") -> Uid:
        return parse(value, fmt)

    @property
    def hex(self) -> str:
        return self.data.hex().upper()

    @property
    def is_cascade_fragment(self) -> bool:
        """A 4-byte "UID" starting with the cascade tag is a reader's truncation, not a card."""
        return len(self.data) == 4 and self.data[0] == CASCADE_TAG

    def __str__(self) -> str:
        return self.hex


@dataclass(frozen=True, slots=True)
class TagReading:
    """What an idTag reveals under one format: the UID's leading bytes, byte 0 first."""

    fmt: IdTagFormat
    data: bytes

    def compare(self, uid: Uid) -> MatchKind | None:
        if self.data == uid.data:
            return "exact"
        if len(self.data) < len(uid.data) and uid.data.startswith(self.data):
            return "prefix"
        if (
            len(self.data) == 4
            and self.data[0] == CASCADE_TAG
            and len(uid.data) >= 7
            and uid.data[:3] == self.data[1:]
        ):
            return "prefix"
        return None


@dataclass(frozen=True, slots=True)
class TagMatch:
    """A badge found for an idTag; `fmt` differs from `configured` when the station is set wrong."""

    uid: Uid
    fmt: IdTagFormat
    configured: IdTagFormat
    kind: MatchKind

    @property
    def format_mismatch(self) -> bool:
        return self.fmt != self.configured


def check_format(fmt: str) -> IdTagFormat:
    for known in FORMATS:
        if fmt == known:
            return known
    raise UidError(
        f"unknown idTag format {fmt!r} (one of {', '.join(FORMATS)})", field="format"
    )


def read_tag(value: str, fmt: str) -> TagReading:
    """The bytes `value` reveals under `fmt`; raises UidError naming what is wrong."""
    checked = check_format(fmt)
    text = value.strip()
    if not text:
        raise UidError("empty; expected a UID")
    if checked == "hex":
        return TagReading(checked, _hex_bytes(text))
    if checked == "hex-reversed":
        return TagReading(checked, _hex_bytes(text)[::-1])
    if checked == "dec":
        return TagReading(checked, _dec_bytes(text, "big"))
    if checked == "dec-reversed":
        return TagReading(checked, _dec_bytes(text, "little"))
    if checked == "wiegand26":
        facility, card = _wiegand_parts(text, facility_digits=3, facility_max=0xFF)
        return TagReading(checked, bytes([card & 0xFF, card >> 8, facility]))
    facility, card = _wiegand_parts(text, facility_digits=5, facility_max=0xFFFF)
    return TagReading(checked, bytes([card & 0xFF, card >> 8, facility & 0xFF, facility >> 8]))


def parse(value: str, fmt: str = "hex") -> Uid:
    """The UID written as `value` in `fmt`; formats that reveal fewer bytes raise UidError."""
    reading = read_tag(value, fmt)
    if len(reading.data) not in UID_LENGTHS:
        raise UidError(
            f"{fmt} reveals only {len(reading.data)} bytes of a UID; it can be matched against "
            "registered badges but not turned into a UID"
        )
    return Uid(reading.data)


def normalize(value: str, fmt: str = "hex") -> str:
    """The canonical form of `value` written in `fmt`."""
    return parse(value, fmt).hex


def render(uid: Uid, fmt: str) -> str:
    """`uid` as a station configured with `fmt` reports it."""
    checked = check_format(fmt)
    data = uid.data
    if checked == "hex":
        return uid.hex
    if checked == "hex-reversed":
        return data[::-1].hex().upper()
    if checked == "dec":
        return str(int.from_bytes(data, "big")).zfill(_DEC_DIGITS[len(data)])
    if checked == "dec-reversed":
        return str(int.from_bytes(data, "little")).zfill(_DEC_DIGITS[len(data)])
    if checked == "wiegand26":
        return f"{data[2]:03d},{data[1] << 8 | data[0]:05d}"
    return f"{data[3] << 8 | data[2]:05d},{data[1] << 8 | data[0]:05d}"


def readings(id_tag: str, configured: str) -> list[TagReading]:
    """`id_tag` read under the configured format first, then every other it is valid in."""
    first = check_format(configured)
    result: list[TagReading] = []
    for fmt in (first, *(f for f in FORMATS if f != first)):
        try:
            result.append(read_tag(id_tag, fmt))
        except UidError:
            continue
    return result


def match_id_tag(id_tag: str, configured: str, badges: Iterable[Uid]) -> TagMatch | None:
    """The registered UID an idTag stands for, or None.

    The configured format is tried first (exact, then prefix), then the other formats (all exact
    matches before any prefix match). A prefix that fits more than one badge matches none: a
    guessed payer is worse than a refused card.
    """
    configured_fmt = check_format(configured)
    candidates = list(badges)
    tagged = readings(id_tag, configured_fmt)
    own = [r for r in tagged if r.fmt == configured_fmt]
    others = [r for r in tagged if r.fmt != configured_fmt]
    passes: tuple[tuple[list[TagReading], MatchKind], ...] = (
        (own, "exact"), (own, "prefix"), (others, "exact"), (others, "prefix"),
    )
    for group, kind in passes:
        for reading in group:
            hits = sorted({uid for uid in candidates if reading.compare(uid) == kind})
            if len(hits) == 1:
                return TagMatch(hits[0], reading.fmt, configured_fmt, kind)
    return None


def _hex_bytes(text: str) -> bytes:
    body = text[2:] if text[:2] in ("0x", "0X") else text
    groups = _HEX_SEPARATORS.split(body)
    for group in groups:
        if not group:
            raise UidError(f"{text!r} is malformed: empty group between separators")
        if len(group) % 2:
            raise UidError(f"{text!r} is malformed: group {group!r} has an odd number of digits")
    digits = "".join(groups)
    for position, char in enumerate(digits, start=1):
        if char not in "0123456789abcdefABCDEF":
            raise UidError(f"{char!r} (digit {position}) is not a hex digit")
    data = bytes.fromhex(digits)
    if len(data) not in UID_LENGTHS:
        raise UidError(f"{len(data)} bytes; a MIFARE UID has 4, 7 or 10 bytes")
    return data


def _dec_bytes(text: str, order: Literal["big", "little"]) -> bytes:
    if not text.isascii() or not text.isdigit():
        bad = next(c for c in text if not ("0" <= c <= "9"))
        raise UidError(f"{bad!r} is not a decimal digit")
    number = int(text)
    for length in UID_LENGTHS:
        if number < 256**length and len(text) <= _DEC_DIGITS[length]:
            return number.to_bytes(length, order)
    raise UidError(f"{text} is too large for a 10-byte UID")


def _wiegand_parts(text: str, *, facility_digits: int, facility_max: int) -> tuple[int, int]:
    found = _WIEGAND_SPLIT.match(text)
    if found:
        facility, card = int(found[1]), int(found[2])
    elif text.isascii() and text.isdigit() and len(text) == facility_digits + 5:
        facility, card = int(text[:facility_digits]), int(text[facility_digits:])
    else:
        raise UidError(
            f"{text!r} is malformed: expected facility code and card number, e.g. "
            f"{'123,45678' if facility_max == 0xFF else '12345,45678'}"
        )
    if facility > facility_max:
        raise UidError(f"facility code {facility} exceeds {facility_max}")
    if card > 0xFFFF:
        raise UidError(f"card number {card} exceeds 65535")
    return facility, card
