"""Deployment settings, from NONSITE_* environment variables (embedded defaults need none)."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rules.evidence import LocalStore, PackIndex, make_engine
from vision import ModelRegistry

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILT_MODELS_DIR = REPO_ROOT / "models" / "weights"  # exports and trained detectors made by `make models`


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NONSITE_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Embedded database and local evidence store live here.")
    models_dir: Path = Field(default=REPO_ROOT / "models" / "weights", description="Where model weight files are looked up first.")
    manifests_dir: Path = Field(default=REPO_ROOT / "models", description="Model manifests (YAML).")
    datasets_dir: Path = Field(default=REPO_ROOT.parent / "shared" / "datasets", description="Real imagery for the demo.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite under data_dir.")
    store_dir: Path | None = Field(default=None, description="Local evidence store; default data_dir/evidence.")
    sites_dir: Path | None = Field(default=None, description="Camera site configs (YAML) the admin pages edit; default data_dir/sites.")
    secure_cookies: bool = Field(default=False, description="Mark session cookies Secure (serve behind HTTPS).")
    s3_endpoint: str | None = Field(default=None, description="MinIO/S3 endpoint host:port; set it to keep evidence in MinIO.")
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_secure: bool = Field(default=True, description="Use TLS to reach the endpoint.")
    s3_bucket: str = Field(default="nonsite-evidence", description="Bucket for evidence packs.")
    original_retention_days: int = Field(default=730, ge=1, description="WORM retention of originals where the bucket locks objects.")
    rejected_image_days: int = Field(default=30, ge=0, description="Rejected packs lose their images after this many days.")
    case_legal_days: int = Field(default=730, ge=0, description="Packs of a closed case are kept this long after closure.")

    def s3_client(self):
        if not self.s3_endpoint:
            raise ValueError("no S3 endpoint configured: set NONSITE_S3_ENDPOINT, NONSITE_S3_ACCESS_KEY, NONSITE_S3_SECRET_KEY")
        from minio import Minio

        return Minio(self.s3_endpoint, access_key=self.s3_access_key, secret_key=self.s3_secret_key, secure=self.s3_secure)

    @property
    def sites_path(self) -> Path:
        path = self.sites_dir or self.data_dir / "sites"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.manifests_dir, [self.models_dir, BUILT_MODELS_DIR])

    def open_index(self) -> PackIndex:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        url = self.database_url or f"sqlite:///{(self.data_dir / 'nonsite.db').resolve()}"
        return PackIndex(make_engine(url))

    keys_dir: Path | None = Field(default=None, description="Signing keys and certificates; default data_dir/keys.")

    @property
    def keys_path(self) -> Path:
        return self.keys_dir or self.data_dir / "keys"

    def open_store(self):
        return self._store

    @cached_property
    def _store(self):
        """The local directory store, or MinIO behind a local spool when an S3 endpoint is set."""
        if not self.s3_endpoint:
            return LocalStore(self.store_dir or self.data_dir / "evidence")
        from rules.evidence.minio_store import MinioStore
        from rules.evidence.spool import SpoolingStore

        return SpoolingStore(MinioStore(self.s3_client(), self.s3_bucket, self.original_retention_days), self.data_dir / "spool").start()

    @cached_property
    def signer(self):
        from rules.evidence.signing import Signer

        return Signer.load(self.keys_path)

    @cached_property
    def credentials(self):
        from rules.evidence.credentials import ContentCredentials

        return ContentCredentials.load(self.keys_path)

    def public_key(self):
        from rules.evidence.signing import PUBLIC_KEY, load_public_key

        path = self.keys_path / PUBLIC_KEY
        return load_public_key(path) if path.is_file() else None
