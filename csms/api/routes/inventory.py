"""A site's resources one by one over the API (the site file stays the bulk path): tariffs
(read, publish a version, versions, delete when unused), stations (create with credentials
returned once), accounts, users, machines and readers. Every write goes through the same
service as the site file and the pages (`csms.inventory.entries`, `csms.inventory.tariffs`,
`csms.web.users`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import col, select

from amenities.models import Amenity, Reader
from csms.api.deps import DbSession, Principal, request_now, require_roles, scoped_site
from csms.api.problems import invalid, problem_responses
from csms.inventory.entries import new_station_password, write_account, write_station
from csms.inventory.models import Station, Tariff
from csms.inventory.sitefile import AccountEntry, StationEntry
from csms.inventory.tariffs import (
    TariffProblems,
    latest_version,
    publish_tariff,
    site_tariffs,
    tariff_in_use,
    tariff_versions,
)
from csms.web.models import WebUser
from csms.web.users import (
    UserProblem,
    create_user,
    disable_user,
    set_password_url,
    site_users,
    update_user,
)
from wallet.models import Account

router = APIRouter(tags=["inventory"], responses=problem_responses(404))
Staff = Annotated[Principal, Depends(require_roles("admin", "owner", "installer"))]
Owner = Annotated[Principal, Depends(require_roles("admin", "owner"))]
Installer = Annotated[Principal, Depends(require_roles("admin", "installer"))]
_WRITE: dict[int | str, dict[str, Any]] = {
    422: {"description": "the offending fields; nothing was changed"},
    409: {"description": "it exists already, or is in use"}}






def _problems(error: ValidationError) -> JSONResponse:
    return invalid([(".".join(str(p) for p in e["loc"]) or "(body)", str(e["msg"]))
                    for e in error.errors()])


class TariffOut(BaseModel):
    id: str
    version: int
    document: dict[str, Any]


@router.get("/sites/{site_id}/tariffs", summary="The site's tariffs with their version")
async def list_tariffs(site_id: str, db: DbSession, principal: Staff) -> list[TariffOut]:
    await scoped_site(db, principal, site_id)
    return [TariffOut(id=t.id, version=await latest_version(db, site_id, t.id),
                      document=t.document) for t in await site_tariffs(db, site_id)]


@router.get("/sites/{site_id}/tariffs/{tariff_id}", summary="One tariff document")
async def get_tariff(site_id: str, tariff_id: str, db: DbSession, principal: Staff) -> TariffOut:
    await scoped_site(db, principal, site_id)
    row = await db.get(Tariff, (site_id, tariff_id))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tariff {tariff_id!r}")
    return TariffOut(id=row.id, version=await latest_version(db, site_id, row.id),
                     document=row.document)


@router.put("/sites/{site_id}/tariffs/{tariff_id}", responses=_WRITE,
            summary="Publish a tariff document (a new version when it changed)")
async def put_tariff(site_id: str, tariff_id: str, document: dict[str, Any], request: Request,
                     db: DbSession, principal: Owner) -> Any:
    site = await scoped_site(db, principal, site_id)
    if str(document.get("id", tariff_id)) != tariff_id:
        return invalid([("id", f"the document's id must be {tariff_id!r} (the path)")])
    document = {**document, "id": tariff_id}
    try:
        version = await publish_tariff(db, site, document, now=request_now(request),
                                       actor=f"{principal.role}:{principal.token_id}")
    except TariffProblems as problems:
        return invalid([tuple(p.split(": ", 1)) if ": " in p else p  # type: ignore[misc]
                        for p in problems.problems])
    await db.commit()
    return TariffOut(id=tariff_id, version=version, document=document)


@router.get("/sites/{site_id}/tariffs/{tariff_id}/versions", summary="Published versions")
async def get_versions(site_id: str, tariff_id: str, db: DbSession,
                       principal: Staff) -> list[dict[str, Any]]:
    await scoped_site(db, principal, site_id)
    return [{"version": v.version, "published_at": v.published_at.isoformat(),
             "published_by": v.published_by, "document": v.document}
            for v in await tariff_versions(db, site_id, tariff_id)]


@router.delete("/sites/{site_id}/tariffs/{tariff_id}", status_code=204, responses=_WRITE,
               response_class=Response,
               summary="Delete a tariff no station uses (its versions stay for the record)")
async def delete_tariff(site_id: str, tariff_id: str, db: DbSession, principal: Owner
                        ) -> Response:
    await scoped_site(db, principal, site_id)
    row = await db.get(Tariff, (site_id, tariff_id))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tariff {tariff_id!r}")
    if await tariff_in_use(db, site_id, tariff_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"tariff {tariff_id!r} is in use")
    await db.delete(row)
    await db.commit()
    return Response(status_code=204)


class StationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    protocol: str
    security_profile: int = 1
    connectors: int = 1
    tariff: str
    building: str | None = None
    idtag_format: str = "hex"
    max_power_w: int | None = None


@router.get("/sites/{site_id}/stations", summary="The site's stations")
async def list_stations(site_id: str, db: DbSession, principal: Staff) -> list[dict[str, Any]]:
    await scoped_site(db, principal, site_id)
    rows = (await db.exec(select(Station).where(col(Station.site_id) == site_id)
                          .order_by(col(Station.id)))).all()
    return [{"id": s.id, "protocol": s.protocol, "security_profile": s.security_profile,
             "connectors": s.connectors, "tariff": s.tariff_id, "building": s.building_id,
             "pending_approval": s.pending_approval, "max_power_w": s.max_power_w}
            for s in rows]


@router.post("/sites/{site_id}/stations", status_code=201, responses=_WRITE,
             summary="Create a station; its generated password is in this answer only")
async def create_station(site_id: str, body: StationIn, request: Request, db: DbSession,
                         principal: Installer) -> Any:
    await scoped_site(db, principal, site_id)
    raw = body.model_dump(exclude_none=True)
    password = new_station_password() if body.security_profile else None
    if password:
        raw["password"] = password
    try:
        entry = StationEntry.model_validate(raw)
    except ValidationError as error:
        return _problems(error)
    if await db.get(Station, entry.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"station {entry.id!r} exists already")
    if await db.get(Tariff, (site_id, entry.tariff)) is None:
        return invalid([("tariff", f"unknown tariff {entry.tariff!r}")])
    await write_station(db, site_id, entry, request.app.state.settings.station_login_key())
    await db.commit()
    return JSONResponse({"id": entry.id, "password": password,
                         "ocpp_path": f"/ocpp/{entry.id}"}, status_code=201)


@router.get("/sites/{site_id}/accounts", summary="The site's accounts")
async def list_accounts(site_id: str, db: DbSession, principal: Staff) -> list[dict[str, Any]]:
    await scoped_site(db, principal, site_id)
    rows = (await db.exec(select(Account).where(col(Account.site_id) == site_id)
                          .order_by(col(Account.ref)))).all()
    return [{"id": a.ref, "name": a.name, "building": a.building_id, "unit": a.unit,
             "email": a.email, "language": a.language} for a in rows]


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    building: str | None = None
    unit: str | None = None
    email: str | None = None
    language: str = "de"


@router.post("/sites/{site_id}/accounts", status_code=201, responses=_WRITE,
             summary="Create an account (a household with its prepaid wallet)")
async def create_account(site_id: str, body: AccountIn, db: DbSession,
                         principal: Owner) -> Any:
    await scoped_site(db, principal, site_id)
    try:
        entry = AccountEntry.model_validate(body.model_dump(exclude_none=True))
    except ValidationError as error:
        return _problems(error)
    from wallet.accounts import account_by_ref

    if await account_by_ref(db, site_id, entry.id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"account {entry.id!r} exists already")
    if entry.building is not None:
        from csms.inventory.models import Building

        if await db.get(Building, (site_id, entry.building)) is None:
            return invalid([("building", f"unknown building {entry.building!r}")])
    await write_account(db, site_id, entry)
    await db.commit()
    return JSONResponse({"id": entry.id, "name": entry.name}, status_code=201)


class AccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, description="must be the path's, if given")
    name: str = Field(min_length=1, max_length=200)
    building: str | None = None
    unit: str | None = None
    email: str | None = None
    language: str = "de"


@router.put("/sites/{site_id}/accounts/{ref}", responses=_WRITE,
            summary="Create or replace an account's household details (name, building, unit, "
            "e-mail, language); its money is never touched here")
async def put_account(site_id: str, ref: str, body: AccountUpdate, db: DbSession,
                      principal: Owner) -> Any:
    from csms.inventory.models import Building
    from wallet.accounts import account_by_ref

    await scoped_site(db, principal, site_id)
    if body.id is not None and body.id != ref:
        return invalid([("id", f"must be {ref!r} (the path)")])
    try:
        entry = AccountEntry.model_validate(
            {**body.model_dump(exclude_none=True, exclude={"id"}), "id": ref})
    except ValidationError as error:
        return _problems(error)
    if entry.building is not None and await db.get(Building, (site_id, entry.building)) is None:
        return invalid([("building", f"unknown building {entry.building!r}")])
    existing = await account_by_ref(db, site_id, ref)
    opening = existing.opening_balance if existing is not None else None
    stored = await write_account(db, site_id, entry)
    stored.opening_balance = opening  # booked once at import; a PUT does not rewrite it
    await db.commit()
    return JSONResponse({"id": ref, "name": entry.name, "created": existing is None},
                        status_code=200 if existing is not None else 201)


@router.delete("/sites/{site_id}/accounts/{ref}", status_code=204, response_class=Response,
               responses=_WRITE,
               summary="Remove an account that never moved money and has no badges, meters "
               "or people left (409 names what keeps it)")
async def delete_account(site_id: str, ref: str, db: DbSession, principal: Owner) -> Response:
    from csms.inventory.entries import account_history, remove_account
    from wallet.accounts import account_by_ref

    await scoped_site(db, principal, site_id)
    account = await account_by_ref(db, site_id, ref)
    if account is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no account {ref!r}")
    kept_by = await account_history(db, account)
    if kept_by:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"account {ref!r} stays: it has {', '.join(kept_by)}")
    await remove_account(db, account)
    await db.commit()
    return Response(status_code=204)


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str
    role: str
    account: str | None = None
    language: str = "de"


@router.get("/sites/{site_id}/users", summary="People who sign in to the site's pages")
async def list_users(site_id: str, db: DbSession, principal: Owner) -> list[dict[str, Any]]:
    await scoped_site(db, principal, site_id)
    return [{"email": u.email, "role": u.role, "language": u.language,
             "state": "disabled" if u.disabled_at else ("active" if u.password_hash
                                                        else "invited")}
            for u in await site_users(db, site_id)]


@router.post("/sites/{site_id}/users", status_code=201, responses=_WRITE,
             summary="Invite a person; the one-time set-password link is in this answer")
async def invite_user(site_id: str, body: UserIn, request: Request, db: DbSession,
                      principal: Staff) -> Any:
    await scoped_site(db, principal, site_id)
    if principal.role == "installer" and body.role != "resident":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "installers invite residents only")
    if body.role == "admin":
        return invalid([("role", "admins are created with volthaus user create")])
    try:
        user, token = await create_user(db, email=body.email, role=body.role, site_id=site_id,
                                        account_ref=body.account, language=body.language,
                                        now=request_now(request))
    except UserProblem as problem:
        return invalid([(problem.field, problem.message)])
    await db.commit()
    link = set_password_url(request.app.state.settings.pages_url(), token)
    return JSONResponse({"email": user.email, "role": user.role, "link": link},
                        status_code=201)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str | None = None
    account: str | None = None
    language: str | None = None


@router.patch("/sites/{site_id}/users/{email}", responses=_WRITE,
              summary="Change a person's role, household or language (a new role or household "
              "ends their sessions)")
async def change_user(site_id: str, email: str, body: UserUpdate, request: Request,
                      db: DbSession, principal: Owner) -> Any:
    await scoped_site(db, principal, site_id)
    user = (await db.exec(select(WebUser).where(col(WebUser.email) == email.lower(),
                                                col(WebUser.site_id) == site_id))).first()
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {email!r}")
    if body.role == "admin":
        return invalid([("role", "admins are created with volthaus user create")])
    try:
        await update_user(db, user, now=request_now(request), role=body.role,
                          account_ref=body.account, language=body.language)
    except UserProblem as problem:
        await db.rollback()
        return invalid([(problem.field, problem.message)])
    await db.commit()
    return {"email": user.email, "role": user.role, "language": user.language}


@router.delete("/sites/{site_id}/users/{email}", status_code=204, response_class=Response,
               summary="Disable a person: their sessions end at once")
async def remove_user(site_id: str, email: str, request: Request, db: DbSession,
                      principal: Owner) -> Response:
    await scoped_site(db, principal, site_id)
    user = (await db.exec(select(WebUser).where(col(WebUser.email) == email.lower(),
                                                col(WebUser.site_id) == site_id))).first()
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {email!r}")
    await disable_user(db, user, request_now(request))
    await db.commit()
    return Response(status_code=204)


@router.get("/sites/{site_id}/readers", summary="The site's badge readers")
async def list_readers(site_id: str, db: DbSession, principal: Staff) -> list[dict[str, Any]]:
    await scoped_site(db, principal, site_id)
    rows = (await db.exec(select(Reader).where(col(Reader.site_id) == site_id)
                          .order_by(col(Reader.id)))).all()
    return [{"id": r.id, "building": r.building_id, "idtag_format": r.idtag_format}
            for r in rows]


# One resource at a time, as the site file writes it: PUT creates or replaces an entry (the site
# file's keys for that list, checked as an import checks them), DELETE removes one that has no
# history (a machine with cycles, a meter with readings, a station with sessions stays: 409).

_ENTRY_MODELS = {"amenities": "AmenityEntry", "readers": "ReaderEntry", "meters": "MeterEntry",
                 "stations": "StationEntry"}


async def _cross_problems(db: DbSession, site_id: str, kind: str, entry: Any
                          ) -> list[tuple[str, str]]:
    """References to what the site has (as an import checks them across lists)."""
    from csms.inventory.models import Building

    problems: list[tuple[str, str]] = []
    tariff = getattr(entry, "tariff", None)
    if tariff is not None and await db.get(Tariff, (site_id, tariff)) is None:
        problems.append(("tariff", f"unknown tariff {tariff!r}"))
    building = getattr(entry, "building", None)
    if building is not None and await db.get(Building, (site_id, building)) is None:
        problems.append(("building", f"unknown building {building!r}"))
    reader = getattr(entry, "reader", None) if kind == "amenities" else None
    if reader is not None:
        found = await db.get(Reader, reader)
        if found is None or found.site_id != site_id:
            problems.append(("reader", f"unknown reader {reader!r}"))
    return problems


async def _owner_site(db: DbSession, kind: str, entry_id: str) -> str | None:
    from meters.models import Meter

    model: Any = {"amenities": Amenity, "readers": Reader, "meters": Meter,
                  "stations": Station}[kind]
    row = await db.get(model, entry_id)
    return None if row is None else str(row.site_id)


@router.put("/sites/{site_id}/{kind}/{entry_id}", responses=_WRITE,
            summary="Create or replace one machine, reader, meter or station (site-file keys)")
async def put_entry(site_id: str, kind: str, entry_id: str, body: dict[str, Any],
                    request: Request, db: DbSession, principal: Installer) -> Any:
    import csms.inventory.sitefile as sitefile
    from csms.inventory.entries import write_amenity, write_meter, write_reader
    from wallet.accounts import account_by_ref

    if kind not in _ENTRY_MODELS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no resource {kind!r}")
    await scoped_site(db, principal, site_id)
    if str(body.get("id", entry_id)) != entry_id:
        return invalid([("id", f"must be {entry_id!r} (the path)")])
    model = getattr(sitefile, _ENTRY_MODELS[kind])
    try:
        entry = model.model_validate({**body, "id": entry_id})
    except ValidationError as error:
        return _problems(error)
    owner = await _owner_site(db, kind, entry_id)
    if owner is not None and owner != site_id:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{entry_id!r} belongs to another site")
    problems = await _cross_problems(db, site_id, kind, entry)
    account = None
    if kind == "meters":
        account = await account_by_ref(db, site_id, entry.account)
        if account is None:
            problems.append(("account", f"unknown account {entry.account!r}"))
    if problems:
        return invalid(problems)
    if kind == "amenities":
        await write_amenity(db, site_id, entry)
    elif kind == "readers":
        await write_reader(db, site_id, entry)
    elif kind == "meters":
        assert account is not None
        await write_meter(db, site_id, account.id, entry)
    else:
        existing = await db.get(Station, entry_id)
        kept = (existing.password_hash, existing.login_verifier) if existing else (None, None)
        await write_station(db, site_id, entry, request.app.state.settings.station_login_key())
        if entry.password is None and entry.password_hash is None and existing is not None:
            existing.password_hash, existing.login_verifier = kept  # credentials unchanged
    await db.commit()
    return JSONResponse({"id": entry_id, "created": owner is None},
                        status_code=201 if owner is None else 200)


@router.delete("/sites/{site_id}/{kind}/{entry_id}", status_code=204, response_class=Response,
               responses=_WRITE, summary="Remove a machine, reader, meter or station that has "
               "no history")
async def delete_entry(site_id: str, kind: str, entry_id: str, db: DbSession,
                       principal: Installer) -> Response:
    from sqlalchemy.exc import IntegrityError

    from meters.models import Meter

    if kind not in _ENTRY_MODELS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no resource {kind!r}")
    await scoped_site(db, principal, site_id)
    model: Any = {"amenities": Amenity, "readers": Reader, "meters": Meter,
                  "stations": Station}[kind]
    row = await db.get(model, entry_id)
    if row is None or row.site_id != site_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind[:-1]} {entry_id!r}")
    if await _has_history(db, kind, entry_id):
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"{entry_id!r} has history (sessions, cycles or readings): it stays")
    await db.delete(row)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"{entry_id!r} has history (sessions, cycles or readings): "
                            "it stays") from None
    return Response(status_code=204)


async def _has_history(db: DbSession, kind: str, entry_id: str) -> bool:
    """Money and readings refer to devices by id: a device with any stays."""
    from amenities.models import AmenityCycle
    from csms.charging.models import ChargingSession
    from meters.models import MeterReading

    checks: dict[str, Any] = {
        "stations": select(ChargingSession.id).where(col(ChargingSession.station_id) == entry_id),
        "amenities": select(AmenityCycle.id).where(col(AmenityCycle.amenity_id) == entry_id),
        "meters": select(MeterReading.id).where(col(MeterReading.meter_id) == entry_id),
    }
    query = checks.get(kind)
    return query is not None and (await db.exec(query.limit(1))).first() is not None
