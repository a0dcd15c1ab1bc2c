"""The courier: the outbox's events, POSTed to the city platform's webhooks, signed, until each receiver has them.

Delivery state lives in ``outbox_deliveries`` (one row per receiver and event), so a restart
loses nothing and redelivers nothing already acknowledged; a receiver that is down is retried
with capped exponential backoff and shows in ``status`` with its backlog and last error.

Policies, and why:

- **Every event, for every receiver, from the start of the outbox.** A receiver added later is
  sent the whole history first (in order, then the new events). The city platform's case
  system needs the complete picture to mirror cases; starting "from now" would silently leave
  it without the packs and decisions that came before, and there is no safe moment to call
  "now" (events committed while the service was down would be lost to it).
- **In order, per receiver.** Only a receiver's oldest undelivered event (head of line) is
  tried; later ones wait until it is acknowledged. A receiver therefore sees events in id
  order, which is commit order except where two transactions overlapped (PostgreSQL may then
  commit a lower id second; such an event is sent when it appears, after higher ids). A
  receiver that keeps refusing one event holds up its own queue, and ``status`` says which
  event and why: nothing is skipped silently. Other receivers are not held up.
- **Once per receiver, at least once on the wire.** A delivery is claimed by a conditional
  UPDATE of its ``attempts`` (the row's version), so two couriers, in two processes or on two
  hosts, never send the same row at once; a claim is a lease that runs out if its courier dies
  mid-request. A crash after the receiver answered but before the answer was recorded sends the
  event again, so receivers de-duplicate on ``X-Nonsite-Event-Id`` (the event's id).

Each POST carries ``X-Nonsite-Timestamp`` (Unix seconds) and ``X-Nonsite-Signature:
sha256=<hex>``, the HMAC-SHA256 under the receiver's secret of the timestamp, a full stop and
the raw body (``signature``): the receiver checks both and refuses old timestamps (replays).
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy import and_, exists, func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select

from nonsite.rules import load_config

from .outbox import EVENT_KINDS
from .schema import outbox_deliveries as deliveries
from .schema import outbox_events as events

EventKind = Literal[EVENT_KINDS]  # type: ignore[valid-type]
ReceiverId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Names the receiver in the database.")]

FAN_OUT_BATCH = 1000  # events queued for one receiver per pass: a new receiver's history arrives in steps
LATE_COMMITS = 1000  # ids below the last one seen that are looked at again: a transaction that took an id earlier may commit later
FULL_SWEEP_S = 3600.0  # and once an hour the whole outbox, whatever the ids say
LEASE_MARGIN_S = 30.0  # a claimed delivery is tried again this long after its request's timeout, if its courier died
ERROR_CHARS = 500
OUTBOX_THREAD = "outbox-"  # + the receiver's id: its delivering thread

log = logging.getLogger(__name__)


class Receiver(BaseModel):
    """One webhook subscriber (the city platform's case system, 智慧城管), as the webhooks file lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ReceiverId
    url: AnyHttpUrl = Field(description="http:// or https:// address the events are POSTed to.")
    secret: SecretStr = Field(min_length=16, description="HMAC-SHA256 key shared with the receiver (16 characters or more).")
    events: tuple[EventKind, ...] | None = Field(None, min_length=1, description="Only these kinds; none: every kind.")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds to wait for the receiver's answer.")

    def wants(self, kind: str) -> bool:
        return self.events is None or kind in self.events


class Webhooks(BaseModel):
    """The webhooks file (YAML or JSON): ``receivers: [{id, url, secret, events, timeout_s}, ...]``."""

    model_config = ConfigDict(extra="forbid")

    receivers: list[Receiver]

    @field_validator("receivers")
    @classmethod
    def _distinct(cls, receivers: list[Receiver]) -> list[Receiver]:
        ids = [r.id for r in receivers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"receiver ids must differ: {sorted({i for i in ids if ids.count(i) > 1})} repeat")
        return receivers


def load_receivers(path: Path) -> list[Receiver]:
    """The receivers of a webhooks file; a ``ConfigError`` names the file, line and field at fault."""
    return load_config(path, Webhooks).receivers


class OutboxEvent(BaseModel):
    """The JSON body of every webhook POST (the OpenAPI schema's ``webhooks`` describe it too)."""

    id: int = Field(description="The event's id: increasing, and the idempotency key (also in X-Nonsite-Event-Id).")
    kind: EventKind = Field(description="What happened.")
    subject: str = Field(description="What it happened to: a pack id, or a case or document id.")
    at: datetime = Field(description="When it happened: ISO 8601, UTC.")
    payload: dict[str, Any] = Field(description="The act's facts; their keys depend on the kind.")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<raw body>`` under the receiver's secret."""
    return "sha256=" + hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def backoff_s(attempts: int, first_s: float, cap_s: float) -> float:
    """Seconds before the next try after ``attempts`` failures: doubling from ``first_s`` up to ``cap_s``, less up to a
    fifth at random so receivers coming back are not hit by every courier at the same instant."""
    return min(cap_s, first_s * 2 ** min(attempts - 1, 62)) * (1 - 0.2 * random.random())


def _head(receiver: str) -> Select:
    """A receiver's oldest undelivered event with its delivery row.

    Found through the ``delivered_at`` index (few rows wait), not the primary key's range for the
    receiver, which holds every event ever delivered to it: ``receiver || ''`` keeps the planner
    off the latter (34 ms against 0.1 ms in SQLite with 300 000 delivered).
    """
    return (select(deliveries.c.event_id, deliveries.c.attempts, deliveries.c.next_at, deliveries.c.last_error,
                   events.c.kind, events.c.subject, events.c.at, events.c.payload)
            .join(events, events.c.id == deliveries.c.event_id)
            .where((deliveries.c.receiver + "") == receiver, deliveries.c.delivered_at.is_(None))
            .order_by(deliveries.c.event_id).limit(1))


@dataclass
class Pass:
    """What one pass did: events newly queued for receivers, deliveries acknowledged, tries that failed."""

    queued: int = 0
    delivered: int = 0
    failed: int = 0

    def __add__(self, other: Pass) -> Pass:
        return Pass(self.queued + other.queued, self.delivered + other.delivered, self.failed + other.failed)


@dataclass(frozen=True)
class _Due:
    """A delivery this courier has claimed: the event, its try number and the body to POST."""

    event_id: int
    attempts: int
    body: bytes


class Courier:
    """Queues the outbox's events per receiver and delivers them, in passes (``run_once``) or in a thread (``start``)."""

    def __init__(self, engine: Engine, receivers: list[Receiver], *, first_retry_s: float = 1.0, max_retry_s: float = 600.0,
                 poll_s: float = 1.0, batch: int = 100):
        self.engine, self.receivers = engine, list(receivers)
        self.first_retry_s, self.max_retry_s, self.poll_s, self.batch = first_retry_s, max_retry_s, poll_s, batch
        self._insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[engine.dialect.name]
        self._scanned: dict[str, int] = {}  # per receiver: the outbox ids looked at so far
        self._sweep_at = time.monotonic() + FULL_SWEEP_S
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- one pass --------------------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> Pass:
        """Queue new events for every receiver, then deliver what is due, at most ``batch`` per receiver. ``now`` fixes
        the clock (tests); otherwise every claim and every POST reads the time afresh, so a slow receiver ahead in
        the pass makes no later event's signed timestamp or lease stale."""
        done = Pass()
        for receiver in self.receivers:
            done += self._pass(receiver, (lambda: now) if now else _now)
        return done

    def _pass(self, receiver: Receiver, clock) -> Pass:
        if time.monotonic() >= self._sweep_at:
            self._scanned.clear()
            self._sweep_at = time.monotonic() + FULL_SWEEP_S
        done = Pass(queued=self._fan_out(receiver, clock()))
        for _ in range(self.batch):
            due = self._claim_head(receiver, clock())
            if due is None:
                break
            if not self._deliver(receiver, due, clock):
                done.failed += 1
                break
            done.delivered += 1
        return done

    def _fan_out(self, receiver: Receiver, now: datetime) -> int:
        """A delivery row for each event the receiver wants and has none for; rows other couriers add first are kept."""
        since = max(0, self._scanned.get(receiver.id, 0) - LATE_COMMITS)
        missing = ~exists().where(and_(deliveries.c.receiver == receiver.id, deliveries.c.event_id == events.c.id))
        wanted = events.c.kind.in_(receiver.events) if receiver.events else true()
        with self.engine.begin() as conn:
            top = conn.execute(select(func.max(events.c.id))).scalar() or 0
            ids = conn.execute(select(events.c.id).where(events.c.id > since, wanted, missing)
                               .order_by(events.c.id).limit(FAN_OUT_BATCH)).scalars().all()
            if ids:
                conn.execute(self._insert(deliveries).values([{"receiver": receiver.id, "event_id": i, "attempts": 0, "next_at": now}
                                                              for i in ids]).on_conflict_do_nothing())
        self._scanned[receiver.id] = ids[-1] if len(ids) == FAN_OUT_BATCH else max(top, *ids, since)
        return len(ids)

    def _claim_head(self, receiver: Receiver, now: datetime) -> _Due | None:
        """The receiver's oldest undelivered event, if it is due and this courier wins it (the row's attempts move on)."""
        with self.engine.connect() as conn:
            head = conn.execute(_head(receiver.id)).first()
        if head is None or head.next_at > now:
            return None
        lease = now + timedelta(seconds=receiver.timeout_s + LEASE_MARGIN_S)
        with self.engine.begin() as conn:
            won = conn.execute(update(deliveries).where(
                deliveries.c.receiver == receiver.id, deliveries.c.event_id == head.event_id,
                deliveries.c.attempts == head.attempts, deliveries.c.delivered_at.is_(None),
            ).values(attempts=head.attempts + 1, next_at=lease)).rowcount == 1
        if not won:
            return None
        body = OutboxEvent(id=head.event_id, kind=head.kind, subject=head.subject, at=head.at, payload=head.payload).model_dump_json()
        return _Due(head.event_id, head.attempts + 1, body.encode())

    def _deliver(self, receiver: Receiver, due: _Due, clock) -> bool:
        """POST one claimed event and record the answer: delivered on 2xx, else the error and when to try again."""
        error = self._post(receiver, due, int(clock().timestamp()))
        now = clock()
        mine = and_(deliveries.c.receiver == receiver.id, deliveries.c.event_id == due.event_id, deliveries.c.delivered_at.is_(None))
        with self.engine.begin() as conn:
            if error is None:
                conn.execute(update(deliveries).where(mine).values(delivered_at=now, last_error=None))
                return True
            retry = now + timedelta(seconds=backoff_s(due.attempts, self.first_retry_s, self.max_retry_s))
            conn.execute(update(deliveries).where(mine, deliveries.c.attempts == due.attempts)
                         .values(next_at=retry, last_error=error[:ERROR_CHARS]))
        log.warning("webhook %s: event %d not delivered (try %d, next at %s): %s", receiver.id, due.event_id, due.attempts,
                    retry.isoformat(timespec="seconds"), error)
        return False

    def _post(self, receiver: Receiver, due: _Due, timestamp: int) -> str | None:
        """None when the receiver answered 2xx within its timeout, else what went wrong.

        Straight to the address in the webhooks file: http.client reads no proxy from the environment and follows
        no redirect (a 3xx is a failure: following it would send signed events elsewhere). ``timeout_s`` bounds the
        whole exchange, not each read: a watchdog cuts the connection of a receiver that trickles its answer."""
        url = urlsplit(str(receiver.url))
        connection = (http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection)(
            url.hostname, url.port, timeout=receiver.timeout_s)
        cut = threading.Event()
        watchdog = threading.Timer(receiver.timeout_s, _cut_off, (connection, cut))
        watchdog.start()
        try:
            connection.request("POST", (url.path or "/") + (f"?{url.query}" if url.query else ""), body=due.body, headers={
                "Content-Type": "application/json; charset=utf-8", "User-Agent": "nonsite-courier",
                "X-Nonsite-Event-Id": str(due.event_id), "X-Nonsite-Receiver": receiver.id, "X-Nonsite-Timestamp": str(timestamp),
                "X-Nonsite-Signature": signature(receiver.secret.get_secret_value(), timestamp, due.body),
            })
            answer = connection.getresponse()
            told = answer.read(ERROR_CHARS).decode("utf-8", "replace").strip()
            if 200 <= answer.status < 300:
                return None  # its body, if any, says nothing more
            return f"HTTP {answer.status} {answer.reason}" + (f": {told}" if told else "")
        except (OSError, http.client.HTTPException) as exc:
            if cut.is_set():
                return f"no complete answer within {receiver.timeout_s:g} s"
            return f"unreachable: {exc}" if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        finally:
            watchdog.cancel()
            connection.close()

    # -- in the background -----------------------------------------------------------------------
    def start(self) -> None:
        """Deliver in daemon threads, one per receiver (a slow receiver holds up only itself), until ``stop``;
        no thread when no receiver is configured."""
        if self.receivers and not self._threads:
            self._stop.clear()
            self._threads = [threading.Thread(target=self._loop, args=(r,), name=f"{OUTBOX_THREAD}{r.id}", daemon=True) for r in self.receivers]
            for thread in self._threads:
                thread.start()

    def stop(self) -> None:
        """Stop after the requests in flight, if any (a SIGTERM'd server waits at most the longest receiver timeout)."""
        self._stop.set()
        deadline = time.monotonic() + max((r.timeout_s for r in self.receivers), default=0) + 1
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def _loop(self, receiver: Receiver) -> None:
        while not self._stop.is_set():
            try:
                busy = self._pass(receiver, _now).delivered > 0  # more may be due at once: go again without waiting
            except Exception:  # the database away for a moment: the next pass tries again, nothing is lost
                log.exception("outbox courier pass for %s failed", receiver.id)
                busy = False
            if not busy:
                self._stop.wait(self.poll_s)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _cut_off(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """The watchdog's act: a receiver past its timeout has its socket shut, which ends the read it is trickling."""
    cut.set()
    if connection.sock is not None:
        try:
            connection.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the other side


@dataclass(frozen=True)
class ReceiverStatus:
    """How far one receiver is: "reported, not dropped". The head is its oldest undelivered event, the one being tried."""

    receiver: str
    configured: bool  # False: rows left by a receiver since taken out of the webhooks file (they wait, kept)
    url: str | None
    delivered: int
    pending: int  # queued for it, not yet acknowledged
    not_queued: int  # newer events it wants that no courier has queued yet (no courier running, or one catching up)
    oldest_pending_at: datetime | None
    oldest_pending_age_s: float | None
    head_event_id: int | None
    head_attempts: int
    head_next_at: datetime | None
    last_error: str | None
    last_delivered_at: datetime | None


def status(engine: Engine, receivers: list[Receiver], now: datetime | None = None) -> list[ReceiverStatus]:
    """Per receiver, configured or found in the table: delivered and pending counts, the head's tries and last error."""
    now = now or datetime.now(timezone.utc)
    configured = {r.id: r for r in receivers}
    with engine.connect() as conn:
        counts = {row.receiver: row for row in conn.execute(
            select(deliveries.c.receiver, func.count(deliveries.c.delivered_at).label("delivered"),
                   func.count().label("rows"), func.max(deliveries.c.event_id).label("last_queued"),
                   func.max(deliveries.c.delivered_at).label("last_delivered_at"))
            .group_by(deliveries.c.receiver))}
        found = []
        for name in [*configured, *sorted(set(counts) - set(configured))]:
            row, receiver = counts.get(name), configured.get(name)
            head = conn.execute(_head(name)).first()
            newer = select(func.count()).where(events.c.id > (row.last_queued if row else 0))
            if receiver is not None and receiver.events:
                newer = newer.where(events.c.kind.in_(receiver.events))
            found.append(ReceiverStatus(
                receiver=name, configured=receiver is not None, url=str(receiver.url) if receiver else None,
                delivered=row.delivered if row else 0, pending=row.rows - row.delivered if row else 0,
                not_queued=conn.execute(newer).scalar() if receiver else 0,
                oldest_pending_at=head.at if head else None,
                oldest_pending_age_s=(now - head.at).total_seconds() if head else None,
                head_event_id=head.event_id if head else None, head_attempts=head.attempts if head else 0,
                head_next_at=head.next_at if head else None, last_error=head.last_error if head else None,
                last_delivered_at=row.last_delivered_at if row else None))
    return found
