"""Cases: confirmed packs about one subject, walked from 立案 to 结案 by the bureau's procedure.

open -> notified -> rectification_due -> rechecked -> closed, with a note at every step. Which moves
exist, the least role for each, which wait for a supervisor's approval (审批), which numbered
document each issues and how long each step may last come from the procedure configuration
(``procedure.py``); the server enforces it whatever a page offers:

* a supervisor (or admin) may act on any case, but never approves a step they asked for;
* a reviewer acts only on cases assigned to them or to their team (``NotYourCase``, a 403), and
  only takes the moves the procedure gives reviewers (``TransitionError``, a 422, names the role);
* a move that needs approval waits (``awaiting_approval``); approved, it is taken; sent back, the
  case stays where it was, with the supervisor's opinion on its timeline.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine

from nonsite.evidence import EvidenceStore
from nonsite.evidence.audit import record
from nonsite.evidence.outbox import emit
from nonsite.evidence.schema import case_approvals, case_events, case_packs, cases, packs_table, users

from . import documents
from .auth import User, case_rows
from .case_access import NotYourCase, TransitionError, may_touch  # noqa: F401 - NotYourCase: the routes' 403
from .i18n import Text
from .labels import label
from .procedure import Procedure, StepRule

STATES = ("open", "notified", "rectification_due", "rechecked", "closed")
REPEAT_LOOKBACK_DAYS = 365  # how far back an earlier case makes this one a repeat offence (a setting)
NOTICE_KINDS = ("warning", "penalty")
OUTCOMES = ("rectified", "penalised", "dismissed")


@dataclass(frozen=True)
class Transition:
    to_state: str
    note: str = ""
    notice_kind: str | None = None
    deadline: date | None = None
    recheck: str | None = None  # 'clear' or 'not_clear'
    outcome: str | None = None


@dataclass(frozen=True)
class Casework:
    """What walking a case needs beyond the database: the bureau's procedure, the evidence (documents print
    it), the bureau's zone (deadlines end at its midnight) and the bureau's own document templates."""

    engine: Engine
    store: EvidenceStore
    procedure: Procedure
    zone: ZoneInfo
    templates: Path | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def attach_to_case(conn: Connection, pack_id: str, user: User, procedure: Procedure) -> int:
    """Join the open case about the same subject, or open one (立案), due as the procedure says."""
    pack = conn.execute(select(packs_table).where(packs_table.c.pack_id == pack_id)).mappings().one()
    case_id = conn.execute(
        select(cases.c.id).where(and_(cases.c.subject_key == pack["subject_key"], cases.c.state != "closed"))
        .order_by(cases.c.id.desc()).limit(1)
    ).scalar()
    if case_id is None:
        now = _now()
        case_id = conn.execute(insert(cases).values(
            subject_key=pack["subject_key"], category=pack["category"], source_id=pack["source_id"],
            place=pack["shop_name"] or pack["zone_id"], state="open", assignee_id=user.id,
            due_at=procedure.due_at(pack["category"], "open", now), created_at=now, updated_at=now,
        )).inserted_primary_key[0]
        conn.execute(insert(case_events).values(case_id=case_id, at=now, user_id=user.id, from_state=None,
                                                to_state="open", note="", details={"pack_id": pack_id}))
        record(conn, user.username, "case.open", f"case:{case_id}", {"pack_id": pack_id})
        emit(conn, "case.step", f"case:{case_id}", {"case_id": case_id, "from": None, "to": "open", "pack_id": pack_id})
    conn.execute(insert(case_packs).values(case_id=case_id, pack_id=pack_id))
    record(conn, user.username, "case.attach", f"case:{case_id}", {"pack_id": pack_id})
    return case_id


@dataclass(frozen=True)
class Party:
    """Who a case is against, as the law counts repeat offences: a shop by its licence, a vehicle by its plate."""

    kind: str  # 'licence', 'plate', 'site' (a watched plot or a shop without a licence), or 'unidentified'
    value: str | None

    @property
    def identified(self) -> bool:
        return self.kind != "unidentified"


def party_of(conn: Connection, case_id: int) -> Party:
    """The party the case's packs name. A vehicle whose plate was not read is *unidentified*: an officer
    must identify it by hand, and it is neither a first nor a repeat offence until then (a tracker's
    id is not a person)."""
    rows = conn.execute(select(packs_table.c.shop_licence, packs_table.c.plate, packs_table.c.category, packs_table.c.subject_key)
                        .join(case_packs, case_packs.c.pack_id == packs_table.c.pack_id).where(case_packs.c.case_id == case_id)).all()
    if licence := next((r.shop_licence for r in rows if r.shop_licence), None):
        return Party("licence", licence)
    if plate := next((r.plate for r in rows if r.plate), None):
        return Party("plate", plate)
    if rows and rows[0].category != "illegal_parking":
        return Party("site", rows[0].subject_key)
    return Party("unidentified", None)


def earlier_cases(engine: Engine, case_id: int, lookback_days: int) -> tuple[Party, list[dict]]:
    """Cases against the same party opened within ``lookback_days`` before this one, not closed as
    不予处罚 (dismissed): what makes this a repeat offence (首违不罚 needs none). Counted in cases, not
    packs: ten photos of one stall are one offence."""
    with engine.connect() as conn:
        party = party_of(conn, case_id)
        if not party.identified:
            return party, []
        opened = conn.execute(select(cases.c.created_at).where(cases.c.id == case_id)).scalar_one()
        column = {"licence": packs_table.c.shop_licence, "plate": packs_table.c.plate, "site": packs_table.c.subject_key}[party.kind]
        same = select(case_packs.c.case_id).join(packs_table, packs_table.c.pack_id == case_packs.c.pack_id).where(column == party.value)
        found = conn.execute(
            select(cases.c.id, cases.c.state, cases.c.outcome, cases.c.created_at, cases.c.place)
            .where(cases.c.id.in_(same), cases.c.id != case_id, cases.c.created_at <= opened,
                   cases.c.created_at >= opened - timedelta(days=lookback_days),
                   or_(cases.c.outcome.is_(None), cases.c.outcome != "dismissed"))
            .order_by(cases.c.created_at.desc())
        ).mappings().all()
    return party, [dict(r) for r in found]


def _check(case: dict, step: Transition, zone: ZoneInfo) -> dict:
    """The column changes a step's form makes; raises TransitionError naming what is missing."""
    target = step.to_state
    if target == "notified":
        if step.notice_kind not in NOTICE_KINDS:
            raise TransitionError(Text("a notice must be a warning or a penalty"))
        return {"notice_kind": step.notice_kind}
    if target == "rectification_due":
        if step.deadline is None:
            raise TransitionError(Text("rectification needs a deadline"))
        return {"deadline": datetime.combine(step.deadline, time(23, 59, 59), tzinfo=zone)}
    if target == "rechecked":
        if step.recheck not in ("clear", "not_clear") or not step.note.strip():
            raise TransitionError(Text("a re-check records whether the site is clear, with a note of what was seen"))
        return {}
    if target == "closed":
        if step.outcome not in OUTCOMES:
            raise TransitionError(Text("closing needs an outcome"))
        if not step.note.strip():
            raise TransitionError(Text("closing needs a reason in the note"))
        if step.outcome == "rectified" and case.get("last_recheck") != "clear":
            raise TransitionError(Text("a case closes as rectified only after a re-check found the site clear"))
        return {"outcome": step.outcome}
    if not step.note.strip():
        raise TransitionError(Text("reopening needs a reason in the note"))
    return {"outcome": None}


