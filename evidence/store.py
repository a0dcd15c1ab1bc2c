"""Where packs live. One interface; the local directory is the embedded default."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Protocol

from .manifest import MANIFEST
from .pack import EvidencePack


class StoreError(RuntimeError):
    """A pack or file that is not in the store, or a path that tries to leave it."""


def check_relative(path: str) -> str:
    """Reject absolute paths and '..' so a request can never read outside its pack."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise StoreError(f"invalid path inside a pack: {path!r}")
    return pure.as_posix()


class EvidenceStore(Protocol):
    def put(self, pack: EvidencePack) -> bool:
        """Store a whole pack; False when a pack with that id is already stored (idempotent)."""

    def exists(self, pack_id: str) -> bool: ...

    def read(self, pack_id: str, path: str) -> bytes: ...

    def list_files(self, pack_id: str) -> list[str]: ...

    def pack_ids(self) -> list[str]: ...

    def describe(self, pack_id: str) -> str:
        """Human-readable location of a pack (printed by the CLI)."""

    def delete(self, pack_id: str, paths: list[str]) -> list[str]:
        """Remove files of a pack (retention); returns those removed."""


class LocalStore:
    """Packs as folders under ``root``; each appears by one atomic rename of a finished folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._staging = self.root / ".staging"

    def _dir(self, pack_id: str) -> Path:
        if not pack_id or "/" in pack_id or pack_id.startswith("."):
            raise StoreError(f"invalid pack id {pack_id!r}")
        return self.root / pack_id

    def put(self, pack: EvidencePack) -> bool:
        final = self._dir(pack.pack_id)
        if final.exists():
            return False
        self._staging.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{pack.pack_id}.", dir=self._staging))
        try:
            for path, data in pack.stored_files().items():
                target = staging / check_relative(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            os.rename(staging, final)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if final.exists():  # another writer won the race with the same pack
                return False
            raise
        return True

    def exists(self, pack_id: str) -> bool:
        return (self._dir(pack_id) / MANIFEST).is_file()

    def read(self, pack_id: str, path: str) -> bytes:
        target = self._dir(pack_id) / check_relative(path)
        try:
            return target.read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise StoreError(f"pack {pack_id}: no file {path}") from exc

    def list_files(self, pack_id: str) -> list[str]:
        folder = self._dir(pack_id)
        if not folder.is_dir():
            raise StoreError(f"no pack {pack_id} in {self.root}")
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def pack_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def describe(self, pack_id: str) -> str:
        return str(self._dir(pack_id))

    def delete(self, pack_id: str, paths: list[str]) -> list[str]:
        removed = []
        for path in paths:
            target = self._dir(pack_id) / check_relative(path)
            if target.is_file():
                target.unlink()
                removed.append(path)
        folder = self._dir(pack_id)
        if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
            shutil.rmtree(folder)
        return removed
