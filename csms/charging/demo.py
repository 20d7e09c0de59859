"""One visible paid session against a running node (`volthaus simulate --station ...`).

The simulated wallbox badges, charges (simulated time compressed by `time_scale`: an hour of
charging passes in seconds, the meter values carry the energy of the whole hour), stops, and the
result is read back over the HTTP API: the session's bill and the wallet's new balance.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO

import httpx

from csms.simulator.station import PROTOCOL_16, SimStation


@dataclass(frozen=True, slots=True)
class DemoPlan:
    url: str
    station_id: str
    protocol: str
    password: str | None
    id_tag: str
    power_w: float = 11000
    session_s: float = 3600
    interval_s: float = 600
    time_scale: float = 0.002
    api_url: str | None = None
    token: str | None = None


async def _api(plan: DemoPlan, path: str, **params: Any) -> Any:
    assert plan.api_url is not None and plan.token is not None
    async with httpx.AsyncClient(base_url=plan.api_url, timeout=30) as client:
        response = await client.get(path, params=params,
                                    headers={"Authorization": f"Bearer {plan.token}"})
        response.raise_for_status()
        return response.json()


async def run_demo(plan: DemoPlan, out: TextIO) -> int:
    station = SimStation(plan.url, plan.station_id, protocol=plan.protocol,
                         password=plan.password)
    with_api = plan.api_url is not None and plan.token is not None
    await station.connect()
    try:
        print(f"{plan.station_id} ({plan.protocol}) boot: {await station.boot()}", file=out)
        station.compress_time(plan.session_s, plan.time_scale)
        status = await station.authorize(plan.id_tag)
        print(f"badge {plan.id_tag}: {status}", file=out)
        if status != "Accepted":
            return 1
        session = await station.start(plan.id_tag)
        print(f"transaction {session.transaction_id} started at {station.energy_wh} Wh",
              file=out)
        elapsed = 0.0
        while elapsed + plan.interval_s <= plan.session_s:
            await station.wait(plan.interval_s, plan.time_scale)
            elapsed += plan.interval_s
            await station.meter(session, plan.power_w, plan.interval_s)
            shown = _last_cost(station)
            cost = f", cost so far {shown}" if shown is not None else ""
            print(f"  {elapsed / 60:4.0f} min  {station.energy_wh} Wh{cost}", file=out)
        await station.stop(session)
        await asyncio.sleep(0.2)  # the final cost message follows the stop's answer
        print(f"stopped at {station.energy_wh} Wh", file=out)
    finally:
        await station.close()
    if not with_api:
        print("(pass --api and --token to see the bill and the wallet)", file=out)
        return 0
    sessions = await _api(plan, "/api/v1/sessions", station=plan.station_id, limit=1)
    if not sessions:
        print("no session recorded", file=out)
        return 1
    bill = sessions[0]
    print(
        f"session {bill['id']}: {bill['status']}, {Decimal(bill['energy_wh']) / 1000} kWh, "
        f"net {bill['net']}, VAT {bill['vat']}, total {bill['gross']} {bill['currency']}",
        file=out,
    )
    for line in bill["lines"]:
        print(f"  {line['dimension']:<7} {line.get('quantity')} {line.get('unit')}: "
              f"{line['net']}", file=out)
    if bill["account_id"]:
        wallet = await _api(plan, f"/api/v1/accounts/{bill['account_id']}/wallet")
        print(f"wallet {bill['account_id']}: balance {wallet['balance']} {bill['currency']}",
              file=out)
    return 0


def _last_cost(station: SimStation) -> str | None:
    for action, payload in reversed(station.memory.received):
        if action == "CostUpdated":
            return str(payload["total_cost"])
        if action == "DataTransfer" and "RunningCost" in str(payload.get("message_id")):
            return str(payload.get("data"))
    return None


def protocol_for(value: str) -> str:
    return PROTOCOL_16 if value == "mixed" else value
