"""What the composition root decides about the OCPP listener: `ServerOptions`.

Its own module so the imports point one way: `server` imports `tls` (settings -> options) and
both import this module; `tls` never imports `server`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from csms.ocpp.connection import Limits
from csms.ocpp.station_ca import StationCa


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """What the composition root decides about the listener (from settings)."""

    host: str = "127.0.0.1"
    port: int = 9000
    # A second listener with TLS (profiles 2 and 3); None: plain only.
    tls_port: int | None = None
    tls_context: ssl.SSLContext | None = None
    # Keepalive: a station that does not answer a ping within `ping_timeout` is dropped.
    ping_interval_s: float | None = 30.0
    ping_timeout_s: float | None = 30.0
    # How long a closing handshake may take before the TCP connection is cut.
    close_timeout_s: float = 5.0
    # How long an opening handshake (with its inventory read) may take: after a restart thousands
    # of stations reconnect at once, and one waiting its turn is better than one dropped and
    # retrying from the back of the queue.
    open_timeout_s: float = 60.0
    # Pending TCP connections the kernel keeps (capped by net.core.somaxconn).
    backlog: int = 4096
    max_frame_bytes: int = 256 * 1024
    # permessage-deflate when a station offers it: less mobile data for the station, about
    # 40 KiB more memory per connection and some CPU for the server (see the benchmark).
    compression: bool = True
    limits: Limits = field(default_factory=Limits)
    last_seen_flush_s: float = 30.0
    # How long the group commit gathers station messages before it starts their transaction:
    # at 2,000 stations 20 ms took the event loop's CPU for the message mix down by a fifth to
    # a third (fewer commits), for about 20 ms more round trip (csms.ocpp.group_commit).
    commit_window_s: float = 0.02
    # Wrong passwords for one station id before it is locked out for a while (login_guard).
    login_failures: int = 5
    login_window_s: float = 60.0
    login_lockout_s: float = 60.0
    # The key of verified-login records (Settings.station_login_key); None: a random key for
    # this process only (tests), so records written before a restart are not trusted after it.
    login_key: bytes | None = None
    # Imported plain passwords get their scrypt hash after their first login, one at a time,
    # with this pause between two (~40 ms of CPU each: 1 s keeps the backfill near 4 % of a
    # core, so an idle fleet after an import stays idle).
    login_hash_interval_s: float = 1.0
    # After a boot, read the station's configuration when unknown or its firmware changed.
    read_configuration: bool = True
    # After a boot, set the site's UTC offset and next DST change on stations that have the
    # keys for it (csms.ocpp.clock).
    set_clock: bool = True
    # Stations whose after-boot work (configuration, clock, local list) runs at once; the rest
    # wait in the queue (csms.ocpp.after_boot). The same number for list updates after a badge
    # change, in a queue of their own.
    after_boot_concurrency: int = 8
    # Local authorisation lists: pushed after boots and badge changes; the poll is the backstop.
    local_lists: bool = True
    local_list_poll_s: float = 30.0
    # The CA that signs stations' CSRs (SignCertificate); None: every CSR is rejected.
    station_ca: StationCa | None = None
    station_cert_days: int = 365
