"""Authorisation through rfid, and local authorisation lists kept current on every station.

A station that connects (boots accepted) is asked its list version and gets what it lacks: a
differential update, or the full list when its version is unknown to the site; every badge
change reaches the connected stations the same way. Entries are rendered in each station's
idTag format by rfid. Everything here is "sent on the server's own", so it honours the
per-station `send_after_boot` switch.

Badge changes are noticed two ways: the bus event `badges.<site_id>` (publish it with
`notify_badges_changed` right after committing a change) for immediacy, and a poll of each
site's list version as the backstop (a CLI in another process may not be on the bus).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.bus.interface import Bus
from csms.db import tables
from csms.ocpp import v16, v201
from csms.ocpp.after_boot import AfterBootQueue, StationActivity
from csms.ocpp.connection import StationConnection
from csms.ocpp.events import PROTOCOL_16, StationRef
from csms.ocpp.rows import STATION, execute
from csms.ocpp.service import StationService
from csms.ocpp.wire import StationCallError, check_payload
from rfid.local_list import LocalListUpdate, update_since
from rfid.registry import list_version

log = structlog.get_logger("csms.ocpp.local_lists")

# rfid's queries join badges to accounts: every package's tables must be on the metadata, also
# in a process that imports nothing else (the benchmark's server, a worker).
_ALL_TABLES = tables.TABLE_MODULES

BADGES_TOPIC = "badges."


async def notify_badges_changed(bus: Bus, site_id: str) -> None:
    """Tell every node that a site's badges changed (after the change is committed)."""
    await bus.publish(f"{BADGES_TOPIC}{site_id}", {"site_id": site_id})


# A built list is shared by every station asking for the same one within this many seconds:
# a boot storm builds it once. Entries carry their own expiry dates, and the site's version is
# read at every use, so a badge change is never hidden by the cache.
LIST_CACHE_S = 60.0

_ListKey = tuple[str, str, str, int]  # site, idTag format, protocol, from version (0: full)


@dataclass(frozen=True, slots=True)
class _Built:
    """A list update and its SendLocalList payload, checked against the schema once."""

    update: LocalListUpdate
    payload: dict[str, Any]