def _form(step: Transition) -> dict[str, str | None]:
    return {"notice_kind": step.notice_kind, "outcome": step.outcome, "recheck": step.recheck}


def _rule(procedure: Procedure, case: dict, step: Transition) -> StepRule:
    """The procedure's rule for this move, or a TransitionError saying why there is none."""
    state, target = case["state"], step.to_state
    if not any(rule.to == target for rule in procedure.moves_from(state)):
        raise TransitionError(Text("a case at step “{state}” cannot go to “{target}”", state=Text(label(state)), target=Text(label(target))))
    rule = procedure.rule_for(state, target, _form(step))
    if rule is None:
        chosen = Text(label(step.outcome or step.notice_kind or step.recheck or target))
        raise TransitionError(Text("the procedure does not allow “{choice}” from step “{state}”", choice=chosen, state=Text(label(state))))
    return rule


def _may_take(rule: StepRule, user: User) -> None:
    """A reviewer takes only the steps the procedure gives reviewers (whose case it is, ``may_touch`` decides)."""
    if not user.can("supervisor") and not user.can(rule.role):
        raise TransitionError(Text("this step needs the {role} role", role=Text(label(rule.role))))


def _pending(conn: Connection, case_id: int) -> dict | None:
    return conn.execute(select(case_approvals).where(case_approvals.c.case_id == case_id, case_approvals.c.approved.is_(None))
                        ).mappings().first()


