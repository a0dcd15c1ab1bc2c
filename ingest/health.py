"""How the camera service is doing, camera by camera, in a folder that other processes read.

The fleet runs every camera of a bureau in one long-lived process; the review UI, ``nonsite
status`` and a Prometheus scrape each need its state without talking to it. The fleet writes its
whole status as one JSON file every few seconds, replaced whole so a reader never sees half of
it, and each camera's latest picture beside it. A status file that stops being rewritten means
the fleet stopped or hangs: its age is what tells a supervisor the figures are from the past.
"""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, NonNegativeFloat, NonNegativeInt, TypeAdapter, ValidationError

from .config import Identifier
from .files import replace_file
from .probe import without_credentials

STATUS_FILE = "status.json"
SNAPSHOTS = "snapshots"
STALE_AFTER_S = 30.0  # the fleet rewrites its status every few seconds; this long without a write, it is not running
BUREAU_ZONE = ZoneInfo("Asia/Shanghai")  # status times are shown on the officers' clock, whatever the server's zone
_CAMERA_ID = TypeAdapter(Identifier)


class CameraState(StrEnum):
    """Where a camera's connection stands."""

    starting = "starting"  # not read a frame yet
    live = "live"
    reconnecting = "reconnecting"  # it was live or is down for now (refused, timed out): tried again and again
    failed = "failed"  # will not work until someone acts: wrong address or password, a broken config, a crashed pipeline
    stopped = "stopped"  # taken out of service, or a file or folder that played to its end


class CameraHealth(BaseModel):
    """One camera as the service sees it: its connection and the counters since it was started."""

    model_config = ConfigDict(frozen=True)

    camera: str
    uri: Annotated[str, AfterValidator(without_credentials)]  # a password in the URL never reaches the status: every supervisor reads it
    state: CameraState
    since: AwareDatetime  # when the camera entered ``state``
    reason: str | None = None  # why it is reconnecting, failed or stopped, e.g. "connection refused", "HTTP 404 Not Found"
    misconfigured: bool = False  # the address or config is wrong: retrying will not help until someone fixes it
    frames_read: NonNegativeInt = 0
    frames_detected: NonNegativeInt = 0
    reconnects: NonNegativeInt = 0
    decode_errors: NonNegativeInt = 0
    dropped_frames: NonNegativeInt = 0
    packs_raised: NonNegativeInt = 0
    last_frame_at: AwareDatetime | None = None
    model_latency_ms: NonNegativeFloat | None = None  # mean of the recent detections (queue wait plus model)
    node: str | None = None  # the cluster node the camera runs on; None in a one-machine fleet

    @property
    def up(self) -> bool:
        return self.state == CameraState.live

    def last_frame_age_s(self, now: datetime) -> float | None:
        """Seconds since the newest frame; None before the first one."""
        if self.last_frame_at is None:
            return None
        return max(0.0, (now - self.last_frame_at).total_seconds())

    def state_in_words(self, now: datetime, zone: tzinfo = BUREAU_ZONE) -> str:
        """What an officer reads: "live", "reconnecting since 14:03:22 (connection refused)",
        "failed: HTTP 404 Not Found". The time is local, with the date when it is not today's."""
        if self.state == CameraState.reconnecting:
            since = self.since.astimezone(zone)
            shown = f"{since:%H:%M:%S}" if since.date() == now.astimezone(zone).date() else f"{since:%Y-%m-%d %H:%M:%S}"
            return f"reconnecting since {shown}" + (f" ({self.reason})" if self.reason else "")
        if self.reason and self.state != CameraState.live:
            return f"{self.state}: {self.reason}"
        return str(self.state)


def age_in_words(seconds: float | None) -> str:
    """A last-frame age as an officer reads it: "4 s", "12 min", "3 h 05 min", "2 d 4 h"; "never" before the first frame."""
    if seconds is None:
        return "never"
    whole = int(seconds)
    minutes, hours = whole // 60, whole // 3600
    if minutes < 1:
        return f"{whole} s"
    if hours < 1:
        return f"{minutes} min"
    if hours < 24:
        return f"{hours} h {minutes % 60:02d} min"
    return f"{hours // 24} d {hours % 24} h"


class DetectorHealth(BaseModel):
    """The shared model across all cameras: how well batching works and what it costs."""

    model_config = ConfigDict(frozen=True)

    batches: NonNegativeInt
    mean_batch: NonNegativeFloat  # frames per model call; near 1 means the cameras barely share the model
    dropped: NonNegativeInt  # frames the detector's queue dropped because the model fell behind
    model_s: NonNegativeFloat  # seconds spent in the model since the fleet started


