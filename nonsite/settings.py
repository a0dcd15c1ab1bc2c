"""Deployment settings, from NONSITE_* environment variables (embedded defaults need none)."""
from __future__ import annotations

import logging
import os
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from nonsite.evidence import EvidenceSink, LocalStore, PackIndex, open_database
from nonsite.evidence.courier import Courier, Receiver, load_receivers
from nonsite.ingest.config import TimeZoneName
from nonsite.vision import ModelRegistry

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILT_MODELS_DIR = REPO_ROOT / "models" / "weights"  # exports and trained detectors made by `make models`


def _default_keys_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "nonsite" / "keys"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NONSITE_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Embedded database and local evidence store live here.")
    models_dir: Path = Field(default=REPO_ROOT / "models" / "weights", description="Where model weight files are looked up first.")
    manifests_dir: Path = Field(default=REPO_ROOT / "models", description="Model manifests (YAML).")
    datasets_dir: Path = Field(default=REPO_ROOT.parent / "shared" / "datasets", description="Real imagery for the demo.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite under data_dir.")
    store_dir: Path | None = Field(default=None, description="Local evidence store; default data_dir/evidence.")
    sites_dir: Path | None = Field(default=None, description="Camera site configs (YAML) the admin pages edit; default data_dir/sites.")
    episodes_dir: Path | None = Field(default=None, description="Open dwell episodes of running cameras; default data_dir/episodes. "
                                      "On a cluster, a folder every node shares lets a camera that moves keep its dwell clocks.")
    ray_address: str | None = Field(default=None, description="Ray cluster to run the camera service and drone flights on "
                                    "('auto', or the head's host:port); none: everything in this process.")
    camera_fps_per_cpu: float = Field(default=5.5, gt=0, description="Frames per second one CPU core analyses with the default model "
                                      "(measured: 12 cameras at 1 fps on 2 cores, 11.1 analysed): a cluster asks no node for more.")
    camera_fps_per_gpu: float = Field(default=60.0, gt=0, description="Frames per second one GPU analyses, for cameras "
                                      "configured with a CUDA device (measure it with `nonsite bench` on the GPU node).")
    model_versions_dir: Path | None = Field(default=None, description="The deployment's own model versions (promoted, candidates, "
                                            "in shadow, with their disagreements); default data_dir/models. Cluster nodes use the "
                                            "head's: on storage every node mounts, promotions and shadows reach every node.")
    shadow_every_s: float = Field(default=30.0, ge=1, description="A model version in shadow looks at one frame per camera this "
                                  "often (seconds), beside the current version.")
    secure_cookies: bool = Field(default=False, description="Mark session cookies Secure (serve behind HTTPS).")
    repeat_lookback_days: int = Field(default=365, ge=1, le=3650, description="An earlier case against the same shop licence "
                                      "or plate this many days back makes a repeat offence (首违不罚 applies to a first one).")
    procedure_file: Path | None = Field(default=None, description="The bureau's case procedure (YAML: steps, roles, approvals, "
                                       "documents, deadlines); default nonsite's own, review_ui/procedure.yaml, which documents the format.")
    document_templates: Path | None = Field(default=None, description="A folder of the bureau's own document templates "
                                            "(<kind>.html or <kind>.<category>.html), used before nonsite's (review_ui/documents/).")
    display_timezone: TimeZoneName = Field(default="Asia/Shanghai", description="IANA zone every time on the review desk, "
                                           "its API and dossiers is shown in (times are stored in UTC).")
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

    @property
    def episodes_path(self) -> Path:
        return self.episodes_dir or self.data_dir / "episodes"

    @property
    def fleet_dir(self) -> Path:
        """The camera service's status and latest pictures, read by the review UI and ``nonsite status``."""
        path = self.data_dir / "fleet"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.manifests_dir, [self.models_dir, BUILT_MODELS_DIR], self.model_versions_path)

    @property
    def model_versions_path(self) -> Path:
        return self.model_versions_dir or self.data_dir / "models"

    def open_index(self) -> PackIndex:
        return self._index

    @cached_property
    def _index(self) -> PackIndex:
        """The database, migrated to the current schema once per command."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.database_url:
            return PackIndex(open_database(self.database_url))
        path = (self.data_dir / "nonsite.db").resolve()
        index = PackIndex(open_database(f"sqlite:///{path}"))
        path.chmod(0o600)  # officers' accounts, decisions and the audit log: for the service user only
        return index

    def open_store(self):
        return self._store

    @cached_property
    def _store(self):
        """The local directory store, or MinIO behind a local spool when an S3 endpoint is set."""
        if not self.s3_endpoint:
            return LocalStore(self.store_dir or self.data_dir / "evidence")
        from nonsite.evidence.minio_store import MinioStore
        from nonsite.evidence.spool import SpoolingStore

        return SpoolingStore(MinioStore(self.s3_client(), self.s3_bucket, self.original_retention_days), self.data_dir / "spool").start()

    @cached_property
    def sink(self) -> EvidenceSink:
        """The one way into evidence for every command of this invocation."""
        self.anchor_audit()
        sink = EvidenceSink(self.open_store(), self.open_index(), self.signer, self.credentials, timestamper=self.timestamper())
        repaired = sink.repair()  # a crash between storing and indexing must not hide a pack from the officers
        for pack_id in repaired.indexed:
            log.warning("pack %s was stored but not indexed (an earlier run stopped in between): indexed now", pack_id)
        for problem in repaired.refused:
            log.warning("stored pack not indexed: %s", problem)
        return sink

    def anchor_audit(self) -> None:
        """Commands that append to the audit log checkpoint its head outside the database as they go."""
        from nonsite.evidence.audit import anchor

        anchor(self.open_index().engine, self.audit_checkpoints())

    keys_dir: Path = Field(default_factory=_default_keys_dir, description=(
        "Signing keys and the C2PA certificates. Never inside the data folder: whoever can edit packs must not "
        "be able to re-sign them. Default ~/.config/nonsite/keys; in production a folder only the signing user reads."))
    signing_command: str | None = Field(default=None, description=(
        "Sign with this command instead of a key file (manifest bytes on stdin, signature file on stdout): an HSM or "
        "KMS wrapper, or 'sudo -n -u nonsite-signer nonsite keys sign' so that only a separate OS user reads the key."))

    @property
    def keys_inside_data_dir(self) -> bool:
        return self.keys_dir.resolve().is_relative_to(self.data_dir.resolve())

    def ensure_keys(self) -> bool:
        """Packs are signed by default: the first command that writes evidence creates the key pair
        and the C2PA certificates in the keys folder. True when it created them."""
        from nonsite.evidence.credentials import create_certificates
        from nonsite.evidence.signing import PRIVATE_KEY, create_keys

        if self.signing_command or (self.keys_dir / PRIVATE_KEY).is_file():
            return False
        create_keys(self.keys_dir)
        create_certificates(self.keys_dir)
        log.warning("created this deployment's signing key in %s (first start); give third parties %s", self.keys_dir,
                    self.keys_dir / "signing-ed25519.pub.pem")
        return True

    @cached_property
    def signer(self):
        """The signer packs and audit checkpoints are signed with (a key file, or the signing command)."""
        from nonsite.evidence.signing import CommandSigner, FileSigner

        if self.signing_command:
            return CommandSigner(self.signing_command)
        self.ensure_keys()
        return FileSigner.load(self.keys_dir)

    @cached_property
    def credentials(self):
        from nonsite.evidence.credentials import ContentCredentials

        return ContentCredentials.load(self.keys_dir)

    def public_key(self):
        from nonsite.evidence.signing import PUBLIC_KEY, load_public_key

        path = self.keys_dir / PUBLIC_KEY
        return load_public_key(path) if path.is_file() else None

    audit_checkpoint_dir: Path | None = Field(default=None, description=(
        "Signed heads of the audit chain when evidence is kept locally (with MinIO they go to the bucket under audit/); "
        "default data_dir/audit-checkpoints. Best on storage the database's users cannot rewrite."))

    def audit_checkpoints(self, signing: bool = True):
        """Where the audit chain is anchored; ``signing=False`` only reads them, without touching the signing key."""
        from nonsite.evidence.checkpoints import CheckpointBucket, CheckpointFolder, Checkpoints

        if self.s3_endpoint:
            from nonsite.evidence.minio_store import MinioStore

            place = CheckpointBucket(MinioStore(self.s3_client(), self.s3_bucket, self.original_retention_days))
        else:
            place = CheckpointFolder(self.audit_checkpoint_dir or self.data_dir / "audit-checkpoints")
        return Checkpoints(place, self.signer if signing else None, self.public_key(), self.timestamper() if signing else None,
                           self.tsa_ca_file.read_bytes() if self.tsa_ca_file else None)

    tsa_url: str | None = Field(default=None, description=(
        "RFC 3161 time-stamping authority; when set, every pack manifest and audit checkpoint is time-stamped."))
    tsa_ca_file: Path | None = Field(default=None, description="The TSA's CA certificate (PEM) to verify tokens.")

    def timestamper(self) -> "TimeStamper | None":  # noqa: F821 - imported when a TSA is configured
        """A ``TimeStamper`` for the configured TSA (checking its tokens against the CA file when one is set), or None."""
        if not self.tsa_url:
            return None
        from nonsite.evidence.timestamps import TimeStamper

        return TimeStamper(self.tsa_url, self.tsa_ca_file.read_bytes() if self.tsa_ca_file else None)

    webhooks_file: Path | None = Field(default=None, description=(
        "YAML (or JSON) file of the city platform's webhook receivers, 'receivers: [{id, url, secret, events, timeout_s}]': "
        "every outbox event (pack.stored, pack.decided, pack.undone, case.step, document.issued; 'events' picks some) is "
        "POSTed to each as JSON, signed with its secret (HMAC-SHA256), in order, retried with backoff until acknowledged. "
        "`nonsite serve` delivers them, `nonsite outbox` reports. Readable by the service user only: it holds the secrets."))

    def webhook_receivers(self) -> list[Receiver]:
        return load_receivers(self.webhooks_file) if self.webhooks_file else []

    def courier(self) -> Courier:
        """The outbox's courier over this deployment's database and webhook receivers (none: it delivers nothing)."""
        return Courier(self.open_index().engine, self.webhook_receivers())
