"""A badge tapped at a machine's reader: what the laundry service answers, and why it may not.

The shared interface between the reader route (`POST /api/v1/readers/{reader_id}/taps`,
devices.md) and the laundry service behind it: the route finds the reader and checks the
caller, then awaits `TapService.tap(...)` and sends the `TapAnswer` as it is. The service
decides everything else: which machine (the one the reader serves, or the one named), who pays
for the badge, whether the machine starts; a second tap on a machine whose cycle is open is
answered `accepted` with that cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

DECISIONS: Final = ("accepted", "refused")
LANGUAGES: Final = ("de", "en")


@dataclass(frozen=True, slots=True)
class TapAnswer:
    """What the reader shows. `decision` is `accepted` or `refused`; `amenity` the machine's
    id; `reason` a short machine-readable word (`accepted`, `unknown-badge`, `no-credit`, ...);
    `message` the text for the person at the machine, keyed `de` and `en`."""

    decision: str
    amenity: str
    reason: str
    message: dict[str, str]

    def __post_init__(self) -> None:
        # Checked here so that a wrong answer fails in the service, not on the reader's screen.
        if self.decision not in DECISIONS:
            raise ValueError(f"decision: {self.decision!r} is not one of {', '.join(DECISIONS)}")
        if set(self.message) != set(LANGUAGES):
            raise ValueError(f"message: needs exactly the keys {', '.join(LANGUAGES)}")


class UnknownAmenity(LookupError):
    """The tap names a machine the reader's site does not have (HTTP 404)."""

    def __init__(self, amenity_id: str) -> None:
        super().__init__(f"unknown amenity {amenity_id!r}")
        self.amenity_id = amenity_id


class AmenityRequired(ValueError):
    """The reader serves several machines (or none) and the tap named none (HTTP 422 naming
    `amenity`)."""

    def __init__(self, reader_id: str, served: Sequence[str] = ()) -> None:
        which = (f"serves {', '.join(served)}" if served
                 else "serves no machine")
        super().__init__(f"reader {reader_id!r} {which}; name the machine")
        self.reader_id = reader_id
        self.served = tuple(served)


class AmenityNotAtReader(ValueError):
    """The machine named is not one this reader serves (HTTP 422 naming `amenity`)."""

    def __init__(self, amenity_id: str, reader_id: str) -> None:
        super().__init__(f"amenity {amenity_id!r} is not served by reader {reader_id!r}")
        self.amenity_id = amenity_id
        self.reader_id = reader_id


class TapService(Protocol):
    """What the reader route calls; the node puts one on `app.state.laundry`."""

    async def tap(
        self, *, site_id: str, reader_id: str, id_tag: str, amenity_id: str | None
    ) -> TapAnswer:
        """Decide a tap of `id_tag` (as the reader reports it, in the reader's `idtag_format`)
        at reader `reader_id` of `site_id`, for machine `amenity_id` (None: the one machine
        the reader serves). Raises UnknownAmenity, AmenityRequired or AmenityNotAtReader."""
        ...
