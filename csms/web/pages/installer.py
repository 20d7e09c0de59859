"""The installer's pages: wallboxes (add one and see its credentials once, approve pending ones,
live status and the last OCPP messages), machines and readers, meters with a live test read,
the site's buildings, and bulk CSV import of badges and meters with a row-by-row report."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import col, select

from amenities.drivers.capabilities import DeviceUnreachable
from amenities.machines import machine_views
from amenities.models import Reader
from csms.api.deps import DbSession
from csms.bus.errors import BusError
from csms.inventory.csv_import import (
    BADGE_COLUMNS,
    METER_COLUMNS,
    RowReport,
    badge_entry,
    entry_problems,
    meter_entry,
    read_rows,
)
from csms.inventory.entries import new_station_password, write_meter, write_station
from csms.inventory.models import Building, Station
from csms.inventory.sitefile import BadgeEntry, MeterEntry, StationEntry, upsert_badge
from csms.inventory.tariffs import site_tariffs
from csms.ocpp.admin import ApprovalError, approve_station, station_overview
from csms.ocpp.commands import CommandError, StationGateway
from csms.web.guard import CheckedForm, form_text, now_of, page_site, signed_in
from csms.web.models import WebUser
from csms.web.render import render
from meters.models import Meter
from meters.on_gateway import meter_on_gateway
from rfid.registry import record_changes
from wallet.accounts import account_by_ref

router = APIRouter()
Installer = Annotated[WebUser, Depends(signed_in("installer"))]
Staff = Annotated[WebUser, Depends(signed_in("installer", "owner"))]

NAV = [
    (("installer", "admin"), "/installer", "installer.nav.stations"),
    (("installer", "admin"), "/installer/amenities", "installer.nav.amenities"),
    (("installer", "admin"), "/installer/meters", "installer.nav.meters"),
    (("installer", "admin"), "/installer/load", "installer.nav.load"),
    (("installer", "admin"), "/installer/site", "installer.nav.site"),
    (("installer", "admin"), "/installer/import", "installer.nav.import"),
]
PAGES = [("installer", path) for _, path, _ in NAV] + [("installer", "/installer/stations/new")]


@router.get("/installer")
async def stations(request: Request, db: DbSession, user: Installer) -> Response:
    site = page_site(request)
    rows = (await db.exec(select(Station).where(col(Station.site_id) == site.id)
                          .order_by(col(Station.id)))).all()
    overviews = {row.id: await station_overview(db, row.id) for row in rows}
    return render(request, "installer/stations.html", {"stations": rows, "live": overviews})


async def _station_form(request: Request, db: DbSession, **extra: Any) -> Response:
    site = page_site(request)
    tariffs = [t.id for t in await site_tariffs(db, site.id)]
    buildings = (await db.exec(select(Building).where(col(Building.site_id) == site.id))).all()
    return render(request, "installer/station_new.html", {
        "tariffs": tariffs, "buildings": buildings, "values": {}, "errors": {}, **extra},
        status=422 if extra.get("errors") else 200)


@router.get("/installer/stations/new")
async def new_station_page(request: Request, db: DbSession, user: Installer) -> Response:
    return await _station_form(request, db)


@router.post("/installer/stations/new")
async def new_station(request: Request, db: DbSession, user: Installer,
                      form: CheckedForm) -> Response:
    site = page_site(request)
    values = {key: form_text(form, key) for key in (
        "id", "protocol", "security_profile", "connectors", "tariff", "building", "max_power_w")}
    password = new_station_password()
    entry_raw: dict[str, Any] = {
        "id": values["id"], "protocol": values["protocol"], "tariff": values["tariff"],
        "security_profile": int(values["security_profile"] or 1)
        if values["security_profile"].isdigit() else values["security_profile"],
        "connectors": int(values["connectors"]) if values["connectors"].isdigit()
        else values["connectors"],
    }
    if values["building"]:
        entry_raw["building"] = values["building"]
    if values["max_power_w"]:
        entry_raw["max_power_w"] = (int(values["max_power_w"]) if values["max_power_w"].isdigit()
                                    else values["max_power_w"])
    if entry_raw["security_profile"] != 0:
        entry_raw["password"] = password
    errors: dict[str, str] = {}
    try:
        entry = StationEntry.model_validate(entry_raw)
    except ValidationError as error:
        for problem in error.errors():
            errors.setdefault(str(problem["loc"][0]), problem["msg"])
        return await _station_form(request, db, values=values, errors=errors)
    existing = await db.get(Station, entry.id)
    if existing is not None:
        return await _station_form(request, db, values=values, errors={
            "id": "exists already" if existing.site_id == site.id else "taken"})
    if entry.tariff not in [t.id for t in await site_tariffs(db, site.id)]:
        return await _station_form(request, db, values=values,
                                   errors={"tariff": f"unknown tariff {entry.tariff!r}"})
    settings = request.app.state.settings
    await write_station(db, site.id, entry, settings.station_login_key())
    await db.commit()
    ocpp_url = f"ws://{request.url.hostname}:{settings.ocpp_port}/ocpp/{entry.id}"
    # Shown now and never again: only a verified-login record (then a hash) is stored.
    return render(request, "installer/station_created.html", {
        "station": entry, "password": password if entry.security_profile else None,
        "ocpp_url": ocpp_url})


@router.get("/installer/stations/{station_id}")
async def station_page(request: Request, station_id: str, db: DbSession,
                       user: Installer) -> Response:
    site = page_site(request)
    station = await db.get(Station, station_id)
    if station is None or station.site_id != site.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no station {station_id!r}")
    overview = await station_overview(db, station_id)
    messages: list[Any] = []
    if overview["connected"]:
        try:
            gateway = StationGateway(request.app.state.bus)
            raw = await gateway.run(station_id, "recent_messages", timeout=3)
            messages = [(datetime.fromtimestamp(at, UTC), direction, text)
                        for at, direction, text in raw or []][::-1]
        except (CommandError, BusError, TimeoutError):
            messages = []
    tariffs = [t.id for t in await site_tariffs(db, site.id)]
    return render(request, "installer/station.html", {
        "station": station, "live": overview, "messages": messages, "tariffs": tariffs})


@router.post("/installer/stations/{station_id}/approve")
async def approve(request: Request, station_id: str, db: DbSession, user: Installer,
                  form: CheckedForm) -> Response:
    site = page_site(request)
    station = await db.get(Station, station_id)
    if station is None or station.site_id != site.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no station {station_id!r}")
    try:
        await approve_station(db, station_id, form_text(form, "tariff") or None)
    except ApprovalError:
        await db.rollback()
        return RedirectResponse(f"/installer/stations/{station_id}?notice=installer.station."
                                "approve_failed", status_code=303)
    await db.commit()
    return RedirectResponse(f"/installer/stations/{station_id}?notice=installer.station."
                            "approved", status_code=303)


@router.get("/installer/amenities")
async def amenities(request: Request, db: DbSession, user: Installer) -> Response:
    site = page_site(request)
    machines = await machine_views(db, site.id, now_of(request))
    readers = (await db.exec(select(Reader).where(col(Reader.site_id) == site.id)
                             .order_by(col(Reader.id)))).all()
    return render(request, "installer/amenities.html", {"machines": machines,
                                                        "readers": readers})


@router.get("/installer/meters")
async def meters(request: Request, db: DbSession, user: Installer) -> Response:
    site = page_site(request)
    rows = (await db.exec(select(Meter).where(col(Meter.site_id) == site.id)
                          .order_by(col(Meter.id)))).all()
    return render(request, "installer/meters.html", {"meters": rows, "read": None})


@router.post("/installer/meters/{meter_id}/read")
async def test_read(request: Request, meter_id: str, db: DbSession, user: Installer,
                    form: CheckedForm) -> Response:
    site = page_site(request)
    meter = await db.get(Meter, meter_id)
    if meter is None or meter.site_id != site.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no meter {meter_id!r}")
    rows = (await db.exec(select(Meter).where(col(Meter.site_id) == site.id)
                          .order_by(col(Meter.id)))).all()
    drivers = request.app.state.drivers
    started = time.perf_counter()
    try:
        values = await meter_on_gateway(drivers.gateways, {
            "profile": meter.profile, "modbus": meter.modbus}).read_values()
        read: dict[str, Any] = {"meter": meter_id, "values": values,
                                "ms": round((time.perf_counter() - started) * 1000)}
    except DeviceUnreachable as error:
        read = {"meter": meter_id, "error": str(error)}
    return render(request, "installer/meters.html", {"meters": rows, "read": read})


@router.get("/installer/site")
async def site_page(request: Request, db: DbSession, user: Installer) -> Response:
    site = page_site(request)
    buildings = (await db.exec(select(Building).where(col(Building.site_id) == site.id)
                               .order_by(col(Building.id)))).all()
    return render(request, "installer/site.html", {"buildings": buildings})


@router.post("/installer/site/buildings")
async def add_building(request: Request, db: DbSession, user: Installer,
                       form: CheckedForm) -> Response:
    site = page_site(request)
    building_id, name = form_text(form, "building_id"), form_text(form, "name")
    if not building_id or len(building_id) > 64:
        buildings = (await db.exec(select(Building).where(col(Building.site_id) == site.id)
                                   )).all()
        return render(request, "installer/site.html", {
            "buildings": buildings, "error": "installer.site.bad_id"}, status=422)
    await db.merge(Building(site_id=site.id, id=building_id, name=name or None))
    await db.commit()
    return RedirectResponse("/installer/site", status_code=303)


@router.get("/installer/import")
async def import_page(request: Request, user: Installer) -> Response:
    return render(request, "installer/import.html", {"report": None})


@router.post("/installer/import")
async def import_csv(request: Request, db: DbSession, user: Installer,
                     form: CheckedForm) -> Response:
    site = page_site(request)
    kind = form_text(form, "kind")
    upload: Any = form.get("file")
    text = form_text(form, "text")
    if upload is not None and hasattr(upload, "read"):
        text = (await upload.read()).decode("utf-8-sig", errors="replace") or text
    columns = BADGE_COLUMNS if kind == "badges" else METER_COLUMNS
    rows, header_problems = read_rows(text, columns)
    reports: list[RowReport] = []
    if header_problems:
        return render(request, "installer/import.html", {
            "report": [], "header": header_problems, "kind": kind}, status=422)
    now = now_of(request)
    changed: list[str] = []
    for line, row in enumerate(rows, start=2):
        if kind == "badges":
            entry = badge_entry(row)
            report = RowReport(line, entry["uid"], entry_problems(BadgeEntry, entry))
            account = await account_by_ref(db, site.id, entry["account"]) if report.ok else None
            if report.ok and account is None:
                report.problems.append(f"account: unknown account {entry['account']!r}")
            if report.ok and account is not None:
                badge = BadgeEntry.model_validate(entry)
                if await upsert_badge(db, site.id, badge, {badge.account: account.id}, now):
                    changed.append(badge.uid)
        else:
            raw = meter_entry(row)
            report = RowReport(line, raw["id"], entry_problems(MeterEntry, raw))
            account = await account_by_ref(db, site.id, raw["account"]) if report.ok else None
            if report.ok and account is None:
                report.problems.append(f"account: unknown account {raw['account']!r}")
            tariffs = [t.id for t in await site_tariffs(db, site.id)]
            if report.ok and raw["tariff"] not in tariffs:
                report.problems.append(f"tariff: unknown tariff {raw['tariff']!r}")
            other = await db.get(Meter, raw["id"]) if report.ok else None
            if other is not None and other.site_id != site.id:
                report.problems.append(f"id: meter {raw['id']!r} belongs to another site")
            if report.ok and account is not None:
                await write_meter(db, site.id, account.id, MeterEntry.model_validate(raw))
        reports.append(report)
    if changed:
        await record_changes(db, site.id, changed)  # every station's local list learns of it
    await db.commit()
    return render(request, "installer/import.html", {"report": reports, "kind": kind})


@router.get("/installer/load")
async def load_page(request: Request, db: DbSession, user: Staff) -> Response:
    """The site's load: limit, building, each station's allocation (as the API's /load)."""
    from csms.load.grid_limits import active_limits
    from csms.load.models import LoadState, SiteLoad

    site = page_site(request)
    section = await db.get(SiteLoad, site.id)
    state = await db.get(LoadState, site.id)
    limits = await active_limits(db, site.id, now_of(request))
    return render(request, "installer/load.html", {
        "settings": section.section if section else None,
        "state": state.state if state else None,
        "computed_at": state.computed_at if state else None, "limits": limits})
