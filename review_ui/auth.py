"""Officers' accounts: argon2 passwords, server-side sessions with a CSRF token, log-in throttling.

Log-in throttling slows guessing without letting a guesser lock real officers out:

* How long a try must wait (back-off per name and address, a ceiling per address) is
  ``throttle.py``'s rule.
* Check and record are one serialised step. The attempt is inserted as a failure *before* the
  counts are read, in its own committed transaction: the insert takes SQLite's write lock (in
  PostgreSQL an advisory transaction lock), so concurrent tries queue and each sees the tries
  before it, and N parallel guesses cannot slip through a limit of 5. The password is verified
  after that commit, without holding the lock, and the attempt is then marked as a success if it
  was one. A throttled try removes its row (a refusal is not a failure: it would otherwise extend
  the wait forever) and is audited as ``login.throttled`` in that same committed transaction, so
  no rollback elsewhere erases it.
* Every try that is not throttled runs exactly one argon2 verification, against a dummy hash for
  unknown or invalid names, so the answer time does not tell whether an account exists.

Sessions end 12 hours after log-in or after ``IDLE_MINUTES`` without a request, whichever comes
first. Log-out ends that session; "log out everywhere", disabling an account, changing its role
and changing its password end all of the account's sessions.
"""
from __future__ import annotations

import functools
import hashlib
import math
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from nonsite.evidence.audit import record
from nonsite.evidence.schema import login_attempts, sessions, users

from .i18n import Text
from .throttle import aware as _aware  # noqa: I001
from .throttle import wait_seconds

ROLES = ("reviewer", "supervisor", "admin")
SESSION_HOURS = 12
IDLE_MINUTES = 30
TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most once a minute per session, not on every request
MAX_NAME = 64  # the users.username column
MIN_PASSWORD = 10
MAX_PASSWORD = 256

_PG_LOCK = 0x6E6F6E73  # the advisory lock that serialises log-in checks in PostgreSQL ("nons")

_hasher = PasswordHasher()


class AuthError(Exception):
    """Log-in refused; the message is safe to show."""


class Throttled(AuthError):
    """Too many failed log-ins for this name from this address, or from this address altogether."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(Text("too many failed log-ins; try again in {seconds} seconds", seconds=retry_after) if retry_after < 120
                         else Text("too many failed log-ins; try again in {minutes} minutes", minutes=math.ceil(retry_after / 60)))


class AccountError(ValueError):
    """An account change that is refused; the message says why and is safe to show."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    display_name: str | None = None  # 王警官 on pages and papers; the user name when unset
    locale: str | None = None  # the officer's chosen language; None: the browser's

    @property
    def shown(self) -> str:
        return self.display_name or self.username

    def can(self, role: str) -> bool:
        """Roles are ranked: a supervisor may do what a reviewer may, an admin what both may."""
        return ROLES.index(self.role) >= ROLES.index(role)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# --- names and passwords ------------------------------------------------------------------------

# Control, format (zero-width, bidi overrides), surrogate, private and unassigned characters, and
# line breaks: none belongs in a name shown in tables, logs and court papers.
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def clean_username(name: str) -> str:
    """The name as stored: NFC-normalised and trimmed, 1 to 64 characters, no control characters.

    Any script is allowed (王警官). Raises ValueError naming what is wrong.
    """
    if any(unicodedata.category(c) == "Cs" for c in name):
        raise ValueError(Text("a name cannot contain unpaired surrogate characters"))
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise ValueError(Text("a name cannot be empty or blank"))
    if len(name) > MAX_NAME:
        raise ValueError(Text("a name has at most {limit} characters (this one has {length})", limit=MAX_NAME, length=len(name)))
    if any(unicodedata.category(c) in _BAD_CATEGORIES for c in name):
        raise ValueError(Text("a name cannot contain control or invisible characters"))
    return name


