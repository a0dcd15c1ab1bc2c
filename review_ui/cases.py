"""Simple cases: confirmed packs about one subject, walked from notice to closure.

open -> notified -> rectification_due -> rechecked -> closed, with a note at every step. A case
can be dismissed early only with a reason, and only a supervisor reopens a closed one.

Who may take a step (``_may_act``), checked on the server whatever the page offers:

* a supervisor (or admin) may act on any case;
* a reviewer acts only on cases assigned to them (``NotYourCase``, a 403: it is not theirs to
  touch, whatever the step), and there may issue a warning, set a rectification deadline,
  record a re-check, close as rectified after a clear re-check, and dismiss a case that is still
  open: no notice has been served yet, so dismissing it only withdraws their own confirmation,
  which rejecting the pack would have done anyway;
* a penalty notice, closing as penalised, dismissing a case after a notice was served, and
  reopening a closed case need a supervisor: ``TransitionError`` (a 422) naming the role.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine

from nonsite.evidence.audit import record
from nonsite.evidence.schema import case_events, case_packs, cases, packs_table, users

from .auth import User
from .i18n import Text
from .labels import label

STATES = ("open", "notified", "rectification_due", "rechecked", "closed")
REPEAT_LOOKBACK_DAYS = 365  # how far back an earlier case makes this one a repeat offence (a setting)
NEXT = {
    "open": ("notified", "closed"),
    "notified": ("rectification_due", "closed"),
    "rectification_due": ("rechecked", "closed"),
    "rechecked": ("closed", "rectification_due"),
    "closed": ("open",),
}
NOTICE_KINDS = ("warning", "penalty")
OUTCOMES = ("rectified", "penalised", "dismissed")


class TransitionError(ValueError):
    """A case step that the workflow does not allow, with what is missing."""


class NotYourCase(TransitionError):
    """A reviewer acting on a case assigned to someone else (or to nobody)."""


@dataclass(frozen=True)
class Transition:
    to_state: str
    note: str = ""
    notice_kind: str | None = None
    deadline: date | None = None
    recheck: str | None = None  # 'clear' or 'not_clear'
    outcome: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def attach_to_case(conn: Connection, pack_id: str, user: User) -> int:
    """Join the open case about the same subject, or open one."""
    pack = conn.execute(select(packs_table).where(packs_table.c.pack_id == pack_id)).mappings().one()
    case_id = conn.execute(
        select(cases.c.id).where(and_(cases.c.subject_key == pack["subject_key"], cases.c.state != "closed"))
        .order_by(cases.c.id.desc()).limit(1)
    ).scalar()
    if case_id is None:
        case_id = conn.execute(insert(cases).values(
            subject_key=pack["subject_key"], category=pack["category"], source_id=pack["source_id"],
            place=pack["shop_name"] or pack["zone_id"], state="open", assignee_id=user.id,
            created_at=_now(), updated_at=_now(),
        )).inserted_primary_key[0]
        conn.execute(insert(case_events).values(case_id=case_id, at=_now(), user_id=user.id, from_state=None,
                                                to_state="open", note=f"opened from pack {pack_id}", details={}))
        record(conn, user.username, "case.open", f"case:{case_id}", {"pack_id": pack_id})
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


def _check(case: dict, step: Transition, user: User) -> dict:
    """The column changes a valid step makes; raises TransitionError naming what is wrong."""
    state, target = case["state"], step.to_state
    if target not in NEXT.get(state, ()):
        raise TransitionError(Text("a case at step “{state}” cannot go to “{target}”", state=Text(label(state)), target=Text(label(target))))
    if target == "notified":
        if step.notice_kind not in NOTICE_KINDS:
            raise TransitionError(Text("a notice must be a warning or a penalty"))
        return {"notice_kind": step.notice_kind}
    if target == "rectification_due":
        if step.deadline is None:
            raise TransitionError(Text("rectification needs a deadline"))
        return {"deadline": datetime.combine(step.deadline, time(23, 59), tzinfo=timezone.utc)}
    if target == "rechecked":
        if step.recheck not in ("clear", "not_clear") or not step.note.strip():
            raise TransitionError(Text("a re-check records whether the site is clear, with a note of what was seen"))
        return {}
    if target == "closed":
        if step.outcome not in OUTCOMES:
            raise TransitionError(Text("closing needs an outcome"))
        if not step.note.strip():
            raise TransitionError(Text("closing needs a reason in the note"))
        if state != "rechecked" and step.outcome != "dismissed":
            raise TransitionError(Text("only a re-checked case can close as “{outcome}”; dismiss it, or re-check first", outcome=Text(label(step.outcome))))
        if step.outcome == "rectified" and case.get("last_recheck") != "clear":
            raise TransitionError(Text("a case closes as rectified only after a re-check found the site clear"))
        return {"outcome": step.outcome}
    if not step.note.strip():
        raise TransitionError(Text("reopening needs a reason in the note"))
    return {"outcome": None}


def _may_act(conn: Connection, case: dict, step: Transition, user: User) -> None:
    """Raise NotYourCase or TransitionError when ``user``'s role does not allow ``step`` on ``case``."""
    if user.can("supervisor"):
        return
    if case["assignee_id"] != user.id:
        assignee = conn.execute(select(users.c.username).where(users.c.id == case["assignee_id"])).scalar()
        raise NotYourCase(Text("case {case} is assigned to {officer}: a reviewer acts only on cases assigned to them; "
                               "a supervisor can act on it or reassign it", case=case["id"], officer=assignee or Text("nobody")))
    needs = None
    if step.to_state == "notified" and step.notice_kind == "penalty":
        needs = Text("a penalty notice needs the supervisor role (a reviewer may issue a warning)")
    elif step.to_state == "closed" and step.outcome == "penalised":
        needs = Text("closing a case as penalised needs the supervisor role")
    elif step.to_state == "closed" and step.outcome == "dismissed" and case["state"] != "open":
        needs = Text("dismissing a case after a notice was served needs the supervisor role (a reviewer may dismiss only an open case)")
    elif case["state"] == "closed" and step.to_state == "open":
        needs = Text("only a supervisor reopens a closed case")
    if needs:
        raise TransitionError(needs)


