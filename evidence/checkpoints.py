"""Signed heads of the audit chain, kept outside the database the chain lives in.

Whoever can write the database can delete the newest entries, or rewrite the chain and
recompute every hash after the change: the chain alone then still verifies. A checkpoint
records the chain's head at a moment (the entry number and its hash, which covers every entry
before it), signed with the deployment's key and kept where the database's users cannot
rewrite it: in the evidence bucket under ``audit/`` (locked COMPLIANCE where the bucket locks
objects) when evidence is kept in MinIO, in a folder otherwise. ``audit.verify_chain`` compares
the chain with every checkpoint. Without a signing key checkpoints are still written, unsigned,
and the verification says so. Where a TSA is configured each checkpoint also carries an RFC 3161
token over the signed bytes (``timestamps``): proof of when the head stood so, that does not rest
on the deployment's key.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .hashing import canonical_json, sha256_hex
from .signing import Signer, check_signature
from .timestamps import TimeStamper, check_token, time_note, token_time

PREFIX = "audit/"

log = logging.getLogger(__name__)


def _name(seq: int) -> str:
    return f"checkpoint-{seq:012d}.json"  # zero-padded: names sort in chain order


def _seq_of(name: str) -> int | None:
    match = re.fullmatch(r"checkpoint-(\d{12})\.json", name)
    return int(match[1]) if match else None


class CheckpointFolder:
    """Checkpoints as files; each is written once, completely or not at all."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def describe(self) -> str:
        return str(self.folder)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob("checkpoint-*.json")) if self.folder.is_dir() else []

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def write_once(self, name: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / name
        if target.exists():
            return
        partial = target.with_name(f".{name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(target)


class CheckpointBucket:
    """Checkpoints in the evidence bucket under ``audit/``, WORM-locked for as long as originals are."""

    def __init__(self, store):
        self.store = store  # a MinioStore: its client, bucket, lock and retention are the evidence's own

    def describe(self) -> str:
        return f"s3://{self.store.bucket}/{PREFIX}"

    def names(self) -> list[str]:
        if not self.store.client.bucket_exists(self.store.bucket):
            return []  # nothing stored yet, so nothing checkpointed either
        objects = self.store.client.list_objects(self.store.bucket, prefix=PREFIX, recursive=True)
        return sorted(o.object_name[len(PREFIX):] for o in objects)

    def read(self, name: str) -> bytes:
        response = self.store.client.get_object(self.store.bucket, PREFIX + name)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def _exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.store.client.stat_object(self.store.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True

    def write_once(self, name: str, data: bytes) -> None:
        from minio.commonconfig import COMPLIANCE
        from minio.retention import Retention

        self.store.ensure_bucket()
        if self._exists(PREFIX + name):
            return
        retention = None
        if self.store.object_lock:
            retention = Retention(COMPLIANCE, datetime.now(timezone.utc) + timedelta(days=self.store.retention_days))
        digest = sha256_hex(data)
        headers = {"sha256": digest, "x-amz-sdk-checksum-algorithm": "SHA256",
                   "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(digest)).decode()}
        self.store.client.put_object(self.store.bucket, PREFIX + name, io.BytesIO(data), len(data),
                                     metadata=headers, retention=retention, content_type="application/json")


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head as it stood at ``at``: entry ``seq`` had ``hash``."""

    seq: int
    hash: str
    at: str
    signed: bool
    time_stamped_at: datetime | None = None  # the TSA's time, when the checkpoint carries a good RFC 3161 token


@dataclass
class CheckpointReading:
    """Every checkpoint that can be relied on, and what is wrong or weak about the others."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def latest(self) -> Checkpoint | None:
        return max(self.checkpoints, key=lambda c: c.seq, default=None)


class Checkpoints:
    """Writes signed checkpoints to one place, and reads them back with their signatures checked."""

    def __init__(self, place: CheckpointFolder | CheckpointBucket, signer: Signer | None, public_key=None,
                 timestamper: TimeStamper | None = None, tsa_ca: bytes | None = None):
        self.place = place
        self.signer = signer
        self.public_key = public_key
        self.timestamper = timestamper  # writes an RFC 3161 token into each checkpoint
        self.tsa_ca = tsa_ca  # the TSA's CA certificate (PEM) that tokens are checked against

    def describe(self) -> str:
        return self.place.describe()

    def write(self, seq: int, digest: str) -> Checkpoint:
        head = {"seq": seq, "hash": digest, "at": datetime.now(timezone.utc).isoformat()}
        signature = json.loads(self.signer.sign(canonical_json(head))) if self.signer else None
        stored = {"head": head, "signature": signature}
        token = self._token(canonical_json(head), seq)
        if token is not None:
            stored["timestamp"] = base64.b64encode(token).decode()
        self.place.write_once(_name(seq), json.dumps(stored, indent=1).encode())
        return Checkpoint(seq, digest, head["at"], signature is not None, token_time(token) if token is not None else None)

    def _token(self, signed_bytes: bytes, seq: int) -> bytes | None:
        """The TSA's token, or None: the TSA being down must not cost the checkpoint itself."""
        if self.timestamper is None:
            return None
        try:
            return self.timestamper.stamp(signed_bytes)
        except Exception as exc:  # noqa: BLE001 - TimestampError, or anything else: the checkpoint is written regardless
            log.warning("audit checkpoint at entry %d written without an RFC 3161 time-stamp: %s", seq, exc)
            return None

    def latest_seq(self) -> int:
        """The newest checkpoint's entry number by its name alone (0 when there is none): cheap to ask often."""
        return max((s for s in map(_seq_of, self.place.names()) if s is not None), default=0)

    def read(self) -> CheckpointReading:
        """Every checkpoint: one whose signature fails is a problem and not relied on; unsigned ones are, with a note."""
        reading = CheckpointReading()
        unsigned = unchecked = 0
        stamped: list[Checkpoint] = []
        unstamped = 0
        for name in self.place.names():
            if _seq_of(name) is None:
                continue
            try:
                stored = json.loads(self.place.read(name))
                head, signature = stored["head"], stored["signature"]
                checkpoint = Checkpoint(int(head["seq"]), str(head["hash"]), str(head["at"]), signature is not None)
            except (ValueError, KeyError, TypeError):
                reading.problems.append(f"checkpoint {name} in {self.describe()} is unreadable (damaged or not a checkpoint)")
                continue
            if signature is None:
                unsigned += 1
            elif self.public_key is None:
                unchecked += 1
            elif check_signature(self.public_key, canonical_json(head), json.dumps(signature).encode()) is not None:
                reading.problems.append(f"checkpoint {name} (entry {checkpoint.seq}, {checkpoint.at}): its signature does "
                                        "not verify with this deployment's key; it was altered or forged")
                continue
            if stored.get("timestamp") is not None:
                try:
                    at, problem = check_token(base64.b64decode(stored["timestamp"]), canonical_json(head), self.tsa_ca)
                except (ValueError, TypeError):
                    at, problem = None, "not readable base64"
                if problem:
                    reading.problems.append(f"checkpoint {name} (entry {checkpoint.seq}, {checkpoint.at}): its RFC 3161 "
                                            f"time-stamp does not verify: {problem}")
                else:
                    checkpoint = Checkpoint(checkpoint.seq, checkpoint.hash, checkpoint.at, checkpoint.signed, at)
                    stamped.append(checkpoint)
            else:
                unstamped += 1
            reading.checkpoints.append(checkpoint)
        if unsigned:
            reading.warnings.append(f"unsigned checkpoints (written without a signing key): {unsigned}; they prove "
                                    f"the chain only as far as {self.describe()} itself is trusted")
        if unchecked:
            reading.warnings.append(f"signed checkpoints not checked, for want of a public key: {unchecked}")
        if stamped:
            latest = max(stamped, key=lambda c: c.seq)
            reading.warnings.append(f"checkpoints with a valid RFC 3161 time-stamp: {len(stamped)}; the latest (entry {latest.seq}) "
                                    f"{time_note(latest.time_stamped_at)}"
                                    + ("" if self.tsa_ca is not None else " (its certificate not checked: no TSA CA configured)"))
        if unstamped and self.tsa_ca is not None:
            reading.warnings.append(f"checkpoints without an RFC 3161 time-stamp: {unstamped} (written while the TSA was "
                                    "unreachable, or before one was configured)")
        return reading
