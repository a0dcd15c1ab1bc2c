"""Hand-off to the city platform: outbox events reach its webhooks signed, in order, once per receiver, across a
receiver that is down, a restart of the courier and two couriers at once; a receiver that is down is reported."""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import insert, select, update

from nonsite.evidence import LocalStore, PackIndex, open_database
from nonsite.evidence.courier import Courier, Receiver, backoff_s, load_receivers, status
from nonsite.evidence.outbox import emit
from nonsite.evidence.schema import outbox_deliveries, outbox_events, packs_table
from nonsite.rules import ConfigError

from .officers import login
from .streams import free_port

SECRET = "s3cret-shared-with-the-city-platform"
T0 = datetime.now(timezone.utc)  # the passes run on this clock (and minutes after it) instead of waiting; reset per test


@pytest.fixture(autouse=True)
def _clock_starts_with_the_test():
    """T0 is when the test starts, not when the module was imported: events are written at the real time, and a
    suite that reaches this file twenty minutes after collecting it must not see them twenty minutes in the future."""
    global T0
    T0 = datetime.now(timezone.utc)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Platform:
    """The city platform's webhook endpoint on loopback: records every POST; can be stopped and started on the same port,
    or made to refuse (``answer``)."""

    def __init__(self):
        self.port, self.answer, self.got = free_port(), 204, []
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Platform:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                platform.got.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(platform.answer)
                self.end_headers()
                if platform.answer >= 300:
                    self.wfile.write(b"case system busy")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def ids(self, path: str = "/hook") -> list[int]:
        return [r.event["id"] for r in self.got if r.path == path]


@pytest.fixture()
def platform():
    platform = Platform()
    yield platform
    if platform._server is not None:
        platform.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    """A migrated database's URL: SQLite in tmp_path, or a fresh database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'nonsite.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    open_database(url).dispose()
    return url


def receiver(platform: Platform, name: str = "city", path: str = "/hook", **extra) -> Receiver:
    return Receiver(id=name, url=platform.url(path), secret=SECRET, timeout_s=2, **extra)


def emit_some(engine, count: int, kind: str = "pack.stored") -> list[int]:
    with engine.begin() as conn:
        return [emit(conn, kind, f"pack-{i}", {"pack_id": f"pack-{i}", "n": i, "shop": "张记面馆"}) for i in range(count)]


def decided_pack(engine) -> None:
    """One real decision through the review desk's ``decide``, which emits pack.decided in its transaction."""
    from nonsite.review_ui import add_user
    from nonsite.review_ui.review import decide

    with engine.begin() as conn:
        conn.execute(insert(packs_table).values(
            pack_id="pack-decided", category="illegal_parking", source_id="cam-1", rule_id="r", zone_id="z", subject_key="car:1",
            first_seen=T0, threshold_at=T0, last_seen=T0, dwell_s=60.0, confidence=0.9, manifest_sha256="0" * 64,
            status="pending_review", indexed_at=T0))
    decide(engine, "pack-decided", add_user(engine, "alice", "alice-password", "reviewer"), "reject", "false_detection", "")


def outbox_ids(engine) -> list[int]:
    with engine.connect() as conn:
        return conn.execute(select(outbox_events.c.id).order_by(outbox_events.c.id)).scalars().all()


def drain(courier: Courier, now: datetime, passes: int = 50) -> None:
    for _ in range(passes):
        if not courier.run_once(now).delivered:
            return


def assert_signed(got: Received) -> None:
    """What a receiver checks: the HMAC of timestamp '.' body under the shared secret, and the id in header and body."""
    expected = hmac.new(SECRET.encode(), got.headers["x-nonsite-timestamp"].encode() + b"." + got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["x-nonsite-signature"], f"sha256={expected}")
    assert got.headers["x-nonsite-event-id"] == str(got.event["id"])
    assert got.headers["x-nonsite-receiver"] == "city"
    assert got.headers["content-type"].startswith("application/json")


