"""`volthaus cluster`: several nodes on this machine sharing PostgreSQL and Redis, behind HAProxy
when it is installed (the compose topology of docker/ without Docker); Ctrl-C stops them all,
each draining as SIGTERM makes it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from sqlalchemy.engine import make_url


def register(subparsers: argparse._SubParsersAction) -> None:
    cluster = subparsers.add_parser(
        "cluster", help="run several nodes on this machine (PostgreSQL + Redis + HAProxy)")
    cluster.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    cluster.add_argument("--site", type=Path, help="a site file to import first")
    cluster.add_argument("--http-port", type=int, default=8000,
                         help="HAProxy's port for pages and API (default 8000); nodes 8101…")
    cluster.add_argument("--ocpp-port", type=int, default=9000,
                         help="HAProxy's port for stations (default 9000); nodes 9101…")
    cluster.set_defaults(handler=run_cluster)


async def _ensure_database(url: str) -> None:
    """Create the database the URL names when the server does not have it yet."""
    from csms.db.scratch import admin_execute

    parsed = make_url(url)
    server = parsed.set(database="postgres").render_as_string(hide_password=False)
    with contextlib.suppress(Exception):  # exists already (DuplicateDatabaseError)
        await admin_execute(server, f'CREATE DATABASE "{parsed.database}"')


async def _run(args: argparse.Namespace) -> int:
    from csms.deploy.local_cluster import LocalCluster
    from csms.settings import Settings

    settings = Settings()
    if not settings.database_url.startswith("postgresql"):
        print("volthaus cluster: VOLTHAUS_DATABASE_URL: several nodes need PostgreSQL "
              "(postgresql://USER@HOST:PORT/DB)", file=sys.stderr)
        return 2
    if not settings.redis_url:
        print("volthaus cluster: VOLTHAUS_REDIS_URL: several nodes need Redis "
              "(redis://HOST:PORT/DB)", file=sys.stderr)
        return 2
    if args.nodes < 1 or args.nodes > 16:
        print("volthaus cluster: --nodes: from 1 to 16", file=sys.stderr)
        return 2
    await _ensure_database(settings.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with LocalCluster(settings.database_url, settings.redis_url, nodes=args.nodes,
                            site_file=args.site, proxy_http_port=args.http_port,
                            proxy_ocpp_port=args.ocpp_port,
                            node_base_port=args.http_port + 100) as cluster:
        print(f"{args.nodes} nodes up; logs in {cluster.folder}")
        for node in cluster.members:
            print(f"  {node.node_id}: {node.http_url}  {node.ocpp_url}")
        if cluster.proxy_http_port:
            print(f"HAProxy: pages and API {cluster.http_url}/, stations "
                  f"{cluster.ocpp_url}/{{station_id}}")
        print("Ctrl-C stops them (each drains first).", flush=True)
        await stop.wait()
    return 0


def run_cluster(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
