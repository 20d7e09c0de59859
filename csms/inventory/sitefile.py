"""The site file of contracts/site-file.md: validate a whole document, upsert it in one
transaction, export it back, and describe it as JSON Schema.

Validation returns every problem with its path (`stations[2].tariff: unknown tariff 'wb'`);
nothing is written unless the whole document is valid.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from amenities.models import Amenity, Reader
from csms.db.engine import refresh_statistics, session_factory
from csms.documents import DocumentError, read_document
from csms.inventory.entries import (
    write_account,
    write_amenity,
    write_meter,
    write_reader,
    write_station_over,
)
from csms.inventory.models import DEFAULT_MAX_POWER_W, Building, Site, Station, Tariff
from csms.inventory.tariffs import publish_tariff
from csms.ocpp.security import (
    is_station_password_hash,
)
from meters.models import Meter
from meters.profiles import BUILTIN_PROFILES
from pricing import TariffError, load_tariff
from rfid.models import Badge
from rfid.registry import record_changes
from rfid.uid import IdTagFormat, UidError
from rfid.uid import parse as parse_uid
from wallet.amounts import CEILING, DEFAULT_MAXIMUM, amount_text, limit_problems
from wallet.models import Account
from wallet.service import record_opening_balance

IDTAG_FORMATS = ("hex", "hex-reversed", "dec", "dec-reversed", "wiegand26", "wiegand34")
MAX_CONNECTORS = 32

Slug = Annotated[str, Field(pattern=r"^[a-z0-9-]+$", min_length=1, max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Ref = Annotated[str, Field(min_length=1, max_length=64)]
# A site's maximum per input: decimal text in the site's currency, written as the file has it.
Limit = Annotated[Decimal, WithJsonSchema({
    "type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$", "default": str(DEFAULT_MAXIMUM),
    "description": "decimal text in the site's currency, no finer than its minor unit, "
                   f"above 0 and at most {CEILING}",
})]


class SiteFileError(ValueError):
    """A site file with problems; `problems` lists every one as `"<path>: <message>"`."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSection(_Strict):
    id: Slug
    name: Name
    timezone: str = Field(description="IANA time zone, e.g. Europe/Berlin")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217")
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    region: str | None = Field(default=None, max_length=10, description="subdivision (holidays)")
    auto_register_stations: StrictBool = False
    # The most a person may put in at once (wallet.amounts): one cash top-up, one voucher.
    max_top_up: Limit = DEFAULT_MAXIMUM
    max_voucher: Limit = DEFAULT_MAXIMUM
    # How many uses one badge may run at once (a badge's own `max_sessions` may allow more).
    max_uses_per_badge: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    # The account whose badges are the site's master pass (OCPP 2.0.1 MasterPassGroupId): they
    # may stop any session on the site, never start one.
    master_pass_account: Ref | None = None

    @field_validator("max_top_up", "max_voucher", mode="before")
    @classmethod
    def _limit(cls, value: Any, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency") or "EUR"
        problems = limit_problems(value, "x", currency=currency)
        if problems:
            raise ValueError("; ".join(message for _, message in problems))
        return Decimal(value.strip() if isinstance(value, str) else value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class BuildingEntry(_Strict):
    id: Ref
    name: str | None = None


class AccountEntry(_Strict):
    id: Ref
    name: Name
    building: Ref | None = None
    unit: str | None = None
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    language: Literal["de", "en"] = "de"
    opening_balance: Decimal | None = Field(
        default=None, description="imported once as a ledger entry, never re-applied"
    )

    @field_validator("opening_balance", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError('write amounts as decimal text, e.g. "20.00"')
        return value

    @field_validator("opening_balance")
    @classmethod
    def _money(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and (not value.is_finite() or value.as_tuple().exponent < -4):  # type: ignore[operator]
            raise ValueError("must be a finite amount with at most 4 decimals")
        return value


class BadgeEntry(_Strict):
    uid: str = Field(description="canonical: uppercase hex, byte 0 first (4, 7 or 10 bytes)")
    account: Ref
    label: str | None = None
    status: Literal["active", "blocked", "lost", "expired"] = "active"
    valid_from: date | None = None
    valid_until: date | None = None
    origin: Literal["issued", "foreign"] = Field(
        default="issued", description="foreign: a card the site did not issue (e.g. door access)"
    )
    max_sessions: Annotated[StrictInt, Field(ge=1, le=10)] = Field(
        default=1, description="sessions the badge may run at once"
    )

    @field_validator("uid")
    @classmethod
    def _canonical_uid(cls, value: str) -> str:
        try:
            uid = parse_uid(value, "hex")
        except UidError as error:
            raise ValueError(str(error)) from None
        if uid.hex != value:
            raise ValueError(f"{value!r} is not canonical; write {uid.hex!r}")
        return value


class StationEntry(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]+$", min_length=1, max_length=48)]
    building: Ref | None = None
    protocol: Literal["ocpp1.6", "ocpp2.0.1"]
    security_profile: Annotated[StrictInt, Field(ge=0, le=3)]
    password: Annotated[str, Field(min_length=16, max_length=40)] | None = Field(
        default=None, description="plain on import, stored hashed (OCPP: 16 to 40 characters)"
    )
    password_hash: str | None = None
    connectors: Annotated[StrictInt, Field(ge=1, le=MAX_CONNECTORS)]
    tariff: Ref
    idtag_format: IdTagFormat = "hex"
    max_power_w: Annotated[StrictInt, Field(ge=1_000, le=1_000_000)] = Field(
        default=DEFAULT_MAX_POWER_W,
        description="the most one connector delivers (W); energy beyond it in the elapsed "
        "time is held for review, not billed (default 22080: 3 x 32 A x 230 V, AC)",
    )

    @field_validator("password_hash")
    @classmethod
    def _hash_format(cls, value: str | None) -> str | None:
        if value is not None and not is_station_password_hash(value):
            raise ValueError("not a password hash written by `volthaus site export`")
        return value


Host = Annotated[str, Field(min_length=1, max_length=253)]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
Channel = Annotated[StrictInt, Field(ge=0, le=255)]
ModbusUnit = Annotated[StrictInt, Field(ge=0, le=247)]
ModbusTransport = Literal["tcp", "rtu-over-tcp"]


class ShellyGen2Relay(_Strict):
    """Shelly Gen2/Gen3/Gen4 RPC over HTTP (digest auth as `admin` when a password is set)."""

    driver: Literal["shelly-gen2"]
    host: Host
    port: Port = 80
    channel: Channel = 0
    password: str | None = None
    inverted: StrictBool = Field(default=False, description="normally-closed wiring")


class ShellyGen1Relay(_Strict):
    """Shelly Gen1 HTTP (basic auth when a password is set)."""

    driver: Literal["shelly-gen1"]
    host: Host
    port: Port = 80
    channel: Channel = 0
    username: str | None = None
    password: str | None = None
    inverted: StrictBool = Field(default=False, description="normally-closed wiring")


class ModbusCoilRelay(_Strict):
    """A Modbus relay module: write single coil, read coils back."""

    driver: Literal["modbus-coil"]
    host: Host
    port: Port = 502
    unit: ModbusUnit = 1
    coil: Annotated[StrictInt, Field(ge=0, le=65535)] = 0
    transport: ModbusTransport = "tcp"
    inverted: StrictBool = Field(default=False, description="normally-closed wiring")


RELAY_DRIVERS = ("shelly-gen2", "shelly-gen1", "modbus-coil")
RelayBlock = Annotated[
    ShellyGen2Relay | ShellyGen1Relay | ModbusCoilRelay, Field(discriminator="driver")
]


class ModbusAddress(_Strict):
    host: Host
    port: Port = 502
    unit: ModbusUnit = 1
    transport: ModbusTransport = "tcp"


class PowerSource(_Strict):
    """Where a machine's power is read when its relay does not measure it: a meter."""

    profile: Annotated[str, Field(min_length=1)] = Field(
        description="a built-in register profile or a custom one of `meter_profiles`",
        json_schema_extra={"examples": list(BUILTIN_PROFILES)},
    )
    modbus: ModbusAddress


Seconds = Annotated[StrictInt, Field(ge=1, le=86_400)]
Watts = Annotated[StrictInt, Field(ge=0, le=100_000)]


class CycleSettings(_Strict):
    """When a machine's cycle starts and ends (devices.md); every key optional."""

    poll_s: Annotated[StrictInt, Field(ge=1, le=3600)] = Field(
        default=5, description="how often power is read while a machine runs")
    start_w: Watts = Field(default=10, description="a cycle has started above this power")
    end_w: Watts = Field(default=5, description="and is over once power stays below this ...")
    end_after_s: Seconds = Field(default=180, description="... for this long")
    abandon_after_s: Seconds = Field(
        default=600, description="no power this long after the tap: released, nothing billed")
    max_s: Seconds = Field(default=14_400, description="a cycle ends after this long")


REGISTER_TYPES = ("uint16", "int16", "uint32", "int32", "uint64", "float32")


class RegisterEntry(_Strict):
    address: Annotated[StrictInt, Field(ge=0, le=65_535)]
    function: Literal["input", "holding"]
    type: Literal["uint16", "int16", "uint32", "int32", "uint64", "float32"]
    word_order: Literal["big", "little"] = "big"
    scale: Annotated[float, Field(gt=0)] = Field(
        default=1, description="the value read times scale is the unit in the key's name")


class MeterProfileEntry(_Strict):
    """A custom register profile: registers as data, keyed by what they measure."""

    id: Slug
    registers: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)], RegisterEntry
    ] = Field(description="at least energy_import_wh and power_w")


def relay_json(block: BaseModel) -> dict[str, Any]:
    """A relay block as stored and exported: the keys the file gave (defaults stay implicit)."""
    return block.model_dump(exclude_unset=True)


class AmenityEntry(_Strict):
    id: Ref
    building: Ref | None = None
    kind: Literal["washer", "dryer", "other"]
    tariff: Ref
    relay: RelayBlock
    reader: str | None = Field(default=None, description="the reader (`readers[]`) at it")
    power: PowerSource | None = None
    cycle: CycleSettings | None = None


class ReaderEntry(_Strict):
    """A badge reader at machines; taps reach `POST /api/v1/readers/{id}/taps` (devices.md)."""

    # In the tap route's path and in reader tokens: unique across the installation, URL-safe.
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]+$", min_length=1, max_length=64)]
    building: Ref | None = None
    idtag_format: IdTagFormat = Field(
        default="hex", description="how the reader writes a badge's UID, as for stations")


