"""A case dossier: one zip with the timeline, the numbered documents, every pack's files and manifest, the
case's audit entries (for those who may read them), a printable summary page, all sealed by a signed
dossier manifest. The public one holds privacy copies only, the documents by number and hash, and no
officer's name, note, approval or delivery."""
from __future__ import annotations

import hashlib
import html
import json
from datetime import datetime, timezone

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine

from nonsite.evidence import MANIFEST, EvidenceStore, read_manifest
from nonsite.evidence.audit import record_now
from nonsite.evidence.dossiers import OFFICER_ONLY, seal_dossier
from nonsite.evidence.schema import audit, case_rechecks
from nonsite.evidence.signing import SIGNATURE
from nonsite.evidence.timestamps import TIMESTAMP
from nonsite.ingest.decoding import picture_suffix

from .auth import User
from .cases import case_detail
from .documents import documents_of
from .i18n import Desk, Text
from .labels import label
from .timeline import timeline


def _json(value, desk: Desk) -> bytes:
    """JSON with every time in the bureau's zone (ISO 8601 with its offset, so it stays one instant)."""
    def shown(v):
        return desk.local(v).isoformat() if isinstance(v, datetime) else str(v)
    return json.dumps(value, indent=2, ensure_ascii=False, default=shown).encode("utf-8")


def _summary_page(detail: dict, generated_by: str | None, key_image: str, desk: Desk) -> bytes:
    """The printable page, in the officer's language and the bureau's zone (named on the page);
    ``generated_by`` None makes the public version (no officers' names or notes)."""
    _ = desk.gettext
    case = detail["case"]
    public = generated_by is None
    esc = html.escape
    rows = "".join(
        f"<tr><td>{desk.when(e.at)}</td>" + ("" if public else f"<td>{esc(e.who)}</td>") + f"<td>{esc(_(e.text))}</td>"
        + ("" if public else f"<td>{esc(e.note)}</td>") + "</tr>"
        for e in timeline(detail if not public else {"events": detail["events"], "approvals": [], "documents": []})
    )
    packs = "".join(
        f"<li><b>{esc(p['pack_id'])}</b>: " + esc(_("{category} at {place}, {time}, dwell {seconds} s", category=_(label(p["category"])),
                                                    place=p["shop_name"] or p["zone_id"], time=desk.when(p["threshold_at"]),
                                                    seconds=f"{p['dwell_s']:.0f}"))
        + f"<br><img src='packs/{p['pack_id']}/{key_image}' alt='{esc(_('key frame'))}'></li>"
        for p in detail["packs"]
    )
    facts = [_("state: {state}", state=_(label(case["state"]))), _("outcome: {outcome}", outcome=_(label(case["outcome"])) or "—"),
             _("notice: {notice}", notice=_(label(case["notice_kind"])) or "—")]
    if not public:
        facts = [_("subject: {subject}", subject=case["subject_key"]), *facts,
                 _("prior confirmed offences: {count}", count=detail["prior_confirmed"])]
    made = _("Generated {time} with nonsite.", time=desk.when(datetime.now(timezone.utc)))
    if not public:
        made = _("Generated {time} by {officer} with nonsite.", time=desk.when(datetime.now(timezone.utc)), officer=generated_by)
    title = _("Case {case}: {category} at {place}", case=case["id"], category=_(label(case["category"])), place=case["place"])
    return f"""<!doctype html><html lang="{desk.html_lang}"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:"Noto Sans CJK SC",sans-serif;margin:2em}}table{{border-collapse:collapse}}td{{border:1px solid #999;padding:4px 8px}}
img{{max-width:480px;margin:6px 0}}@media print{{a{{display:none}}}}</style></head><body>
<h1>{esc(title)}</h1>
<p>{' · '.join(esc(f) for f in facts)}</p>
<p>{esc(_("All times in {zone}", zone=desk.zone_label))}</p>
<h2>{esc(_("Timeline"))}</h2><table>{rows}</table><h2>{esc(_("Evidence"))}</h2><ol>{packs}</ol>
<p>{esc(made)} {esc(_("Every file is listed with its SHA-256 in dossier.json, which the deployment signs (dossier.sig); "
                      "each pack's manifest.json lists its own files' hashes."))}</p></body></html>""".encode()


