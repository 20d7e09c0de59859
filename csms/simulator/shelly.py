"""Shelly relays as the drivers meet them on a site: real HTTP servers on 127.0.0.1 speaking the
published Gen2 RPC subset and the Gen1 HTTP API, with a load per channel whose power the test
sets and an energy register that integrates it over the device's clock.

A channel may instead play a `LoadCurve` (csms.simulator.loads) from the moment its output is
switched on: a washer's programme, heating, tumbling, then standby (`set_programme`). Each
switch from off to on starts it again; a renewal of an output that is already on does not.

Time is lazy and exact: nothing runs in the background. Whenever the device is looked at (a
request, or the test asking), each channel first catches up to `clock()`: energy is integrated
up to a pending flip-back timer, the timer flips the output, then energy is integrated on to
now. With a `ManualClock` a 60 s dead man or a 90 minute wash needs no waiting.

Fault knobs, on the device: `unreachable` (requests are read and never answered), `malformed`
(an answer that is not JSON), `bad_password` (every credential is refused, as after someone
changed the password on the device), `await stop()` (the port closes: connection refused); on
a channel: `set_stuck(channel)` (commands are acknowledged, the output stays: a welded relay).

Gen2 facts (shelly-api-docs, gen2 "Switch" and "Authentication"): `Switch.Set {id, on,
toggle_after}` answers `{was_on}`; `Switch.GetStatus` answers `output`, `apower` W, `aenergy.total`
Wh and, while a timer runs, `timer_started_at`/`timer_duration`; digest auth is RFC 7616 with
SHA-256, user `admin`, realm the device id, and everything but `Shelly.GetDeviceInfo` is
protected; a refused call over HTTP is a 4xx carrying the error. Gen1: `/relay/N?turn=&timer=`
answers the relay's state, `/status` has `relays[]` and `meters[]` with `total` in watt-minutes,
basic auth guards everything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.request import parse_http_list

from csms.simulator.httpdevice import Clock, HttpAnswer, HttpDevice, HttpRequest
from csms.simulator.loads import LoadCurve

VOLTAGE = 230.0


@dataclass
class Channel:
    """One relay with its load. `load_w` is what the machine draws when it has power, or, with
    a `programme`, what the programme draws since the output was last switched on; the meter
    reads it only while the output is on (the load hangs on the relay's output)."""

    since: float
    output: bool = False
    load_w: float = 0.0
    energy_ws: float = 0.0
    stuck: bool = False
    source: str = "init"
    timer_started: float | None = None
    timer_duration: float | None = None
    programme: LoadCurve | None = None
    switched_on_at: float | None = None  # when the output last went from off to on

    @property
    def power_w(self) -> float:
        """The draw at `since` (the instant the channel has caught up to)."""
        if not self.output:
            return 0.0
        if self.programme is not None and self.switched_on_at is not None:
            return self.programme.watts_at(self.since - self.switched_on_at)
        return self.load_w

    def catch_up(self, now: float) -> None:
        if self.timer_started is not None and self.timer_duration is not None:
            deadline = self.timer_started + self.timer_duration
            if deadline <= now:
                self._integrate(deadline)
                if not self.stuck:
                    self._set_output(not self.output, deadline)
                self.source = "timer"
                self.timer_started = self.timer_duration = None
        self._integrate(now)

    def command(self, now: float, on: bool, flip_back_s: float | None, source: str) -> bool:
        """Set the output (a stuck relay acknowledges and stays); any command clears a running
        timer, `flip_back_s` starts a new one. Returns the state before."""
        self.catch_up(now)
        was_on = self.output
        if not self.stuck:
            self._set_output(on, now)
        self.source = source
        self.timer_started = self.timer_duration = None
        if flip_back_s is not None:
            self.timer_started, self.timer_duration = now, flip_back_s
        return was_on

    def _set_output(self, on: bool, at: float) -> None:
        if on and not self.output:
            self.switched_on_at = at
        self.output = on

    def _integrate(self, until: float) -> None:
        if until <= self.since:
            return
        if self.output and self.programme is not None and self.switched_on_at is not None:
            self.energy_ws += self.programme.energy_ws(
                self.since - self.switched_on_at, until - self.switched_on_at
            )
        else:
            self.energy_ws += self.power_w * (until - self.since)
        self.since = until


class ShellyDevice(HttpDevice):
    """What Gen1 and Gen2 emulators share: channels, loads, the register, the knobs."""

    def __init__(
        self, *, channels: int, clock: Clock, metering: bool, host: str, port: int
    ) -> None:
        super().__init__(clock=clock, host=host, port=port)
        if channels < 1:
            raise ValueError("a Shelly has at least one channel")
        self.metering = metering
        self.bad_password = False
        self.requests: list[HttpRequest] = []  # every request, as received
        self._channels = [Channel(since=clock()) for _ in range(channels)]

    def channel(self, index: int) -> Channel:
        """The channel caught up to now (timers fired, energy integrated)."""
        channel = self._channels[index]
        channel.catch_up(self.clock())
        return channel

    def output(self, index: int) -> bool:
        """The device's own output level, whatever the wiring behind it."""
        return self.channel(index).output

    def set_power(self, index: int, watts: float | Decimal) -> None:
        """What the machine on this channel draws from now on (while it has power)."""
        if watts < 0:
            raise ValueError("a load draws, it does not feed")
        self.channel(index).load_w = float(watts)

    def set_programme(self, index: int, programme: LoadCurve | None) -> None:
        """What the machine on this channel draws from each switch-on (None: `load_w` again).
        Set while the output is on, it plays from now."""
        channel = self.channel(index)
        channel.programme = programme
        channel.switched_on_at = channel.since if channel.output else None

    def set_energy(self, index: int, wh: float | Decimal) -> None:
        """Set the register, as on a device that has been counting for years."""
        self.channel(index).energy_ws = float(wh) * 3600

    def energy_wh(self, index: int) -> float:
        return self.channel(index).energy_ws / 3600

    def set_stuck(self, index: int, stuck: bool = True) -> None:
        self.channel(index).stuck = stuck

    def answer(self, request: HttpRequest) -> HttpAnswer:
        self.requests.append(request)
        now = self.clock()
        for channel in self._channels:
            channel.catch_up(now)
        return self.route(request)

    def route(self, request: HttpRequest) -> HttpAnswer:
        raise NotImplementedError

    def _timer_fields(self, channel: Channel) -> tuple[float, float] | None:
        if channel.timer_started is None or channel.timer_duration is None:
            return None
        started_at = self.unix_time() - (self.clock() - channel.timer_started)
        return round(started_at, 2), channel.timer_duration


def _json(status: int, payload: Any) -> HttpAnswer:
    return HttpAnswer(status, json.dumps(payload).encode())


class RpcError(Exception):
    def __init__(self, code: int, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.http_status = code, message, http_status


class ShellyGen2Emulator(ShellyDevice):
    """A Gen2 device (a Pro 4PM with `channels=4`, a Plus 1PM with 1); `metering=False` is a
    Plus 1 without power metering (no `apower`, no `aenergy`)."""

    def __init__(
        self,
        *,
        channels: int = 1,
        password: str | None = None,
        device_id: str = "shellypro4pm-a8032ab1c2d4",
        clock: Clock = time.monotonic,
        metering: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(
            channels=channels, clock=clock, metering=metering, host=host, port=port
        )
        self.password = password
        self.device_id = device_id
        self.calls: list[tuple[str, dict[str, Any]]] = []  # RPC calls that passed auth
        self._nonces: set[str] = set()
        self._used: set[tuple[str, int]] = set()
        self._nonce_seq = itertools.count(int(time.time()))

    def route(self, request: HttpRequest) -> HttpAnswer:
        if request.path == "/rpc" and request.method == "POST":
            return self._post_rpc(request)
        if request.path.startswith("/rpc/") and request.method == "GET":
            return self._get_rpc(request)
        return HttpAnswer(404, b"Not Found", "text/plain")

    def _post_rpc(self, request: HttpRequest) -> HttpAnswer:
        try:
            frame = json.loads(request.body)
        except ValueError:
            return _json(400, {"error": {"code": -103, "message": "Malformed frame"}})
        if not isinstance(frame, dict) or not isinstance(frame.get("method"), str):
            return _json(400, {"error": {"code": -103, "message": "Missing method"}})
        params = frame.get("params") or {}
        if not isinstance(params, dict):
            error = {"code": -103, "message": "Bad params"}
            return _json(400, {"id": frame.get("id"), "error": error})
        method = frame["method"]
        if method != "Shelly.GetDeviceInfo" and not self._authorised(request):
            return self._challenge()
        head = {"id": frame.get("id"), "src": self.device_id}
        if "src" in frame:
            head["dst"] = frame["src"]
        try:
            return _json(200, {**head, "result": self._call(method, params)})
        except RpcError as error:
            return _json(
                error.http_status, {**head, "error": {"code": error.code, "message": error.message}}
            )

    def _get_rpc(self, request: HttpRequest) -> HttpAnswer:
        method = request.path.removeprefix("/rpc/")
        if method != "Shelly.GetDeviceInfo" and not self._authorised(request):
            return self._challenge()
        # Query values are JSON (`on=true`, `id=0`, `toggle_after=60`); a bare word is a string.
        params: dict[str, Any] = {}
        for key, raw in request.query.items():
            try:
                params[key] = json.loads(raw)
            except ValueError:
                params[key] = raw
        try:
            return _json(200, self._call(method, params))
        except RpcError as error:
            return _json(error.http_status, {"code": error.code, "message": error.message})

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        self.calls.append((method, params))
        if method == "Shelly.GetDeviceInfo":
            return self._device_info()
        if method == "Switch.Set":
            channel = self._switch(params)
            on = params.get("on")
            if not isinstance(on, bool):
                raise RpcError(-103, "Argument 'on', value type is not boolean!")
            toggle_after = params.get("toggle_after")
            if toggle_after is not None and (
                isinstance(toggle_after, bool)
                or not isinstance(toggle_after, int | float)
                or toggle_after <= 0
            ):
                raise RpcError(-103, "Argument 'toggle_after' must be a positive number!")
            was_on = channel.command(self.clock(), on, toggle_after, "HTTP_in")
            return {"was_on": was_on}
        if method == "Switch.GetStatus":
            return self._status(params["id"], self._switch(params))
        raise RpcError(404, f"No handler for {method}", http_status=404)

    def _switch(self, params: dict[str, Any]) -> Channel:
        index = params.get("id")
        if isinstance(index, bool) or not isinstance(index, int):
            raise RpcError(-103, "Argument 'id', value type is not number!")
        if not 0 <= index < len(self._channels):
            raise RpcError(-105, f"Argument 'id', value {index} not found!")
        return self._channels[index]

    def _status(self, index: int, channel: Channel) -> dict[str, Any]:
        status: dict[str, Any] = {"id": index, "source": channel.source, "output": channel.output}
        timer = self._timer_fields(channel)
        if timer is not None:
            status["timer_started_at"], status["timer_duration"] = timer
        if self.metering:
            power = channel.power_w
            status |= {
                "apower": round(power, 1),
                "voltage": VOLTAGE,
                "current": round(power / VOLTAGE, 3),
                "aenergy": {
                    "total": round(channel.energy_ws / 3600, 3),
                    "by_minute": [0.0, 0.0, 0.0],
                    "minute_ts": int(self.unix_time()) // 60 * 60,
                },
            }
        status["temperature"] = {"tC": 41.3, "tF": 106.3}
        return status

    def _device_info(self) -> dict[str, Any]:
        return {
            "name": None,
            "id": self.device_id,
            "mac": self.device_id.rsplit("-", 1)[-1].upper(),
            "slot": 1,
            "model": "SPSW-104PE16EU",
            "gen": 2,
            "fw_id": "20250115-101511/1.5.0-g2d8a1fa",
            "ver": "1.5.0",
            "app": "Pro4PM",
            "auth_en": self.password is not None,
            "auth_domain": self.device_id if self.password is not None else None,
        }

    def _challenge(self) -> HttpAnswer:
        nonce = str(next(self._nonce_seq))
        self._nonces.add(nonce)
        header = f'Digest qop="auth", realm="{self.device_id}", nonce="{nonce}", algorithm=SHA-256'
        # The challenge travels in the header; the body repeats it the way the device words a
        # 401 on its other channels (`auth_type`, `nonce`, `realm`, `algorithm`).
        challenge = {
            "auth_type": "digest",
            "nonce": int(nonce),
            "realm": self.device_id,
            "algorithm": "SHA-256",
        }
        body = json.dumps({"code": 401, "message": json.dumps(challenge)}).encode()
        return HttpAnswer(401, body, "application/json", [("WWW-Authenticate", header)])

    def _authorised(self, request: HttpRequest) -> bool:
        """RFC 7616 digest with SHA-256 over the request line's method and target; a nonce is
        good for many requests as long as each carries a new `nc` (firmware 2.0+)."""
        if self.password is None:
            return True
        scheme, _, rest = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "digest" or self.bad_password:
            return False
        fields: dict[str, str] = {}
        for item in parse_http_list(rest):
            key, _, value = item.strip().partition("=")
            fields[key] = value.strip('"')
        try:
            nonce, nc_hex, cnonce, qop = (fields[k] for k in ("nonce", "nc", "cnonce", "qop"))
            nc = int(nc_hex, 16)
            given = fields["response"]
        except (KeyError, ValueError):
            return False
        if (
            fields.get("username") != "admin"
            or fields.get("realm") != self.device_id
            or fields.get("algorithm", "").upper() != "SHA-256"
            or fields.get("uri") != request.target
            or nonce not in self._nonces
            or (nonce, nc) in self._used
        ):
            return False

        def sha256(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        ha1 = sha256(f"admin:{self.device_id}:{self.password}")
        ha2 = sha256(f"{request.method}:{request.target}")
        expected = sha256(f"{ha1}:{nonce}:{nc_hex}:{cnonce}:{qop}:{ha2}")
        if not hmac.compare_digest(expected, given):
            return False
        self._used.add((nonce, nc))
        return True


class ShellyGen1Emulator(ShellyDevice):
    """A Gen1 device (a Shelly 2.5 with `channels=2`, a 1PM with 1); credentials switch on
    basic auth for every endpoint."""

    def __init__(
        self,
        *,
        channels: int = 1,
        username: str | None = None,
        password: str | None = None,
        clock: Clock = time.monotonic,
        metering: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(
            channels=channels, clock=clock, metering=metering, host=host, port=port
        )
        self.username = username
        self.password = password
        self.calls: list[tuple[str, dict[str, str]]] = []  # (path, query) that passed auth

    def route(self, request: HttpRequest) -> HttpAnswer:
        if request.method != "GET":
            return HttpAnswer(405, b"Method Not Allowed", "text/plain")
        if not self._authorised(request):
            return HttpAnswer(
                401, b"401 Unauthorized", "text/plain",
                [("WWW-Authenticate", 'Basic realm="shelly25-98CDAC1F2E3A"')],
            )
        self.calls.append((request.path, request.query))
        if request.path == "/status":
            return _json(200, self._status())
        if request.path.startswith("/relay/"):
            return self._relay(request)
        return HttpAnswer(404, b"Not Found", "text/plain")

    def _relay(self, request: HttpRequest) -> HttpAnswer:
        index_text = request.path.removeprefix("/relay/")
        if not index_text.isdigit() or int(index_text) >= len(self._channels):
            return HttpAnswer(404, b"Not Found", "text/plain")
        channel = self._channels[int(index_text)]
        turn = request.query.get("turn")
        if turn is not None:
            if turn not in ("on", "off", "toggle"):
                return HttpAnswer(400, b"Bad turn!", "text/plain")
            timer: float | None = None
            if "timer" in request.query:
                try:
                    timer = float(request.query["timer"])
                except ValueError:
                    return HttpAnswer(400, b"Bad timer!", "text/plain")
                timer = timer if timer > 0 else None
            on = not channel.output if turn == "toggle" else turn == "on"
            channel.command(self.clock(), on, timer, "http")
        return _json(200, self._relay_status(channel))

    def _relay_status(self, channel: Channel) -> dict[str, Any]:
        timer = self._timer_fields(channel)
        remaining = 0
        if timer is not None and channel.timer_started is not None:
            remaining = max(0, round(channel.timer_started + timer[1] - self.clock()))
        return {
            "ison": channel.output,
            "has_timer": timer is not None,
            "timer_started": int(timer[0]) if timer else 0,
            "timer_duration": timer[1] if timer else 0,
            "timer_remaining": remaining,
            "overpower": False,
            "source": channel.source,
        }

    def _status(self) -> dict[str, Any]:
        now = int(self.unix_time())
        status: dict[str, Any] = {
            "wifi_sta": {"connected": True, "ssid": "site-iot", "ip": "127.0.0.1", "rssi": -58},
            "time": time.strftime("%H:%M", time.gmtime(now)),
            "unixtime": now,
            "relays": [self._relay_status(channel) for channel in self._channels],
            "uptime": int(self.clock()),
        }
        if self.metering:
            status["meters"] = [
                {
                    "power": round(channel.power_w, 2),
                    "overpower": 0.0,
                    "is_valid": True,
                    "timestamp": now,
                    "counters": [0.0, 0.0, 0.0],
                    # Watt-minutes, a whole number on the wire.
                    "total": int(channel.energy_ws // 60),
                }
                for channel in self._channels
            ]
        return status

    def _authorised(self, request: HttpRequest) -> bool:
        if self.username is None and self.password is None:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or self.bad_password:
            return False
        try:
            user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except ValueError:
            return False
        return hmac.compare_digest(user, self.username or "admin") and hmac.compare_digest(
            password, self.password or ""
        )