class MeterEntry(_Strict):
    id: Ref
    account: Ref
    profile: Annotated[str, Field(min_length=1)] = Field(
        description="a built-in register profile or a custom one of `meter_profiles`",
        json_schema_extra={"examples": list(BUILTIN_PROFILES)},
    )
    modbus: ModbusAddress
    tariff: Ref
    poll_s: Annotated[StrictInt, Field(ge=1, le=86_400)] | None = Field(
        default=None, description="reading period (60)")
    disconnect: RelayBlock | None = None


class LoadSection(_Strict):
    """Load management (Lastmanagement): the wallboxes share what the building's grid
    connection leaves free, as its meter measures it."""

    limit_a: Annotated[Decimal, Field(gt=0, le=4000)] = Field(
        description="the grid connection's limit in A per phase (its fuse)")
    phases: Literal[1, 3] = 3
    building_meter: PowerSource = Field(
        description="the meter measuring the connection (Modbus, with currents per phase)")
    reserve_a: Annotated[Decimal, Field(ge=0, le=1000)] = Field(
        default=Decimal(0), description="kept free below the limit")
    min_current_a: Annotated[Decimal, Field(ge=6, le=80)] = Field(
        default=Decimal(6), description="the least a session may get (IEC 61851: 6 A)")
    strategy: Literal["equal", "first-come", "priority"] = "equal"
    priorities: dict[Ref, Annotated[StrictInt, Field(ge=0, le=100)]] = Field(
        default={}, description="per account (its id): larger first, for strategy priority")
    reading_period_s: Annotated[StrictInt, Field(ge=1, le=10)] = Field(
        default=10, description="how often the building meter is read (at most every 10 s)")
    rotation_s: Annotated[StrictInt, Field(ge=1, le=86_400)] = Field(
        default=900, description="a session paused longer than this takes the place of the "
        "one running longest (paused sessions are resumed in turn)")
    fallback_a: Annotated[Decimal, Field(ge=0, le=80)] = Field(
        default=Decimal(6), description="each station's static limit, set at boot, for when "
        "Volthaus or the meter cannot be reached (ChargePointMaxProfile)")

    @field_validator("limit_a", "reserve_a", "min_current_a", "fallback_a", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError('write amperes as integers or decimal text, e.g. 63 or "6.5"')
        return value


class SiteDocument(_Strict):
    """A whole site: what an installer sets up and an owner prices."""

    site: SiteSection
    buildings: list[BuildingEntry] = []
    tariffs: list[dict[str, Any]] = Field(default=[], description="tariff documents (tariff.md)")
    accounts: list[AccountEntry] = []
    badges: list[BadgeEntry] = []
    stations: list[StationEntry] = []
    amenities: list[AmenityEntry] = []
    readers: list[ReaderEntry] = Field(default=[], description="badge readers at machines")
    meters: list[MeterEntry] = []
    meter_profiles: list[MeterProfileEntry] = Field(
        default=[], description="custom meter profiles, named by meters[].profile")
    load: LoadSection | None = Field(default=None, description="load management; absent: none")


def site_file_schema() -> dict[str, Any]:
    schema = SiteDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Volthaus site file"
    return schema


def _path(location: Sequence[int | str]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _location(loc: Sequence[int | str]) -> list[int | str]:
    """pydantic's error location as the document's path: without validator steps and without
    the driver tag a relay block's union adds after `relay` / `disconnect`."""
    location: list[int | str] = []
    for part in loc:
        if part == "function-after":
            continue
        if location and location[-1] in ("relay", "disconnect") and part in RELAY_DRIVERS:
            continue
        location.append(part)
    return location


def _pydantic_problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        location = _location(item["loc"])
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "union_tag_invalid":
            location.append("driver")
            tag = item.get("ctx", {}).get("tag")
            message = f"unknown driver {tag!r} (known: {', '.join(RELAY_DRIVERS)})"
        elif item["type"] == "union_tag_not_found":
            location.append("driver")
            message = f"Field required (one of {', '.join(RELAY_DRIVERS)})"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append(f"{_path(location)}: {message}")
    return problems


def validate_site_document(raw: Any) -> SiteDocument:
    """The document as typed data, or SiteFileError with every problem and its path.

    Shape and type problems and reference problems are reported together, so that one round of
    fixes is enough; the references are therefore checked on the raw document.
    """
    if not isinstance(raw, dict):
        raise SiteFileError(["(document): must be a mapping with a `site` key"])
    problems: list[str] = []
    document: SiteDocument | None = None
    try:
        document = SiteDocument.model_validate(raw)
    except ValidationError as error:
        problems += _pydantic_problems(error)
    problems += [p for p in _cross_reference_problems(raw) if p not in problems]
    if problems or document is None:
        raise SiteFileError(problems)
    return document


def _entries(raw: dict[str, Any], section: str) -> list[dict[str, Any]]:
    """A list section's mappings (anything else is left to the type check to report)."""
    value = raw.get(section)
    if not isinstance(value, list):
        return []
    return [item if isinstance(item, dict) else {} for item in value]


def _duplicates(section: str, ids: list[Any], key: str = "id") -> list[str]:
    counts = Counter(ids)
    return [
        f"{section}[{index}].{key}: duplicate {key} {value!r}"
        for index, value in enumerate(ids)
        if value is not None and counts[value] > 1 and ids.index(value) != index
    ]


def _cross_reference_problems(raw: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    raw_site = raw.get("site")
    site: dict[str, Any] = raw_site if isinstance(raw_site, dict) else {}
    tariffs = _entries(raw, "tariffs")
    for index, tariff in enumerate(tariffs):
        try:
            load_tariff(
                tariff,
                site_timezone=site.get("timezone"),
                site_country=site.get("country"),
                site_region=site.get("region"),
            )
        except TariffError as error:
            problems.extend(f"tariffs[{index}].{problem}" for problem in error.problems)
        if tariff.get("currency") not in (None, site.get("currency")):
            problems.append(
                f"tariffs[{index}].currency: {tariff.get('currency')!r} differs from the site's "
                f"{site.get('currency')!r}"
            )
    master = site.get("master_pass_account")
    if master is not None and master not in {e.get("id") for e in _entries(raw, "accounts")}:
        problems.append(f"site.master_pass_account: unknown account {master!r}")
    ids = {
        section: [e.get("id") for e in _entries(raw, section)]
        for section in (
            "buildings", "tariffs", "accounts", "stations", "amenities", "readers", "meters"
        )
    }
    for section, values in ids.items():
        problems += _duplicates(section, values)
    problems += _duplicates("badges", [b.get("uid") for b in _entries(raw, "badges")], "uid")

    def check(section: str, key: str, kind: str, pool: str) -> None:
        for index, entry in enumerate(_entries(raw, section)):
            value = entry.get(key)
            if value is not None and value not in ids[pool]:
                problems.append(f"{section}[{index}].{key}: unknown {kind} {value!r}")

    check("accounts", "building", "building", "buildings")
    check("badges", "account", "account", "accounts")
    check("stations", "building", "building", "buildings")
    check("stations", "tariff", "tariff", "tariffs")
    check("amenities", "building", "building", "buildings")
    check("amenities", "tariff", "tariff", "tariffs")
    check("amenities", "reader", "reader", "readers")
    check("readers", "building", "building", "buildings")
    check("meters", "account", "account", "accounts")
    check("meters", "tariff", "tariff", "tariffs")
    custom = [p.get("id") for p in _entries(raw, "meter_profiles")]
    problems += _duplicates("meter_profiles", custom)
    known = [*BUILTIN_PROFILES, *(c for c in custom if isinstance(c, str))]
    for i, entry in enumerate(_entries(raw, "meter_profiles")):
        if entry.get("id") in BUILTIN_PROFILES:
            problems.append(f"meter_profiles[{i}].id: {entry['id']!r} is a built-in profile")
        registers = entry.get("registers")
        if isinstance(registers, dict):
            for needed in ("energy_import_wh", "power_w"):
                if needed not in registers:
                    problems.append(f"meter_profiles[{i}].registers: {needed} is missing")

    def check_profile(path: str, profile: Any) -> None:
        if isinstance(profile, str) and profile and profile not in known:
            problems.append(
                f"{path}.profile: unknown profile {profile!r} (known: {', '.join(known)})"
            )

    for i, meter in enumerate(_entries(raw, "meters")):
        check_profile(f"meters[{i}]", meter.get("profile"))
    load = raw.get("load")
    if isinstance(load, dict):
        if isinstance(load.get("building_meter"), dict):
            check_profile("load.building_meter", load["building_meter"].get("profile"))
        accounts = {e.get("id") for e in _entries(raw, "accounts")}
        for ref in load.get("priorities") or {}:
            if ref not in accounts:
                problems.append(f"load.priorities.{ref}: unknown account {ref!r}")
        limit, reserve = load.get("limit_a"), load.get("reserve_a", 0)
        if isinstance(limit, int | str) and isinstance(reserve, int | str):
            try:
                if Decimal(str(reserve)) + Decimal(str(load.get("min_current_a", 6))) > Decimal(
                        str(limit)):
                    problems.append("load.reserve_a: leaves less than min_current_a below "
                                    "limit_a")
            except ArithmeticError:
                pass  # the type check names it
    for i, amenity in enumerate(_entries(raw, "amenities")):
        power = amenity.get("power")
        if isinstance(power, dict):
            check_profile(f"amenities[{i}].power", power.get("profile"))
        cycle = amenity.get("cycle")
        if isinstance(cycle, dict):
            start, end = cycle.get("start_w", 10), cycle.get("end_w", 5)
            if isinstance(start, int) and isinstance(end, int) and end > start:
                problems.append(f"amenities[{i}].cycle.end_w: above start_w ({end} > {start})")
    for i, badge in enumerate(_entries(raw, "badges")):
        start, end = badge.get("valid_from"), badge.get("valid_until")
        if isinstance(start, date) and isinstance(end, date) and end < start:
            problems.append(f"badges[{i}].valid_until: before valid_from")
    for i, station in enumerate(_entries(raw, "stations")):
        profile = station.get("security_profile")
        has_password = station.get("password") or station.get("password_hash")
        if isinstance(profile, int) and profile >= 1 and not has_password:
            problems.append(f"stations[{i}].password: required for security profile {profile}")
        if station.get("password") and station.get("password_hash"):
            problems.append(f"stations[{i}].password: give password or password_hash, not both")
    return problems


# Rows read per query when a site file's entries are matched with what is stored.
STORED_CHUNK = 500


async def _stored_by_id(session: AsyncSession, model: Any, ids: Sequence[str]) -> dict[str, Any]:
    """The stored rows of `model` among `ids`, STORED_CHUNK per query: a get per entry was one
    round trip each, three per station, most of a 10,000-station import on PostgreSQL."""
    found: dict[str, Any] = {}
    for start in range(0, len(ids), STORED_CHUNK):
        chunk = list(ids[start:start + STORED_CHUNK])
        for row in (await session.exec(select(model).where(col(model.id).in_(chunk)))).all():
            found[row.id] = row
    return found


def _ownership_problems(
    document: SiteDocument, stored: dict[str, dict[str, Any]]
) -> list[str]:
    """Ids that are unique across the installation must not belong to another site.

    Accounts and badges are not among them: they are matched within the site (another site's
    `a-01` or badge UID is another account or badge), and no message names another site's.
    """
    problems: list[str] = []
    for section, _model, entries in _installation_wide(document):
        for index, entry in enumerate(entries):
            existing = stored[section].get(entry.id)
            if existing is not None and existing.site_id != document.site.id:
                problems.append(
                    f"{section}[{index}].id: {entry.id!r} belongs to site {existing.site_id!r}"
                )
    return problems


def _installation_wide(document: SiteDocument) -> list[tuple[str, Any, Sequence[Any]]]:
    """(section, model, entries) of the sections whose ids are unique installation-wide."""
    return [
        ("stations", Station, document.stations),
        ("amenities", Amenity, document.amenities),
        ("readers", Reader, document.readers),
        ("meters", Meter, document.meters),
    ]


async def upsert_badge(
    session: AsyncSession, site_id: str, entry: BadgeEntry, account_ids: dict[str, str],
    now: datetime,
) -> bool:
    """Write a badge's file keys (keeping what only enrolment knows); True if anything changed.
    `account_ids` maps the file's account ids (refs; validation saw that badges name only
    accounts of the file) to their internal ids."""
    stored = await session.get(Badge, (site_id, entry.uid))
    return upsert_badge_over(session, site_id, entry, account_ids, now, stored)


def upsert_badge_over(
    session: AsyncSession, site_id: str, entry: BadgeEntry, account_ids: dict[str, str],
    now: datetime, badge: Badge | None,
) -> bool:
    """`upsert_badge` over the row the caller read already (None: a new badge)."""
    wanted: dict[str, Any] = {
        "account_id": account_ids[entry.account],
        "label": entry.label,
        "status": entry.status,
        "valid_from": entry.valid_from,
        "valid_until": entry.valid_until,
        "origin": entry.origin,
        "max_sessions": entry.max_sessions,
    }
    if badge is None:
        session.add(Badge(site_id=site_id, uid=entry.uid, updated_at=now, **wanted))
        return True
    if all(getattr(badge, key) == value for key, value in wanted.items()):
        return False
    for key, value in wanted.items():
        setattr(badge, key, value)
    badge.updated_at = now
    badge.list_status = None
    return True


async def apply_site_document(
    session: AsyncSession,
    document: SiteDocument,
    *,
    now: datetime | None = None,
    login_key: bytes | None = None,
) -> None:
    """Upsert the validated document; the caller commits. Rows not in the file are kept.
    `login_key` (Settings.station_login_key): plain station passwords are stored as
    verified-login records, hashed with scrypt after each station's first login."""
    now = now or datetime.now(UTC)
    stored = {
        section: await _stored_by_id(session, model, [entry.id for entry in entries])
        for section, model, entries in _installation_wide(document)
    }
    problems = _ownership_problems(document, stored)
    if problems:
        raise SiteFileError(problems)
    site = document.site
    await session.merge(Site(
        **site.model_dump(),
        meter_profiles=[p.model_dump(exclude_unset=True) for p in document.meter_profiles]
        or None,
    ))
    await session.flush()
    for building in document.buildings:
        await session.merge(Building(site_id=site.id, id=building.id, name=building.name))
    site_row = await session.get(Site, site.id)
    assert site_row is not None
    for tariff in document.tariffs:
        # The same service as the owner's editor: a changed tariff is a new version.
        await publish_tariff(session, site_row, tariff, now=now, actor="site import")
    await session.flush()
    # Accounts are matched by (site, ref); the file's `id` is the ref.
    account_ids: dict[str, str] = {}
    for account in document.accounts:
        account_ids[account.id] = (await write_account(session, site.id, account)).id
    for account in document.accounts:
        if account.opening_balance is not None:
            await record_opening_balance(
                session, account_ids[account.id], account.opening_balance, at=now
            )
    badges = {
        badge.uid: badge
        for badge in (await session.exec(select(Badge).where(col(Badge.site_id) == site.id))).all()
    }
    changed_badges = [
        badge.uid for badge in document.badges
        if upsert_badge_over(session, site.id, badge, account_ids, now, badges.get(badge.uid))
    ]
    if changed_badges:
        # Through the registry's change log, so every station's local list learns of it.
        await record_changes(session, site.id, changed_badges)
    for station in document.stations:
        write_station_over(session, site.id, station, login_key,
                           stored["stations"].get(station.id))
    for amenity in document.amenities:
        await write_amenity(session, site.id, amenity)
    for reader in document.readers:
        await write_reader(session, site.id, reader)
    from csms.load.settings import store_load_section

    await store_load_section(session, site.id, document.load)
    for meter in document.meters:
        await write_meter(session, site.id, account_ids[meter.account], meter)
    await session.flush()


async def import_site(
    engine: AsyncEngine, raw: Any, *, login_key: bytes | None = None
) -> SiteDocument:
    """Validate `raw` whole, then write it in one transaction; SiteFileError changes nothing."""
    document = validate_site_document(raw)
    async with session_factory(engine)() as session:
        await apply_site_document(session, document, login_key=login_key)
        await session.commit()
    await refresh_statistics(engine)
    return document


async def import_site_file(
    engine: AsyncEngine, path: Path | str, *, login_key: bytes | None = None
) -> SiteDocument:
    try:
        raw = read_document(path)
    except DocumentError as error:
        raise SiteFileError([str(error)]) from None
    return await import_site(engine, raw, login_key=login_key)


async def import_site_file_if_new(
    engine: AsyncEngine, path: Path | str, *, login_key: bytes | None = None
) -> bool:
    """Import a site file unless its site exists already (the demo site on every start)."""
    raw = read_document(path)
    site_id = raw.get("site", {}).get("id") if isinstance(raw, dict) else None
    async with session_factory(engine)() as session:
        if site_id and await session.get(Site, site_id) is not None:
            return False
    await import_site(engine, raw, login_key=login_key)
    return True


def _amount_text(amount: Decimal | None) -> str | None:
    """Cents as people write them ("50.00"), finer digits only where there are any."""
    if amount is None:
        return None
    cents = amount.quantize(Decimal("0.01"))
    return str(cents if cents == amount else amount.normalize())


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


async def export_site(session: AsyncSession, site_id: str) -> dict[str, Any]:
    """The site as a site-file document (JSON-safe), the inverse of import."""
    site = await session.get(Site, site_id)
    if site is None:
        raise LookupError(f"unknown site {site_id!r}")

    async def rows(model: Any, *order: Any) -> list[Any]:
        query = select(model).where(model.site_id == site_id).order_by(*order)
        return list((await session.exec(query)).all())

    accounts = await rows(Account, Account.ref)
    refs = {a.id: a.ref for a in accounts}
    badges = await rows(Badge, Badge.uid)
    document: dict[str, Any] = {
        "site": _without_none({
            **site.model_dump(exclude={"meter_profiles", "max_uses_per_badge"}),
            # written only when it differs from the default, as most files leave it out
            "max_uses_per_badge": site.max_uses_per_badge
            if site.max_uses_per_badge != 1 else None,
            "max_top_up": amount_text(site.max_top_up, site.currency),
            "max_voucher": amount_text(site.max_voucher, site.currency),
        }),
        "buildings": [
            _without_none({"id": b.id, "name": b.name}) for b in await rows(Building, Building.id)
        ],
        "tariffs": [t.document for t in await rows(Tariff, Tariff.id)],
        "accounts": [
            _without_none(
                {
                    "id": a.ref,
                    "name": a.name,
                    "building": a.building_id,
                    "unit": a.unit,
                    "email": a.email,
                    "language": a.language,
                    "opening_balance": _amount_text(a.opening_balance),
                }
            )
            for a in accounts
        ],
        "badges": [
            _without_none(
                {
                    "uid": b.uid,
                    "account": refs[b.account_id],
                    "label": b.label,
                    "status": b.status,
                    "valid_from": b.valid_from.isoformat() if b.valid_from else None,
                    "valid_until": b.valid_until.isoformat() if b.valid_until else None,
                    "origin": b.origin,
                    "max_sessions": b.max_sessions,
                }
            )
            for b in badges
        ],
        "stations": [
            _without_none(
                {
                    "id": s.id,
                    "building": s.building_id,
                    "protocol": s.protocol,
                    "security_profile": s.security_profile,
                    "password_hash": s.password_hash,
                    "connectors": s.connectors,
                    "tariff": s.tariff_id,
                    "idtag_format": s.idtag_format,
                    "max_power_w": (
                        s.max_power_w if s.max_power_w != DEFAULT_MAX_POWER_W else None
                    ),
                }
            )
            for s in await rows(Station, Station.id)
            if not s.pending_approval
        ],
        "amenities": [
            _without_none(
                {
                    "id": a.id,
                    "building": a.building_id,
                    "kind": a.kind,
                    "tariff": a.tariff_id,
                    "relay": a.relay,
                    "reader": a.reader,
                    "power": a.power,
                    "cycle": a.cycle,
                }
            )
            for a in await rows(Amenity, Amenity.id)
        ],
        "readers": [
            _without_none({"id": r.id, "building": r.building_id, "idtag_format": r.idtag_format})
            for r in await rows(Reader, Reader.id)
        ],
        "meters": [
            _without_none(
                {
                    "id": m.id,
                    "account": refs[m.account_id],
                    "profile": m.profile,
                    "modbus": m.modbus,
                    "tariff": m.tariff_id,
                    "disconnect": m.disconnect,
                    "poll_s": m.poll_s,
                }
            )
            for m in await rows(Meter, Meter.id)
        ],
    }
    if site.meter_profiles:
        document["meter_profiles"] = site.meter_profiles
    from csms.load.settings import load_section_document

    load = await load_section_document(session, site_id)
    if load is not None:
        document["load"] = load
    return document
