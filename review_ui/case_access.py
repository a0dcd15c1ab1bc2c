"""Who may touch a case at all: its officer, its team, or a supervisor; and the errors a refused act raises.

Every act on a case goes through ``may_touch`` inside the act's own transaction, not only steps:
recording a document's service (送达) or adding a field photo changes the case's record as much as a
step does, and service starts the party's time limits, so a reviewer does it only on their own cases.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from nonsite.evidence.schema import cases, users

from .auth import User
from .i18n import Text


class TransitionError(ValueError):
    """A case step that the workflow does not allow, with what is missing."""


class NotYourCase(TransitionError):
    """A reviewer acting on a case assigned to someone else (or to nobody)."""


def may_touch(conn: Connection, case_id: int, user: User) -> dict:
    """The case, read inside the caller's transaction; LookupError if there is none, NotYourCase when a reviewer
    acts on a case that is neither assigned to them nor to their team."""
    case = conn.execute(select(cases).where(cases.c.id == case_id)).mappings().first()
    if case is None:
        raise LookupError(Text("no case {case}", case=case_id))
    if user.can("supervisor"):
        return dict(case)
    team = conn.execute(select(users.c.team).where(users.c.id == user.id)).scalar()
    if case["assignee_id"] != user.id and not (team and case["team"] == team):
        assignee = conn.execute(select(users.c.username).where(users.c.id == case["assignee_id"])).scalar()
        raise NotYourCase(Text("case {case} is assigned to {officer}: a reviewer acts only on cases assigned to them; "
                               "a supervisor can act on it or reassign it", case=case_id, officer=assignee or Text("nobody")))
    return dict(case)
