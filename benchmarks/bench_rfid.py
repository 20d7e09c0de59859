"""rfid: idTag matching (pure, over a site's badges) and registry lookups on SQLite."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rfid.uid import Uid, match_id_tag, render


def _badges(count: int) -> list[Uid]:
    rng = random.Random(5)
    # 4-byte UIDs starting 08 (random IDs) or 88 (cascade tag) are refused at registration
    return [Uid(bytes([0x04]) + rng.randbytes(6)) if i % 2
            else Uid(bytes([rng.randrange(0x10, 0x80)]) + rng.randbytes(3))
            for i in range(count)]


def bench_match(count: int, rounds: int) -> None:
    badges = _badges(count)
    tags = [(render(badges[i % count], "dec-reversed"), "hex") for i in range(rounds)]
    started = time.perf_counter()
    for tag, configured in tags:
        match_id_tag(tag, configured, badges)
    elapsed = time.perf_counter() - started
    print(f"match_id_tag, {count} badges, fallback format: {elapsed / rounds * 1e6:.0f} µs/tag")


async def bench_lookup(count: int, rounds: int) -> None:
    from csms.db.engine import create_engine, session_factory
    from csms.db.migrate import upgrade_database
    from csms.inventory.models import Site
    from rfid.registry import lookup, register_badge
    from wallet.models import Account

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        await upgrade_database(engine)
        badges = _badges(count)
        async with session_factory(engine)() as session:
            session.add(Site(id="s", name="S", timezone="Europe/Berlin", currency="EUR",
                             country="DE"))
            await session.flush()
            session.add(Account(id="a", site_id="s", ref="a", name="A"))
            await session.flush()
            for uid in badges:
                await register_badge(session, uid=uid, account_id="a", now=now)
            await session.commit()
            for fmt, configured in (("hex", "hex"), ("dec-reversed", "hex")):
                started = time.perf_counter()
                for i in range(rounds):
                    assert await lookup(session, render(badges[i % count], fmt), configured,
                                        site_id="s")
                elapsed = time.perf_counter() - started
                print(f"registry lookup on SQLite, {count} badges, idTag in {fmt} at a station "
                      f"set to {configured}: {elapsed / rounds * 1e3:.2f} ms/tag")
        await engine.dispose()


def main() -> None:
    bench_match(500, 2000)
    asyncio.run(bench_lookup(500, 500))


if __name__ == "__main__":
    main()
