"""Station password checks that scale to a fleet reconnecting at once.

The scrypt hash (`security.hash_station_password`) stays the source of truth: ~40 ms of CPU and
16 MiB per check, which is what a thief of the database pays per guess. Paying it for every
station after every restart is what kept a fresh node from taking 2,000 profile-1 stations, so:

* a right password checked with scrypt leaves a verified-login record in the station row,
  HMAC-SHA256(login key, id, hash, password); the next login (also after a restart, also on
  another node with the same key) checks that record in microseconds;
* a password that does not match the record is checked with scrypt as before: wrong passwords
  cost what they cost, and the login pause (`login_guard`) still counts them;
* a site import of plain passwords writes only the record (no hash yet: scrypt for 10,000
  stations would take minutes); the first login proves the password and the scrypt hash is then
  computed in one background thread at the lowest CPU priority, one at a time with a pause
  between two (`login_hash_interval_s`), so neither a boot storm after an import nor an idle
  fleet pays for the backfill at once (10,000 imported passwords take about 3 h at 1 s, ~4 %
  of a core; until then their rows hold the record only, which the database alone cannot test).

The login key never enters the database (a setting or a 0600 key file), so the database alone
lets nobody test a guess against a record; see the README, "Station passwords".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.inventory.models import Station
from csms.ocpp.after_boot import StationActivity
from csms.ocpp.rows import execute
from csms.ocpp.security import (
    LOGIN_KEY_BYTES,
    hash_station_password,
    login_verifier,
    verifier_matches,
    verify_station_password,
)

log = structlog.get_logger("csms.ocpp.logins")

_STATION: Any = Station.__table__  # type: ignore[attr-defined]
# The longest a hash waits for a moment without station messages in hand.
QUIET_WAIT_S = 60.0


def _lowest_priority() -> None:
    # Linux applies a nice value to one thread when given its thread id; elsewhere this is a
    # no-op and the single thread still bounds the work to one core.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class StationLogins:
    """Checks Basic-auth passwords for the handshake; one per node."""

    def __init__(self, batched: Any, key: bytes | None, *, interval_s: float = 1.0,
                 activity: StationActivity | None = None) -> None:
        # `StationService.batched`: the record is written in the shared transactions.
        self._batched = batched
        # Without a configured key (tests), records are good for this process only.
        self._key = key if key is not None else secrets.token_bytes(LOGIN_KEY_BYTES)
        self._waiting: dict[str, tuple[str, str]] = {}
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._interval_s = interval_s
        # Station messages in hand: the backfill waits for a quiet moment (a boot storm).
        self._activity = activity

    def record_for(self, station_id: str, password_hash: str | None, password: str) -> str:
        return login_verifier(self._key, station_id, password_hash, password)

    async def check(
        self, station_id: str, password: str, password_hash: str | None, record: str | None
    ) -> bool:
        """True when `password` is the station's; the stored hash and record are the row's."""
        if verifier_matches(self._key, station_id, password_hash, password, record):
            if password_hash is None and record is not None:
                self._hash_later(station_id, password, record)
            return True
        if password_hash is None:
            # Only a record, under another key (the key file was replaced): nothing to check
            # the password against until an installer sets it again.
            return False
        if not await asyncio.to_thread(verify_station_password, password, password_hash):
            return False
        fresh = self.record_for(station_id, password_hash, password)

        async def remember(session: AsyncSession) -> None:
            # Only while the hash is still the one checked: a password changed meanwhile wins.
            await execute(
                session,
                update(_STATION)
                .where(_STATION.c.id == station_id, _STATION.c.password_hash == password_hash)
                .values(login_verifier=fresh)
            )

        await self._batched(remember)
        return True

    # the scrypt hash of imported passwords, computed after their first login

    def _hash_later(self, station_id: str, password: str, record: str) -> None:
        self._waiting[station_id] = (password, record)
        self._idle.clear()
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._hash_waiting(), name="ocpp-login-hashes")

    async def _hash_waiting(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                1, thread_name_prefix="login-hash", initializer=_lowest_priority
            )
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._activity is not None:
                await self._activity.quiet(QUIET_WAIT_S)
            station_id = next(iter(self._waiting))
            password, record = self._waiting.pop(station_id)
            try:
                hashed = await loop.run_in_executor(self._pool, hash_station_password, password)
                await self._batched(self._store_hash(station_id, record, password, hashed))
            except Exception:
                log.warning("ocpp.login_hash_failed", station_id=station_id, exc_info=True)
            else:
                log.info("ocpp.login_hashed", station_id=station_id, waiting=len(self._waiting))
            if self._waiting:
                # Paced: a backfill of thousands of imported passwords must not keep a core
                # busy for minutes while the fleet is otherwise idle.
                await asyncio.sleep(self._interval_s)

    def _store_hash(self, station_id: str, record: str, password: str, hashed: str) -> Any:
        fresh = self.record_for(station_id, hashed, password)

        async def store(session: AsyncSession) -> None:
            # Only while the row still holds the record that was proven: a password set
            # meanwhile (by an installer, another import) is not overwritten.
            await execute(
                session,
                update(_STATION)
                .where(
                    _STATION.c.id == station_id,
                    _STATION.c.password_hash.is_(None),
                    _STATION.c.login_verifier == record,
                )
                .values(password_hash=hashed, login_verifier=fresh)
            )

        return store

    async def hashed(self) -> None:
        """Wait until every password waiting for its scrypt hash has it (tests, benchmarks)."""
        await self._idle.wait()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
