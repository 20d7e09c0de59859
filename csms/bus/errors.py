"""Typed failures of the bus, so callers can answer a resident or an installer precisely."""

from __future__ import annotations


class BusError(Exception):
    """Base of every failure the bus raises on purpose."""


class BusClosed(BusError):
    """The bus is not running (not started yet, or already stopped)."""


class StationNotConnected(BusError):
    """No live node holds this station's websocket."""

    def __init__(self, station_id: str, detail: str = "no node holds its connection") -> None:
        super().__init__(f"station {station_id!r} is not connected: {detail}")
        self.station_id = station_id


class RequestTimeout(BusError, TimeoutError):
    """The node holding the station did not answer in time.

    Also a `TimeoutError`, so code that already guards timeouts keeps working.
    """

    def __init__(self, station_id: str, timeout: float) -> None:
        super().__init__(f"request to station {station_id!r} got no answer within {timeout:g} s")
        self.station_id = station_id
        self.timeout = timeout


class RemoteError(BusError):
    """The handler on the node holding the station failed; carries its type name and message."""

    def __init__(self, station_id: str, node_id: str, error_type: str, message: str) -> None:
        super().__init__(
            f"request to station {station_id!r} failed on node {node_id!r}: {error_type}: {message}"
        )
        self.station_id = station_id
        self.node_id = node_id
        self.error_type = error_type
        self.message = message
