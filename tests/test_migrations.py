"""Databases move forward through Alembic: a fresh one is created by the migrations, and one made
by the first release (0.1, tables without migrations) upgrades with its rows kept."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, inspect, select

from nonsite.evidence import PackIndex, open_database
from nonsite.evidence.audit import verify_chain
from nonsite.evidence.database import head_revision, schema_revision
from nonsite.evidence.schema import cases, decisions, metadata
from nonsite.review_ui.auth import log_in

RELEASE_0_1 = Path(__file__).parent / "data" / "release-0.1.sql"  # made by the 0.1 code: 3 packs, 2 users, a case


def test_a_fresh_database_gets_every_table_of_the_schema(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert schema_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert set(metadata.tables) <= tables
    for name, table in metadata.tables.items():
        assert {c["name"] for c in inspect(engine).get_columns(name)} == set(table.columns.keys()), name
    open_database(f"sqlite:///{tmp_path / 'fresh.db'}")  # opening again is a no-op
    assert schema_revision(engine) == head_revision()


def test_a_release_0_1_database_upgrades_with_its_data_kept(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(RELEASE_0_1.read_text())
    assert "alembic_version" not in {r[0] for r in sqlite3.connect(path).execute("select name from sqlite_master")}

    engine = open_database(f"sqlite:///{path}")
    assert schema_revision(engine) == head_revision()
    rows = PackIndex(engine).rows()
    assert len(rows) == 3 and {r.status for r in rows} == {"confirmed", "rejected", "pending_review"}
    assert all(r.places is None for r in rows)  # 0.1 kept no ground positions; PackIndex.repair fills them from manifests
    with engine.connect() as conn:
        assert conn.execute(select(decisions.c.note).where(decisions.c.decision == "confirm")).scalar() == "parked in the loading lane"
        assert conn.execute(select(cases.c.state)).scalars().all() == ["notified"]
    report = verify_chain(engine)
    assert report.ok and report.entries >= 4  # the 0.1 audit chain still verifies
    token, _csrf, user = log_in(engine, "alice", "alice-password", "127.0.0.1")  # and its officers still log in
    assert user.role == "reviewer" and token


RELEASE_0_1_PACK = Path(__file__).parent / "data" / "release-0.1-pack"  # a signed pack written by the 0.1 code


def test_a_pack_written_by_release_0_1_still_reads_and_verifies(tmp_path, capsys):
    import shutil

    from nonsite.cli import main
    from nonsite.evidence import LocalStore, read_manifest

    store = LocalStore(RELEASE_0_1_PACK / "packs")
    (pack_id,) = store.pack_ids()
    manifest = read_manifest(store, pack_id)
    assert manifest.schema_id == "nonsite.pack/1" and manifest.pack_id == pack_id
    assert manifest.key_frames["threshold"].subject[0].class_name == "car" and manifest.rule.id == "loading-lane-no-parking"
    key = str(RELEASE_0_1_PACK / "signing-ed25519.pub.pem")
    assert main(["verify", "--dir", str(RELEASE_0_1_PACK / "packs"), "--public-key", key]) == 0
    assert "signature valid" in capsys.readouterr().out

    altered = tmp_path / "packs"
    shutil.copytree(RELEASE_0_1_PACK / "packs", altered)
    crop = altered / pack_id / "crops" / "subject_0.jpg"
    crop.write_bytes(crop.read_bytes()[:-1] + b"\0")
    assert main(["verify", "--dir", str(altered), "--public-key", key]) == 1
    assert "crops/subject_0.jpg: altered" in capsys.readouterr().out


def test_a_pack_indexed_before_0005_gets_utc_times_and_its_model_from_its_manifest(tmp_path):
    """SQLite kept a pack's capture times as camera wall-clock text (09:03 in Shanghai) beside decisions in UTC;
    after 0005 the repair rewrites them as the instants they are, and fills what the queue searches by."""
    import shutil
    from datetime import datetime, timezone

    from alembic import command

    from nonsite.evidence import EvidenceSink, LocalStore, read_manifest
    from nonsite.evidence.database import _config

    store = LocalStore(tmp_path / "packs")
    shutil.copytree(RELEASE_0_1_PACK / "packs", tmp_path / "packs", dirs_exist_ok=True)
    (pack_id,) = store.pack_ids()
    manifest = read_manifest(store, pack_id)
    path = tmp_path / "0004.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        command.upgrade(_config(connection), "0004")
    wall = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy wrote an aware time into SQLite: its wall clock, offset dropped
    with sqlite3.connect(path) as conn:
        conn.execute("insert into packs (pack_id, category, source_id, rule_id, zone_id, subject_key, first_seen, threshold_at, last_seen, "
                     "dwell_s, confidence, manifest_sha256, status, indexed_at) values (?, 'illegal_parking', 'cam-carpark-01', 'r', 'z', "
                     "'s', ?, ?, ?, 180, 0.9, 'x', 'pending_review', ?)",
                     (pack_id, *(t.strftime(wall) for t in (manifest.times.first_seen, manifest.times.threshold, manifest.times.last_seen)),
                      datetime.now(timezone.utc).strftime(wall)))

    index = PackIndex(open_database(f"sqlite:///{path}"))
    before = index.get(pack_id)
    assert before.model is None and before.threshold_at.hour == 9  # 09:03 read as UTC: eight hours off, until repaired
    assert EvidenceSink(store, index).repair().placed == 1
    after = index.get(pack_id)
    assert after.threshold_at == manifest.times.threshold and after.threshold_at.astimezone(timezone.utc).hour == 1
    assert after.model == "coco" and after.plate is None
    assert EvidenceSink(store, index).repair().placed == 0  # done once


def test_a_postgresql_database_of_the_last_release_upgrades_with_its_data_kept(postgres):
    """A PostgreSQL database the previous release made (revision 0004) goes through the same migrations."""
    from datetime import datetime, timezone

    from alembic import command
    from sqlalchemy import text

    from nonsite.evidence.database import _config
    from nonsite.review_ui.auth import _hash

    url = postgres.new_database()
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(_config(connection), "0004")
    at = datetime(2026, 11, 20, 1, 3, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(text("insert into users (username, password_hash, role, active, created_at) values ('王警官', :h, 'reviewer', true, :at)"),
                     {"h": _hash("王警官-password"), "at": at})
        conn.execute(text("insert into packs (pack_id, category, source_id, rule_id, zone_id, shop_name, subject_key, first_seen, threshold_at, "
                          "last_seen, dwell_s, confidence, manifest_sha256, status, indexed_at) values ('p1', 'spillover_business', 'cam', "
                          "'r', 'z', '老王烧烤店', 's', :at, :at, :at, 60, 0.8, :sha, 'confirmed', :at)"), {"at": at, "sha": "0" * 64})
    engine.dispose()

    upgraded = open_database(url)
    assert schema_revision(upgraded) == head_revision()
    (row,) = PackIndex(upgraded).rows()
    assert row.shop_name == "老王烧烤店" and row.status == "confirmed" and row.threshold_at == at and row.model is None
    assert {"shops"} <= set(inspect(upgraded).get_table_names())
    assert log_in(upgraded, "王警官", "王警官-password", "127.0.0.1")[2].display_name is None  # and its officer still logs in
