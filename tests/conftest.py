"""Shared fixtures: the real imagery and models beside the checkout (../shared), found through settings."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("NONSITE_DATASETS_DIR", REPO.parent / "shared" / "datasets"))
MODELS = Path(os.environ.get("NONSITE_MODELS_DIR", REPO.parent / "shared" / "models"))
# Keys are created at first start outside the data folder; the tests keep theirs out of the home folder.
SESSION_KEYS = Path(os.environ.setdefault("NONSITE_KEYS_DIR", tempfile.mkdtemp(prefix="nonsite-test-keys-")))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available here: {path}")
    return path


@pytest.fixture(scope="session")
def datasets() -> Path:
    return _need(DATASETS)


@pytest.fixture(scope="session")
def parking_frames(datasets) -> list[Path]:
    from nonsite.ingest import list_images

    return list_images(_need(datasets / "parking_lot_cctv" / "images"))


@pytest.fixture(scope="session")
def registry():
    from nonsite.vision import ModelRegistry

    return ModelRegistry(REPO / "models", [_need(MODELS), REPO / "models" / "weights"])


@pytest.fixture(scope="session")
def coco(registry):
    return registry.detector("coco")


@pytest.fixture()
def settings(tmp_path, monkeypatch):
    """Settings for one test: a fresh database and store under tmp_path, the real models."""
    from nonsite.settings import Settings

    monkeypatch.setenv("NONSITE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NONSITE_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("NONSITE_MODELS_DIR", str(_need(MODELS)))
    monkeypatch.setenv("NONSITE_DATASETS_DIR", str(DATASETS))
    return Settings()


WHOLE_LOT = {
    "source": {"id": "cam-carpark-wide", "kind": "folder", "uri": "{datasets}/parking_lot_cctv/images",
               "frame_interval_s": 30, "start_time": "2026-11-24T08:00:00"},
    "zones": [{"id": "whole-lot", "polygon": [[0, 200], [854, 200], [854, 480], [0, 480]], "inertia": 2}],
    "rules": [{"id": "lot-no-parking", "kind": "illegal_parking", "zones": ["whole-lot"], "classes": ["car", "truck", "bus"],
               "min_confidence": 0.4, "dwell_s": 60, "hold_s": 30, "grace_s": 60, "cooldown_s": 0}],
}


@pytest.fixture(scope="session")
def packed_data(tmp_path_factory, datasets):
    """A data folder the real pipeline filled once: the demo's cameras and a whole-lot camera (20+ packs)."""
    import json

    import yaml

    from nonsite.demo import demo_scenes
    from nonsite.ingest import open_source
    from nonsite.rules import SiteConfig
    from nonsite.runner import build_pipeline
    from nonsite.settings import Settings

    root = tmp_path_factory.mktemp("packed")
    settings = Settings(data_dir=root / "var", models_dir=MODELS, datasets_dir=datasets, keys_dir=SESSION_KEYS)
    wide = SiteConfig.model_validate(json.loads(json.dumps(WHOLE_LOT).replace("{datasets}", str(datasets))))
    for config in [*(s for s in demo_scenes(settings) if s.source.id != "cam-plot-03"), wide]:
        build_pipeline(config, settings).run(open_source(config.source))
        (settings.sites_path / f"{config.source.id}.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return root / "var"


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server on loopback (Debian's binaries, a cluster in a temporary folder)."""
    import shutil

    from .pg import PostgresServer

    folder = Path(tempfile.mkdtemp(prefix="nonsite-pg-"))
    server = PostgresServer(folder)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def backend(request):
    """Which database the review tests run on: SQLite unless a module asks for both
    (``pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)``)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture()
def review(packed_data, tmp_path, backend, request):
    """A private copy of the packed data with four officers, and the review app over it; on PostgreSQL
    the packed SQLite rows are copied into a fresh database the migrations made."""
    import shutil

    from nonsite.evidence import LocalStore, PackIndex, open_database
    from nonsite.evidence.signing import PUBLIC_KEY, FileSigner, load_public_key
    from nonsite.review_ui import Context, add_user

    data = tmp_path / "var"
    shutil.copytree(packed_data, data)
    engine = open_database(f"sqlite:///{data / 'nonsite.db'}")
    if backend == "postgresql":
        from .pg import copy_rows

        engine = copy_rows(engine, open_database(request.getfixturevalue("postgres").new_database()))
        # the CLI the tests run (nonsite audit verify, export-training) reads the same database
        request.getfixturevalue("monkeypatch").setenv("NONSITE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    index = PackIndex(engine)
    for name, role in (("alice", "reviewer"), ("bob", "reviewer"), ("sam", "supervisor"), ("ada", "admin")):
        add_user(index.engine, name, f"{name}-password", role)
    return Context(index, LocalStore(data / "evidence"), data / "sites", signer=FileSigner.load(SESSION_KEYS),
                   public_key=load_public_key(SESSION_KEYS / PUBLIC_KEY))  # the key the pipeline signed the packed data with


@pytest.fixture(scope="session")
def carpark_video(parking_frames, tmp_path_factory):
    """The real car-park frames as an H.264 video, each frame shown for a second (21 s)."""
    from .streams import carpark_video as make

    return make(parking_frames, tmp_path_factory.mktemp("footage") / "carpark.mp4")


@pytest.fixture(scope="session")
def rtsp(tmp_path_factory):
    """The session's RTSP server on loopback (rtsp-server-perl; publish with ``streams.Publisher``)."""
    from .streams import RtspServer

    server = RtspServer(tmp_path_factory.mktemp("rtsp"))
    yield server
    server.stop()


@pytest.fixture()
def ray_cluster(tmp_path):
    """A Ray head on 127.0.0.2 (one CPU) for one test; ``add_node`` starts more; all stopped at the end."""
    import shutil

    from .raycluster import LoopbackCluster

    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay short
    cluster = LoopbackCluster(temp, {"NONSITE_MODELS_DIR": str(_need(MODELS)), "YOLO_OFFLINE": "True"})
    yield cluster
    cluster.stop()
    shutil.rmtree(temp, ignore_errors=True)