class ShadowHealth(BaseModel):
    """A model version running in shadow: what it looked at and what became of it."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: NonNegativeInt
    frames: dict[str, NonNegativeInt]  # compared, agreed, recorded, repeated, over_hourly, not_kept, failed


class NodeHealth(BaseModel):
    """One machine of a camera service on a cluster: what it offers, what it runs, what it holds back."""

    model_config = ConfigDict(frozen=True)

    name: str
    address: str
    state: str  # "starting" (its fleet is loading), "ready", or "lost" (died or stopped answering)
    since: AwareDatetime
    cpus: NonNegativeFloat
    gpus: NonNegativeFloat = 0.0
    models: list[str] = []  # the models whose weights this node holds
    cameras: list[str] = []
    evidence_queue: NonNegativeInt = 0  # violations accepted on the node and not yet stored as packs
    spooled_packs: NonNegativeInt = 0  # packs stored on the node's disk while the evidence store is out of reach
    cpu_s: dict[str, float] = {}  # its camera service's CPU seconds since it started, by part (``nonsite.cpu_parts``)


class FleetStatus(BaseModel):
    """Everything the fleet says about itself at one moment."""

    model_config = ConfigDict(frozen=True)

    written_at: AwareDatetime
    pid: int
    started_at: AwareDatetime
    cameras: list[CameraHealth]
    detector: DetectorHealth | None = None
    shadows: list[ShadowHealth] = []  # model versions running in shadow beside the current ones
    nodes: list[NodeHealth] = []  # on a cluster: every node; empty for a one-machine fleet
    unplaced: dict[str, str] = {}  # on a cluster: cameras no node can take now, and why
    cpu_s: dict[str, float] = {}  # the process's CPU seconds since it started, by part (``nonsite.cpu_parts``)


class StatusUnreadable(Exception):
    """The status file exists but cannot be read or is not a status; the message says why."""


class StatusFolder:
    """The fleet's status folder: ``status.json`` and ``snapshots/<camera>.jpg``.

    One process writes, any number read; every file is replaced whole (temp file, rename), so a
    reader gets the previous version or the next, never a mix."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def status_file(self) -> Path:
        return self.path / STATUS_FILE

    def write(self, status: FleetStatus) -> None:
        replace_file(self.status_file, status.model_dump_json(indent=1).encode(), durable=True)

    def read(self) -> FleetStatus | None:
        """The last status written; None when no fleet ever wrote one here."""
        try:
            raw = self.status_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StatusUnreadable(f"{self.status_file} cannot be read: {exc.strerror}") from exc
        try:
            return FleetStatus.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise StatusUnreadable(f"{self.status_file} is not a fleet status: {where + ': ' if where else ''}{first['msg']}") from exc

    def last_written(self) -> datetime | None:
        """When the status was last replaced, from the file itself: known even when its content is unreadable."""
        return _modified(self.status_file)

    def is_stale(self, now: datetime, max_age_s: float = STALE_AFTER_S) -> bool:
        """The fleet wrote a status once but has stopped rewriting it: it was stopped, it died or it hangs.
        False when there is no status at all (no fleet ever ran here)."""
        written = self.last_written()
        return written is not None and (now - written).total_seconds() > max_age_s

    def snapshot_path(self, camera: str) -> Path:
        """Where the camera's latest picture lives. Camera ids are identifiers (letters, digits, '.',
        '_', '-', never starting with '.'): anything else, a path separator above all, is refused."""
        try:
            _CAMERA_ID.validate_python(camera)
        except ValidationError as exc:
            raise ValueError(f"not a camera id: {camera!r}") from exc
        return self.path / SNAPSHOTS / f"{camera}.jpg"

    def snapshot_written(self, camera: str) -> datetime | None:
        """When the camera's picture was taken (written); None when it has none. A failed camera keeps its
        last picture, and the page must not pass it off as the current view."""
        return _modified(self.snapshot_path(camera))

    def read_snapshot(self, camera: str) -> bytes | None:
        """The camera's latest picture (JPEG); None when the service has written none."""
        try:
            return self.snapshot_path(camera).read_bytes()
        except FileNotFoundError:
            return None

    def write_snapshot(self, camera: str, jpeg: bytes) -> Path:
        """Replace the camera's picture. Not fsynced: it is rewritten every few seconds, and a
        hundred cameras' pictures forced to disk each time would cost the disk for nothing."""
        path = self.snapshot_path(camera)
        replace_file(path, jpeg)
        return path


def _modified(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    except FileNotFoundError:
        return None
