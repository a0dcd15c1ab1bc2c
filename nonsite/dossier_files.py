"""Open an exported dossier (zip or folder) as a folder of packs for ``nonsite verify --dir``."""
from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def opened_dossier(path: Path) -> Iterator[Path]:
    """The folder holding pack folders: ``packs/`` inside a dossier, or the folder itself."""
    if path.is_file() and zipfile.is_zipfile(path):
        with tempfile.TemporaryDirectory() as scratch:
            with zipfile.ZipFile(path) as archive:
                archive.extractall(scratch)
            yield _packs_folder(Path(scratch))
        return
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a folder or a dossier zip")
    yield _packs_folder(path)


def _packs_folder(root: Path) -> Path:
    return root / "packs" if (root / "packs").is_dir() else root