def check_password(password: str) -> str:
    """A new password: 10 to 256 characters of real text. Raises ValueError naming what is wrong."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(Text("a password needs at least {count} characters", count=MIN_PASSWORD))
    if len(password) > MAX_PASSWORD:
        raise ValueError(Text("a password has at most {count} characters", count=MAX_PASSWORD))
    if any(unicodedata.category(c) == "Cs" for c in password):
        raise ValueError(Text("a password cannot contain unpaired surrogate characters"))
    return password


def _hash(password: str) -> str:
    return _hasher.hash(check_password(password))


def _login_key(name: str) -> tuple[str, bool]:
    """What a log-in try is recorded and throttled under, and whether the name could be an account.

    An invalid name (too long, blank, control characters) is recorded cut to the column's 64
    printable characters, so nobody can write a megabyte into the audit log by logging in.
    """
    try:
        return clean_username(name), True
    except ValueError:
        printable = "".join(c if unicodedata.category(c) not in _BAD_CATEGORIES else "?" for c in name.strip())
        return printable[:MAX_NAME] or "?", False


@functools.cache
def _dummy_hash() -> str:
    """A hash with the real parameters, verified for unknown names so they cost what known ones do."""
    return _hasher.hash(secrets.token_urlsafe(24))


def _verify(stored: str | None, password: str) -> bool:
    """One argon2 verification, whatever the input: unknown users and overlong passwords included."""
    candidate = password.encode("utf-8", "surrogatepass")
    if len(password) > MAX_PASSWORD:
        stored, candidate = None, candidate[:MAX_PASSWORD]
    try:
        return _hasher.verify(stored or _dummy_hash(), candidate) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


# --- accounts -----------------------------------------------------------------------------------


def add_user(engine: Engine, username: str, password: str, role: str, actor: str = "cli", display_name: str | None = None) -> User:
    if role not in ROLES:
        raise ValueError(Text("role must be one of {roles}", roles=", ".join(ROLES)))
    username = clean_username(username)
    display_name = clean_username(display_name) if display_name and display_name.strip() else None
    password_hash = _hash(password)
    try:
        with engine.begin() as conn:
            user_id = conn.execute(insert(users).values(
                username=username, password_hash=password_hash, role=role, active=True, created_at=_now(), display_name=display_name,
            )).inserted_primary_key[0]
            twins = [n for n in conn.execute(select(users.c.username).where(users.c.id != user_id)).scalars()
                     if n.casefold() == username.casefold()]
            if twins:
                raise AccountError(Text("user {name} already exists; names differing only in case would be confused", name=twins[0]))
            record(conn, actor, "user.add", username, {"role": role, "display_name": display_name})
    except IntegrityError as exc:
        raise AccountError(Text("user {name} already exists", name=username)) from exc
    return User(user_id, username, role, display_name)


def set_display_name(engine: Engine, username: str, display_name: str, actor: str) -> str | None:
    """The name an officer is shown by on pages and papers (王警官), set by them or an admin; blank: their user name again."""
    shown = clean_username(display_name) if display_name.strip() else None
    with engine.begin() as conn:
        account = _account(conn, username)
        conn.execute(update(users).where(users.c.id == account["id"]).values(display_name=shown))
        record(conn, actor, "user.display_name", account["username"], {"display_name": shown})
    return shown


def set_team(engine: Engine, username: str, team: str, actor: str) -> str | None:
    """The team or grid (网格) an officer works in: their "my cases" hold its cases too; blank: no team."""
    chosen = unicodedata.normalize("NFC", team.strip())[:64] or None
    with engine.begin() as conn:
        account = _account(conn, username)
        conn.execute(update(users).where(users.c.id == account["id"]).values(team=chosen))
        record(conn, actor, "user.team", account["username"], {"team": chosen})
    return chosen


def shown_names(engine: Engine) -> dict[str, str]:
    """User name -> display name, for the accounts that have one: tables of who did what show 王警官, not wang.w."""
    with engine.connect() as conn:
        return dict(conn.execute(select(users.c.username, users.c.display_name).where(users.c.display_name.is_not(None))).all())


def list_users(engine: Engine) -> list[dict]:
    """Every account with its live session count (sessions not yet expired or idle)."""
    now = _now()
    live = (select(sessions.c.user_id, func.count().label("n")).where(and_(
        sessions.c.expires_at > now, sessions.c.last_seen_at > now - timedelta(minutes=IDLE_MINUTES),
    )).group_by(sessions.c.user_id).subquery())
    with engine.connect() as conn:
        rows = conn.execute(
            select(users.c.id, users.c.username, users.c.display_name, users.c.role, users.c.active, users.c.team,
                   func.coalesce(live.c.n, 0).label("sessions"))
            .outerjoin(live, live.c.user_id == users.c.id).order_by(users.c.username)
        ).mappings()
        return [dict(r) for r in rows]


def username_of(engine: Engine, user_id: int) -> str:
    """The name of account ``user_id``; LookupError if there is none."""
    with engine.connect() as conn:
        name = conn.execute(select(users.c.username).where(users.c.id == user_id)).scalar()
    if name is None:
        raise LookupError(Text("no user {name}", name=user_id))
    return name


def _account(conn: Connection, username: str) -> dict:
    """Lock and read one account (the no-op update takes the write lock before the read)."""
    name = _login_key(username)[0]
    conn.execute(update(users).where(users.c.username == name).values(active=users.c.active))
    row = conn.execute(select(users).where(users.c.username == name)).mappings().first()
    if row is None:
        raise LookupError(Text("no user {name}", name=name))
    return dict(row)


def _end_sessions(conn: Connection, user_id: int) -> int:
    return conn.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount


def _other_admins(conn: Connection, user_id: int) -> int:
    return conn.execute(select(func.count()).select_from(users).where(and_(
        users.c.role == "admin", users.c.active.is_(True), users.c.id != user_id,
    ))).scalar()


def set_active(engine: Engine, username: str, active: bool, actor: str) -> int:
    """Enable or disable an account; disabling ends its sessions. Returns the sessions ended.

    The last active admin cannot be disabled: nobody could manage accounts in the UI any more.
    """
    with engine.begin() as conn:
        account = _account(conn, username)
        if not active and account["role"] == "admin" and account["active"] and not _other_admins(conn, account["id"]):
            raise AccountError(Text("{name} is the last active admin; make another admin first", name=account["username"]))
        conn.execute(update(users).where(users.c.id == account["id"]).values(active=active))
        ended = 0 if active else _end_sessions(conn, account["id"])
        record(conn, actor, "user.enable" if active else "user.disable", account["username"], {"sessions_ended": ended})
    return ended


def set_role(engine: Engine, username: str, role: str, actor: str) -> int:
    """Change an account's role and end its sessions (they were granted under the old role)."""
    if role not in ROLES:
        raise AccountError(Text("role must be one of {roles}", roles=", ".join(ROLES)))
    with engine.begin() as conn:
        account = _account(conn, username)
        if account["role"] == "admin" and role != "admin" and account["active"] and not _other_admins(conn, account["id"]):
            raise AccountError(Text("{name} is the last active admin; make another admin first", name=account["username"]))
        conn.execute(update(users).where(users.c.id == account["id"]).values(role=role))
        ended = _end_sessions(conn, account["id"])
        record(conn, actor, "user.role", account["username"], {"from": account["role"], "to": role, "sessions_ended": ended})
    return ended