def test_a_receiver_down_then_up_gets_everything_once_in_order_across_a_restart(database, platform):
    engine = open_database(database)
    emitted = emit_some(engine, 3)
    decided_pack(engine)
    courier = Courier(engine, [receiver(platform)], first_retry_s=1, max_retry_s=8)

    # Down: the head of line is tried and fails; nothing is dropped, and the status says why and how far behind.
    assert (courier.run_once(T0).failed, courier.run_once(T0).failed) == (1, 0)  # the second pass: not due yet
    for minutes in (1, 2, 3):
        courier.run_once(T0 + timedelta(minutes=minutes))
    (down,) = status(engine, courier.receivers, T0 + timedelta(minutes=3))
    assert (down.delivered, down.pending, down.not_queued, down.head_event_id, down.head_attempts) == (0, 4, 0, emitted[0], 4)
    assert down.last_error.startswith("unreachable") and down.oldest_pending_age_s > 0
    assert T0 + timedelta(minutes=3, seconds=6) <= down.head_next_at <= T0 + timedelta(minutes=3, seconds=8)  # 8 s cap, less jitter
    more = emit_some(engine, 2, "document.issued")  # the platform's case system is still away while work goes on

    # Refusing (HTTP 503) is a failure too, with the receiver's words.
    platform.answer = 503
    platform.start()
    assert courier.run_once(T0 + timedelta(minutes=10)).failed == 1
    assert status(engine, courier.receivers)[0].last_error == "HTTP 503 Service Unavailable: case system busy"

    # A restart: a new courier on the same database delivers everything once, in order, signed.
    platform.answer = 204
    engine.dispose()
    engine = open_database(database)
    restarted = Courier(engine, [receiver(platform)], first_retry_s=1, max_retry_s=8)
    drain(restarted, T0 + timedelta(minutes=20))
    refused, *delivered = platform.got
    assert refused.event["id"] == emitted[0] and [r.event["id"] for r in delivered] == outbox_ids(engine)
    assert [r.event["kind"] for r in delivered] == ["pack.stored"] * 3 + ["pack.decided", "document.issued", "document.issued"]
    assert platform.ids()[-2:] == more
    for got in delivered:
        assert_signed(got)
    decision = delivered[3].event
    assert decision["subject"] == "pack-decided" and decision["payload"]["decision"] == "reject"
    assert datetime.fromisoformat(decision["at"]).utcoffset() == timedelta(0)
    assert delivered[0].event["payload"]["shop"] == "张记面馆"
    (up,) = status(engine, restarted.receivers)
    assert (up.delivered, up.pending, up.head_event_id, up.last_error) == (6, 0, None, None)

    # Another restart: nothing is sent twice; a new event is sent alone.
    again = Courier(open_database(database), [receiver(platform)])
    assert again.run_once().delivered == 0
    (newest,) = emit_some(engine, 1, "pack.undone")
    assert again.run_once().delivered == 1 and platform.ids()[-1] == newest and len(platform.got) == 8


