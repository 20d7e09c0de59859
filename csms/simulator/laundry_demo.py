"""`volthaus simulate laundry`: tap a badge at a machine of a running node over its HTTP API and
follow the cycle (state, running time, cost so far) until the machine is free again, then show
the wallet. Against `volthaus serve --demo` the machine is an emulated Shelly that plays a short
washer or dryer programme once its relay is switched on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TextIO

import httpx


@dataclass(frozen=True, slots=True)
class LaundryPlan:
    api_url: str
    token: str
    site: str
    reader: str
    amenity: str
    badge: str
    account: str | None
    language: str = "de"
    timeout_s: float = 900.0
    interval_s: float = 1.0


def _line(machine: dict[str, Any]) -> str:
    cycle = machine.get("cycle") or {}
    parts = [f"{machine['id']}: {machine['state']}"]
    if cycle:
        parts.append(f"{cycle['running_s']} s")
        parts.append(f"{cycle['energy_wh']} Wh")
        if cycle.get("cost_gross") is not None:
            parts.append(f"{cycle['cost_gross']} {cycle.get('currency') or ''}".strip())
    return ", ".join(parts)


async def run_laundry_demo(plan: LaundryPlan, out: TextIO) -> int:
    try:
        return await _follow(plan, out)
    except httpx.HTTPError as error:
        print(f"cannot reach the node at {plan.api_url}: {error!r}", file=out)
        return 1


async def _follow(plan: LaundryPlan, out: TextIO) -> int:
    headers = {"Authorization": f"Bearer {plan.token}"}
    async with httpx.AsyncClient(base_url=plan.api_url, headers=headers, timeout=30) as client:
        tap = await client.post(f"/api/v1/readers/{plan.reader}/taps",
                                json={"id_tag": plan.badge, "amenity": plan.amenity})
        if tap.status_code != 200:
            print(f"tap refused by the server: HTTP {tap.status_code} {tap.text}", file=out)
            return 1
        answer = tap.json()
        print(f"tap {plan.badge} at {plan.amenity}: {answer['decision']} "
              f"({answer['reason']}): {answer['message'].get(plan.language, '')}", file=out)
        if answer["decision"] != "accepted":
            return 1
        loop = asyncio.get_running_loop()
        seen_open = False
        last_state = ""
        printed_at = 0.0
        deadline = loop.time() + plan.timeout_s
        while loop.time() < deadline:
            listed = await client.get(f"/api/v1/sites/{plan.site}/amenities")
            listed.raise_for_status()
            machine = {m["id"]: m for m in listed.json()}[plan.amenity]
            # A line when the state changes, and every 15 s while it runs.
            if machine["state"] != last_state or loop.time() - printed_at >= 15:
                print(_line(machine), file=out, flush=True)
                last_state, printed_at = machine["state"], loop.time()
            if machine["state"] in ("authorised", "running", "ending"):
                seen_open = True
            elif seen_open:
                break
            await asyncio.sleep(plan.interval_s)
        else:
            print(f"the cycle did not end within {plan.timeout_s:.0f} s", file=out)
            return 1
        if plan.account:
            wallet = await client.get(f"/api/v1/accounts/{plan.account}/wallet",
                                      params={"site": plan.site})
            if wallet.status_code == 200:
                body = wallet.json()
                print(f"wallet {plan.account}: balance {body['balance']} "
                      f"{body.get('currency', '')}".rstrip(), file=out)
    return 0
