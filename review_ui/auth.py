"""Officers' accounts: argon2 passwords, server-side sessions with a CSRF token, log-in throttling."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from .audit import record
from .db import login_attempts, sessions, users

ROLES = ("reviewer", "supervisor", "admin")
SESSION_HOURS = 12
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
_hasher = PasswordHasher()


class AuthError(Exception):
    """Log-in refused; the message is safe to show."""


class Throttled(AuthError):
    """Too many failed log-ins for this name or address."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str

    def can(self, role: str) -> bool:
        """Roles are ranked: a supervisor may do what a reviewer may, an admin what both may."""
        return ROLES.index(self.role) >= ROLES.index(role)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def add_user(engine: Engine, username: str, password: str, role: str, actor: str = "cli") -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    try:
        with engine.begin() as conn:
            user_id = conn.execute(insert(users).values(
                username=username, password_hash=_hasher.hash(password), role=role, active=True, created_at=_now(),
            )).inserted_primary_key[0]
            record(conn, actor, "user.add", username, {"role": role})
    except IntegrityError as exc:
        raise ValueError(f"user {username!r} already exists") from exc
    return User(user_id, username, role)


def list_users(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(users.c.id, users.c.username, users.c.role, users.c.active).order_by(users.c.username)).mappings()]


def log_in(engine: Engine, username: str, password: str, ip: str) -> tuple[str, str, User]:
    """A new session token and its CSRF token; raises AuthError or Throttled."""
    since = _now() - FAILURE_WINDOW
    with engine.begin() as conn:
        failures = conn.execute(select(func.count()).select_from(login_attempts).where(and_(
            login_attempts.c.at >= since, login_attempts.c.ok.is_(False),
            (login_attempts.c.username == username) | (login_attempts.c.ip == ip),
        ))).scalar()
        if failures >= MAX_FAILURES:
            record(conn, username, "login.throttled", username, {"ip": ip})
            raise Throttled("too many failed log-ins; wait 15 minutes")
        row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
        ok = False
        if row is not None and row["active"]:
            try:
                ok = _hasher.verify(row["password_hash"], password)
            except (VerificationError, InvalidHashError):
                ok = False
        conn.execute(insert(login_attempts).values(username=username, ip=ip, at=_now(), ok=ok))
        record(conn, username, "login.ok" if ok else "login.failed", username, {"ip": ip})
    if not ok:
        raise AuthError("wrong user name or password")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(insert(sessions).values(
            token_sha256=hashlib.sha256(token.encode()).hexdigest(), user_id=row["id"], csrf=csrf,
            expires_at=_now() + timedelta(hours=SESSION_HOURS),
        ))
    return token, csrf, User(row["id"], row["username"], row["role"])


def session_user(engine: Engine, token: str | None) -> tuple[User, str] | None:
    """The user and CSRF token of a live session, or None."""
    if not token:
        return None
    digest = hashlib.sha256(token.encode()).hexdigest()
    with engine.connect() as conn:
        row = conn.execute(
            select(users.c.id, users.c.username, users.c.role, users.c.active, sessions.c.csrf, sessions.c.expires_at)
            .join(sessions, sessions.c.user_id == users.c.id).where(sessions.c.token_sha256 == digest)
        ).mappings().first()
    if row is None or not row["active"] or _aware(row["expires_at"]) < _now():
        return None
    return User(row["id"], row["username"], row["role"]), row["csrf"]


def log_out(engine: Engine, token: str, user: User) -> None:
    with engine.begin() as conn:
        conn.execute(delete(sessions).where(sessions.c.token_sha256 == hashlib.sha256(token.encode()).hexdigest()))
        record(conn, user.username, "logout", user.username)


def set_active(engine: Engine, username: str, active: bool, actor: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.username == username).values(active=active))
        record(conn, actor, "user.enable" if active else "user.disable", username)
