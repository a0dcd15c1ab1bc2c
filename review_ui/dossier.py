"""A case dossier: one zip with the timeline, every pack's original files and manifest, the case's
audit entries, a SHA256SUMS list and a printable summary page."""
from __future__ import annotations

import hashlib
import html
import io
import json
import zipfile
from datetime import datetime, timezone

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine

from rules.evidence import MANIFEST, EvidenceStore
from rules.evidence.signing import SIGNATURE

from .audit import record_now
from .auth import User
from .cases import case_detail
from .db import audit


def _json(value) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).encode("utf-8")


def _summary_page(detail: dict, generated_by: str, key_image: str) -> bytes:
    case = detail["case"]
    rows = "".join(
        f"<tr><td>{html.escape(str(e['at']))[:19]}</td><td>{html.escape(e['username'])}</td>"
        f"<td>{e['from_state'] or ''} → {e['to_state']}</td><td>{html.escape(e['note'] or '')}</td></tr>"
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
<p>Subject: {html.escape(case['subject_key'])} · state: <b>{case['state']}</b> · outcome: {case['outcome'] or '—'} ·
notice: {case['notice_kind'] or '—'} · prior confirmed offences: {detail['prior_confirmed']}</p>
<h2>Timeline</h2><table>{rows}</table><h2>Evidence</h2><ol>{packs}</ol>
<p>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by {html.escape(generated_by)} with nonsite.
Every file's SHA-256 is in SHA256SUMS; each pack's manifest.json lists its own files' hashes.</p></body></html>""".encode()


OFFICER_ONLY = ("original/", "annotated/", "crops/", "baseline/", "change/")


def build_dossier(engine: Engine, store: EvidenceStore, case_id: int, user: User, public: bool = False) -> bytes:
    """The officers' dossier, or (``public``) the disclosure version: blurred copies, no sealed originals."""
    detail = case_detail(engine, case_id)
    if detail is None:
        raise LookupError(f"no case {case_id}")
    pack_ids = [p["pack_id"] for p in detail["packs"]]
    record_now(engine, user.username, "case.export", f"case:{case_id}", {"packs": pack_ids, "audience": "public" if public else "officers"})
    with engine.connect() as conn:
        entries = conn.execute(
            select(audit).where(or_(audit.c.target == f"case:{case_id}", audit.c.target.in_(pack_ids))).order_by(audit.c.id)
        ).mappings().all()
    files: dict[str, bytes] = {
        "case.json": _json({k: v for k, v in detail.items() if k != "next"}),
        "audit.json": _json([dict(e) for e in entries]),
        "summary.html": _summary_page(detail, user.username, "disclosure/threshold.jpg" if public else "annotated/threshold.jpg"),
    }
    for pack_id in pack_ids:
        manifest = json.loads(store.read(pack_id, MANIFEST))
        files[f"packs/{pack_id}/{MANIFEST}"] = store.read(pack_id, MANIFEST)
        if SIGNATURE in store.list_files(pack_id):
            files[f"packs/{pack_id}/{SIGNATURE}"] = store.read(pack_id, SIGNATURE)
        present = set(store.list_files(pack_id))  # images of purged packs are gone by design
        for path in manifest["files"]:
            if path in present and not (public and path.startswith(OFFICER_ONLY)):
                files[f"packs/{pack_id}/{path}"] = store.read(pack_id, path)
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
        archive.writestr("SHA256SUMS", sums)
    return buffer.getvalue()
