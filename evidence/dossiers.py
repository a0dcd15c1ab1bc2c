"""Signed dossiers: one manifest over everything in a case's zip, and its verification.

A dossier holds a case record, an audit extract, a summary page and the packs' files. Every file
is listed with its SHA-256 in ``dossier.json``, which the deployment signs (``dossier.sig``), so
an edit to any of them, a removed pack or a re-computed SHA256SUMS is detected. A public
dossier leaves out the sealed originals on purpose: it says which files of each pack it omits,
and verifies as what it is.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .hashing import canonical_json, sha256_hex
from .manifest import MANIFEST, ManifestError, PackManifest
from .signing import SIGNATURE, check_signature
from .verify import Findings

DOSSIER_MANIFEST = "dossier.json"
DOSSIER_SIGNATURE = "dossier.sig"
SCHEMA = "nonsite.dossier/1"
# What the public never receives; the clip shows faces and plates unblurred, as the originals do.
OFFICER_ONLY = ("original/", "annotated/", "crops/", "baseline/", "change/", "clip/")
MAX_MEMBER_BYTES = 1 << 30


def seal_dossier(files: dict[str, bytes], case_id: int, audience: str, omitted: dict[str, list[str]], signer) -> bytes:
    """The zip: ``files`` (name -> bytes), the dossier manifest over all of them, its signature."""
    manifest = canonical_json({
        "schema": SCHEMA, "case_id": case_id, "audience": audience, "generated_at": datetime.now(timezone.utc).isoformat(),
        "files": {name: sha256_hex(data) for name, data in sorted(files.items())}, "omitted": omitted,
    })
    sealed = {**files, DOSSIER_MANIFEST: manifest, **({DOSSIER_SIGNATURE: signer.sign(manifest)} if signer else {})}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(sealed.items()):
            archive.writestr(name, data)
    return buffer.getvalue()


@dataclass
class DossierReport(Findings):
    audience: str | None = None


def _read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        out = {}
        for info in archive.infolist():
            if info.is_dir():
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                raise ValueError(f"{info.filename}: {info.file_size} bytes, larger than any dossier file")
            out[info.filename] = archive.read(info)
    return out


def _read_folder(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def verify_dossier(path: Path, public_key) -> DossierReport:
    """Check a dossier (zip or unpacked folder): its signed manifest, every file, and every pack inside."""
    files = _read_zip(path) if path.is_file() else _read_folder(path)
    report = DossierReport()
    raw = files.pop(DOSSIER_MANIFEST, None)
    signature = files.pop(DOSSIER_SIGNATURE, None)
    if raw is None:
        report.problems.append(f"{DOSSIER_MANIFEST}: missing (the case record, audit extract and summary are not protected)")
        return report
    if public_key is None:
        report.notes.append("no signature checked: no public key")
    elif signature is None:
        report.problems.append(f"{DOSSIER_SIGNATURE}: missing (the dossier is not signed)")
    elif problem := check_signature(public_key, raw, signature):
        report.problems.append(problem.replace(SIGNATURE, DOSSIER_SIGNATURE).replace("manifest.json", DOSSIER_MANIFEST))
    else:
        report.notes.append("dossier signature valid")
    try:
        dossier = json.loads(raw)
        listed: dict[str, str] = dossier["files"]
        omitted: dict[str, list[str]] = dossier.get("omitted", {})
        report.audience = dossier["audience"]
    except (ValueError, KeyError, TypeError):
        report.problems.append(f"{DOSSIER_MANIFEST}: not a readable dossier manifest")
        return report
    for name, expected in sorted(listed.items()):
        if name not in files:
            report.problems.append(f"{name}: missing from the dossier")
        elif sha256_hex(files[name]) != expected:
            report.problems.append(f"{name}: altered")
        else:
            report.checked += 1
    report.problems += [f"{name}: not listed in {DOSSIER_MANIFEST}" for name in sorted(set(files) - set(listed))]
    for pack_id in sorted({n.split("/")[1] for n in listed if n.startswith("packs/") and n.count("/") >= 2}):
        report.problems += _pack_problems(files, pack_id, omitted.get(pack_id, []), report.audience, public_key)
    return report


def _pack_problems(files: dict[str, bytes], pack_id: str, omitted: list[str], audience: str, public_key) -> list[str]:
    """A pack inside a dossier against its own signed manifest; what is absent must be declared omitted."""
    prefix = f"packs/{pack_id}/"
    raw = files.get(prefix + MANIFEST)
    if raw is None:
        return [f"{prefix}{MANIFEST}: missing"]
    problems = []
    if public_key is not None:
        problem = check_signature(public_key, raw, files[prefix + SIGNATURE]) if prefix + SIGNATURE in files else f"{SIGNATURE}: missing"
        if problem:
            problems.append(f"{prefix}{problem}")
    try:
        manifest = PackManifest.from_bytes(raw)
    except ManifestError as exc:
        return [*problems, f"{prefix}{exc}"]
    if manifest.pack_id != pack_id:
        problems.append(f"{prefix}{MANIFEST}: names pack {manifest.pack_id} (copied or moved)")
    for path, expected in sorted(manifest.files.items()):
        data = files.get(prefix + path)
        if data is None:
            if path not in omitted:
                problems.append(f"{prefix}{path}: missing and not declared omitted")
        elif sha256_hex(data) != expected:
            problems.append(f"{prefix}{path}: altered")
        elif audience == "public" and path.startswith(OFFICER_ONLY):
            problems.append(f"{prefix}{path}: an officers-only file in a public dossier")
    return problems
