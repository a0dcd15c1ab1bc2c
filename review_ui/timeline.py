"""A case's timeline in words: steps, approvals, documents, deliveries and rechecks, in time order.

Each entry says what happened as a sentence (a ``Text``, translated where shown), who did it and
the note or opinion that went with it; the public dossier leaves out who and the notes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .i18n import Text
from .labels import label


@dataclass(frozen=True)
class Entry:
    at: datetime
    who: str
    text: Text
    note: str = ""


def _label(code: str | None) -> Text:
    return Text(label(code))


def step_words(to_state: str, details: dict, from_state: str | None = None) -> Text:
    """One move of a case as a sentence: what the step did, with what the form said."""
    if to_state == "notified":
        return Text("Notice: {kind}", kind=_label(details.get("notice_kind")))
    if to_state == "rectification_due":
        return Text("Rectification ordered by {day}", day=details.get("deadline", "—"))
    if to_state == "rechecked":
        return Text("Re-checked: site clear") if details.get("recheck") == "clear" else Text("Re-checked: site not clear")
    if to_state == "closed":
        return Text("Closed: {outcome}", outcome=_label(details.get("outcome")))
    if from_state == "closed":
        return Text("Case reopened")
    return Text("Case opened from pack {pack}", pack=details["pack_id"][:8]) if "pack_id" in details else Text("Case opened")


def timeline(detail: dict) -> list[Entry]:
    entries = [Entry(e["at"], e["username"], step_words(e["to_state"], e["details"], e["from_state"]), e["note"] or "")
               for e in detail["events"]]
    for a in detail["approvals"]:
        asked = step_words(a["step"]["to_state"], a["step"])
        entries.append(Entry(a["requested_at"], a["requester"], Text("Asked for approval: {step}", step=asked), a["step"].get("note", "")))
        if a["approved"] is not None:
            words = Text("Approved: {step}", step=asked) if a["approved"] else Text("Sent back: {step}", step=asked)
            entries.append(Entry(a["decided_at"], a["decider"], words, a["opinion"]))
    for d in detail["documents"]:
        entries.append(Entry(d["issued_at"], d["issuer"], Text("Document {number} issued: {kind}", number=d["number"], kind=_label(d["kind"]))))
        if d["delivered_at"]:
            entries.append(Entry(d["delivered_at"], d.get("deliverer") or "", Text(
                "Document {number} served ({method}) on {recipient}", number=d["number"], method=_label(d["delivery_method"]),
                recipient=d["recipient"])))
    for r in detail.get("rechecks", []):
        if r["origin"] == "field":
            entries.append(Entry(r["at"], r.get("adder") or "", Text("Field photo added")))
        else:
            entries.append(Entry(r["at"], "nonsite", Text("Automatic re-check ({origin}): {result}", origin=_label(r["origin"]),
                                                          result=_label(r["result"]))))
        if r["confirmed_at"]:
            entries.append(Entry(r["confirmed_at"], r.get("confirmer") or "", Text("Re-check confirmed")))
    return sorted(entries, key=lambda e: e.at)