def set_password(engine: Engine, username: str, password: str, actor: str) -> int:
    """Set a new password and end every session of the account. Returns the sessions ended."""
    password_hash = _hash(password)  # before the transaction: argon2 takes a while, the write lock should not
    with engine.begin() as conn:
        account = _account(conn, username)
        conn.execute(update(users).where(users.c.id == account["id"]).values(password_hash=password_hash))
        ended = _end_sessions(conn, account["id"])
        record(conn, actor, "user.password", account["username"], {"sessions_ended": ended})
    return ended


def end_sessions(engine: Engine, username: str, actor: str) -> int:
    """Log an account out everywhere (a lost phone, a shared terminal). Returns the sessions ended."""
    with engine.begin() as conn:
        account = _account(conn, username)
        ended = _end_sessions(conn, account["id"])
        record(conn, actor, "user.logout_everywhere", account["username"], {"sessions_ended": ended})
    return ended


def change_own_password(engine: Engine, user: User, current: str, new: str, ip: str) -> int:
    """An officer's own change: the current password is checked like a log-in (throttled the same
    way, so a stolen session cannot guess it), then every session of the account ends."""
    check_password(new)
    _authenticate(engine, user.username, current, ip, purpose="reauth")
    return set_password(engine, user.username, new, actor=user.username)


# --- log-in and sessions ------------------------------------------------------------------------


def _reserve(engine: Engine, key: str, ip: str) -> int:
    """Record the try as a failure, then check the counts: one committed, serialised step.

    Returns the attempt's id; raises Throttled (after committing the refusal's audit entry).
    """
    now = _now()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        attempt = conn.execute(insert(login_attempts).values(username=key, ip=ip[:64], at=now, ok=False)).inserted_primary_key[0]
        wait = wait_seconds(conn, key, ip[:64], now, attempt)
        if wait:
            conn.execute(delete(login_attempts).where(login_attempts.c.id == attempt))
            record(conn, key, "login.throttled", key, {"ip": ip[:64], "retry_after": wait})
    if wait:
        raise Throttled(wait)
    return attempt


