"""Append-only, hash-chained audit log, anchored outside the database by signed checkpoints.

Each entry carries the hash of the one before it, so editing or removing an entry breaks the
links after it. Appends queue in the database on the single ``audit_head`` row, so two requests
(or two processes) never chain onto the same entry; ``prev_hash`` is unique besides, so a fork
could not commit anyway. Whoever can write the database could still cut the chain's end, or
rewrite it and recompute every hash: checkpoints of the head, signed and kept outside the
database (``checkpoints``), catch that for every entry up to the latest checkpoint. Decisions
and case steps are cross-checked against their entries, so deleting or forging either side shows.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from .checkpoints import Checkpoint, CheckpointReading, Checkpoints
from .hashing import canonical_json
from .schema import audit, audit_head, case_events, decisions, users

GENESIS = "0" * 64
HEAD = 1  # the id of audit_head's one row
# The review desk's case states (review_ui.cases.STATES): each step of a case is audited as case.<state>.
CASE_STEPS = ("open", "notified", "rectification_due", "rechecked", "closed")
CHECKPOINT_EVERY = 100

log = logging.getLogger(__name__)


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, target: str, details: dict) -> str:
    body = {"at": _stamp(at), "actor": actor, "action": action, "target": target, "details": details}
    return hashlib.sha256(prev_hash.encode() + canonical_json(body)).hexdigest()


def _stamp(at: datetime) -> str:
    """One text form of a time, whether the database gave it back with or without its zone."""
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).isoformat()


def record(conn: Connection, actor: str, action: str, target: str = "", details: dict | None = None) -> tuple[int, str]:
    """Append one entry inside the caller's transaction, so the entry and the change commit together.

    The head row is written before it is read: that takes SQLite's write lock, or the row's lock
    in PostgreSQL, until the caller commits, so the next append waits and then chains onto this
    one. Returns the entry's number and hash.
    """
    details = details or {}
    conn.execute(update(audit_head).where(audit_head.c.id == HEAD).values(seq=audit_head.c.seq))
    head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD)).one_or_none()
    if head is None:
        raise RuntimeError("the audit chain has lost its head row (table audit_head): the database was altered")
    at = datetime.now(timezone.utc)
    seq, digest = head.seq + 1, entry_hash(head.hash, at, actor, action, target, details)
    conn.execute(insert(audit).values(seq=seq, at=at, actor=actor, action=action, target=target, details=details,
                                      prev_hash=head.hash, hash=digest))
    conn.execute(update(audit_head).where(audit_head.c.id == HEAD).values(seq=seq, hash=digest))
    return seq, digest


def record_now(engine: Engine, actor: str, action: str, target: str = "", details: dict | None = None) -> None:
    """Append one entry on its own; once it is committed, checkpoint the head if one is due."""
    with engine.begin() as conn:
        seq, digest = record(conn, actor, action, target, details)
    anchoring = _anchors.get(engine)
    if anchoring is not None:
        anchoring.appended(seq, digest)


@dataclass
class _Anchor:
    """Checkpoints an engine's chain every ``every`` entries.

    Only committed heads are checkpointed (a rolled-back one would later read as a cut chain), so
    this runs after ``record_now`` commits; entries appended inside other transactions are
    covered by the next checkpoint after them.
    """

    checkpoints: Checkpoints
    every: int
    last_seq: int | None = None
    busy: threading.Lock = field(default_factory=threading.Lock)

    def appended(self, seq: int, digest: str) -> None:
        if not self.busy.acquire(blocking=False):
            return  # another request is writing a checkpoint right now
        try:
            if self.last_seq is None:
                self.last_seq = self.checkpoints.latest_seq()
            if seq - self.last_seq >= self.every:
                self.checkpoints.write(seq, digest)
                self.last_seq = seq
        except Exception as exc:  # the checkpoint store being down must not fail an officer's action
            self.last_seq = seq  # nor slow down every append after it: the next try comes ``every`` entries later
            log.warning("audit checkpoint at entry %d not written (%s); tried again %d entries later", seq, exc, self.every)
        finally:
            self.busy.release()


_anchors: weakref.WeakKeyDictionary[Engine, _Anchor] = weakref.WeakKeyDictionary()


def anchor(engine: Engine, checkpoints: Checkpoints, every: int = CHECKPOINT_EVERY) -> None:
    """From now on, checkpoint the chain of ``engine``'s database every ``every`` entries."""
    _anchors[engine] = _Anchor(checkpoints, every)


def checkpoint(engine: Engine, checkpoints: Checkpoints) -> Checkpoint:
    """Checkpoint the chain's last committed entry now (``nonsite audit checkpoint``)."""
    with engine.connect() as conn:
        last = conn.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)).first()
    return checkpoints.write(*(last or (0, GENESIS)))


@dataclass
class ChainReport:
    """Every problem found (not only the first), and what limits the proof without being a problem."""

    entries: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    anchor: Checkpoint | None = None  # the latest checkpoint the chain was checked against

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problem(self) -> str:
        return "\n".join(self.problems)


@dataclass
class _Walk:
    """What walking the entries in order found: the problems, the end, and the hashes checkpoints name."""

    entries: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    hashes: dict[int, str] = field(default_factory=lambda: {0: GENESIS})
    problems: list[str] = field(default_factory=list)


def verify_chain(engine: Engine, checkpoints: Checkpoints | None = None) -> ChainReport:
    """Check the links and hashes, the head row, the checkpoints, and decisions and case steps against their entries."""
    reading = checkpoints.read() if checkpoints is not None else CheckpointReading()
    with engine.connect() as conn:
        walk = _walk(conn, {c.seq for c in reading.checkpoints})
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == HEAD)).first()
        trails = _decision_problems(conn) + _case_step_problems(conn)
    report = ChainReport(walk.entries, [*reading.problems, *walk.problems], list(reading.warnings), reading.latest)
    report.problems += _head_problems(head, walk) + _checkpoint_problems(reading, walk) + trails
    if checkpoints is not None:
        report.warnings += _anchor_warnings(reading, walk, checkpoints)
    return report


