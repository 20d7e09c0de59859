"""A laundry service for the reader route's tests (`amenities.taps.TapService`): it answers
what it was told to and records every tap, so tests see exactly what reached the service."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from amenities.taps import TapAnswer


@dataclass(frozen=True, slots=True)
class Tap:
    site_id: str
    reader_id: str
    id_tag: str
    amenity_id: str | None


@dataclass
class FakeLaundry:
    """`answers` maps an id_tag to the answer (or the exception) it gets; any other badge is
    accepted at the machine named, or at `default_amenity`."""

    answers: dict[str, TapAnswer | Exception] = field(default_factory=dict)
    default_amenity: str = "washer-1"
    taps: list[Tap] = field(default_factory=list)
    tapped: asyncio.Event = field(default_factory=asyncio.Event)

    async def tap(
        self, *, site_id: str, reader_id: str, id_tag: str, amenity_id: str | None
    ) -> TapAnswer:
        self.taps.append(Tap(site_id, reader_id, id_tag, amenity_id))
        self.tapped.set()
        answer = self.answers.get(id_tag)
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        return accepted(amenity_id or self.default_amenity)

    async def wait_for_taps(self, count: int) -> list[Tap]:
        """The taps once there are `count` of them (the caller's timeout bounds the wait)."""
        while len(self.taps) < count:
            self.tapped.clear()
            await self.tapped.wait()
        return self.taps


def accepted(amenity: str) -> TapAnswer:
    return TapAnswer(
        "accepted", amenity, "accepted",
        {"de": f"{amenity} ist freigegeben", "en": f"{amenity} is ready to start"},
    )


def refused(amenity: str, reason: str = "no-credit") -> TapAnswer:
    return TapAnswer(
        "refused", amenity, reason,
        {"de": "Guthaben reicht nicht", "en": "not enough credit"},
    )
