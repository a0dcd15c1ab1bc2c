"""The camera service's status folder as officers are shown it: on the cameras page, in the API, by ``nonsite status``.

The camera service (``nonsite fleet``) is another process; it leaves its status and each camera's
latest picture in its status folder (``ingest.health.StatusFolder``) and this only reads that
folder. The report says plainly when there is nothing to read (no service here) and when what it
reads is old (the service stopped writing): a supervisor must never take this morning's "live"
for now's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from nonsite.evidence.schema import packs_table
from nonsite.ingest.health import CameraHealth, StatusFolder, StatusUnreadable

from .api_models import CameraReport, CamerasReport


def cameras_report(fleet_dir: Path | None, now: datetime) -> CamerasReport:
    """What the status folder says, ages counted to ``now``; ``fleet_dir`` None: this deployment has none."""
    if fleet_dir is None:
        return CamerasReport(fleet="none", written_at=None)
    folder = StatusFolder(fleet_dir)
    try:
        status = folder.read()
    except StatusUnreadable as exc:
        return CamerasReport(fleet="unreadable", written_at=folder.last_written(), problem=str(exc))
    if status is None:
        return CamerasReport(fleet="none", written_at=None)
    return CamerasReport(fleet="stale" if folder.is_stale(now) else "running", written_at=folder.last_written() or status.written_at,
                         started_at=status.started_at, cameras=[_camera(folder, c, now) for c in status.cameras],
                         detector=status.detector)


def _camera(folder: StatusFolder, camera: CameraHealth, now: datetime) -> CameraReport:
    try:
        taken = folder.snapshot_written(camera.camera)
    except ValueError:  # a config file that does not load is listed under its file name, which need not be an id
        taken = None
    return CameraReport(**camera.model_dump(), state_text=camera.state_in_words(now), last_frame_age_seconds=camera.last_frame_age_s(now),
                        snapshot=f"/cameras/{quote(camera.camera)}/snapshot" if taken else None, snapshot_at=taken)


@dataclass
class KnownCamera:
    """A camera as the desk knows it: from its packs in the index, the running camera service, a site file, or several."""

    camera: str
    known_from: set[str] = field(default_factory=set)  # 'index', 'fleet', 'sites'
    packs: int = 0
    last_pack: datetime | None = None
    health: CameraReport | None = None


def known_cameras(engine: Engine, sites: list[str], report: CamerasReport) -> list[KnownCamera]:
    """Every camera that produced packs, runs in the camera service or has a site file, merged by id:
    a camera whose file was removed, or that ran on another machine, still has its packs to answer for."""
    found: dict[str, KnownCamera] = {}

    def of(camera: str) -> KnownCamera:
        return found.setdefault(camera, KnownCamera(camera))

    with engine.connect() as conn:
        for source, packs, last in conn.execute(select(packs_table.c.source_id, func.count(), func.max(packs_table.c.threshold_at))
                                                .group_by(packs_table.c.source_id)):
            known = of(source)
            known.known_from.add("index")
            known.packs, known.last_pack = packs, last
    for camera in report.cameras:
        of(camera.camera).known_from.add("fleet")
        found[camera.camera].health = camera
    for camera in sites:
        of(camera).known_from.add("sites")
    return sorted(found.values(), key=lambda k: k.camera)
