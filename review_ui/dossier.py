"""A case dossier: one zip with the timeline, every pack's files and manifest, the case's audit entries
(for those who may read them), a printable summary page, all sealed by a signed dossier manifest."""
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
from nonsite.evidence.schema import audit
from nonsite.evidence.signing import SIGNATURE
from nonsite.evidence.timestamps import TIMESTAMP

from .auth import User
from .cases import case_detail


def _json(value) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).encode("utf-8")


def _summary_page(detail: dict, generated_by: str | None, key_image: str) -> bytes:
    """The printable page; ``generated_by`` None makes the public version (no officers' names or notes)."""
    case = detail["case"]
    public = generated_by is None
    rows = "".join(
        f"<tr><td>{html.escape(str(e['at']))[:19]}</td>" + ("" if public else f"<td>{html.escape(e['username'])}</td>")
        + f"<td>{e['from_state'] or ''} → {e['to_state']}</td>" + ("" if public else f"<td>{html.escape(e['note'] or '')}</td>") + "</tr>"
        for e in detail["events"]
    )
    packs = "".join(
        f"<li><b>{html.escape(p['pack_id'])}</b>: {p['category']} at {html.escape(p['shop_name'] or p['zone_id'])}, "
        f"{p['threshold_at']:%Y-%m-%d %H:%M:%S}, dwell {p['dwell_s']:.0f} s<br>"
        f"<img src='packs/{p['pack_id']}/{key_image}' alt='key frame'></li>"
        for p in detail["packs"]
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Case {case['id']}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td{{border:1px solid #999;padding:4px 8px}}
img{{max-width:480px;margin:6px 0}}@media print{{a{{display:none}}}}</style></head><body>
<h1>Case {case['id']}: {html.escape(case['category'])} at {html.escape(case['place'])}</h1>
<p>{'' if public else f"Subject: {html.escape(case['subject_key'])} · "}state: <b>{case['state']}</b> · outcome: {case['outcome'] or '—'} ·
notice: {case['notice_kind'] or '—'}{'' if public else f" · prior confirmed offences: {detail['prior_confirmed']}"}</p>
<h2>Timeline</h2><table>{rows}</table><h2>Evidence</h2><ol>{packs}</ol>
<p>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC{'' if public else f" by {html.escape(generated_by)}"} with nonsite.
Every file is listed with its SHA-256 in dossier.json, which the deployment signs (dossier.sig); each pack's manifest.json
lists its own files' hashes.</p></body></html>""".encode()


def _public_record(detail: dict) -> dict:
    """What the public may read of a case: what, where, when and the outcome; no officers, notes or audit."""
    case = detail["case"]
    return {"case": {k: case[k] for k in ("id", "category", "place", "state", "outcome", "created_at", "updated_at")},
            "steps": [{"at": e["at"], "to_state": e["to_state"]} for e in detail["events"]],
            "packs": [{k: p[k] for k in ("pack_id", "category", "zone_id", "shop_name", "first_seen", "threshold_at", "last_seen")}
                      for p in detail["packs"]]}


def build_dossier(engine: Engine, store: EvidenceStore, case_id: int, user: User, public: bool = False, signer=None) -> bytes:
    """The officers' dossier, or (``public``) the disclosure version: blurred copies, no sealed originals,
    no officer names, notes or audit entries. The audit extract goes only to those who may read the audit log."""
    detail = case_detail(engine, case_id)
    if detail is None:
        raise LookupError(f"no case {case_id}")
    pack_ids = [p["pack_id"] for p in detail["packs"]]
    audience = "public" if public else "officers"
    record_now(engine, user.username, "case.export", f"case:{case_id}", {"packs": pack_ids, "audience": audience})
    if public:
        files = {"case.json": _json(_public_record(detail)), "summary.html": _summary_page(detail, None, "disclosure/threshold.jpg")}
    else:
        files = {"case.json": _json({k: v for k, v in detail.items() if k != "next"}),
                 "summary.html": _summary_page(detail, user.username, "annotated/threshold.jpg")}
        if user.can("supervisor"):
            with engine.connect() as conn:
                entries = conn.execute(
                    select(audit).where(or_(audit.c.target == f"case:{case_id}", audit.c.target.in_(pack_ids))).order_by(audit.c.id)
                ).mappings().all()
            files["audit.json"] = _json([dict(e) for e in entries])
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
