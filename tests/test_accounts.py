"""Accounts under attack: log-in throttling, timing, account lifecycle, sessions, case powers.

Every test goes through real HTTP (FastAPI's TestClient) against the real app and a real SQLite
file, with concurrency on real threads. None needs imagery: the data folder has no packs, so
these run anywhere (cases are written straight into the database).
"""
from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from nonsite.cli import main
from nonsite.evidence import LocalStore, PackIndex, open_database
from nonsite.evidence.audit import verify_chain
from nonsite.evidence.schema import audit, cases, login_attempts, sessions, users
from nonsite.review_ui import auth, create_app, throttle
from nonsite.review_ui.auth import add_user
from nonsite.review_ui.deps import COOKIE, Context

from .test_browser import _wait_until, browser, log_in, server  # noqa: F401 - the users page runs in real Chromium too

OFFICERS = (("alice", "reviewer"), ("bob", "reviewer"), ("sam", "supervisor"), ("ada", "admin"))


@pytest.fixture()
def data(tmp_path):
    return tmp_path / "var"


@pytest.fixture()
def ctx(data):
    """An empty deployment (no packs, no imagery) with four officers."""
    data.mkdir()
    index = PackIndex(open_database(f"sqlite:///{data / 'nonsite.db'}"))
    for name, role in OFFICERS:
        add_user(index.engine, name, f"{name}-password", role)
    return Context(index, LocalStore(data / "evidence"), data / "sites")


@pytest.fixture()
def app(ctx):
    return create_app(ctx)


@pytest.fixture()
def clock(monkeypatch):
    """The accounts module's clock, moved forward by hand (``clock.advance(seconds=31)``)."""

    class Clock:
        now = datetime.now(timezone.utc)

        def __call__(self):
            return self.now

        def advance(self, **delta):
            self.now += timedelta(**delta)

    clock = Clock()
    monkeypatch.setattr(auth, "_now", clock)
    return clock


def client(app, address: str = "10.0.0.1", **kwargs) -> TestClient:
    """An officer's browser at ``address``, asking for English (the desk's default is Chinese)."""
    return TestClient(app, client=(address, 50000), **{"headers": {"Accept-Language": "en"}, **kwargs})


def try_login(app, name: str, password: str, address: str = "10.0.0.1"):
    return client(app, address).post("/api/login", json={"username": name, "password": password})


def login(app, name: str, address: str = "10.0.0.1", password: str | None = None) -> TestClient:
    officer = client(app, address)
    response = officer.post("/api/login", json={"username": name, "password": password or f"{name}-password"})
    assert response.status_code == 200, response.text
    officer.headers["X-CSRF-Token"] = response.json()["csrf"]
    return officer


def logged_in(officer: TestClient) -> bool:
    status = officer.get("/api/cases").status_code
    assert status in (200, 401), status
    return status == 200


def audit_entries(ctx, action: str) -> list:
    with ctx.engine.connect() as conn:
        return conn.execute(select(audit).where(audit.c.action == action).order_by(audit.c.seq)).mappings().all()


def user_id(ctx, name: str) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(select(users.c.id).where(users.c.username == name)).scalar_one()


# --- log-in throttling ---------------------------------------------------------------------------


def test_five_wrong_tries_slow_that_name_from_that_address_only_and_briefly(app, clock):
    for _ in range(5):
        assert try_login(app, "ada", "guess-guess").status_code == 401
    throttled = try_login(app, "ada", "ada-password")  # even the right password waits out the cool-down...
    assert throttled.status_code == 429 and "too many" in throttled.json()["detail"]
    assert 1 <= int(throttled.headers["Retry-After"]) <= 30
    assert try_login(app, "ada", "ada-password", address="10.0.0.2").status_code == 200  # ...but the account is not locked
    assert try_login(app, "sam", "sam-password").status_code == 200  # nor is the address, for other officers
    clock.advance(seconds=31)
    assert try_login(app, "ada", "ada-password").status_code == 200  # 30 seconds, not 15 minutes


def test_the_wait_doubles_with_each_further_failure_and_a_success_forgives(app, clock):
    for _ in range(5):
        assert try_login(app, "alice", "guess-guess").status_code == 401
    assert try_login(app, "alice", "guess-guess").status_code == 429
    clock.advance(seconds=31)
    assert try_login(app, "alice", "guess-guess").status_code == 401  # the 6th failure: now 60 seconds
    clock.advance(seconds=31)
    refused = try_login(app, "alice", "alice-password")
    assert refused.status_code == 429 and 25 <= int(refused.headers["Retry-After"]) <= 30
    clock.advance(seconds=30)
    assert try_login(app, "alice", "alice-password").status_code == 200
    for _ in range(5):  # the success forgave the earlier failures: five free tries again
        assert try_login(app, "alice", "guess-guess").status_code == 401
    for _ in range(5):  # waits of 30 s, 1, 2, 4 and 8 minutes, each waited out and failed again...
        clock.advance(minutes=16)
        assert try_login(app, "alice", "guess-guess").status_code == 401
    assert int(try_login(app, "alice", "guess-guess").headers["Retry-After"]) == 15 * 60  # ...and 16 is capped at 15


