"""Nothing lost when storage is down: packs wait in a local spool and an uploader retries them.

``SpoolingStore`` accepts a pack even while MinIO is unreachable (it lands in the spool, a
local store that survives restarts), and a background thread keeps trying, with exponential
backoff, until each spooled pack is stored and verified upstream, then removes it locally.
"""
from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from .hashing import sha256_hex
from .manifest import MANIFEST, PackManifest
from .pack import EvidencePack
from .signing import SIGNATURE
from .store import LocalStore, StoreError
from .timestamps import TIMESTAMP

log = logging.getLogger(__name__)

UPLOADER_THREAD = "spool-uploader"


class SpoolingStore:
    def __init__(self, primary, spool_dir: Path, first_backoff_s: float = 1.0, max_backoff_s: float = 60.0):
        self.primary = primary
        self.spool = LocalStore(spool_dir)
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the store interface ---------------------------------------------------------------------
    def put(self, pack: EvidencePack) -> bool:
        if self.spool.exists(pack.pack_id):
            return False
        try:
            return self.primary.put(pack)
        except Exception as exc:  # any storage failure: keep the pack locally, retry later
            log.warning("evidence store unreachable (%s); pack %s spooled", exc, pack.pack_id)
            self.spool.put(pack)
            self._wake.set()
            return True

    def exists(self, pack_id: str) -> bool:
        return self.spool.exists(pack_id) or self.primary.exists(pack_id)

    def read(self, pack_id: str, path: str) -> bytes:
        if self.spool.exists(pack_id):
            return self.spool.read(pack_id, path)
        return self.primary.read(pack_id, path)

    def list_files(self, pack_id: str) -> list[str]:
        return self.spool.list_files(pack_id) if self.spool.exists(pack_id) else self.primary.list_files(pack_id)

    def pack_ids(self) -> list[str]:
        return sorted(set(self.spool.pack_ids()) | set(self.primary.pack_ids()))

    def describe(self, pack_id: str) -> str:
        return f"{self.spool.describe(pack_id)} (spooled)" if self.spool.exists(pack_id) else self.primary.describe(pack_id)

    def delete(self, pack_id: str, paths: list[str]) -> list[str]:
        return self.spool.delete(pack_id, paths) if self.spool.exists(pack_id) else self.primary.delete(pack_id, paths)

    # -- the uploader ------------------------------------------------------------------------------
    def spooled(self) -> list[str]:
        return self.spool.pack_ids()

    def _reload(self, pack_id: str) -> EvidencePack:
        """A spooled pack as it was accepted (the manifest's file list says what belongs to it)."""
        manifest_bytes = self.spool.read(pack_id, MANIFEST)
        manifest = PackManifest.from_bytes(manifest_bytes)
        files = {path: self.spool.read(pack_id, path) for path in manifest.files}
        altered = [path for path, data in files.items() if sha256_hex(data) != manifest.files[path]]
        if altered:
            raise StoreError(f"spooled pack {pack_id}: {', '.join(altered)} changed on disk since it was accepted")
        try:
            signature = self.spool.read(pack_id, SIGNATURE)
        except StoreError:
            signature = None
        try:
            timestamp = self.spool.read(pack_id, TIMESTAMP)
        except StoreError:
            timestamp = None  # stored while the TSA was unreachable, or none is configured
        return EvidencePack(pack_id, manifest, manifest_bytes, files, signature, timestamp)

    def drain_once(self) -> int:
        """Upload every spooled pack once; returns how many left the spool."""
        moved = 0
        for pack_id in self.spool.pack_ids():
            pack = self._reload(pack_id)
            self.primary.put(pack)  # idempotent: an already complete pack is left as it is
            for path, data in pack.stored_files().items():
                if self.primary.read(pack_id, path) != data:
                    raise StoreError(f"pack {pack_id}: {path} differs after upload")
            shutil.rmtree(self.spool.root / pack_id)
            moved += 1
        return moved

    def _run(self) -> None:
        backoff = self.first_backoff_s
        while not self._stop.is_set():
            if self.spool.pack_ids():
                try:
                    moved = self.drain_once()
                    log.info("uploaded %d spooled packs", moved)
                    backoff = self.first_backoff_s
                except Exception as exc:
                    log.warning("spool upload failed (%s); next try in %.0f s", exc, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
                    continue
            self._wake.wait(backoff)
            self._wake.clear()

    def start(self) -> "SpoolingStore":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=UPLOADER_THREAD, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
