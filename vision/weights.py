"""Weight files on disk: where one is (the first models folder that holds it) and what it is (its SHA-256,
an export's Ultralytics metadata).

Both the registry (which finds weights for a manifest) and the detector (which records the hash
of the weights it loaded in every detection) need these, so they live here, below both.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import yaml


def locate(name: str, folders: list[Path]) -> Path | None:
    """The first of ``folders`` that holds ``name`` (a weight file or an export folder)."""
    return next((folder / name for folder in folders if (folder / name).exists()), None)


def export_metadata(path: Path) -> dict | None:
    """What Ultralytics wrote beside an export folder's weights (``metadata.yaml``: its size, whether it
    takes any size, ``args.dynamic``); None for a single weight file or a folder without it."""
    metadata = path / "metadata.yaml"
    return (yaml.safe_load(metadata.read_text(encoding="utf-8")) or {}) if metadata.is_file() else None


def takes_any_size(metadata: dict) -> bool:
    return bool((metadata.get("args") or {}).get("dynamic"))


def weights_sha256(path: Path) -> str:
    """SHA-256 of a weight file, or of a weight folder (each file's name and bytes, in name order)."""
    return _sha256_cached(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_cached(path: str, _mtime_ns: int) -> str:
    digest = hashlib.sha256()
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for file in files:
        if root.is_dir():
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
