"""An adversary with the data folder: deleting, copying or un-purging packs, and editing dossiers, is
detected by ``nonsite verify`` and named."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from nonsite.cli import main
from nonsite.evidence.schema import packs_table
from nonsite.evidence.signing import PUBLIC_KEY
from nonsite.review_ui import create_app

from .conftest import SESSION_KEYS

OFFICER_NAMES = ("alice", "bob", "sam", "ada")


@pytest.fixture()
def deployment(review, tmp_path, monkeypatch):
    """The review fixture's data folder as this test's deployment (the packs were signed with the session's key)."""
    data = review.sites_dir.parent
    monkeypatch.setenv("NONSITE_DATA_DIR", str(data))
    assert main(["verify"]) == 0
    return review, data


def _verify(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["verify", *args])
    return code, capsys.readouterr().out


def _drop_row(review, pack_id):
    with review.engine.begin() as conn:
        conn.execute(delete(packs_table).where(packs_table.c.pack_id == pack_id))


def _purge_by_hand(review, pack_id, scope):
    with review.engine.begin() as conn:
        conn.execute(update(packs_table).where(packs_table.c.pack_id == pack_id).values(purged=scope))


TAMPERS = {
    "pack folder deleted": (lambda review, data, pid: shutil.rmtree(data / "evidence" / pid), "indexed, but its files are gone"),
    "pack folder and index row deleted": (lambda review, data, pid: (shutil.rmtree(data / "evidence" / pid), _drop_row(review, pid)),
                                          "audit log records storing it, but it is neither in the index nor in the store"),
    "pack copied under a new id": (lambda review, data, pid: shutil.copytree(data / "evidence" / pid, data / "evidence" / "copied-pack"),
                                   "copied-pack: in the store but not in the index"),
    "purged set by hand": (lambda review, data, pid: _purge_by_hand(review, pid, "all"), "marked purged (all) but the audit log records no"),
    "images purged by hand": (lambda review, data, pid: (_purge_by_hand(review, pid, "images"), shutil.rmtree(data / "evidence" / pid / "original")),
                              "marked purged (images) but the audit log records no"),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_deleting_copying_or_unpurging_a_pack_is_named(deployment, capsys, tamper):
    review, data = deployment
    pack_id = review.index.rows()[0].pack_id
    act, expected = TAMPERS[tamper]
    act(review, data, pack_id)
    code, out = _verify(capsys)
    assert code == 1 and expected in out, out


def test_a_copied_pack_names_its_real_id(deployment, capsys):
    review, data = deployment
    pack_id = review.index.rows()[0].pack_id
    shutil.copytree(data / "evidence" / pack_id, data / "evidence" / "copied-pack")
    code, out = _verify(capsys, "copied-pack")
    assert code == 1 and f"names pack {pack_id}, but it is stored as copied-pack" in out


@pytest.fixture()
def signed_app(review):
    """The desk signs dossiers with the deployment's key, the one its packs were signed with."""
    return TestClient(create_app(review), headers={"Accept-Language": "en"}), SESSION_KEYS / PUBLIC_KEY


def _dossiers(signed_app, tmp_path) -> tuple:
    client, public_key = signed_app
    csrf = client.post("/api/login", json={"username": "sam", "password": "sam-password"}).json()["csrf"]
    packs = client.get("/api/packs", params={"category": "illegal_parking"}).json()
    case_id = client.post(f"/api/packs/{packs[0]['pack_id']}/decision", json={"decision": "confirm", "note": "seen by sam"},
                          headers={"X-CSRF-Token": csrf}).json()["case_id"]
    for pack in packs[1:]:  # more packs of the same case, when the same subject was seen again
        client.post(f"/api/packs/{pack['pack_id']}/decision", json={"decision": "confirm"}, headers={"X-CSRF-Token": csrf})
    officers, public = tmp_path / "officers.zip", tmp_path / "public.zip"
    officers.write_bytes(client.get(f"/api/cases/{case_id}/dossier").content)
    public.write_bytes(client.get(f"/api/cases/{case_id}/dossier", params={"audience": "public"}).content)
    return officers, public, public_key


def test_both_dossiers_verify_and_the_public_one_names_no_officer(signed_app, tmp_path, capsys, review):
    officers, public, key = _dossiers(signed_app, tmp_path)
    for dossier, audience in ((officers, "officers"), (public, "public")):
        code, out = _verify(capsys, "--dir", str(dossier), "--public-key", str(key))
        assert code == 0 and f"OK {audience} dossier" in out and "dossier signature valid" in out, out
    with zipfile.ZipFile(public) as archive:
        names = archive.namelist()
        assert "audit.json" not in names and not any("/original/" in n or "/annotated/" in n for n in names)
        text = b" ".join(archive.read(n) for n in names if n.endswith((".json", ".html"))).decode()
    assert not re.search(rf"\b({'|'.join(OFFICER_NAMES)})\b", text) and "seen by sam" not in text


def _rewrite(source, target, change):
    """A copy of a dossier zip with ``change(files)`` applied to its {name: bytes}."""
    with zipfile.ZipFile(source) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    change(files)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


def _drop_pack_and_fix_sums(files):
    pack = next(n.split("/")[1] for n in files if n.startswith("packs/"))
    for name in [n for n in files if n.startswith(f"packs/{pack}/")]:
        del files[name]
    files["SHA256SUMS"] = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(files.items())
                                  if n not in ("SHA256SUMS", "dossier.json", "dossier.sig")).encode()


def _resign_nothing(files):
    manifest = json.loads(files["dossier.json"])
    manifest["files"]["case.json"] = "0" * 64
    files["dossier.json"] = json.dumps(manifest).encode()


DOSSIER_TAMPERS = {
    "case record edited": (lambda f: f.update({"case.json": f["case.json"].replace(b'"closed"', b'"open"') + b" "}), "case.json: altered"),
    "audit extract edited": (lambda f: f.update({"audit.json": f["audit.json"][:-2] + b" ]"}), "audit.json: altered"),
    "summary edited": (lambda f: f.update({"summary.html": f["summary.html"] + b"<p>forged</p>"}), "summary.html: altered"),
    "a whole pack removed, SHA256SUMS fixed": (_drop_pack_and_fix_sums, "missing from the dossier"),
    "a file added": (lambda f: f.update({"packs/extra.jpg": b"x"}), "packs/extra.jpg: not listed in dossier.json"),
    "signature removed": (lambda f: f.pop("dossier.sig"), "dossier.sig: missing"),
    "dossier manifest rewritten": (_resign_nothing, "dossier.sig: signature does not match dossier.json"),
}


@pytest.mark.parametrize("tamper", sorted(DOSSIER_TAMPERS))
def test_every_dossier_edit_is_named(signed_app, tmp_path, capsys, tamper):
    officers, _public, key = _dossiers(signed_app, tmp_path)
    change, expected = DOSSIER_TAMPERS[tamper]
    tampered = _rewrite(officers, tmp_path / "tampered.zip", change)
    code, out = _verify(capsys, "--dir", str(tampered), "--public-key", str(key))
    assert code == 1 and expected in out, out


def _flip(path):
    data = path.read_bytes()
    path.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])