def _last_recheck(conn: Connection, case_id: int) -> str | None:
    details = conn.execute(
        select(case_events.c.details).where(and_(case_events.c.case_id == case_id, case_events.c.to_state == "rechecked"))
        .order_by(case_events.c.id.desc()).limit(1)
    ).scalar()
    return (details or {}).get("recheck")


def transition(work: Casework, case_id: int, step: Transition, user: User) -> str:
    """Take one step, or ask for it where the procedure wants a supervisor's approval first.

    Returns ``"done"`` or ``"awaiting_approval"``."""
    with work.engine.begin() as conn:
        return take_step(conn, work, case_id, step, user)


def take_step(conn: Connection, work: Casework, case_id: int, step: Transition, user: User) -> str:
    """``transition`` inside the caller's transaction (a confirmed re-check and the step it makes commit together)."""
    case = may_touch(conn, case_id, user)
    rule = _rule(work.procedure, case, step)
    _may_take(rule, user)
    if _pending(conn, case_id) is not None:
        raise TransitionError(Text("case {case} has a step waiting for a supervisor's approval", case=case_id))
    changes = _check({**case, "last_recheck": _last_recheck(conn, case_id)}, step, work.zone)
    if rule.approval:
        conn.execute(insert(case_approvals).values(case_id=case_id, step=_step_record(step), requested_by=user.id,
                                                   requested_at=_now(), opinion=""))
        record(conn, user.username, "case.approval_request", f"case:{case_id}", _step_record(step))
        return "awaiting_approval"
    _apply(conn, work, case, rule, step, changes, user)
    return "done"


def _step_record(step: Transition) -> dict:
    return {k: v for k, v in {"to_state": step.to_state, "note": step.note, "notice_kind": step.notice_kind,
                              "deadline": step.deadline and step.deadline.isoformat(), "recheck": step.recheck,
                              "outcome": step.outcome}.items() if v}


def _apply(conn: Connection, work: Casework, case: dict, rule: StepRule, step: Transition, changes: dict, user: User,
           approval: dict | None = None) -> None:
    """Move the case, set when its new step is due, record it, issue the step's document and tell the outbox."""
    now = _now()
    due = changes.get("deadline") if step.to_state == "rectification_due" else work.procedure.due_at(case["category"], step.to_state, now)
    updated = conn.execute(
        update(cases).where(and_(cases.c.id == case["id"], cases.c.state == case["state"]))
        .values(state=step.to_state, updated_at=now, due_at=due, **changes)
    ).rowcount
    if updated != 1:
        raise TransitionError(Text("the case changed meanwhile; reload it"))
    details = {k: v for k, v in _step_record(step).items() if k not in ("to_state", "note")}
    if approval:
        details |= approval
    conn.execute(insert(case_events).values(case_id=case["id"], at=now, user_id=user.id, from_state=case["state"],
                                            to_state=step.to_state, note=step.note, details=details))
    record(conn, user.username, f"case.{step.to_state}", f"case:{case['id']}", {"from": case["state"], "note": step.note, **details})
    issued = None
    if rule.issues:
        issued = documents.issue(conn, work.store, work.procedure, case["id"], rule.issues, user, work.zone, now,
                                 _step_record(step), work.templates)
    emit(conn, "case.step", f"case:{case['id']}", {"case_id": case["id"], "from": case["state"], "to": step.to_state,
                                                   **details, **({"document": issued.number} if issued else {})})


