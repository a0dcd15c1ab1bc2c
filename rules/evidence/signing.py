"""Ed25519 signatures over pack manifests: anyone with the exported public key can check a pack."""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE = "manifest.sig"
PRIVATE_KEY = "signing-ed25519.pem"
PUBLIC_KEY = "signing-ed25519.pub.pem"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def create_keys(folder: Path) -> Path:
    """A new deployment key pair; the public half is what third parties are given."""
    folder.mkdir(parents=True, exist_ok=True)
    private_path = folder / PRIVATE_KEY
    if private_path.exists():
        raise FileExistsError(f"{private_path} exists already; a deployment keeps one signing key")
    private = Ed25519PrivateKey.generate()
    private_path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    private_path.chmod(0o600)
    (folder / PUBLIC_KEY).write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return folder / PUBLIC_KEY


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey

    @classmethod
    def load(cls, folder: Path) -> "Signer | None":
        path = folder / PRIVATE_KEY
        if not path.is_file():
            return None
        return cls(serialization.load_pem_private_key(path.read_bytes(), password=None))

    def sign(self, manifest_bytes: bytes) -> bytes:
        return json.dumps({
            "alg": "Ed25519", "key_id": key_id(self.private.public_key()),
            "signature": base64.b64encode(self.private.sign(manifest_bytes)).decode(),
        }).encode()


def load_public_key(path: Path) -> Ed25519PublicKey:
    return serialization.load_pem_public_key(Path(path).read_bytes())


def check_signature(public: Ed25519PublicKey, manifest_bytes: bytes, signature_file: bytes) -> str | None:
    """None when the signature is good, else what is wrong with it."""
    try:
        envelope = json.loads(signature_file)
        signature = base64.b64decode(envelope["signature"])
    except (ValueError, KeyError, TypeError):
        return f"{SIGNATURE}: not a readable signature"
    if envelope.get("key_id") != key_id(public):
        return f"{SIGNATURE}: signed with key {envelope.get('key_id')}, not with this deployment's key {key_id(public)}"
    try:
        public.verify(signature, manifest_bytes)
    except InvalidSignature:
        return f"{SIGNATURE}: signature does not match manifest.json (the manifest or the signature was altered)"
    return None
