"""Writing one entry of a site (a station, a meter, an account): the one service the site
file, the installer's and owner's pages and the JSON API use. Each entry is validated as the
site file's (`StationEntry`, `MeterEntry`, `AccountEntry`); a plain station password is stored
as a verified-login record (with the node's login key) or hashed, never kept."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.inventory.models import Station
from csms.ocpp.security import (
    hash_station_password,
    login_verifier,
    verifier_matches,
    verify_station_password,
)
from meters.models import Meter
from wallet.accounts import account_by_ref, new_account_id
from wallet.models import Account

if TYPE_CHECKING:
    from csms.inventory.sitefile import (
        AccountEntry,
        AmenityEntry,
        MeterEntry,
        ReaderEntry,
        StationEntry,
    )


def new_station_password() -> str:
    """24 characters from 18 random bytes (144 bits): within the 16-40 the site file takes,
    and typeable into a wallbox's web page."""
    return secrets.token_urlsafe(18)


async def write_station(
    session: AsyncSession, site_id: str, station: StationEntry, login_key: bytes | None
) -> Station:
    """Create or update; flushes nothing, the caller commits."""
    stored = await session.get(Station, station.id)
    return write_station_over(session, site_id, station, login_key, stored)


def write_station_over(
    session: AsyncSession, site_id: str, station: StationEntry, login_key: bytes | None,
    stored: Station | None,
) -> Station:
    """`write_station` over the row the caller read already (None: a new station); a site
    file's thousands of stations are read in a few queries, not one each."""
    password_hash, verifier = _station_credentials(stored, station, login_key)
    row = stored
    if row is None:
        row = Station(
            id=station.id,
            site_id=site_id,
            protocol=station.protocol,
            security_profile=0,
            connectors=1,
            tariff_id=station.tariff,
        )
        session.add(row)
    row.building_id = station.building
    row.protocol = station.protocol
    row.security_profile = station.security_profile
    row.password_hash = password_hash
    row.login_verifier = verifier
    row.connectors = station.connectors
    row.tariff_id = station.tariff
    row.idtag_format = station.idtag_format
    row.max_power_w = station.max_power_w
    return row


def _station_credentials(
    stored: Station | None, entry: StationEntry, login_key: bytes | None
) -> tuple[str | None, str | None]:
    """(password_hash, login_verifier) for a station entry.

    With the node's login key, a plain password is stored as its verified-login record only
    (microseconds, where scrypt takes ~40 ms per station: minutes for a large site); the scrypt
    hash follows after the station's first login (csms.ocpp.logins). Without a key (tests,
    scripts), it is hashed here as before.
    """
    if entry.password_hash is not None:
        return entry.password_hash, None
    if entry.password is None:
        return None, None
    if login_key is not None:
        # Keep what is stored when the password is unchanged, so a re-import changes nothing.
        if stored is not None and verifier_matches(
            login_key, entry.id, stored.password_hash, entry.password, stored.login_verifier
        ):
            return stored.password_hash, stored.login_verifier
        return None, login_verifier(login_key, entry.id, None, entry.password)
    if (
        stored
        and stored.password_hash
        and verify_station_password(entry.password, stored.password_hash)
    ):
        return stored.password_hash, stored.login_verifier
    return hash_station_password(entry.password), None


async def write_meter(
    session: AsyncSession, site_id: str, account_id: str, meter: MeterEntry
) -> None:
    """Create or update an apartment meter (the entry validated as the site file's)."""
    from csms.inventory.sitefile import relay_json

    await session.merge(Meter(
        id=meter.id, site_id=site_id, account_id=account_id, profile=meter.profile,
        modbus=meter.modbus.model_dump(), tariff_id=meter.tariff,
        disconnect=relay_json(meter.disconnect) if meter.disconnect else None,
        poll_s=meter.poll_s,
    ))


async def write_account(session: AsyncSession, site_id: str, account: AccountEntry) -> Account:
    """Create or update by (site, ref); the opening balance is the caller's (booked once)."""
    stored = await account_by_ref(session, site_id, account.id)
    if stored is None:
        stored = Account(id=await new_account_id(session, site_id, account.id),
                         site_id=site_id, ref=account.id, name=account.name)
    stored.name = account.name
    stored.building_id = account.building
    stored.unit = account.unit
    stored.email = account.email
    stored.language = account.language
    stored.opening_balance = account.opening_balance
    session.add(stored)
    await session.flush()
    return stored


async def write_amenity(session: AsyncSession, site_id: str, amenity: AmenityEntry) -> None:
    from amenities.models import Amenity
    from csms.inventory.sitefile import relay_json

    await session.merge(Amenity(
        id=amenity.id, site_id=site_id, building_id=amenity.building, kind=amenity.kind,
        tariff_id=amenity.tariff, relay=relay_json(amenity.relay), reader=amenity.reader,
        power=amenity.power.model_dump(exclude_unset=True) if amenity.power else None,
        cycle=amenity.cycle.model_dump(exclude_unset=True) if amenity.cycle else None,
    ))


async def write_reader(session: AsyncSession, site_id: str, reader: ReaderEntry) -> None:
    from amenities.models import Reader

    await session.merge(Reader(id=reader.id, site_id=site_id, building_id=reader.building,
                               idtag_format=reader.idtag_format))


async def account_history(session: AsyncSession, account: Account) -> list[str]:
    """What keeps an account from being removed: money it moved (journal entries, holds, paid
    uses, vouchers, alerts) and what still points at it (badges, meters, people, API tokens).
    Empty: it may go (`remove_account`)."""
    from billing.models import PaidUse
    from csms.auth.models import ApiToken
    from csms.web.models import WebUser
    from rfid.models import Badge
    from wallet.models import AlertOutbox, HoldRecord, JournalEntry, VoucherCode

    checks: list[tuple[str, Any]] = [
        ("money movements", select(JournalEntry.id).where(
            col(JournalEntry.account_id) == account.id)),
        ("holds", select(HoldRecord.id).where(col(HoldRecord.account_id) == account.id)),
        ("paid uses", select(PaidUse.id).where(col(PaidUse.account_id) == account.id)),
        ("redeemed vouchers", select(VoucherCode.code_sha256).where(
            col(VoucherCode.redeemed_by) == account.id)),
        ("alerts", select(AlertOutbox.id).where(col(AlertOutbox.account_id) == account.id)),
        ("badges", select(Badge.uid).where(col(Badge.account_id) == account.id)),
        ("meters", select(Meter.id).where(col(Meter.account_id) == account.id)),
        ("people who sign in", select(WebUser.id).where(col(WebUser.account_id) == account.id)),
        ("API tokens", select(ApiToken.id).where(col(ApiToken.account_id) == account.id)),
    ]
    return [what for what, query in checks
            if (await session.exec(query.limit(1))).first() is not None]


async def remove_account(session: AsyncSession, account: Account) -> None:
    """Delete an account without history (`account_history` empty) with its empty wallet,
    ledger accounts and credit policy. Flushes."""
    from wallet.models import CreditPolicyRecord, LedgerAccount, RedemptionFailure, Wallet

    for model in (Wallet, CreditPolicyRecord, RedemptionFailure, LedgerAccount):
        await session.exec(delete(model).where(col(model.account_id) == account.id))
    await session.delete(account)
    await session.flush()