def test_failures_from_one_address_do_not_lock_out_everyone_behind_it(app, monkeypatch):
    for name in ("ada", "sam", "nobody", "root", "admin"):  # 5 failures, 5 names, one NAT address
        assert try_login(app, name, "guess-guess", address="10.9.9.9").status_code == 401
    assert try_login(app, "bob", "bob-password", address="10.9.9.9").status_code == 200


def test_an_address_spraying_names_hits_a_ceiling_that_spares_its_known_officers(app, monkeypatch):
    monkeypatch.setattr(throttle, "ADDRESS_CEILING", 8)
    nat = "10.9.9.9"
    assert try_login(app, "alice", "alice-password", address=nat).status_code == 200  # alice works behind this NAT
    for n in range(8):
        assert try_login(app, f"officer{n}", "Spring2026!", address=nat).status_code == 401
    sprayed = try_login(app, "officer9", "Spring2026!", address=nat)
    assert sprayed.status_code == 429 and int(sprayed.headers["Retry-After"]) > 60
    assert try_login(app, "bob", "bob-password", address=nat).status_code == 429  # never logged in from here
    assert try_login(app, "alice", "alice-password", address=nat).status_code == 200  # a known officer gets in
    assert try_login(app, "bob", "bob-password", address="10.0.0.7").status_code == 200  # and bob from elsewhere


def test_thirty_concurrent_guesses_let_through_at_most_five_and_none_fails(app, ctx):
    barrier = threading.Barrier(30)
    answers: list = []

    def guess(n: int) -> None:
        officer = client(app, raise_server_exceptions=False)
        barrier.wait()
        answers.append(officer.post("/api/login", json={"username": "ada", "password": f"guess-{n:04d}"}))

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(30)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {401: 5, 429: 25}, statuses  # no 500 'database is locked'; 5 guesses checked, not 8
    assert all("too many" in r.json()["detail"] for r in answers if r.status_code == 429)
    with ctx.engine.connect() as conn:
        recorded = conn.execute(select(func.count()).select_from(login_attempts).where(login_attempts.c.username == "ada")).scalar()
    assert recorded == 5
    assert len(audit_entries(ctx, "login.failed")) == 5 and len(audit_entries(ctx, "login.throttled")) == 25
    assert verify_chain(ctx.engine).ok


