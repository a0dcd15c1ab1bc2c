"""Shared fixtures: the real imagery and models beside the checkout (../shared), found through settings."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("NONSITE_DATASETS_DIR", REPO.parent / "shared" / "datasets"))
MODELS = Path(os.environ.get("NONSITE_MODELS_DIR", REPO.parent / "shared" / "models"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available here: {path}")
    return path


@pytest.fixture(scope="session")
def datasets() -> Path:
    return _need(DATASETS)


@pytest.fixture(scope="session")
def parking_frames(datasets) -> list[Path]:
    from ingest import list_images

    return list_images(_need(datasets / "parking_lot_cctv" / "images"))


@pytest.fixture(scope="session")
def registry():
    from vision import ModelRegistry

    return ModelRegistry(REPO / "models", [_need(MODELS), REPO / "models" / "weights"])


@pytest.fixture(scope="session")
def coco(registry):
    return registry.detector("coco")


@pytest.fixture()
def settings(tmp_path, monkeypatch):
    """Settings for one test: a fresh database and store under tmp_path, the real models."""
    from nonsite.settings import Settings

    monkeypatch.setenv("NONSITE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NONSITE_MODELS_DIR", str(_need(MODELS)))
    monkeypatch.setenv("NONSITE_DATASETS_DIR", str(DATASETS))
    return Settings()
