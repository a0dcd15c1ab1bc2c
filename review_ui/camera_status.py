"""The camera service's status folder as officers are shown it: on the cameras page, in the API, by ``nonsite status``.

The camera service (``nonsite fleet``) is another process; it leaves its status and each camera's
latest picture in its status folder (``ingest.health.StatusFolder``) and this only reads that
folder. The report says plainly when there is nothing to read (no service here) and when what it
reads is old (the service stopped writing): a supervisor must never take this morning's "live"
for now's.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from nonsite.evidence.schema import packs_table
from nonsite.ingest.health import CameraHealth, StatusFolder, StatusUnreadable

from .api_models import CameraReport, CamerasReport, KnownCamera
from .i18n import Text


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
                         detector=status.detector, nodes=status.nodes)


def _camera(folder: StatusFolder, camera: CameraHealth, now: datetime) -> CameraReport:
    try:
        taken = folder.snapshot_written(camera.camera)
    except ValueError:  # a config file that does not load is listed under its file name, which need not be an id
        taken = None
    return CameraReport(**camera.model_dump(), state_text=camera.state_in_words(now), last_frame_age_seconds=camera.last_frame_age_s(now),
                        snapshot=f"/cameras/{quote(camera.camera)}/snapshot" if taken else None, snapshot_at=taken)


ORIGINS = ("index", "fleet", "sites")  # how a camera is known, in the order the page names them


def desk_report(engine: Engine, sites: list[str], fleet_dir: Path | None, now: datetime) -> CamerasReport:
    """The camera service's report with every camera the desk knows beside it: what the cameras page and ``/api/cameras`` show."""
    report = cameras_report(fleet_dir, now)
    return report.model_copy(update={"known": known_cameras(engine, sites, report)})


def known_cameras(engine: Engine, sites: list[str], report: CamerasReport) -> list[KnownCamera]:
    """Every camera that produced packs, runs in the camera service or has a site file, merged by id:
    a camera whose file was removed, or that ran on another machine, still has its packs to answer for."""
    origins: dict[str, set[str]] = {}
    packs: dict[str, tuple[int, datetime]] = {}
    with engine.connect() as conn:
        for source, count, last in conn.execute(select(packs_table.c.source_id, func.count(), func.max(packs_table.c.threshold_at))
                                                .group_by(packs_table.c.source_id)):
            origins.setdefault(source, set()).add("index")
            packs[source] = (count, last)
    states = {camera.camera: camera.state for camera in report.cameras}
    for camera in states:
        origins.setdefault(camera, set()).add("fleet")
    for camera in sites:
        origins.setdefault(camera, set()).add("sites")
    known = []
    for camera, found in sorted(origins.items()):
        count, last = packs.get(camera, (0, None))
        known.append(KnownCamera(camera=camera, known_from=[o for o in ORIGINS if o in found], packs=count, last_pack=last,
                                 state=states.get(camera)))
    return known


def age_text(seconds: float) -> Text:
    """How long ago, in the officer's words (4 秒, 3 小时 05 分钟); ``ingest.health.age_in_words`` says it in English for the CLI."""
    whole = int(seconds)
    minutes, hours = whole // 60, whole // 3600
    if minutes < 1:
        return Text("{seconds} s", seconds=whole)
    if hours < 1:
        return Text("{minutes} min", minutes=minutes)
    if hours < 24:
        return Text("{hours} h {minutes} min", hours=hours, minutes=f"{minutes % 60:02d}")
    return Text("{days} d {hours} h", days=hours // 24, hours=hours % 24)