class LocalLists:
    """Keeps the local lists of the stations connected to one node current."""

    def __init__(
        self,
        connections: Callable[[], list[StationConnection]],
        service: StationService,
        *,
        activity: StationActivity,
        poll_s: float = 30.0,
        concurrency: int = 8,
    ) -> None:
        self._connections = connections
        self._service = service
        self._poll_s = poll_s
        self._locks: dict[str, asyncio.Lock] = {}
        # A badge change (or the poll) brings a whole site's stations up to date through a
        # bounded queue behind station messages, not with a call to every station at once.
        self._syncs = AfterBootQueue(
            self._sync_logged, activity, concurrency=concurrency, again_if_running=True
        )
        self._built: dict[_ListKey, tuple[float, _Built]] = {}
        # Lists built and checked against the schema (once per site, format, version, protocol).
        self.schema_checks = 0
        self._building: dict[_ListKey, asyncio.Lock] = {}
        # The list version each station connected here confirmed (in the database too): what
        # the poll compares with its site's version, without reading every station's row.
        self._confirmed: dict[str, int] = {}

    async def after_boot(self, conn: StationConnection, service: StationService) -> None:
        await self.sync(conn, ask_station=True)

    async def sync(self, conn: StationConnection, *, ask_station: bool = False) -> str | None:
        """Bring one station's list to the site's version; the station's answer, or None."""
        lock = self._locks.setdefault(conn.station_id, asyncio.Lock())
        async with lock:
            if conn.closed:
                return None
            station_id = conn.station_id
            state = await self._service.batched(
                lambda session: _list_state(session, [station_id])
            )
            send_after_boot, recorded = state.get(station_id, (True, None))
            if not send_after_boot:
                return None
            known = recorded
            if ask_station or known is None:
                try:
                    known = await conn.get_local_list_version()
                except StationCallError as error:
                    log.info("ocpp.local_list_unsupported", station_id=conn.station_id,
                             code=error.reply.code)
                    return None
            status = await self._push(conn, known, recorded, full=False)
            if status == "VersionMismatch":
                status = await self._push(conn, 0, recorded, full=True)
            return status

    async def _push(
        self, conn: StationConnection, station_version: int, recorded: int | None, *, full: bool
    ) -> str:
        station = conn.station
        built = await self._update(station, 0 if full else max(station_version, 0))
        update = built.update
        if update.update_type == "Differential" and update.version == station_version:
            if recorded != station_version:
                await self._service.set_local_list_version(station.station_id, station_version)
            self._confirmed[station.station_id] = station_version
            return "Current"
        # Checked against the schema once when built, not again for each of the site's stations.
        reply = await conn.call("SendLocalList", built.payload, checked=True)
        status = str(reply["status"])
        log.info(
            "ocpp.local_list_sent",
            station_id=station.station_id,
            version=update.version,
            update=update.update_type,
            entries=len(update.entries),
            status=status,
        )
        if status == "Accepted":
            await self._service.set_local_list_version(station.station_id, update.version)
            self._confirmed[station.station_id] = update.version
        return status

    async def _update(self, station: StationRef, from_version: int) -> _Built:
        """What a station at `from_version` needs (0: the full list), built once per minute."""
        current = await self._service.batched(
            lambda session: list_version(session, station.site_id)
        )
        if 0 < from_version == current:
            return _Built(LocalListUpdate(station.site_id, current, "Differential", ()), {})
        key = (station.site_id, station.idtag_format, station.protocol, from_version)
        async with self._building.setdefault(key, asyncio.Lock()):
            cached = self._built.get(key)
            if (
                cached is not None
                and time.monotonic() - cached[0] < LIST_CACHE_S
                and cached[1].update.version >= current
            ):
                return cached[1]
            now = self._service.clock()

            async def build(session: AsyncSession) -> LocalListUpdate:
                zone = ZoneInfo(station.timezone)
                # update_since may record date-driven changes (a badge's first valid day); the
                # shared transaction commits them.
                return await update_since(
                    session, station.site_id, station.idtag_format, from_version,
                    now=now, tz=zone, protocol=station.protocol,
                )

            update = await self._service.batched(build)
            payload = (
                v16.send_local_list_request(update) if station.protocol == PROTOCOL_16
                else v201.send_local_list_request(update)
            )
            # The one schema check of this payload (50 ms for 2,000 badges in 1.6, 200 ms in
            # 2.0.1): a bug of ours must not reach a station as valid OCPP. Off the event loop.
            self.schema_checks += 1
            await asyncio.to_thread(check_payload, station.protocol, "SendLocalList", payload)
            built = _Built(update, payload)
            self._forget_old_lists()
            self._built[key] = (time.monotonic(), built)
            return built

    def _forget_old_lists(self) -> None:
        """Every badge change makes new keys (the from-version): drop the expired ones."""
        now = time.monotonic()
        for key, (built_at, _built) in list(self._built.items()):
            if now - built_at >= LIST_CACHE_S:
                del self._built[key]
                lock = self._building.get(key)
                if lock is not None and not lock.locked():
                    del self._building[key]

    def sync_site(self, site_id: str) -> None:
        """Queue an update of every connected station of the site."""
        for conn in self._connections():
            if conn.station.site_id == site_id and not conn.closed:
                self._syncs.submit(conn)

    @property
    def syncs_running(self) -> int:
        """Stations whose update runs now (at most the queue's concurrency)."""
        return self._syncs.running

    async def syncs_done(self) -> None:
        """Wait until no station's update is queued or running (tests)."""
        await self._syncs.drained()

    async def _sync_logged(self, conn: StationConnection) -> None:
        try:
            await self.sync(conn)
        except Exception:
            log.warning("ocpp.local_list_failed", station_id=conn.station_id, exc_info=True)

    async def close(self) -> None:
        """Stop the queued updates (running ones are cancelled: their station is going)."""
        await self._syncs.close()

    async def watch(self, bus: Bus) -> None:
        """Run until cancelled: bus events and the poll, both leading to `sync_site`."""
        poll = asyncio.create_task(self._poll())
        try:
            async with bus.subscribe(f"{BADGES_TOPIC}*") as events:
                async for event in events:
                    site_id = event.data.get("site_id")
                    if isinstance(site_id, str):
                        self.sync_site(site_id)
        finally:
            # Running syncs are left to finish: their calls fail at once when stations go.
            poll.cancel()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            # Shielded: a cancel in the middle of a transaction would leave SQLite locked.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._poll_once())

    async def _poll_once(self) -> None:
        """Sync the stations whose confirmed list is not their site's version: after a badge
        change that no bus event announced, every station of its site; else the few whose last
        update failed. One read per site, not one row per station: at 10,000 stations that
        read (every 30 s, in a shared transaction) stalled the station messages around it."""
        connections = [c for c in self._connections() if not c.closed]
        sites = {c.station.site_id for c in connections}

        async def read(session: AsyncSession) -> dict[str, int]:
            return {site_id: await list_version(session, site_id) for site_id in sites}

        versions = await self._service.batched(read)
        connected = {c.station_id for c in connections}
        for station_id in [s for s in self._confirmed if s not in connected]:
            del self._confirmed[station_id]
        for conn in connections:
            confirmed = self._confirmed.get(conn.station_id)
            if confirmed is not None and confirmed != versions[conn.station.site_id]:
                self._syncs.submit(conn)


async def _list_state(
    session: AsyncSession, station_ids: list[str]
) -> dict[str, tuple[bool, int | None]]:
    """Per station: (send_after_boot, local list version it last confirmed)."""
    found: dict[str, tuple[bool, int | None]] = {}
    # In chunks: SQLite limits the number of parameters of one statement.
    for first in range(0, len(station_ids), 5000):
        chunk = station_ids[first : first + 5000]
        rows = await execute(
            session,
            select(STATION.c.station_id, STATION.c.send_after_boot, STATION.c.local_list_version)
            .where(STATION.c.station_id.in_(chunk)),
        )
        for row in rows:
            version = row.local_list_version
            found[str(row.station_id)] = (bool(row.send_after_boot), version)
    return found