def test_many_officers_logging_in_at_once_all_get_in(app):
    barrier = threading.Barrier(24)
    answers: list = []

    def log_in(n: int) -> None:
        name = OFFICERS[n % 4][0]
        officer = client(app, f"10.2.0.{n}", raise_server_exceptions=False)
        barrier.wait()
        answers.append(officer.post("/api/login", json={"username": name, "password": f"{name}-password"}))

    threads = [threading.Thread(target=log_in, args=(n,)) for n in range(24)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert Counter(r.status_code for r in answers) == {200: 24}


def test_throttle_events_are_committed_on_their_own(app, ctx):
    for _ in range(5):
        try_login(app, "sam", "guess-guess")
    assert try_login(app, "sam", "guess-guess").status_code == 429
    with open_database(f"sqlite:///{ctx.engine.url.database}").connect() as conn:  # another connection sees it committed
        throttled = conn.execute(select(audit).where(audit.c.action == "login.throttled")).mappings().all()
    assert len(throttled) == 1 and throttled[0]["actor"] == "sam" and throttled[0]["details"]["ip"] == "10.0.0.1"
    assert verify_chain(ctx.engine).ok


def test_answer_time_does_not_tell_whether_a_user_exists(app, monkeypatch):
    verifications = Counter()

    class Counting:
        """The real hasher, counting its verifications."""

        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def verify(self, stored, password):
            verifications["n"] += 1
            return self.real.verify(stored, password)

    monkeypatch.setattr(auth, "_hasher", Counting(auth._hasher))
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for n in range(8):
        for kind, name in (("known", "ada"), ("unknown", "nobody-at-all")):
            officer = client(app, f"10.3.{n}.{len(name)}")  # a fresh address each try: no throttling in the way
            before = verifications["n"]
            start = time.perf_counter()
            assert officer.post("/api/login", json={"username": name, "password": "wrong-password"}).status_code == 401
            times[kind].append(time.perf_counter() - start)
            assert verifications["n"] == before + 1, kind  # one argon2 verification either way
    known, unknown = statistics.median(times["known"]), statistics.median(times["unknown"])
    print(f"\nwrong password: known user {known * 1000:.0f} ms, unknown user {unknown * 1000:.0f} ms (medians of 8)")
    assert 0.6 < known / unknown < 1.67, (known, unknown)  # before: 319 ms against 54 ms


# --- names and passwords -------------------------------------------------------------------------


def test_user_names_are_trimmed_bounded_and_printable_in_any_script(app, ctx):
    admin = login(app, "ada")

    def add(name: str, password: str = "long-enough-pw"):
        return admin.post("/api/users", json={"username": name, "password": password, "role": "reviewer"})

    for bad in ("", "   ", "x" * 65, "x" * 1_000_000, "bob\x00", "line\nbreak", "zero\u200bwidth", "\u202eevil"):
        response = add(bad)
        assert response.status_code == 422 and "username" in response.json()["detail"], repr(bad[:20])
    assert add("carl", "too-short").status_code == 422  # 9 characters: passwords need 10
    created = add("  王警官  ")
    assert created.status_code == 200 and created.json()["username"] == "王警官"
    assert login(app, "王警官", password="long-enough-pw").get("/api/cases").status_code == 200
    assert add("ALICE").status_code == 422  # a twin of alice differing only in case
    with ctx.engine.connect() as conn:
        assert max(len(n) for n in conn.execute(select(users.c.username)).scalars()) <= 64


def test_a_megabyte_user_name_at_log_in_is_not_stored(app, ctx):
    huge = "x" * 1_000_000
    assert try_login(app, huge, "whatever-pw").status_code == 422  # the API bounds the field
    page = client(app)
    form = page.get("/login")
    token = page.cookies["nonsite_login_csrf"]
    answer = page.post("/login", data={"username": huge, "password": "whatever-pw", "csrf": token})
    assert answer.status_code == 200 and "wrong user name or password" in answer.text and form.status_code == 200
    with ctx.engine.connect() as conn:
        longest = conn.execute(select(func.max(func.length(audit.c.actor)))).scalar()
        stored = conn.execute(select(func.max(func.length(login_attempts.c.username)))).scalar()
    assert longest <= 64 and stored <= 64


# --- account lifecycle ---------------------------------------------------------------------------


def test_disabling_ends_sessions_and_stops_log_in_until_enabled(app, ctx):
    admin, bob, bob_phone = login(app, "ada"), login(app, "bob"), login(app, "bob", address="10.0.0.5")
    bob_id = user_id(ctx, "bob")
    assert {u["username"]: u["sessions"] for u in admin.get("/api/users").json()}["bob"] == 2
    disabled = admin.post(f"/api/users/{bob_id}/active", json={"active": False})
    assert disabled.status_code == 200 and disabled.json()["sessions_ended"] == 2 and not disabled.json()["user"]["active"]
    assert not logged_in(bob) and not logged_in(bob_phone)
    refused = try_login(app, "bob", "bob-password")
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
    assert try_login(app, "bob", "wrong-password").json()["detail"] == "wrong user name or password"  # no hint without the password
    assert admin.post(f"/api/users/{bob_id}/active", json={"active": True}).json()["user"]["active"]
    assert try_login(app, "bob", "bob-password", address="10.0.0.6").status_code == 200
    assert [e["target"] for e in audit_entries(ctx, "user.disable")] == ["bob"]
    assert audit_entries(ctx, "user.disable")[0]["actor"] == "ada" and audit_entries(ctx, "user.enable")


def test_a_role_change_ends_the_sessions_granted_under_the_old_role(app, ctx):
    admin, sam = login(app, "ada"), login(app, "sam")
    assert sam.get("/api/dashboard").status_code == 200
    changed = admin.post(f"/api/users/{user_id(ctx, 'sam')}/role", json={"role": "reviewer"})
    assert changed.status_code == 200 and changed.json()["user"]["role"] == "reviewer" and changed.json()["sessions_ended"] == 1
    assert not logged_in(sam)
    assert login(app, "sam").get("/api/dashboard").status_code == 403
    assert audit_entries(ctx, "user.role")[0]["details"] == {"from": "supervisor", "to": "reviewer", "sessions_ended": 1}


def test_an_admin_sets_a_forgotten_password_and_the_old_sessions_end(app, ctx):
    admin, alice = login(app, "ada"), login(app, "alice")
    alice_id = user_id(ctx, "alice")
    assert admin.post(f"/api/users/{alice_id}/password", json={"password": "short"}).status_code == 422
    assert admin.post(f"/api/users/{alice_id}/password", json={"password": "a-new-secret-1"}).json()["sessions_ended"] == 1
    assert not logged_in(alice)
    assert try_login(app, "alice", "alice-password", address="10.0.0.8").status_code == 401
    assert login(app, "alice", password="a-new-secret-1")
    assert audit_entries(ctx, "user.password")[0]["actor"] == "ada"


def test_admins_do_not_lock_themselves_out_through_the_admin_routes(app, ctx):
    admin = login(app, "ada")
    ada = user_id(ctx, "ada")
    for path, body in (("active", {"active": False}), ("role", {"role": "reviewer"}), ("password", {"password": "another-secret"}),
                       ("logout", None)):
        answer = admin.post(f"/api/users/{ada}/{path}", json=body)
        assert answer.status_code == 422 and "your own" in answer.json()["detail"], path
    assert admin.post("/api/users/99999/active", json={"active": False}).status_code == 404
    assert logged_in(admin)


def test_officers_change_their_own_password_and_log_out_everywhere(app, ctx):
    desk, phone = login(app, "alice"), login(app, "alice", address="10.0.0.9")
    wrong = desk.post("/api/account/password", json={"current_password": "not-my-password", "new_password": "fresh-secret-1"})
    assert wrong.status_code == 401 and logged_in(desk)
    assert desk.post("/api/account/password", json={"current_password": "alice-password", "new_password": "short"}).status_code == 422
    changed = desk.post("/api/account/password", json={"current_password": "alice-password", "new_password": "fresh-secret-1"})
    assert changed.status_code == 200 and changed.json()["sessions_ended"] == 2
    assert not logged_in(desk) and not logged_in(phone)
    desk, phone = login(app, "alice", password="fresh-secret-1"), login(app, "alice", "10.0.0.9", password="fresh-secret-1")
    other = login(app, "alice", "10.0.0.10", password="fresh-secret-1")
    assert desk.post("/api/logout").json() == {"ok": True, "sessions_ended": 1}  # log-out ends that session only
    assert not logged_in(desk) and logged_in(phone) and logged_in(other)
    assert phone.post("/api/logout", json={"everywhere": True}).json()["sessions_ended"] == 2
    assert not logged_in(phone) and not logged_in(other)


def test_current_password_checks_are_throttled_like_log_ins(app):
    officer = login(app, "bob")
    for _ in range(5):
        guess = {"current_password": "guess-guess", "new_password": "fresh-secret-1"}
        assert officer.post("/api/account/password", json=guess).status_code == 401
    answer = officer.post("/api/account/password", json={"current_password": "bob-password", "new_password": "fresh-secret-1"})
    assert answer.status_code == 429 and logged_in(officer)


def test_an_admin_ends_an_officers_sessions(app, ctx):
    admin, bob = login(app, "ada"), login(app, "bob")
    assert admin.post(f"/api/users/{user_id(ctx, 'bob')}/logout").json()["sessions_ended"] == 1
    assert not logged_in(bob)


def test_idle_sessions_end_and_busy_ones_end_after_twelve_hours(app, ctx, clock):
    idle, busy = login(app, "alice"), login(app, "bob")
    clock.advance(minutes=20)
    assert logged_in(busy)
    clock.advance(minutes=20)  # 40 minutes without a request: past the 30-minute idle timeout
    assert not logged_in(idle) and logged_in(busy)
    for _ in range(11 * 3 + 1):
        clock.advance(minutes=20)
        assert logged_in(busy)
    clock.advance(minutes=20)  # 12 hours and 40 minutes after log-in
    assert not logged_in(busy)
    page = busy.get("/cases", follow_redirects=False)  # the page says why it asks for the password again
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/cases&error=expired"
    assert "session has ended" in busy.get(page.headers["location"]).text


# --- CSRF, roles and pages -----------------------------------------------------------------------


def test_account_routes_need_an_admin_and_the_csrf_token(app, ctx):
    supervisor, admin = login(app, "sam"), login(app, "ada")
    bob = user_id(ctx, "bob")
    changes = [("/api/users", {"username": "carl", "password": "carl-password", "role": "admin"}),
               (f"/api/users/{bob}/role", {"role": "admin"}), (f"/api/users/{bob}/active", {"active": False}),
               (f"/api/users/{bob}/password", {"password": "taken-over-1"}), (f"/api/users/{bob}/logout", None)]
    for path, body in changes:
        refused = supervisor.post(path, json=body)
        assert refused.status_code == 403 and "admin" in refused.json()["detail"], path
        forged = admin.post(path, json=body, headers={"X-CSRF-Token": "forged"})
        assert forged.status_code == 403 and "CSRF" in forged.json()["detail"], path
    assert supervisor.get("/api/users").status_code == 403
    assert client(app).get("/api/users").status_code == 401
    assert client(app).post("/api/account/password", json={}).status_code == 401
    assert supervisor.post("/api/account/password", json={"current_password": "sam-password", "new_password": "fresh-secret-1"},
                           headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert try_login(app, "bob", "bob-password").status_code == 200  # nothing above changed bob


def test_admin_and_account_pages(app):
    admin, reviewer = login(app, "ada"), login(app, "alice")
    page = admin.get("/admin/users")
    assert page.status_code == 200 and "Disable" in page.text and "End sessions" in page.text and "bob" in page.text
    assert reviewer.get("/admin/users").status_code == 403
    own = reviewer.get("/account")
    assert own.status_code == 200 and "Change your password" in own.text and "Disable" not in own.text
    ended = reviewer.post("/logout", data={"csrf": reviewer.headers["X-CSRF-Token"], "everywhere": "1"}, follow_redirects=False)
    assert ended.status_code == 303 and not logged_in(reviewer)


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture()
def cli(ctx, data, tmp_path, monkeypatch):
    monkeypatch.setenv("NONSITE_DATA_DIR", str(data))
    monkeypatch.setenv("NONSITE_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv("NONSITE_NEW_PASSWORD", raising=False)
    return main


def test_the_cli_manages_accounts_and_never_takes_a_password_argument(app, ctx, cli, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        cli(["user", "add", "carl", "--role", "reviewer", "--password", "carl-password"])
    answers = iter(["carl-secret-1", "carl-secret-1"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert cli(["user", "add", "carl", "--role", "reviewer"]) == 0
    assert login(app, "carl", password="carl-secret-1")
    answers = iter(["carl-secret-2", "a-typo-here"])
    assert cli(["user", "passwd", "carl"]) == 2 and "differ" in capsys.readouterr().out
    monkeypatch.setenv("NONSITE_NEW_PASSWORD", "short")
    assert cli(["user", "passwd", "carl"]) == 2 and "at least 10" in capsys.readouterr().out
    monkeypatch.setenv("NONSITE_NEW_PASSWORD", "carl-secret-3")
    bob = login(app, "bob")
    assert cli(["user", "passwd", "bob"]) == 0 and not logged_in(bob)
    assert login(app, "bob", password="carl-secret-3")
    sam = login(app, "sam")
    assert cli(["user", "role", "sam", "admin"]) == 0 and not logged_in(sam)
    assert cli(["user", "disable", "ada"]) == 0  # sam is an admin now, so ada is not the last one
    assert cli(["user", "disable", "sam"]) == 2 and "last active admin" in capsys.readouterr().out
    alice = login(app, "alice")
    assert cli(["user", "logout", "alice"]) == 0 and not logged_in(alice)
    assert cli(["user", "disable", "nobody"]) == 2
    assert cli(["user", "add", " ", "--role", "reviewer"]) == 2
    assert cli(["user", "enable", "ada"]) == 0 and cli(["user", "list"]) == 0
    listing = capsys.readouterr().out
    assert "carl" in listing and "disabled" not in listing
    actors = {e["actor"] for e in audit_entries(ctx, "user.password")}
    assert all(a.startswith("cli") for a in actors)


# --- case powers ---------------------------------------------------------------------------------


def open_case(ctx, assignee: str, state: str = "open") -> int:
    now = datetime.now(timezone.utc)
    with ctx.engine.begin() as conn:
        return conn.execute(insert(cases).values(
            subject_key=f"shop:{assignee}:{state}", category="spillover_business", source_id="cam-plaza-02", place="Plaza café",
            state=state, assignee_id=user_id(ctx, assignee), created_at=now, updated_at=now,
        )).inserted_primary_key[0]


def test_a_reviewer_acts_only_on_their_own_cases_and_a_supervisor_on_any(app, ctx):
    alice, sam = login(app, "alice"), login(app, "sam")
    theirs = open_case(ctx, "bob")
    step = lambda who, case, body: who.post(f"/api/cases/{case}/transition", json=body)  # noqa: E731
    for body in ({"to_state": "notified", "notice_kind": "warning", "note": "handed over"},
                 {"to_state": "closed", "outcome": "dismissed", "note": "not ours"}):
        refused = step(alice, theirs, body)
        assert refused.status_code == 403 and "assigned to bob" in refused.json()["detail"], body
    assert alice.get(f"/api/cases/{theirs}").json()["case"]["state"] == "open"  # nothing happened
    asked = step(sam, theirs, {"to_state": "closed", "outcome": "dismissed", "note": "duplicate of a patrol report"})
    assert asked.status_code == 202  # a dismissal waits for approval, whoever asks


def approve(who, case: int, approval: int, yes: bool = True, opinion: str = "同意"):
    return who.post(f"/api/cases/{case}/approvals/{approval}", json={"approve": yes, "opinion": opinion})


def test_penalties_and_dismissals_wait_for_another_supervisors_approval(app, ctx):
    alice, sam, ada = login(app, "alice"), login(app, "sam"), login(app, "ada")
    case = open_case(ctx, "alice")
    step = lambda who, body: who.post(f"/api/cases/{case}/transition", json=body)  # noqa: E731
    penalty = step(alice, {"to_state": "notified", "notice_kind": "penalty", "note": "fine"})
    assert penalty.status_code == 202 and penalty.json()["case"]["state"] == "open"  # asked for, not taken
    approval = penalty.json()["pending_approval"]["id"]
    assert step(alice, {"to_state": "notified", "notice_kind": "warning"}).status_code == 422  # one step waits already
    assert approve(alice, case, approval).status_code == 403  # a reviewer approves nothing
    assert approve(sam, case, approval, yes=False, opinion="").status_code == 422  # sending back needs the reason
    sent_back = approve(sam, case, approval, yes=False, opinion="首次违法，先予警告")
    assert sent_back.status_code == 200 and sent_back.json()["case"]["state"] == "open" and not sent_back.json()["pending_approval"]
    assert sent_back.json()["approvals"][0]["opinion"] == "首次违法，先予警告" and sent_back.json()["approvals"][0]["approved"] is False
    assert step(alice, {"to_state": "notified", "notice_kind": "warning", "note": "handed over"}).status_code == 200
    dismissal = step(alice, {"to_state": "closed", "outcome": "dismissed", "note": "owner complained"})
    assert dismissal.status_code == 422 and "supervisor" in dismissal.json()["detail"]  # after a notice: a supervisor's move
    asked = step(sam, {"to_state": "closed", "outcome": "dismissed", "note": "permit shown after the notice"})
    assert asked.status_code == 202
    own = approve(sam, case, asked.json()["pending_approval"]["id"])
    assert own.status_code == 422 and "another supervisor" in own.json()["detail"]  # four eyes
    closed = approve(ada, case, asked.json()["pending_approval"]["id"], opinion="同意不予处罚")
    assert closed.status_code == 200 and closed.json()["case"]["state"] == "closed" and closed.json()["case"]["outcome"] == "dismissed"
    assert closed.json()["events"][-1]["details"]["approved_by"] == "ada"
    reopen = step(alice, {"to_state": "open", "note": "again"})
    assert reopen.status_code == 422 and "supervisor" in reopen.json()["detail"]
    assert step(sam, {"to_state": "open", "note": "new complaint"}).status_code == 200
    assert step(sam, {"to_state": "notified", "notice_kind": "penalty", "note": "second offence"}).status_code == 202


def test_only_a_supervisor_assigns_and_never_to_a_disabled_officer(app, ctx):
    alice, sam, admin = login(app, "alice"), login(app, "sam"), login(app, "ada")
    case = open_case(ctx, "alice")
    assert alice.post(f"/api/cases/{case}/assign", json={"username": "bob"}).status_code == 403
    admin.post(f"/api/users/{user_id(ctx, 'bob')}/active", json={"active": False})
    refused = sam.post(f"/api/cases/{case}/assign", json={"username": "bob"})
    assert refused.status_code == 422 and "disabled" in refused.json()["detail"]
    assert sam.post(f"/api/cases/{case}/assign", json={"username": "sam"}).json()["case"]["assignee"] == "sam"
    assert alice.post(f"/api/cases/{case}/transition", json={"to_state": "notified", "notice_kind": "warning"}).status_code == 403


def test_sessions_table_holds_only_digests(app, ctx):
    officer = login(app, "alice")
    token = officer.cookies[COOKIE]
    with ctx.engine.connect() as conn:
        stored = conn.execute(select(sessions.c.token_sha256)).scalars().all()
    assert token not in stored and len(stored) == 1


def test_chinese_names_are_accepted_and_bad_ones_refused_in_the_officers_language(app):
    from .officers import login as desk_login

    admin = desk_login(app, "ada", language="zh-CN")
    made = admin.post("/api/users", json={"username": "  王警官 ", "display_name": "王警官（湖滨中队）", "password": "王警官-password",
                                          "role": "reviewer"})
    assert made.status_code == 200 and made.json()["username"] == "王警官" and made.json()["display_name"] == "王警官（湖滨中队）"
    wang = desk_login(app, "王警官", language="zh-CN")
    assert "王警官（湖滨中队）" in wang.get("/queue").text  # shown by the display name
    for body, words in (({"display_name": "王\u202e警官"}, "控制字符"), ({"display_name": "王" * 65}, "最多"),
                        ({"username": "   ", "display_name": "x"}, "名称不能为空")):
        refused = admin.post("/api/users", json={"username": "新人", "password": "a-long-password", "role": "reviewer", **body})
        assert refused.status_code == 422 and words in refused.json()["detail"], (body, refused.text)
    english = desk_login(app, "ada").post("/api/users", json={"username": "x\u0000y", "password": "a-long-password", "role": "reviewer"})
    assert english.status_code == 422 and "control or invisible characters" in english.json()["detail"]
    page = wang.get("/admin/users")  # a page's error is a page in Chinese, not JSON
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html") and "无权操作" in page.text
    assert wang.get("/api/users").headers["content-type"].startswith("application/json")


def _form_login(app, name: str, password: str, language: str = "zh-CN") -> tuple[TestClient, str]:
    """Log in through the log-in page's form, as a browser does; returns the client and the page it lands on."""
    officer = client(app, headers={"Accept-Language": language})
    officer.get("/login")
    landed = officer.post("/login", data={"username": name, "password": password, "csrf": officer.cookies["nonsite_login_csrf"],
                                          "next": "/queue"})
    return officer, landed.text


def test_wang_logs_in_through_the_form_and_is_shown_by_his_display_name(app, ctx):
    from .officers import login as desk_login

    admin = desk_login(app, "ada", language="zh-CN")
    wang = admin.post("/api/users", json={"username": "王警官", "display_name": "  王警官（湖滨中队） ", "password": "王警官-password",
                                          "role": "reviewer"}).json()
    officer, queue = _form_login(app, " 王警官 ", "王警官-password")  # typed with stray spaces, as phones do
    assert '<a class="who" href="/account">王警官（湖滨中队） (审核员)</a>' in queue
    renamed = admin.post(f"/api/users/{wang['id']}/name", json={"display_name": "王建国"})
    assert renamed.status_code == 200 and renamed.json()["user"]["display_name"] == "王建国" and renamed.json()["sessions_ended"] == 0
    assert '<a class="who" href="/account">王建国 (审核员)</a>' in officer.get("/queue").text  # the session goes on, renamed
    officer.headers["X-CSRF-Token"] = officer.get("/account").text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    assert officer.post("/api/account/name", json={"display_name": "王警官"}).json()["display_name"] == "王警官"
    own = admin.post(f"/api/users/{user_id(ctx, 'ada')}/name", json={"display_name": "管理员"})
    assert own.status_code == 422 and "我的账号" in own.json()["detail"]  # an admin's own account changes on their account page
    assert [(e["actor"], e["target"], e["details"]["display_name"]) for e in audit_entries(ctx, "user.display_name")] == [
        ("ada", "王警官", "王建国"), ("王警官", "王警官", "王警官")]
    audit_page = desk_login(app, "sam", language="zh-CN").get("/audit?target=王警官").text
    assert "<td>王警官 <small>王警官</small></td>" in audit_page and "<td>ada</td>" in audit_page  # who has a display name is shown by it
    assert "王警官（湖滨中队）" in audit_page  # the name the account was added with, in the entry's details
    assert officer.post("/api/account/name", json={"display_name": "   "}).json()["display_name"] is None
    assert '<a class="who" href="/account">王警官 (审核员)</a>' in officer.get("/queue").text  # blank: the user name again
    decomposed = admin.post("/api/users", json={"username": "Ame\u0301lie", "display_name": "Ame\u0301lie 警官",
                                                "password": "amelie-password", "role": "reviewer"}).json()
    assert decomposed["username"] == "Am\u00e9lie" and decomposed["display_name"] == "Am\u00e9lie 警官"  # stored NFC, as typed elsewhere
    assert "Am\u00e9lie 警官" in _form_login(app, "Ame\u0301lie", "amelie-password")[1]  # either form logs in


@pytest.mark.parametrize(("language", "too_long", "invisible"), [
    ("zh-CN", "名称最多 64 个字符（当前 70 个）", "名称不能包含控制字符或不可见字符"),
    ("en", "a name has at most 64 characters (this one has 70)", "a name cannot contain control or invisible characters"),
])
def test_bad_names_are_refused_in_the_officers_language(app, language, too_long, invisible):
    from .officers import login as desk_login

    admin = desk_login(app, "ada", language=language)
    bob = admin.get("/api/users").json()[1]
    for path, body in (("/api/users", {"username": "新人", "password": "a-long-password", "role": "reviewer", "display_name": "王" * 70}),
                       (f"/api/users/{bob['id']}/name", {"display_name": "王" * 70}), ("/api/account/name", {"display_name": "王" * 70})):
        refused = admin.post(path, json=body)
        assert refused.status_code == 422 and too_long in refused.json()["detail"], (path, refused.text)
    for name in ("王\u202e警官", "王\x07警官", "王\u200b警官"):
        refused = admin.post("/api/users", json={"username": name, "password": "a-long-password", "role": "reviewer"})
        assert refused.status_code == 422 and invisible in refused.json()["detail"], (repr(name), refused.text)
        assert admin.post("/api/account/name", json={"display_name": name}).json()["detail"].endswith(invisible)
    _, page = _form_login(app, "王\x07警官", "a-long-password", language)  # the log-in form answers with its page, not JSON
    assert ("用户名或密码错误" if language == "zh-CN" else "wrong user name or password") in page and "<form" in page


def test_errors_on_pages_are_pages_in_chinese_and_the_api_keeps_json(app):
    from .officers import login as desk_login

    reviewer = desk_login(app, "alice", language="zh-CN")
    for path, status, words in (("/no-such-page", 404, "未找到该页面"), ("/admin/users", 403, "无权操作"), ("/audit", 403, "无权操作"),
                                ("/cases/not-a-number", 422, "无法使用")):
        page = reviewer.get(path)
        assert page.status_code == status and page.headers["content-type"].startswith("text/html"), path
        assert '<html lang="zh-CN">' in page.text and words in page.text and '"detail"' not in page.text, path
    for path, status in (("/api/no-such-thing", 404), ("/api/users", 403), ("/api/cases/not-a-number", 422)):
        answer = reviewer.get(path)
        assert answer.status_code == status and answer.headers["content-type"] == "application/json", path
        assert all("\u4e00" <= c <= "\u9fff" for c in answer.json()["detail"][:1]), answer.json()  # in Chinese too
    del reviewer.headers["X-CSRF-Token"]  # a form from another site: the session cookie goes along, the token does not
    forged = reviewer.post("/account/language", data={"lang": "en", "next": "/account", "csrf": "forged"})
    assert forged.status_code == 403 and forged.headers["content-type"].startswith("text/html") and "安全令牌" in forged.text
    assert '<html lang="zh-CN">' in reviewer.get("/account").text  # nothing changed


def test_an_officer_picks_their_language_on_the_account_page(app):
    from .officers import login as desk_login

    officer = desk_login(app, "alice", language="zh-CN")
    page = officer.get("/account").text
    assert '<form method="post" action="/account/language"' in page and '<option value="en">English</option>' in page
    token = officer.headers["X-CSRF-Token"]
    chosen = officer.post("/account/language", data={"lang": "en", "next": "/account", "csrf": token}, follow_redirects=False)
    assert chosen.status_code == 303 and chosen.headers["location"] == "/account"
    assert '<html lang="en">' in officer.get("/account").text  # kept with the account, whatever the browser asks for
    assert '<html lang="en">' in desk_login(app, "alice", language="zh-CN").get("/queue").text  # and in a new session
    refused = officer.post("/account/language", data={"lang": "fr", "next": "/account", "csrf": token})
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")
    officer.post("/account/language", data={"lang": "zh_CN", "next": "/account", "csrf": token})
    assert '<html lang="zh-CN">' in officer.get("/account").text


# --- the users page in Chromium ------------------------------------------------------------------


@pytest.fixture()
def review(ctx):
    """This file's empty deployment, under the name the browser tests' server serves."""
    return ctx


def test_an_admin_adds_and_renames_wang_on_the_users_page_in_chinese(ctx, server, browser):  # noqa: F811 - the fixtures imported here
    base, _ = server
    admin = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 900})
    log_in(admin, base, "ada")
    admin.goto(f"{base}/admin/users")
    form = admin.locator("#user-form")
    form.locator("input[name=username]").fill("王\u202e警官")  # a hidden direction mark: refused, and said in Chinese
    form.locator("input[name=password]").fill("王警官-password")
    form.locator("button").click()
    _wait_until(admin, "document.getElementById('flash').textContent.includes('名称不能包含控制字符或不可见字符')")
    form.locator("input[name=username]").fill("王警官")
    form.locator("input[name=display_name]").fill("王警官（湖滨中队）")
    form.locator("button").click()
    row = admin.locator("#users tr[data-name='王警官（湖滨中队）']")
    row.wait_for()
    row.locator("form.user-name input").fill("王建国")
    row.locator("form.user-name button").click()
    _wait_until(admin, "document.getElementById('flash').textContent === '王警官：显示名称已保存'")
    admin.locator("#users tr[data-name='王建国']").wait_for()  # the page reloads with the new name
    wang = browser.new_page(locale="zh-CN")
    log_in(wang, base, "王警官")
    assert wang.locator("nav .who").inner_text() == "王建国 (审核员)"
    admin.goto(f"{base}/audit?target=王警官")
    assert admin.locator("#audit td", has_text="login.ok").count() == 1
    assert admin.locator("#audit tr", has_text="login.ok").locator("td").nth(2).inner_text() == "王建国 王警官"
