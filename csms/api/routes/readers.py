"""Badge readers at machines report taps (devices.md, "Readers and taps").

`POST /api/v1/readers/{reader_id}/taps` with a token of role `reader` bound to that reader (a
network reader, or `volthaus reader run`), or a staff token of the reader's site for trying it
out. The route finds the reader and checks the caller; the laundry service on
`app.state.laundry` (`amenities.taps.TapService`) decides the tap, and its answer goes out as
it is.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from amenities.models import Reader
from amenities.taps import (
    AmenityNotAtReader,
    AmenityRequired,
    TapAnswer,
    TapService,
    UnknownAmenity,
)
from csms.api.deps import DbSession, Principal, require_roles
from csms.api.problems import ApiProblem

router = APIRouter(tags=["readers"])

Tapper = Annotated[
    Principal, Depends(require_roles("reader", "admin", "owner", "installer"))
]

MAX_ID_TAG = 64


class TapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_tag: str = Field(
        min_length=1, max_length=MAX_ID_TAG,
        description="the badge's UID as the reader writes it (its `idtag_format`)",
        examples=["04A2B3C4"],
    )
    amenity: str | None = Field(
        default=None, description="the machine; may be left out when the reader serves one",
        examples=["washer-1"],
    )


class TapMessage(BaseModel):
    de: str
    en: str


class TapAnswerPublic(BaseModel):
    """What the reader shows: the decision, the machine, why, and a text in both languages."""

    decision: Literal["accepted", "refused"]
    amenity: str
    reason: str
    message: TapMessage

    @classmethod
    def of(cls, answer: TapAnswer) -> TapAnswerPublic:
        return cls.model_validate({
            "decision": answer.decision, "amenity": answer.amenity, "reason": answer.reason,
            "message": answer.message,
        })


def _laundry(request: Request) -> TapService:
    laundry: TapService | None = getattr(request.app.state, "laundry", None)
    if laundry is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "this node runs no laundry service"
        )
    return laundry


@router.post(
    "/readers/{reader_id}/taps",
    summary="A badge tapped at a reader: start the machine, or say why not",
    responses={
        403: {"description": "a token of another reader, or of another site"},
        404: {"description": "unknown reader, or an amenity its site does not have"},
        422: {"description": "no or too long id_tag; no machine named at a reader of several; "
                             "a machine the reader does not serve"},
        503: {"description": "this node runs no laundry service"},
    },
)
async def tap_route(
    reader_id: str, body: TapRequest, request: Request, session: DbSession, principal: Tapper
) -> TapAnswerPublic:
    reader = await session.get(Reader, reader_id)
    if reader is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown reader {reader_id!r}")
    principal.ensure_site(reader.site_id)
    if principal.role == "reader" and principal.reader_id != reader.id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this token is bound to reader {principal.reader_id!r}, not {reader.id!r}",
        )
    site_id = reader.site_id
    # The service opens its own sessions: this one is done (a staff tap's audit row is then
    # written on its own as the answer goes out).
    await session.close()
    laundry = _laundry(request)
    try:
        answer: TapAnswer = await laundry.tap(
            site_id=site_id, reader_id=reader.id, id_tag=body.id_tag, amenity_id=body.amenity
        )
    except UnknownAmenity as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except (AmenityRequired, AmenityNotAtReader) as error:
        raise ApiProblem(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid input", [("amenity", str(error))]
        ) from None
    return TapAnswerPublic.of(answer)
