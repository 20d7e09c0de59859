"""The real site of issue 12, shared by the fleet and OCPP benchmarks.

Security-profile-1 stations, each with its own password, 2,000 households with a badge each,
imported from a site file with plain passwords and a login key (so no scrypt runs while the
stations connect: the server is given the same key); profile-0 stations only for the lines
labelled "extra". One server process pinned to one core, the simulator to the other.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo-site.yaml"
BADGES = 2000
LOGIN_KEY = "5a" * 32
PROFILE_1, PROFILE_0 = "P1-", "P0-"

# The targets are for one server process on one core: it is pinned to one, the simulator to
# the other (where the machine has two).
SERVER_CORE, SIMULATOR_CORE = 0, 1


def pin(core: int) -> None:
    cores = os.sched_getaffinity(0)
    if len(cores) > 1 and core in cores:
        os.sched_setaffinity(0, {core})


def cpu_s(pid: int, stat: str = "stat") -> float:
    """CPU seconds of a process (or, with `task/TID/stat`, of one of its threads)."""
    fields = Path(f"/proc/{pid}/{stat}").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def login_key() -> bytes:
    return bytes.fromhex(LOGIN_KEY)


def station_id(prefix: str, number: int) -> str:
    return f"{prefix}{number:05d}"


def password_of(station: str) -> str:
    return f"bench-password-{station}"


def badge_of(station: str) -> str:
    """The badge of the household a station belongs to (one each for the first 2,000)."""
    return f"04{int(station[-5:]) % BADGES:06X}"


def site_document(profile1: int, profile0: int = 0) -> dict[str, Any]:
    """`profile1` stations P1-00000... with their own passwords, `profile0` stations P0-...
    without, and the 2,000 households with their badges."""
    from csms.documents import read_document

    demo = read_document(DEMO)
    stations = [
        {"id": station_id(PROFILE_1, n), "building": "A", "protocol": "ocpp1.6",
         "security_profile": 1, "password": password_of(station_id(PROFILE_1, n)),
         "connectors": 1, "tariff": "wallbox"}
        for n in range(profile1)
    ] + [
        {"id": station_id(PROFILE_0, n), "building": "A", "protocol": "ocpp1.6",
         "security_profile": 0, "connectors": 1, "tariff": "wallbox"}
        for n in range(profile0)
    ]
    return {
        # Beyond 2,000 stations households share badges (a badge per household): the site
        # lets one badge run as many uses as stations share it, so starts are not refused.
        "site": {**demo["site"], "id": "bench",
                 "max_uses_per_badge": max(1, -(-(profile1 + profile0) // BADGES))},
        "buildings": demo["buildings"],
        "tariffs": demo["tariffs"],
        "accounts": [
            # No opening balances: 2,000 ledger postings would be the import's figure.
            {"id": f"h-{n:05d}", "name": f"Household {n}", "building": "A"}
            for n in range(BADGES)
        ],
        "badges": [{"uid": f"04{n:06X}", "account": f"h-{n:05d}"} for n in range(BADGES)],
        "stations": stations,
    }


async def import_site_file(database_url: str, profile1: int, profile0: int = 0) -> float:
    """Migrate the database and import the site with the login key: the import's seconds."""
    from csms.db.engine import create_engine
    from csms.db.migrate import upgrade_database
    from csms.inventory.sitefile import import_site

    engine = create_engine(database_url)
    try:
        await upgrade_database(engine)
        document = site_document(profile1, profile0)
        started = time.perf_counter()
        await import_site(engine, document, login_key=login_key())
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def unhashed_passwords(database_url: str) -> int:
    """Profile-1 stations whose imported password has no scrypt hash yet (the backfill's queue)."""
    from sqlalchemy import text

    from csms.db.engine import create_engine

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = (await connection.execute(text(
                "SELECT count(*) FROM station WHERE security_profile = 1 "
                "AND password_hash IS NULL"))).scalar_one()
    finally:
        await engine.dispose()
    return int(count)
