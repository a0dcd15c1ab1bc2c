"""Ed25519 signatures over pack manifests: anyone with the exported public key can check a pack.

The private key must be out of reach of whoever can edit packs, or a forger simply re-signs:
it lives in its own folder (``NONSITE_KEYS_DIR``, never the data folder), is created with mode
0600 and refused when group or others can read it, and signing is pluggable: a
``CommandSigner`` hands the bytes to an external command (a wrapper around an HSM or KMS, or
``sudo -u nonsite-signer nonsite keys sign`` so that only a separate OS user can read the key).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE = "manifest.sig"
PRIVATE_KEY = "signing-ed25519.pem"
PUBLIC_KEY = "signing-ed25519.pub.pem"


class SigningKeyError(RuntimeError):
    """A signing key that cannot be used safely (readable by others, missing, unreadable)."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def envelope(public: Ed25519PublicKey, signature: bytes) -> bytes:
    """The signature file: which key, which algorithm, the signature."""
    return json.dumps({"alg": "Ed25519", "key_id": key_id(public), "signature": base64.b64encode(signature).decode()}).encode()


def write_private(path: Path, data: bytes) -> None:
    """Created with mode 0600 from the first byte (never world-readable, even for an instant)."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as out:
        out.write(data)


def create_keys(folder: Path) -> Path:
    """A new deployment key pair; the public half is what third parties are given."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path = folder / PRIVATE_KEY
    if private_path.exists():
        raise FileExistsError(f"{private_path} exists already; a deployment keeps one signing key")
    private = Ed25519PrivateKey.generate()
    write_private(private_path, private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / PUBLIC_KEY).write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return folder / PUBLIC_KEY


def check_key_file(path: Path) -> None:
    """Refuse a private key that others can read: whoever can read it can forge packs."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningKeyError(f"signing key {path} can be read by group or others (mode {mode:04o}): run chmod 600 {path}")


class Signer(Protocol):
    """Whatever signs manifests and audit checkpoints; returns the signature file's bytes."""

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class FileSigner:
    """The Ed25519 key in a file of the keys folder (mode 0600, checked on loading)."""

    private: Ed25519PrivateKey

    @classmethod
    def load(cls, folder: Path) -> "FileSigner | None":
        path = folder / PRIVATE_KEY
        if not path.is_file():
            return None
        check_key_file(path)
        return cls(serialization.load_pem_private_key(path.read_bytes(), password=None))

    def sign(self, data: bytes) -> bytes:
        return envelope(self.private.public_key(), self.private.sign(data))


@dataclass(frozen=True)
class CommandSigner:
    """Signing by an external command: the bytes on its standard input, the signature file on its output.

    The command may run as another OS user or talk to an HSM/KMS; nonsite never sees the key."""

    command: str
    timeout_s: float = 30.0

    def sign(self, data: bytes) -> bytes:
        done = subprocess.run(shlex.split(self.command), input=data, capture_output=True, timeout=self.timeout_s)
        if done.returncode != 0:
            raise SigningKeyError(f"signing command {self.command!r} failed ({done.returncode}): {done.stderr.decode(errors='replace')[:300]}")
        return done.stdout


def load_public_key(path: Path) -> Ed25519PublicKey:
    return serialization.load_pem_public_key(Path(path).read_bytes())


def check_signature(public: Ed25519PublicKey, manifest_bytes: bytes, signature_file: bytes) -> str | None:
    """None when the signature is good, else what is wrong with it."""
    try:
        found = json.loads(signature_file)
        signature = base64.b64decode(found["signature"])
    except (ValueError, KeyError, TypeError):
        return f"{SIGNATURE}: not a readable signature"
    if found.get("key_id") != key_id(public):
        return f"{SIGNATURE}: signed with key {found.get('key_id')}, not with this deployment's key {key_id(public)}"
    try:
        public.verify(signature, manifest_bytes)
    except InvalidSignature:
        return f"{SIGNATURE}: signature does not match manifest.json (the manifest or the signature was altered)"
    return None
