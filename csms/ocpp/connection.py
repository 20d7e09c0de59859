"""One station's websocket: reading frames in order, answering CALLs, sending our CALLs.

The `ocpp` library's `ChargePoint` routing is replaced here because of its traps: it never
answers a malformed frame, swaps NotImplemented/NotSupported, sends `FormatViolation` in 1.6,
encodes Decimal with one digit and runs `@after` hooks as unsupervised tasks. What stays from the
library is its JSON schemas (validated for every frame a station sends, both directions) and its
action enums; the simulator uses its `ChargePoint` as the real client.

The version classes (`v16.Station16`, `v201.Station201`) only add `@handles` methods that parse
payloads into `csms.ocpp.events` types and call the version-neutral `StationService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from csms.metrics import OCPP_MESSAGES
from csms.ocpp.events import BootDecision, BootInfo, BootStatus, StationRef
from csms.ocpp.wire import (
    CALL,
    CALLRESULT,
    CallErrorReply,
    ErrorKind,
    FrameError,
    OcppCallError,
    StationCallError,
    call_frame,
    check_payload,
    error_frame,
    known_actions,
    read_frame,
    result_frame,
    schema_problems,
)

if TYPE_CHECKING:
    from csms.ocpp.after_boot import StationActivity
    from csms.ocpp.station_certificates import StationCertificates

Handler = Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]
H = TypeVar("H", bound=Handler)


def handles(action: str) -> Callable[[H], H]:
    """Mark a method as the handler of a station-initiated action (payload in, payload out)."""

    def mark(method: H) -> H:
        method.ocpp_action = action  # type: ignore[attr-defined]
        return method

    return mark


class StationDisconnected(ConnectionError):
    """The station's websocket closed before it answered (or before we could send)."""

    def __init__(self, station_id: str, detail: str = "connection closed") -> None:
        super().__init__(f"station {station_id!r} disconnected: {detail}")
        self.station_id = station_id


class StationReplyInvalid(Exception):
    """The station answered our CALL with a payload that breaks the schema."""

    def __init__(self, station_id: str, action: str, problems: list[str]) -> None:
        super().__init__(f"{station_id} answered {action} with an invalid payload: {problems}")
        self.station_id = station_id
        self.action = action
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits that keep one station from harming the others."""

    # Token bucket for CALLs a station sends: sustained rate and burst. Beyond it the reader
    # simply waits, so TCP backpressure slows the station and nobody else.
    rate_per_s: float = 20.0
    burst: int = 200
    # Our CALLs wait at most this long for the answer unless the caller says otherwise.
    call_timeout_s: float = 30.0
    # At most this many EVSE/connector ids per station are stored (absurd reports are capped).
    max_connectors: int = 64
    # Sampled values kept per message; readings per MeterValues.
    max_samples: int = 256


class _TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._capacity = float(max(burst, 1))
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    def delay(self) -> float:
        """Take one token; return how long to wait first (0 when within the budget)."""
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


# Actions a station may send before its boot is accepted (2.0.1 B02.FR.09: others get a
# SecurityError; 1.6 stations are held to the same rule).
_ALLOWED_BEFORE_ACCEPTED = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "SecurityEventNotification",
        "FirmwareStatusNotification",
        "SignedFirmwareStatusNotification",
        "DiagnosticsStatusNotification",
        "LogStatusNotification",
        "NotifyReport",
        "NotifyEvent",
        "DataTransfer",
    }
)


class _CallTurn:
    """Whose turn it is to send a CALL: OCPP-J allows one of ours outstanding at a time.

    A first-come lock handed straight to the next waiter, so `take_now` can say for certain
    whether a CALL may go out at once, without waiting (which `asyncio.Lock` cannot: between a
    release and its waiter waking up it looks free but is not)."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        if self._held or self._waiting:
            return False
        self._held = True
        return True

    async def take(self) -> None:
        if self.take_now():
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give()  # handed over as the waiter gave up (a timeout): pass it on
            elif turn in self._waiting:
                self._waiting.remove(turn)
            raise

    def give(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._held = False


@dataclass
class PendingReport:
    """A 2.0.1 report the server asked for: its parts so far, and whether the last came."""

    parts: dict[str, Any] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)