def _walk(conn: Connection, vouched: set[int]) -> _Walk:
    walk = _Walk()
    for row in conn.execute(select(audit).order_by(audit.c.seq)).mappings():
        label = f"entry {row['seq']} ({row['action']} by {row['actor']} on {row['target']!r})"
        expected = walk.last_seq + 1
        if row["seq"] < expected:
            walk.problems.append(f"{label} is numbered before the chain's start (renumbered)")
        elif row["seq"] > expected:
            gap = f"entry {expected} is" if row["seq"] == expected + 1 else f"entries {expected}..{row['seq'] - 1} are"
            walk.problems.append(f"{gap} missing before {label} (removed)")
        elif row["prev_hash"] != walk.last_hash:
            walk.problems.append(f"{label}: link to the previous entry is broken (entries were reordered, or one "
                                 "was removed or inserted and renumbered)")
        if row["hash"] != entry_hash(row["prev_hash"], row["at"], row["actor"], row["action"], row["target"], row["details"]):
            walk.problems.append(f"{label}: content does not match its hash (edited)")
        if row["seq"] in vouched:
            walk.hashes[row["seq"]] = row["hash"]
        walk.entries += 1
        walk.last_seq, walk.last_hash = row["seq"], row["hash"]
    return walk


def _head_problems(head, walk: _Walk) -> list[str]:
    if head is None:
        return ["the chain's head row (table audit_head) is missing: the database was altered"]
    if (head.seq, head.hash) != (walk.last_seq, walk.last_hash):
        return [f"the chain's head row names entry {head.seq} ({head.hash[:12]}) but the chain ends at entry "
                f"{walk.last_seq} ({walk.last_hash[:12]}): entries were removed, added or rewritten around the log"]
    return []


def _checkpoint_problems(reading: CheckpointReading, walk: _Walk) -> list[str]:
    """One line for checkpoints beyond the chain's end, one for those whose entry differs (with how many)."""
    problems = []
    beyond = sorted((c for c in reading.checkpoints if c.seq > walk.last_seq), key=lambda c: c.seq)
    if beyond:
        problems.append(f"the chain ends at entry {walk.last_seq}, but the checkpoint of {beyond[-1].at} vouches for "
                        f"entry {beyond[-1].seq} ({len(beyond)} checkpoints lie beyond the end): entries were removed")
    differ = sorted((c for c in reading.checkpoints if c.seq <= walk.last_seq and walk.hashes.get(c.seq) != c.hash),
                    key=lambda c: c.seq)
    if differ:
        problems.append(f"entry {differ[0].seq} is not the entry the checkpoint of {differ[0].at} vouches for "
                        f"({len(differ)} checkpoints disagree): the chain was rewritten and its hashes recomputed")
    return problems


def _anchor_warnings(reading: CheckpointReading, walk: _Walk, checkpoints: Checkpoints) -> list[str]:
    latest = reading.latest
    if latest is None:
        return [f"no checkpoint in {checkpoints.describe()} yet: entries can be removed or rewritten with their hashes "
                "recomputed without a trace; run `nonsite audit checkpoint`"]
    if walk.last_seq > latest.seq:
        return [f"{walk.last_seq - latest.seq} entries after the latest checkpoint (entry {latest.seq}, {latest.at}) "
                "are protected only by the chain itself until the next checkpoint"]
    return []


def _trail_problems(kind: str, rows: Counter, entries: Counter) -> list[str]:
    """Rows of a table and their audit entries, matched one to one by (action, target, actor)."""
    return ([f"{kind} {action} on {target} by {actor} has no audit entry (written around the log, or its entry removed)"
             for action, target, actor in sorted((rows - entries).elements())]
            + [f"audit entry {action} on {target} by {actor} has no {kind} row (the row was deleted, or the entry forged)"
               for action, target, actor in sorted((entries - rows).elements())])


def _entries(conn: Connection, actions: list[str]) -> Counter:
    query = select(audit.c.action, audit.c.target, audit.c.actor).where(audit.c.action.in_(actions))
    return Counter(tuple(r) for r in conn.execute(query))


def _decision_problems(conn: Connection) -> list[str]:
    rows = conn.execute(select(decisions.c.decision, decisions.c.pack_id, users.c.username)
                        .join(users, users.c.id == decisions.c.user_id))
    decided = Counter((f"pack.{decision}", pack_id, username) for decision, pack_id, username in rows)
    return _trail_problems("decision", decided, _entries(conn, ["pack.confirm", "pack.reject"]))


def _case_step_problems(conn: Connection) -> list[str]:
    rows = conn.execute(select(case_events.c.to_state, case_events.c.case_id, users.c.username)
                        .join(users, users.c.id == case_events.c.user_id))
    steps = Counter((f"case.{state}", f"case:{case_id}", username) for state, case_id, username in rows)
    return _trail_problems("case event", steps, _entries(conn, [f"case.{state}" for state in CASE_STEPS]))


def entries(engine: Engine, actor: str | None = None, action: str | None = None, target: str | None = None,
            limit: int = 500) -> list[dict]:
    """The newest entries first, filtered by who, what and on which target."""
    query = select(audit).order_by(audit.c.id.desc()).limit(max(1, min(limit, 5000)))
    for column, value in (("actor", actor), ("action", action), ("target", target)):
        if value:
            query = query.where(getattr(audit.c, column) == value)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