def _edit_manifest(folder, rehash_index=None):
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["dwell_s"] = 1.0
    raw = json.dumps(manifest, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    (folder / "manifest.json").write_bytes(raw)
    if rehash_index:  # the attacker also holds the database: the index's hash follows the forgery
        with rehash_index.engine.begin() as conn:
            conn.execute(update(packs_table).where(packs_table.c.pack_id == folder.name).values(manifest_sha256=hashlib.sha256(raw).hexdigest()))


PACK_TAMPERS = {  # kind -> what the adversary does to one pack folder (with the review context for database edits)
    "original byte": lambda f, other, ctx: _flip(next((f / "original").iterdir())),
    "annotated byte": lambda f, other, ctx: _flip(f / "annotated" / "threshold.jpg"),
    "crop byte": lambda f, other, ctx: _flip(f / "crops" / "subject_0.jpg"),
    "privacy copy byte": lambda f, other, ctx: _flip(f / "disclosure" / "threshold.jpg"),
    "original swapped for another pack's": lambda f, other, ctx: shutil.copy(next((other / "original").iterdir()), next((f / "original").iterdir())),
    "key frames swapped": lambda f, other, ctx: (shutil.copy(f / "annotated" / "first_seen.jpg", f / "x"),
                                                 shutil.copy(f / "annotated" / "last_seen.jpg", f / "annotated" / "first_seen.jpg"),
                                                 shutil.move(f / "x", f / "annotated" / "last_seen.jpg")),
    "original deleted": lambda f, other, ctx: next((f / "original").iterdir()).unlink(),
    "crop deleted": lambda f, other, ctx: (f / "crops" / "subject_0.jpg").unlink(),
    "file added": lambda f, other, ctx: (f / "annotated" / "extra.jpg").write_bytes(b"x"),
    "manifest field edited": lambda f, other, ctx: _edit_manifest(f),
    "manifest edited and index hash forged": lambda f, other, ctx: _edit_manifest(f, ctx.index),
    "signature deleted": lambda f, other, ctx: (f / "manifest.sig").unlink(),
    "signature from another pack": lambda f, other, ctx: shutil.copy(other / "manifest.sig", f / "manifest.sig"),
    "manifest and signature from another pack": lambda f, other, ctx: (shutil.copy(other / "manifest.json", f / "manifest.json"),
                                                                      shutil.copy(other / "manifest.sig", f / "manifest.sig")),
    "manifest deleted": lambda f, other, ctx: (f / "manifest.json").unlink(),
}


def test_every_pack_tamper_is_caught_by_verify_and_by_the_pack_page(deployment, capsys):
    review, data = deployment
    rows = review.index.rows()
    assert len(rows) > len(PACK_TAMPERS) + 1
    victims = dict(zip(sorted(PACK_TAMPERS), rows))
    untouched = rows[-1].pack_id
    for kind, row in victims.items():
        PACK_TAMPERS[kind](data / "evidence" / row.pack_id, data / "evidence" / untouched, review)
    code, out = _verify(capsys)
    failures = [line for line in out.splitlines() if line.startswith("FAIL")]
    by_cli = {kind for kind, row in victims.items() if any(row.pack_id in line for line in failures)}
    client = TestClient(create_app(review), headers={"Accept-Language": "en"})
    client.post("/api/login", json={"username": "sam", "password": "sam-password"})
    by_page = set()
    for kind, row in victims.items():
        page = client.get(f"/packs/{row.pack_id}")
        if page.status_code == 404 or 'class="error">FAILED' in page.text or 'class="error">signature FAILED' in page.text:
            by_page.add(kind)
    print(f"\npack tampers detected: {len(by_cli)}/{len(victims)} by nonsite verify, {len(by_page)}/{len(victims)} by the pack page")
    assert f"OK   {untouched}" in out
    assert code == 1 and by_cli == set(victims), sorted(set(victims) - by_cli)
    assert by_page == set(victims), sorted(set(victims) - by_page)
    assert "signature valid" in client.get(f"/packs/{untouched}").text


def test_a_pack_stored_but_never_indexed_is_indexed_at_the_next_start(deployment, capsys, caplog):
    from nonsite.evidence import LocalStore
    from nonsite.settings import Settings

    review, data = deployment
    row = review.index.rows()[0]
    _drop_row(review, row.pack_id)  # as if the run had stopped between storing the pack and indexing it
    code, out = _verify(capsys)
    assert code == 1 and f"{row.pack_id}: in the store but not in the index" in out
    settings = Settings(data_dir=data)
    assert settings.sink.index.get(row.pack_id) is not None
    assert f"pack {row.pack_id} was stored but not indexed" in caplog.text
    assert LocalStore(data / "evidence").exists(row.pack_id)
    code, out = _verify(capsys)
    assert code == 0, out