class StationConnection:
    """Base of the version classes; holds the websocket and speaks OCPP-J over it."""

    protocol: ClassVar[str]
    _handlers: ClassVar[dict[str, Handler]]
    _known: ClassVar[frozenset[str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, Handler] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                action = getattr(value, "ocpp_action", None)
                if action is not None:
                    handlers[action] = value
        cls._handlers = handlers
        if hasattr(cls, "protocol"):
            cls._known = known_actions(cls.protocol)

    def __init__(
        self,
        websocket: ServerConnection,
        station: StationRef,
        service: Any,
        *,
        limits: Limits,
        boot_status: BootStatus | None,
        security_level: int,
    ) -> None:
        self.websocket = websocket
        self.station = station
        self.station_id = station.station_id
        self.service = service
        self.limits = limits
        # Last boot answer, persisted: a station that reconnects without booting again (normal
        # for 1.6 after a network drop) keeps its accepted state.
        self.boot_status = boot_status
        self.security_level = security_level
        self.log = structlog.get_logger("csms.ocpp").bind(
            station_id=self.station_id, protocol=self.protocol
        )
        self._bucket = _TokenBucket(limits.rate_per_s, limits.burst)
        self._turn = _CallTurn()
        # CALLs the handler being run wants on the wire before its answer (`call_ahead`).
        self._ahead: list[tuple[str, dict[str, Any]]] = []
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = asyncio.Event()
        self.messages_in = 0
        # The last frames both ways, for the installer's page: (unix time, direction, summary).
        self.recent: deque[tuple[float, str, str]] = deque(maxlen=30)
        self._request_ids = int(time.time()) % 1_000_000
        # 2.0.1 reports the server asked for, by requestId, collected until the last part.
        self._reports: dict[int, PendingReport] = {}
        # Set by the server: queues what it sends on its own after an accepted boot.
        self.after_boot: Callable[[StationConnection], None] | None = None
        # Set by the server: counts station messages in hand, which go before after-boot work.
        self.activity: StationActivity | None = None
        # Set by the server when it has a station CA: signs what SignCertificate asks for.
        self.certificates: StationCertificates | None = None

    def next_request_id(self) -> int:
        self._request_ids += 1
        return self._request_ids

    def expect_report(self, request_id: int) -> PendingReport:
        """Collect the parts of the report `request_id` (until `forget_report`)."""
        return self._reports.setdefault(request_id, PendingReport())

    def forget_report(self, request_id: int) -> None:
        self._reports.pop(request_id, None)

    def report_received(self, request_id: int, parts: dict[str, Any], *, complete: bool) -> bool:
        """Add a report's part to the pending report; False when nobody expects it."""
        pending = self._reports.get(request_id)
        if pending is None:
            return False
        pending.parts.update(parts)
        if complete:
            pending.complete.set()
        return True

    async def booted(self, info: BootInfo) -> BootDecision:
        """Record a boot; once accepted, the server's own follow-up runs after the answer."""
        decision, send_after_boot = await self.service.boot(self.station, info)
        self.boot_status = decision.status
        if decision.status is BootStatus.ACCEPTED and send_after_boot and self.after_boot:
            self.after_boot(self)
        return decision

    # reading

    async def run(self) -> None:
        """Read and handle frames one after the other until the websocket closes."""
        try:
            async for message in self.websocket:
                if self.websocket.state is not State.OPEN:
                    # Frames still buffered from a peer that is gone cannot be answered; a
                    # station retransmits what was not answered (transaction messages are
                    # recognised as repeats), so dropping them loses nothing.
                    break
                self.messages_in += 1
                await self._route(message)
                wait = self._bucket.delay()
                if wait > 0:
                    await asyncio.sleep(wait)
        except ConnectionClosed:
            pass
        finally:
            self._closed.set()
            # Background work ends by itself: its calls now fail at once. Cancelling it instead
            # could cut a database transaction short and leave SQLite's write lock taken.
            self._fail_pending("connection closed")

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.websocket.close(code, reason)

    async def _route(self, message: str | bytes) -> None:
        self.recent.append((time.time(), "in", _summary(message)))
        try:
            frame = read_frame(message)
        except FrameError as error:
            self.log.info("ocpp.frame_refused", kind=error.kind, cause=error.description)
            await self._send_error(error.unique_id, error.kind, error.description)
            return
        if frame is None:
            # A malformed CALLRESULT or CALLERROR is never answered (it would answer an answer).
            self.log.info("ocpp.malformed_reply")
        elif frame.message_type == CALL:
            assert frame.action is not None
            await self._handle_call(frame.unique_id, frame.action, frame.payload)
        elif frame.message_type == CALLRESULT:
            self._resolve(frame.unique_id, frame.payload, None)
        else:
            self._resolve(frame.unique_id, None, frame.error)

    async def _handle_call(self, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        activity = self.activity
        if activity is None:
            await self._answer_call(unique_id, action, payload)
            return
        activity.begin()
        try:
            await self._answer_call(unique_id, action, payload)
        finally:
            activity.end()

    async def _answer_call(self, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        handler = self._handlers.get(action)
        if handler is None:
            kind = (
                ErrorKind.UNSUPPORTED_ACTION if action in self._known else ErrorKind.UNKNOWN_ACTION
            )
            OCPP_MESSAGES.labels(self.protocol, "unknown", kind).inc()
            await self._send_error(unique_id, kind, None, {"action": action[:64]})
            return
        self._ahead = []
        try:
            check_payload(self.protocol, action, payload)
            accepted = self.boot_status is BootStatus.ACCEPTED
            if not accepted and action not in _ALLOWED_BEFORE_ACCEPTED:
                raise OcppCallError(ErrorKind.SECURITY, f"{action} before an accepted boot")
            response = await handler(self, payload)
            # What we send is checked too: a bug of ours must not reach a station as valid OCPP.
            problems = schema_problems(self.protocol, action, response, response=True)
            if problems:
                self.log.error(
                    "ocpp.invalid_response", action=action, problems=[p.as_text() for p in problems]
                )
                raise OcppCallError(ErrorKind.INTERNAL)
        except OcppCallError as error:
            self.log.info(
                "ocpp.call_error", action=action, kind=error.kind, cause=error.description
            )
            OCPP_MESSAGES.labels(self.protocol, action, error.kind).inc()
            await self._send_error(unique_id, error.kind, error.description, error.details)
            return
        except Exception:
            self.log.exception("ocpp.handler_failed", action=action)
            OCPP_MESSAGES.labels(self.protocol, action, ErrorKind.INTERNAL).inc()
            await self._send_error(unique_id, ErrorKind.INTERNAL, None)
            return
        OCPP_MESSAGES.labels(self.protocol, action, "ok").inc()
        ahead, self._ahead = self._ahead, []
        for ahead_action, ahead_payload in ahead:
            await self._send_ahead(ahead_action, ahead_payload)
        await self._send(result_frame(unique_id, response))

    async def _send_error(
        self,
        unique_id: str,
        kind: str,
        description: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        error = OcppCallError(kind, description)
        await self._send(
            error_frame(self.protocol, unique_id, kind, error.description, details or {})
        )

    async def recent_messages(self) -> list[list[Any]]:
        """The last frames (newest last), as the bus carries them to any node."""
        return [[at, direction, summary] for at, direction, summary in self.recent]

    async def _send(self, text: str) -> None:
        self.recent.append((time.time(), "out", _summary(text)))
        # The reader notices a close as well; a lost answer needs no second report.
        with contextlib.suppress(ConnectionClosed):
            await self.websocket.send(text)

    # background work started by handlers (e.g. after a boot), owned by this connection

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run work after the current answer is sent; failures are logged, never lost."""
        task = asyncio.create_task(coro, name=f"{self.station_id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        if isinstance(task.exception(), StationDisconnected):
            # The station left while the server was talking to it: nothing was lost.
            self.log.info("ocpp.background_interrupted", task=task.get_name())
        else:
            self.log.error(
                "ocpp.background_failed", task=task.get_name(), exc_info=task.exception()
            )

    # the version-neutral commands (`commands.StationCommands`), one implementation per version

    async def remote_start(self, id_tag: str, evse_id: int | None = None) -> bool:
        raise NotImplementedError

    async def remote_stop(self, station_tx_id: str) -> bool:
        raise NotImplementedError

    async def reset(self, hard: bool = False) -> bool:
        raise NotImplementedError

    async def set_password(self, password: str) -> bool:
        raise NotImplementedError

    async def get_local_list_version(self) -> int:
        raise NotImplementedError

    async def trigger_message(self, message: str, evse_id: int | None = None) -> str:
        raise NotImplementedError

    async def set_charging_limit(
        self, connector_id: int, limit_a: int | None, phases: int,
        transaction_id: str | None = None,
    ) -> bool:
        raise NotImplementedError

    async def set_fallback_limit(self, limit_a: int, phases: int, max_a: int) -> bool:
        raise NotImplementedError

    # our CALLs

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,
        checked: bool = False,
    ) -> dict[str, Any]:
        """Send a CALL and return the station's CALLRESULT payload.

        Raises OcppCallError (our payload breaks the schema), StationCallError (CALLERROR),
        StationReplyInvalid, StationDisconnected (at once when the socket closes), TimeoutError.
        `checked`: the caller checked this payload against the schema already (a payload built
        once for many stations); the station's answer is checked all the same.
        """
        if not checked:
            check_payload(self.protocol, action, payload)
        if self.closed:
            raise StationDisconnected(self.station_id)
        limit = self.limits.call_timeout_s if timeout is None else timeout
        async with asyncio.timeout(limit):
            # OCPP-J: one CALL outstanding per direction; later ones queue here.
            await self._turn.take()
            try:
                unique_id, future = await self._send_call(action, payload)
                try:
                    result, error = await future
                finally:
                    self._pending.pop(unique_id, None)
            finally:
                self._turn.give()
        return self._reply(action, result, error)

    def call_ahead(self, action: str, payload: dict[str, Any]) -> None:
        """Have a CALL reach the station before the answer the running handler returns: what
        the message changed (2.0.1 CostUpdated) is on the station's display by the time it reads
        the answer and goes on. Written ahead of the CALLRESULT when no CALL of ours awaits an
        answer; otherwise it follows that one, after the answer. Its own answer is awaited in
        the background (the reader reads it once this handler is done); failures are logged.
        Only for handlers: the CALLs go with the answer of the CALL being handled."""
        self._ahead.append((action, payload))

    async def _send_call(
        self, action: str, payload: dict[str, Any]
    ) -> tuple[str, asyncio.Future[Any]]:
        """Write a CALL (the caller holds the turn); the future resolves with its answer."""
        unique_id = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[unique_id] = (action, future)
        try:
            await self.websocket.send(call_frame(unique_id, action, payload))
        except ConnectionClosed as exc:
            self._pending.pop(unique_id, None)
            raise StationDisconnected(self.station_id) from exc
        return unique_id, future

    def _reply(self, action: str, result: Any, error: CallErrorReply | None) -> dict[str, Any]:
        if error is not None:
            raise StationCallError(self.station_id, action, error)
        problems = schema_problems(self.protocol, action, result, response=True)
        if problems:
            raise StationReplyInvalid(self.station_id, action, [p.as_text() for p in problems])
        assert isinstance(result, dict)
        return result

    async def _send_ahead(self, action: str, payload: dict[str, Any]) -> None:
        problems = schema_problems(self.protocol, action, payload)
        if problems:
            # A bug of ours; the answer (money already moved) must still go out.
            self.log.error("ocpp.invalid_call", action=action,
                           problems=[p.as_text() for p in problems])
            return
        if self.closed:
            return
        if not self._turn.take_now():
            # Another CALL of ours awaits its answer, which the reader can only read after
            # this handler: waiting here would stall both. This one follows it instead.
            self.spawn(self._ahead_later(action, payload), action)
            return
        try:
            unique_id, future = await self._send_call(action, payload)
        except StationDisconnected:
            self._turn.give()
            return
        self.spawn(self._ahead_answered(action, unique_id, future), action)

    async def _ahead_later(self, action: str, payload: dict[str, Any]) -> None:
        try:
            await self.call(action, payload)
        except StationCallError as refused:
            self.log.info("ocpp.call_refused", action=action, code=refused.reply.code)

    async def _ahead_answered(
        self, action: str, unique_id: str, future: asyncio.Future[Any]
    ) -> None:
        try:
            async with asyncio.timeout(self.limits.call_timeout_s):
                result, error = await future
        finally:
            self._pending.pop(unique_id, None)
            self._turn.give()
        if error is not None:
            # A station without a display for it may refuse; nothing depends on the answer.
            self.log.info("ocpp.call_refused", action=action, code=error.code)
            return
        self._reply(action, result, error)

    def _resolve(self, unique_id: str, result: Any, error: CallErrorReply | None) -> None:
        entry = self._pending.get(unique_id)
        if entry is None:
            self.log.info("ocpp.unexpected_reply", message_id=unique_id[:64])
            return
        _action, future = entry
        if not future.done():
            future.set_result((result, error))

    def _fail_pending(self, detail: str) -> None:
        for _action, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(StationDisconnected(self.station_id, detail))
                # Its caller may be gone already (timed out); nobody else must see it "lost".
                future.exception()


def _summary(message: str | bytes) -> str:
    """A frame, shortened for a person to read (ids and payload start)."""
    text = message.decode(errors="replace") if isinstance(message, bytes) else message
    if "AuthorizationKey" in text or "BasicAuthPassword" in text:
        return "[a frame with station credentials: not shown]"
    return text if len(text) <= 300 else text[:297] + "..."