def decide_approval(work: Casework, case_id: int, approval_id: int, approve: bool, opinion: str, user: User) -> None:
    """A supervisor's 审批 of a step asked for: approved, the step is taken; refused, the case stays where it was
    and the officer who asked reads the opinion. Four eyes: nobody approves their own request."""
    if not user.can("supervisor"):
        raise TransitionError(Text("only a supervisor approves case steps"))
    if not approve and not opinion.strip():
        raise TransitionError(Text("sending a step back needs the reason in the opinion"))
    with work.engine.begin() as conn:
        asked = conn.execute(select(case_approvals).where(case_approvals.c.id == approval_id, case_approvals.c.case_id == case_id)
                             ).mappings().first()
        if asked is None:
            raise LookupError(Text("no approval request {approval} in case {case}", approval=approval_id, case=case_id))
        if asked["approved"] is not None:
            raise TransitionError(Text("approval request {approval} was already decided", approval=approval_id))
        if work.procedure.four_eyes and asked["requested_by"] == user.id:
            raise TransitionError(Text("a supervisor does not approve a step they asked for: another supervisor must"))
        claimed = conn.execute(update(case_approvals).where(case_approvals.c.id == approval_id, case_approvals.c.approved.is_(None))
                               .values(approved=approve, decided_by=user.id, decided_at=_now(), opinion=opinion.strip())).rowcount
        if claimed != 1:
            raise TransitionError(Text("approval request {approval} was already decided", approval=approval_id))
        case = conn.execute(select(cases).where(cases.c.id == asked["case_id"])).mappings().one()
        record(conn, user.username, "case.approve" if approve else "case.approval_refused", f"case:{case['id']}",
               {"approval": approval_id, "opinion": opinion.strip(), "step": asked["step"]})
        if approve:
            step = _transition_of(asked["step"])
            rule = _rule(work.procedure, case, step)
            changes = _check({**case, "last_recheck": _last_recheck(conn, case["id"])}, step, work.zone)
            requester = conn.execute(select(users.c.username).where(users.c.id == asked["requested_by"])).scalar_one()
            _apply(conn, work, case, rule, step, changes, user, {"asked_by": requester, "approved_by": user.username})


def _transition_of(saved: dict) -> Transition:
    deadline = saved.get("deadline")
    return Transition(saved["to_state"], saved.get("note", ""), saved.get("notice_kind"), deadline and date.fromisoformat(deadline),
                      saved.get("recheck"), saved.get("outcome"))


def allowed_moves(work: Casework, case: dict, user: User, pending: bool) -> list[StepRule]:
    """What the case page offers this officer: the procedure's moves from the case's step that their role allows
    (none while a step waits for approval)."""
    if pending:
        return []
    return [rule for rule in work.procedure.moves_from(case["state"]) if user.can("supervisor") or user.can(rule.role)]


