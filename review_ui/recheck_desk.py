"""The officers' side of 核查: field photos, and confirming what an automatic recheck proposes.

A field photo is validated as hostile input (a whole JPEG or PNG under the size caps), stored as
uploaded with its SHA-256, and that hash goes into the audit chain in the same transaction, so the
photo is sealed the way a pack's originals are. An automatic recheck (``recheck.py``) only proposes
"cleared" or "still present"; an officer confirms it, which takes the 核查 step. Where the procedure
allows (``auto_close_first_offence``, off by default), a confirmed "cleared" recheck of a first
offence under a warning (首违不罚) goes on to close the case as rectified, through the closing
step's approval rule.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from nonsite.evidence.audit import record
from nonsite.evidence.hashing import sha256_hex
from nonsite.evidence.schema import case_rechecks, cases
from nonsite.ingest.decoding import ImageRefused, decode_picture, picture_size, picture_suffix

from .auth import User, case_rows
from .case_access import TransitionError, may_touch
from .cases import REPEAT_LOOKBACK_DAYS, Casework, Transition, earlier_cases, take_step
from .i18n import Text
from .labels import label

MAX_PHOTO_BYTES = 20 * 1024 * 1024
MAX_PHOTO_PIXELS = 50_000_000  # a phone's 48 MP camera passes
PHOTO_TYPES = (".jpg", ".png")


def add_field_photo(engine: Engine, case_id: int, data: bytes, user: User) -> int:
    """Store an officer's photo of the site with the case; returns its id. Refuses anything but a whole picture."""
    if len(data) > MAX_PHOTO_BYTES:
        raise TransitionError(Text("a field photo is limited to {megabytes} MB", megabytes=MAX_PHOTO_BYTES // 1024 // 1024))
    if picture_suffix(data) not in PHOTO_TYPES:
        raise TransitionError(Text("a field photo must be a JPEG or PNG picture"))
    try:
        width, height = picture_size(data)
        if width * height > MAX_PHOTO_PIXELS:  # a small file may declare a huge picture: refused before decoding
            raise ImageRefused(f"{width} x {height} pixels is over the {MAX_PHOTO_PIXELS // 1_000_000} MP limit for a field photo")
        decode_picture(data)
    except ImageRefused as exc:
        raise TransitionError(Text("the field photo cannot be used: {reason}", reason=str(exc))) from exc
    digest = sha256_hex(data)
    with engine.begin() as conn:
        state = may_touch(conn, case_id, user)["state"]
        if state == "closed":
            raise TransitionError(Text("case {case} is closed; reopen it to add photos", case=case_id))
        photo = conn.execute(insert(case_rechecks).values(case_id=case_id, at=datetime.now(timezone.utc), origin="field", result=None,
                                                          detections=[], image=data, sha256=digest, added_by=user.id)).inserted_primary_key[0]
        record(conn, user.username, "case.field_photo", f"case:{case_id}", {"photo": photo, "sha256": digest, "bytes": len(data)})
    return photo


def rechecks_of(engine: Engine, case_id: int) -> list[dict]:
    """A case's rechecks and field photos, without the pictures, with who added and who confirmed each."""
    return case_rows(engine, case_rechecks, case_id, "image", adder=case_rechecks.c.added_by, confirmer=case_rechecks.c.confirmed_by)


def recheck_picture(engine: Engine, case_id: int, recheck_id: int) -> bytes:
    """The picture of a recheck or field photo, checked against the hash recorded with it."""
    with engine.connect() as conn:
        row = conn.execute(select(case_rechecks.c.image, case_rechecks.c.sha256)
                           .where(case_rechecks.c.id == recheck_id, case_rechecks.c.case_id == case_id)).first()
    if row is None:
        raise LookupError(Text("no picture {picture} in case {case}", picture=recheck_id, case=case_id))
    if sha256_hex(row.image) != row.sha256:
        raise TransitionError(Text("picture {picture} does not match the hash recorded with it", picture=recheck_id))
    return row.image


def confirm_recheck(work: Casework, case_id: int, recheck_id: int, user: User) -> str:
    """Take the 核查 step an automatic recheck proposed; where the procedure allows, go on to close a cleared first
    offence. Returns what the last step did: ``"done"`` or ``"awaiting_approval"``."""
    party, earlier = earlier_cases(work.engine, case_id, REPEAT_LOOKBACK_DAYS)
    with work.engine.begin() as conn:
        proposal = conn.execute(select(case_rechecks).where(case_rechecks.c.id == recheck_id, case_rechecks.c.case_id == case_id)
                                ).mappings().first()
        if proposal is None or proposal["result"] is None:
            raise LookupError(Text("no recheck proposal {recheck} in case {case}", recheck=recheck_id, case=case_id))
        if proposal["confirmed_at"] is not None:
            raise TransitionError(Text("recheck proposal {recheck} was already confirmed", recheck=recheck_id))
        case = conn.execute(select(cases.c.state, cases.c.deadline).where(cases.c.id == case_id)).one()
        if case.state != "rectification_due" or case.deadline is None or proposal["at"] < case.deadline:
            raise TransitionError(Text("recheck proposal {recheck} was made before the current rectification deadline; "
                                       "only a look after it can be confirmed", recheck=recheck_id))
        cleared = proposal["result"] == "cleared"
        note = Text("automatic re-check confirmed: {result}", result=Text(label(proposal["result"])))
        outcome = take_step(conn, work, case_id, Transition("rechecked", str(note), recheck="clear" if cleared else "not_clear"), user)
        conn.execute(update(case_rechecks).where(case_rechecks.c.id == recheck_id)
                     .values(confirmed_by=user.id, confirmed_at=datetime.now(timezone.utc)))
        record(conn, user.username, "case.recheck_confirmed", f"case:{case_id}", {"recheck": recheck_id, "result": proposal["result"]})
        case = conn.execute(select(cases.c.category, cases.c.notice_kind).where(cases.c.id == case_id)).one()
        family = work.procedure.family_of(case.category)
        if cleared and family and family.auto_close_first_offence and case.notice_kind == "warning" and party.identified and not earlier:
            try:
                outcome = take_step(conn, work, case_id, Transition("closed", "首违不罚: cleared on re-check, closed as rectified",
                                                                    outcome="rectified"), user)
            except TransitionError:
                pass  # refused before writing anything (no such move for this officer): the case waits at 核查 for a person
    return outcome