def transition(engine: Engine, case_id: int, step: Transition, user: User) -> None:
    with engine.begin() as conn:
        case = conn.execute(select(cases).where(cases.c.id == case_id)).mappings().first()
        if case is None:
            raise LookupError(Text("no case {case}", case=case_id))
        _may_act(conn, case, step, user)
        last_recheck = conn.execute(
            select(case_events.c.details).where(and_(case_events.c.case_id == case_id, case_events.c.to_state == "rechecked"))
            .order_by(case_events.c.id.desc()).limit(1)
        ).scalar()
        changes = _check({**case, "last_recheck": (last_recheck or {}).get("recheck")}, step, user)
        updated = conn.execute(
            update(cases).where(and_(cases.c.id == case_id, cases.c.state == case["state"]))
            .values(state=step.to_state, updated_at=_now(), **changes)
        ).rowcount
        if updated != 1:
            raise TransitionError(Text("the case changed meanwhile; reload it"))
        details = {k: v for k, v in {"notice_kind": step.notice_kind, "deadline": step.deadline and step.deadline.isoformat(),
                                     "recheck": step.recheck, "outcome": step.outcome}.items() if v}
        conn.execute(insert(case_events).values(case_id=case_id, at=_now(), user_id=user.id, from_state=case["state"],
                                                to_state=step.to_state, note=step.note, details=details))
        record(conn, user.username, f"case.{step.to_state}", f"case:{case_id}", {"from": case["state"], "note": step.note, **details})


def assign(engine: Engine, case_id: int, username: str, user: User) -> None:
    if not user.can("supervisor"):
        raise TransitionError(Text("only a supervisor reassigns cases"))
    with engine.begin() as conn:
        assignee = conn.execute(select(users.c.id, users.c.active).where(users.c.username == username.strip())).first()
        if assignee is None:
            raise TransitionError(Text("no user {name}", name=username))
        if not assignee.active:
            raise TransitionError(Text("user {name} is disabled; assign the case to an active officer", name=username))
        assignee = assignee.id
        if conn.execute(update(cases).where(cases.c.id == case_id).values(assignee_id=assignee, updated_at=_now())).rowcount != 1:
            raise LookupError(Text("no case {case}", case=case_id))
        record(conn, user.username, "case.assign", f"case:{case_id}", {"assignee": username})


def list_cases(engine: Engine, state: str | None = None) -> list[dict]:
    query = select(cases, users.c.username.label("assignee")).outerjoin(users, users.c.id == cases.c.assignee_id)
    if state:
        query = query.where(cases.c.state == state)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query.order_by(cases.c.updated_at.desc())).mappings()]


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
    party, earlier = earlier_cases(engine, case_id, lookback_days)
    return {"case": dict(case), "events": [dict(e) for e in events], "packs": [dict(p) for p in packs],
            "party": {"kind": party.kind, "value": party.value}, "earlier_cases": earlier, "prior_confirmed": len(earlier),
            "lookback_days": lookback_days, "next": NEXT[case["state"]]}
