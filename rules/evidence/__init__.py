"""Evidence packs: build, store, index and verify."""
from .index import PackIndex, PackRow, make_engine
from .pack import MANIFEST, EvidencePack, build_pack, pack_id_for
from .store import EvidenceStore, LocalStore, StoreError
from .verify import VerifyReport, verify_pack

__all__ = [
    "MANIFEST", "EvidencePack", "EvidenceStore", "LocalStore", "PackIndex", "PackRow", "StoreError", "VerifyReport",
    "build_pack", "make_engine", "pack_id_for", "verify_pack",
]
