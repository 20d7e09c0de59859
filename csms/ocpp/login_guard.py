"""Failed station logins: after too many wrong passwords for one station id, a pause.

Every Basic-auth check costs a scrypt hash (~40 ms of CPU), and a station id is public (it is in
the URL), so without a limit anyone could make the node hash passwords all day, or guess one.
After `max_failures` wrong passwords within `window_s`, the station id is locked for `lockout_s`:
handshakes are refused with 429 and a Retry-After header, without hashing anything. A right
password clears the count. Kept per node, in memory: a restart or another node starts afresh,
which still bounds the guessing rate per node.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# Beyond this many station ids with recent failures, the oldest are forgotten (memory bound).
MAX_TRACKED = 10_000


@dataclass
class LoginGuard:
    max_failures: int = 5
    window_s: float = 60.0
    lockout_s: float = 60.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)

    def retry_after(self, station_id: str, now: float) -> float | None:
        """Seconds until `station_id` may try again, or None when it may try now."""
        until = self._locked_until.get(station_id)
        if until is None:
            return None
        if now >= until:
            del self._locked_until[station_id]
            return None
        return until - now

    def failed(self, station_id: str, now: float) -> bool:
        """Count a wrong password; True when this failure locked the station id."""
        recent = self._failures.setdefault(station_id, deque())
        recent.append(now)
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        if len(recent) >= self.max_failures:
            del self._failures[station_id]
            self._locked_until[station_id] = now + self.lockout_s
            self._forget_oldest()
            return True
        self._forget_oldest()
        return False

    def succeeded(self, station_id: str) -> None:
        self._failures.pop(station_id, None)
        self._locked_until.pop(station_id, None)

    def _forget_oldest(self) -> None:
        for table in (self._failures, self._locked_until):
            while len(table) > MAX_TRACKED:
                del table[next(iter(table))]
