"""SHA-256 helpers shared by pack writing and verification."""
from __future__ import annotations

import hashlib
import json


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value) -> bytes:
    """Stable bytes for a JSON value: sorted keys, no spaces, UTF-8 (what gets hashed and signed)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
