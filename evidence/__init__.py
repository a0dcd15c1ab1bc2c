"""Evidence: violations become signed, stored, indexed packs (the one sink), and packs are verified."""
from .database import open_database
from .index import PackIndex, PackRow
from .manifest import MANIFEST, ManifestError, PackManifest, read_manifest
from .pack import EvidencePack, build_pack, pack_id_for
from .sink import EvidenceSink, StoredPack
from .store import EvidenceStore, LocalStore, StoreError
from .verify import VerifyReport, verify_pack

__all__ = [
    "MANIFEST", "EvidencePack", "EvidenceSink", "EvidenceStore", "LocalStore", "ManifestError", "PackIndex", "PackManifest",
    "PackRow", "StoreError", "StoredPack", "VerifyReport", "build_pack", "open_database", "pack_id_for", "read_manifest", "verify_pack",
]
