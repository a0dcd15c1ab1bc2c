"""How long a log-in try must wait: back-off per (name, address) and a ceiling per address.

* Failures are counted per (user name, address) pair. The first ``FREE_FAILURES`` cost nothing;
  after that the pair waits ``FIRST_DELAY``, doubling with every further failure up to
  ``MAX_DELAY``, counted from its last failure. A success forgives the pair's failures, and
  failures older than ``PAIR_MEMORY`` are forgotten. There is no account lock: someone guessing
  an officer's password from one address does not stop that officer logging in from another.
* An address has a ceiling of ``ADDRESS_CEILING`` failures in ``ADDRESS_WINDOW`` across all names
  (password spraying). Many officers share the bureau's NAT address, so a pair that logged in
  successfully from that address within ``KNOWN_PAIR`` is exempt from the ceiling.

The caller (``auth``) records the try before asking, in one serialised transaction, so
concurrent tries each see the ones before them.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from nonsite.evidence.schema import login_attempts

FREE_FAILURES = 5  # per (name, address) pair before back-off starts
FIRST_DELAY = timedelta(seconds=30)  # after the 5th failure; doubles with each further one
MAX_DELAY = timedelta(minutes=15)
PAIR_MEMORY = timedelta(hours=24)  # older failures of a pair are forgotten
ADDRESS_CEILING = 50  # failures from one address, across all names, within ADDRESS_WINDOW
ADDRESS_WINDOW = timedelta(minutes=15)
KNOWN_PAIR = timedelta(days=30)  # a pair that logged in within this is exempt from the address ceiling


def aware(value: datetime) -> datetime:
    """Times read back from SQLite lose their zone; they were written in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def wait_seconds(conn: Connection, key: str, ip: str, now: datetime, attempt: int) -> int:
    """Seconds this try must wait (0: go ahead). Pending tries of others count as failures."""
    pair = and_(login_attempts.c.username == key, login_attempts.c.ip == ip, login_attempts.c.id != attempt)
    last_ok = conn.execute(select(login_attempts.c.id, login_attempts.c.at).where(and_(pair, login_attempts.c.ok.is_(True)))
                           .order_by(login_attempts.c.id.desc()).limit(1)).first()
    counted = [pair, login_attempts.c.ok.is_(False), login_attempts.c.at > now - PAIR_MEMORY]
    if last_ok is not None:
        counted.append(login_attempts.c.id > last_ok.id)  # tries made after the pair's last success
    failures = conn.execute(select(login_attempts.c.at).where(and_(*counted)).order_by(login_attempts.c.at)).scalars().all()
    if len(failures) >= FREE_FAILURES:
        delay = min(FIRST_DELAY * 2 ** (len(failures) - FREE_FAILURES), MAX_DELAY)
        until = aware(failures[-1]) + delay
        if until > now:
            return max(1, math.ceil((until - now).total_seconds()))
    if last_ok is not None and aware(last_ok.at) > now - KNOWN_PAIR:
        return 0  # an officer who logs in from this address is not held back by a sprayer behind the same NAT
    spraying = conn.execute(select(login_attempts.c.at).where(and_(
        login_attempts.c.ip == ip, login_attempts.c.ok.is_(False), login_attempts.c.id != attempt,
        login_attempts.c.at > now - ADDRESS_WINDOW,
    )).order_by(login_attempts.c.at)).scalars().all()
    if len(spraying) >= ADDRESS_CEILING:
        until = aware(spraying[len(spraying) - ADDRESS_CEILING]) + ADDRESS_WINDOW
        return max(1, math.ceil((until - now).total_seconds()))
    return 0