PUBLIC_DOCUMENT_FIELDS = ("number", "kind", "sha256", "issued_at", "delivery_method", "delivered_at")


def _public_record(detail: dict) -> dict:
    """What the public may read of a case: what, where, when, the documents and the outcome; no officers, notes,
    approvals or audit."""
    case = detail["case"]
    return {"case": {k: case[k] for k in ("id", "category", "place", "state", "outcome", "created_at", "updated_at")},
            "steps": [{"at": e["at"], "to_state": e["to_state"]} for e in detail["events"]],
            "documents": [{k: d[k] for k in PUBLIC_DOCUMENT_FIELDS} for d in detail["documents"]],
            "packs": [{k: p[k] for k in ("pack_id", "category", "zone_id", "shop_name", "first_seen", "threshold_at", "last_seen")}
                      for p in detail["packs"]]}


def _pictures(engine: Engine, case_id: int) -> dict[str, bytes]:
    """Rechecks' current views and field photos, as stored (their hashes are in the audit extract)."""
    with engine.connect() as conn:
        rows = conn.execute(select(case_rechecks.c.id, case_rechecks.c.image).where(case_rechecks.c.case_id == case_id)).all()
    return {f"rechecks/{row.id}{picture_suffix(row.image) or '.bin'}": row.image for row in rows}


def _document_files(engine: Engine, case_id: int) -> dict[str, bytes]:
    """The case's documents as issued: they name the party (licence, address, plate) and print the officers' notes,
    so only the officers' dossier carries them; the public one lists each by number and SHA-256, against which
    the party can check the paper they were served."""
    return {f"documents/{d['kind']}-{d['year']}-{d['seq']:04d}.pdf": d["pdf"] for d in documents_of(engine, case_id, with_pdf=True)}


def build_dossier(engine: Engine, store: EvidenceStore, case_id: int, user: User, desk: Desk, public: bool = False,
                  signer=None) -> bytes:
    """The officers' dossier, or (``public``) the disclosure version: blurred copies, no sealed originals,
    no officer names, notes or audit entries. The audit extract goes only to those who may read the audit log."""
    detail = case_detail(engine, case_id)
    if detail is None:
        raise LookupError(Text("no case {case}", case=case_id))
    pack_ids = [p["pack_id"] for p in detail["packs"]]
    audience = "public" if public else "officers"
    record_now(engine, user.username, "case.export", f"case:{case_id}", {"packs": pack_ids, "audience": audience})
    if public:
        files = {"case.json": _json(_public_record(detail), desk),
                 "summary.html": _summary_page(detail, None, "disclosure/threshold.jpg", desk)}
    else:
        files = {"case.json": _json(detail, desk), "summary.html": _summary_page(detail, user.shown, "annotated/threshold.jpg", desk)}
        if user.can("supervisor"):
            with engine.connect() as conn:
                entries = conn.execute(
                    select(audit).where(or_(audit.c.target == f"case:{case_id}", audit.c.target.in_(pack_ids))).order_by(audit.c.id)
                ).mappings().all()
            files["audit.json"] = _json([dict(e) for e in entries], desk)
    if not public:  # documents name the party; the current view and field photos show the street unblurred
        files |= _document_files(engine, case_id) | _pictures(engine, case_id)
    omitted: dict[str, list[str]] = {}
    for pack_id in pack_ids:
        manifest = read_manifest(store, pack_id)
        present = set(store.list_files(pack_id))  # images of purged packs are gone by design
        for path in (MANIFEST, SIGNATURE, TIMESTAMP):
            if path in present:
                files[f"packs/{pack_id}/{path}"] = store.read(pack_id, path)
        for path in manifest.files:
            if path in present and not (public and path.startswith(OFFICER_ONLY)):
                files[f"packs/{pack_id}/{path}"] = store.read(pack_id, path)
            else:
                omitted.setdefault(pack_id, []).append(path)
    files["SHA256SUMS"] = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())).encode()
    return seal_dossier(files, case_id, audience, omitted, signer)