def assign(engine: Engine, case_id: int, username: str | None, team: str | None, user: User) -> None:
    """Dispatch a case to an officer, a team or grid (网格), or both."""
    if not user.can("supervisor"):
        raise TransitionError(Text("only a supervisor reassigns cases"))
    values: dict = {"updated_at": _now()}
    details: dict = {}
    with engine.begin() as conn:
        if username:
            assignee = conn.execute(select(users.c.id, users.c.active).where(users.c.username == username.strip())).first()
            if assignee is None:
                raise TransitionError(Text("no user {name}", name=username))
            if not assignee.active:
                raise TransitionError(Text("user {name} is disabled; assign the case to an active officer", name=username))
            values["assignee_id"], details["assignee"] = assignee.id, username.strip()
        if team is not None:
            values["team"] = details["team"] = unicodedata.normalize("NFC", team.strip())[:64] or None  # as set_team keeps it
        if len(values) == 1:
            raise TransitionError(Text("name an officer or a team to assign the case to"))
        if conn.execute(update(cases).where(cases.c.id == case_id).values(**values)).rowcount != 1:
            raise LookupError(Text("no case {case}", case=case_id))
        record(conn, user.username, "case.assign", f"case:{case_id}", details)


def _overdue(case: dict, now: datetime) -> bool:
    """Open and past its step's due time (what lists flag red and the ``overdue`` filter selects in SQL)."""
    return bool(case["due_at"] and case["state"] != "closed" and case["due_at"] < now)


def list_cases(engine: Engine, state: str | None = None, mine: User | None = None, overdue: bool = False,
               team: str | None = None) -> list[dict]:
    """Cases, those due first (overdue ones flagged), then the most recently moved; ``mine``: an officer's own
    and their team's; ``overdue``: open cases past their step's due time."""
    now = _now()
    waiting = select(case_approvals.c.case_id).where(case_approvals.c.approved.is_(None))
    query = (select(cases, users.c.username.label("assignee"), cases.c.id.in_(waiting).label("awaiting_approval"))
             .outerjoin(users, users.c.id == cases.c.assignee_id))
    if state:
        query = query.where(cases.c.state == state)
    if mine is not None:
        my_team = select(users.c.team).where(users.c.id == mine.id).scalar_subquery()
        query = query.where(or_(cases.c.assignee_id == mine.id, and_(cases.c.team.is_not(None), cases.c.team == my_team)))
    if team:
        query = query.where(cases.c.team == team)
    if overdue:
        query = query.where(cases.c.state != "closed", cases.c.due_at < now)
    query = query.order_by(cases.c.due_at.is_(None), cases.c.due_at, cases.c.updated_at.desc())
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        row["overdue"] = _overdue(row, now)
    return rows


def case_detail(engine: Engine, case_id: int, lookback_days: int = REPEAT_LOOKBACK_DAYS) -> dict | None:
    with engine.connect() as conn:
        case = conn.execute(
            select(cases, users.c.username.label("assignee")).outerjoin(users, users.c.id == cases.c.assignee_id).where(cases.c.id == case_id)
        ).mappings().first()
        if case is None:
            return None
        events = conn.execute(
            select(case_events, users.c.username).join(users, users.c.id == case_events.c.user_id)
            .where(case_events.c.case_id == case_id).order_by(case_events.c.id)
        ).mappings().all()
        packs = conn.execute(
            select(packs_table).join(case_packs, case_packs.c.pack_id == packs_table.c.pack_id)
            .where(case_packs.c.case_id == case_id).order_by(packs_table.c.threshold_at)
        ).mappings().all()
    approvals = case_rows(engine, case_approvals, case_id, "", requester=case_approvals.c.requested_by,
                          decider=case_approvals.c.decided_by)
    party, earlier = earlier_cases(engine, case_id, lookback_days)
    now = _now()
    case = dict(case)
    case["overdue"] = _overdue(case, now)
    pending = next((dict(a) for a in approvals if a["approved"] is None), None)
    return {"case": case, "events": [dict(e) for e in events], "packs": [dict(p) for p in packs],
            "party": {"kind": party.kind, "value": party.value}, "earlier_cases": earlier, "prior_confirmed": len(earlier),
            "lookback_days": lookback_days, "approvals": [dict(a) for a in approvals], "pending_approval": pending,
            "documents": documents.documents_of(engine, case_id)}