def _authenticate(engine: Engine, username: str, password: str, ip: str, purpose: str = "login",
                  session: tuple[str, str] | None = None) -> User:
    """Throttle, verify and record one try; with ``session`` (token digest, CSRF), start it on success."""
    key, valid = _login_key(username)
    attempt = _reserve(engine, key, ip)
    row = None
    if valid:
        with engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == key)).mappings().first()
    verified = _verify(row["password_hash"] if row else None, password)
    ok = verified and bool(row["active"])
    action = f"{purpose}.ok" if ok else f"{purpose}.disabled" if verified else f"{purpose}.failed"
    now = _now()
    with engine.begin() as conn:
        conn.execute(update(login_attempts).where(login_attempts.c.id == attempt).values(ok=ok))
        record(conn, key, action, key, {"ip": ip[:64]})
        if ok and session is not None:
            conn.execute(delete(sessions).where(and_(sessions.c.user_id == row["id"], or_(
                sessions.c.expires_at < now, sessions.c.last_seen_at < now - timedelta(minutes=IDLE_MINUTES)))))
            conn.execute(insert(sessions).values(token_sha256=session[0], user_id=row["id"], csrf=session[1],
                                                 expires_at=now + timedelta(hours=SESSION_HOURS), last_seen_at=now))
        if ok and _hasher.check_needs_rehash(row["password_hash"]):
            conn.execute(update(users).where(users.c.id == row["id"]).values(password_hash=_hasher.hash(password)))
    if verified and not ok:
        raise AuthError(Text("this account is disabled; ask an administrator"))
    if not ok:
        raise AuthError(Text("wrong user name or password") if purpose == "login" else Text("wrong current password"))
    return User(row["id"], row["username"], row["role"])


def log_in(engine: Engine, username: str, password: str, ip: str) -> tuple[str, str, User]:
    """A new session token and its CSRF token; raises AuthError or Throttled."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    user = _authenticate(engine, username, password, ip, session=(_digest(token), csrf))
    return token, csrf, user


def session_user(engine: Engine, token: str | None) -> tuple[User, str] | None:
    """The user and CSRF token of a live session, or None (unknown, expired, idle, or account disabled)."""
    if not token:
        return None
    digest = _digest(token)
    with engine.connect() as conn:
        row = conn.execute(
            select(users.c.id, users.c.username, users.c.role, users.c.active, users.c.display_name, users.c.locale,
                   sessions.c.csrf, sessions.c.expires_at, sessions.c.last_seen_at)
            .join(sessions, sessions.c.user_id == users.c.id).where(sessions.c.token_sha256 == digest)
        ).mappings().first()
    now = _now()
    if row is None or not row["active"] or _aware(row["expires_at"]) < now:
        return None
    seen = _aware(row["last_seen_at"]) if row["last_seen_at"] else None
    if seen is None or seen < now - timedelta(minutes=IDLE_MINUTES):
        return None
    if now - seen > TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(update(sessions).where(sessions.c.token_sha256 == digest).values(last_seen_at=now))
    return User(row["id"], row["username"], row["role"], row["display_name"], row["locale"]), row["csrf"]


def set_locale(engine: Engine, user: User, locale: str) -> None:
    """The officer's own language for the desk."""
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user.id).values(locale=locale))


def log_out(engine: Engine, token: str, user: User) -> None:
    """End this session only."""
    with engine.begin() as conn:
        conn.execute(delete(sessions).where(sessions.c.token_sha256 == _digest(token)))
        record(conn, user.username, "logout", user.username)


def log_out_everywhere(engine: Engine, user: User) -> int:
    """End every session of the user, this one included. Returns how many ended."""
    return end_sessions(engine, user.username, actor=user.username)


def case_rows(engine: Engine, table, case_id: int, leave_out: str, **officers) -> list[dict]:
    """A case's rows of ``table`` in order, without the ``leave_out`` column (a stored picture or PDF), with the
    user name of each officer column: ``case_rows(..., issuer=table.c.issued_by)`` adds ``issuer``."""
    aliases = {name: users.alias(name) for name in officers}
    query = select(*(c for c in table.c if c.name != leave_out), *(a.c.username.label(name) for name, a in aliases.items()))
    for name, column in officers.items():
        query = query.outerjoin(aliases[name], aliases[name].c.id == column)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query.where(table.c.case_id == case_id).order_by(table.c.id)).mappings()]