def test_two_couriers_at_once_deliver_each_event_once_and_in_order(database, platform):
    engine = open_database(database)
    emitted = emit_some(engine, 30)
    platform.start()
    couriers = [Courier(open_database(database), [receiver(platform)], batch=5) for _ in range(2)]
    threads = [threading.Thread(target=drain, args=(c, datetime.now(timezone.utc), 200)) for c in couriers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    drain(couriers[0], datetime.now(timezone.utc))  # whatever a courier left when the other held the head at its last look
    assert platform.ids() == emitted
    assert status(engine, couriers[0].receivers)[0].delivered == 30


def test_a_delivery_whose_courier_died_mid_request_is_taken_over_when_its_lease_runs_out(tmp_path, platform):
    engine = open_database(f"sqlite:///{tmp_path / 'nonsite.db'}")
    (event,) = emit_some(engine, 1)
    platform.start()
    died, city = Courier(engine, [receiver(platform)]), receiver(platform)
    died._fan_out(city, T0)
    assert died._claim_head(city, T0) is not None and died._claim_head(city, T0) is None  # claimed once; then it "dies"
    other = Courier(engine, [city])
    assert other.run_once(T0 + timedelta(seconds=city.timeout_s)).delivered == 0  # still leased
    assert other.run_once(T0 + timedelta(seconds=city.timeout_s + 31)).delivered == 1 and platform.ids() == [event]
    assert status(engine, [city])[0].head_attempts == 0 and other.run_once().delivered == 0


def test_a_receiver_gets_only_the_kinds_it_subscribed_to_and_a_new_one_the_whole_outbox(tmp_path, platform):
    engine = open_database(f"sqlite:///{tmp_path / 'nonsite.db'}")
    platform.start()
    stored = emit_some(engine, 2)
    (issued,) = emit_some(engine, 1, "document.issued")
    everything = receiver(platform, "all", "/all")
    documents = receiver(platform, "docs", "/docs", events=("document.issued", "case.step"))
    courier = Courier(engine, [everything, documents])
    assert courier.run_once(T0).queued == 3 + 1
    drain(courier, T0)
    assert platform.ids("/all") == [*stored, issued] and platform.ids("/docs") == [issued]
    assert {r.headers["x-nonsite-receiver"] for r in platform.got if r.path == "/docs"} == {"docs"}

    late = receiver(platform, "late", "/late")  # added to the webhooks file later: sent the whole outbox first
    (after,) = emit_some(engine, 1)
    drain(Courier(engine, [everything, documents, late]), T0)
    assert platform.ids("/late") == [*stored, issued, after] and platform.ids("/all")[-1] == after and platform.ids("/docs") == [issued]
    assert {s.receiver: s.delivered for s in status(engine, [everything])} == {"all": 4, "docs": 1, "late": 4}  # unconfigured: kept
    assert not [s for s in status(engine, [everything]) if s.receiver == "docs"][0].configured


def test_backoff_doubles_to_its_cap_with_jitter_below_it():
    delays = [backoff_s(n, 1.0, 600.0) for n in range(1, 13)]
    assert 0.8 <= delays[0] <= 1.0 and 3.2 <= delays[2] <= 4.0 and all(480 <= d <= 600 for d in delays[10:])
    assert backoff_s(10_000, 1.0, 600.0) <= 600


def test_the_webhooks_file_is_checked_and_builds_the_courier(tmp_path, monkeypatch):
    from nonsite.settings import Settings

    path = tmp_path / "webhooks.yaml"
    path.write_text("receivers:\n  - id: city\n    url: https://cg.example.gov.cn/hooks/nonsite\n"
                    f"    secret: {SECRET}\n    events: [pack.decided, case.step]\n")
    monkeypatch.setenv("NONSITE_WEBHOOKS_FILE", str(path))
    courier = Settings(data_dir=tmp_path / "var").courier()
    assert [(r.id, r.events, r.timeout_s) for r in courier.receivers] == [("city", ("pack.decided", "case.step"), 10.0)]
    assert SECRET not in repr(courier.receivers)
    path.write_text("receivers:\n  - {id: a, url: 'ftp://x', secret: short}\n  - {id: a, url: 'http://x', secret: " + SECRET + "}\n")
    with pytest.raises(ConfigError) as refused:
        load_receivers(path)
    assert "webhooks.yaml:2: receivers.0.url" in str(refused.value) and "receivers.0.secret" in str(refused.value)


def test_operators_deliver_and_read_the_status_from_the_command_line(tmp_path, monkeypatch, platform, capsys):
    from nonsite.cli import main

    monkeypatch.setenv("NONSITE_DATA_DIR", str(tmp_path / "var"))
    webhooks = tmp_path / "webhooks.json"
    webhooks.write_text(json.dumps({"receivers": [{"id": "city", "url": platform.url(), "secret": SECRET, "timeout_s": 2}]}))
    monkeypatch.setenv("NONSITE_WEBHOOKS_FILE", str(webhooks))
    (tmp_path / "var").mkdir()
    engine = open_database(f"sqlite:///{tmp_path / 'var' / 'nonsite.db'}")
    emitted = emit_some(engine, 2)
    assert main(["outbox", "--deliver"]) == 1  # the platform is down: reported, exit 1
    assert "unreachable" in capsys.readouterr().out
    platform.start()
    assert main(["outbox"]) == 0 and platform.got == []  # without --deliver it only reports
    with engine.begin() as conn:  # the backoff has run out (as it would by waiting a second)
        conn.execute(update(outbox_deliveries).values(next_at=T0))
    assert main(["outbox", "--deliver"]) == 0
    assert platform.ids() == emitted and "city" in capsys.readouterr().out


def test_the_desk_delivers_while_it_serves_and_supervisors_see_how_far_each_receiver_is(tmp_path, platform):
    from fastapi.testclient import TestClient

    from nonsite.review_ui import Context, add_user, create_app

    engine = open_database(f"sqlite:///{tmp_path / 'nonsite.db'}")
    for name, role in (("alice", "reviewer"), ("sam", "supervisor")):
        add_user(engine, name, f"{name}-password", role)
    emitted = emit_some(engine, 2)
    platform.start()
    courier = Courier(engine, [receiver(platform)], poll_s=0.05)
    app = create_app(Context(PackIndex(engine), LocalStore(tmp_path / "evidence"), tmp_path / "sites"), courier)
    with TestClient(app):  # the app's lifespan runs the courier
        for _ in range(200):
            if len(platform.got) == 2:
                break
            threading.Event().wait(0.02)
    assert platform.ids() == emitted and not courier._threads  # stopped with the app

    sam = login(app, "sam")
    (city,) = sam.get("/api/outbox").json()
    assert (city["receiver"], city["delivered"], city["pending"], city["last_error"]) == ("city", 2, 0, None)
    assert city["last_delivered_at"].endswith("+08:00")  # the bureau's zone, as every time in the API
    assert login(app, "alice").get("/api/outbox").status_code == 403
    schema = sam.get("/api/openapi.json").json()
    hook = schema["webhooks"]["outbox-event"]["post"]
    assert {p["name"] for p in hook["parameters"] if p["in"] == "header"} == {
        "X-Nonsite-Event-Id", "X-Nonsite-Receiver", "X-Nonsite-Timestamp", "X-Nonsite-Signature"}
    body = hook["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][body]["properties"]) == {"id", "kind", "subject", "at", "payload"}
    assert "/api/outbox" in schema["paths"]


def test_a_receiver_that_trickles_its_answer_is_cut_off_and_holds_up_no_other(tmp_path, platform):
    """A receiver sending its status line a byte every 0.3 s: cut at its 1 s timeout (a per-read timeout never fires),
    while the other receiver, in its own thread, gets every event at once."""
    engine = open_database(f"sqlite:///{tmp_path / 'nonsite.db'}")
    listener = socket.create_server(("127.0.0.1", 0))

    def trickle() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\n\r\n":
                    try:
                        connection.send(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.3)

    threading.Thread(target=trickle, daemon=True).start()
    slow = Receiver(id="slow", url=f"http://127.0.0.1:{listener.getsockname()[1]}/hook", secret=SECRET, timeout_s=1)
    emitted = emit_some(engine, 3)
    courier = Courier(engine, [slow, receiver(platform.start())], poll_s=0.05)
    started = time.monotonic()
    courier.start()
    while len(platform.ids()) < 3 and time.monotonic() - started < 10:
        time.sleep(0.05)
    city_s = time.monotonic() - started
    while not status(engine, [slow])[0].last_error and time.monotonic() - started < 10:
        time.sleep(0.05)
    courier.stop()
    listener.close()
    assert platform.ids() == emitted and city_s < 1.0, city_s  # not behind the slow one's second
    assert status(engine, [slow])[0].last_error == "no complete answer within 1 s"
