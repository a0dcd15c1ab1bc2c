"""Evidence packs in MinIO (or any S3 API) through the official client, behind the store interface.

Every object carries its SHA-256 in its metadata. The manifest is written last, so a pack is
visible only once all of its files are stored. Originals are written once: an existing
original is never replaced. Where the bucket has object locking, originals are stored with a
COMPLIANCE retention period (WORM) so not even an administrator can delete them early.
"""
from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta, timezone

from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import S3Error
from minio.retention import Retention

from .hashing import sha256_hex
from .manifest import MANIFEST
from .pack import EvidencePack
from .store import StoreError, check_relative

PREFIX = "packs/"


class MinioStore:
    def __init__(self, client: Minio, bucket: str, original_retention_days: int = 730):
        self.client = client
        self.bucket = bucket
        self.retention_days = original_retention_days
        self._locked: bool | None = None

    def _key(self, pack_id: str, path: str = "") -> str:
        if not pack_id or "/" in pack_id or pack_id.startswith("."):
            raise StoreError(f"invalid pack id {pack_id!r}")
        return f"{PREFIX}{pack_id}/{check_relative(path) if path else ''}"

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    @property
    def object_lock(self) -> bool:
        if self._locked is None:
            try:
                self._locked = self.client.get_object_lock_config(self.bucket) is not None
            except S3Error:
                self._locked = False
        return self._locked

    def _stored_sha256(self, key: str) -> str | None:
        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise
        meta = {k.lower(): v for k, v in (stat.metadata or {}).items()}
        return meta.get("x-amz-meta-sha256", "")

    def put(self, pack: EvidencePack) -> bool:
        """Upload and verify a pack; False when it was complete already (uploads are idempotent)."""
        self.ensure_bucket()
        if self._stored_sha256(self._key(pack.pack_id, MANIFEST)) is not None:
            return False
        files = pack.stored_files()
        manifest = files.pop(MANIFEST)
        for path, data in [*files.items(), (MANIFEST, manifest)]:  # the manifest last: it makes the pack visible
            key = self._key(pack.pack_id, path)
            digest = sha256_hex(data)
            existing = self._stored_sha256(key)
            if existing == digest:
                continue  # left by an interrupted upload of the same pack
            if existing is not None and path.startswith("original/"):
                raise StoreError(f"{key}: an original with other content exists; originals are never overwritten")
            retention = None
            if path.startswith("original/") and self.object_lock:
                retention = Retention(COMPLIANCE, datetime.now(timezone.utc) + timedelta(days=self.retention_days))
            # The S3 checksum headers make the server itself check the SHA-256 on arrival (and satisfy
            # object lock's demand for a checksum); the metadata copy is what a later stat reports.
            headers = {"sha256": digest, "x-amz-sdk-checksum-algorithm": "SHA256",
                       "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(digest)).decode()}
            self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), metadata=headers, retention=retention)
            if self._stored_sha256(key) != digest:
                raise StoreError(f"{key}: stored object does not carry the expected SHA-256")
        return True

    def exists(self, pack_id: str) -> bool:
        return self._stored_sha256(self._key(pack_id, MANIFEST)) is not None

    def read(self, pack_id: str, path: str) -> bytes:
        try:
            response = self.client.get_object(self.bucket, self._key(pack_id, path))
        except S3Error as exc:
            raise StoreError(f"pack {pack_id}: no file {path} ({exc.code})") from exc
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def list_files(self, pack_id: str) -> list[str]:
        prefix = self._key(pack_id)
        names = sorted(o.object_name[len(prefix):] for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True))
        if not names:
            raise StoreError(f"no pack {pack_id} in s3://{self.bucket}")
        return names

    def pack_ids(self) -> list[str]:
        if not self.client.bucket_exists(self.bucket):
            return []  # nothing stored yet: the bucket is made with the first pack
        return sorted(o.object_name[len(PREFIX):].rstrip("/") for o in self.client.list_objects(self.bucket, prefix=PREFIX) if o.is_dir)

    def describe(self, pack_id: str) -> str:
        return f"s3://{self.bucket}/{self._key(pack_id)}"

    def delete(self, pack_id: str, paths: list[str]) -> list[str]:
        removed = []
        for path in paths:
            key = self._key(pack_id, path)
            if self._stored_sha256(key) is not None:
                self.client.remove_object(self.bucket, key)
                removed.append(path)
        return removed

    def presigned_url(self, pack_id: str, path: str, minutes: int = 5) -> str:
        """A short-lived link for the review UI (an alternative to streaming through the app)."""
        return self.client.presigned_get_object(self.bucket, self._key(pack_id, path), expires=timedelta(minutes=minutes))
