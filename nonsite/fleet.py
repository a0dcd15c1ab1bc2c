"""The camera service: every site config in the sites folder is one camera of one process.

A county bureau runs over a hundred fixed cameras around the clock. One process per camera would
load the model, the Python runtime and the evidence stack once per camera; here they are loaded
once. Each camera has a reader thread (``LiveStream``: newest frame at the sample rate, its own
reconnects) and a pipeline thread (motion gate, tracker, dwell clocks); frames due for the model
go to one ``SharedDetector`` per set of models that batches across cameras (each model is loaded
once for the fleet), and violations go to one durable
``EvidenceQueue`` whose workers build, sign and store packs beside the cameras.

The fleet watches the sites folder (the YAML files the zone editor writes): a new file starts a
camera, an edited one restarts only that camera with its dwell clocks carried over, a removed
one stops it; a file that does not validate is reported and leaves the running camera as it was.
A camera whose thread dies is restarted after a pause; one whose reader stays "live" without
delivering frames is replaced. A model's candidate version put in shadow (``nonsite shadow``) is
loaded beside it and shown a sample of the cameras' frames (``vision.shadow``). Open dwell episodes are saved while running and at a stop, and
resumed at the next start, so a restart never raises a second pack for a car that stayed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2

from nonsite.evidence import EvidenceSink
from nonsite.evidence.episodes import EpisodeStore
from nonsite.evidence.courier import OUTBOX_THREAD
from nonsite.evidence.queue import WORKER_THREAD, EvidenceQueue
from nonsite.evidence.spool import UPLOADER_THREAD
from nonsite.ingest import Frame, LiveStream, open_source
from nonsite.ingest.health import CameraHealth, CameraState, DetectorHealth, FleetStatus, ShadowHealth, StatusFolder
from nonsite.ingest.stream import READER_THREAD
from nonsite.rules import ConfigError, SiteConfig, load_config
from nonsite.vision import ModelRegistry
from nonsite.vision.shadow import SHADOW_THREAD, ShadowRunner
from nonsite.vision.shadow_book import ShadowBook
from nonsite.vision.shared import SHARED_DETECTOR_THREAD, CameraDetector, SharedDetector

from .cpu_parts import CpuByPart
from .memory import NativeMemory
from .pipeline import PREFETCH_THREAD, Pipeline

log = logging.getLogger("nonsite.fleet")

_SCAN_S = 2.0  # how often the sites folder is looked at and the status written
_SNAPSHOT_S = 10.0  # how often each camera's latest picture is written for the cameras page
_SNAPSHOT_WIDTH = 640
_SAVE_EPISODES_S = 30.0  # open dwell episodes are saved this often while a camera runs
_RESTART_PAUSES_S = (2.0, 5.0, 15.0, 60.0)  # after a camera's thread died: the pause before each next start
_SILENT_LIVE_S = 30.0  # a reader "live" for this long without a frame is hung: replace it
_MODEL_THREADS = 1  # OpenVINO inference threads per shared model: its second worker cost more CPU than it saved (Detector)

PIPELINE_THREAD = "pipeline-"  # + the camera's id
# The fleet's threads by the part of the service each is, each prefix defined where its threads start (``CpuByPart``).
THREAD_PARTS = {"readers": (READER_THREAD, PREFETCH_THREAD), "pipelines": (PIPELINE_THREAD,), "model": (SHARED_DETECTOR_THREAD,),
                "shadow": (SHADOW_THREAD,), "evidence": (WORKER_THREAD, OUTBOX_THREAD, UPLOADER_THREAD)}


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class SiteFile:
    """One YAML file of the sites folder as last read: its digest decides whether it changed."""

    path: Path
    digest: str
    config: SiteConfig | None
    error: str | None
    raw: bytes = b""


def read_site(path: Path, known: SiteFile | None = None) -> SiteFile:
    """The file as it is now; ``known`` again, unparsed, when its bytes have not changed (the sites folder is
    looked at every few seconds: parsing 16 files each time took 0.03 of a core, measured)."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if known is not None and known.digest == digest:
        return known
    try:
        return SiteFile(path, digest, load_config(path, SiteConfig), None, raw)
    except ConfigError as exc:
        return SiteFile(path, digest, None, str(exc), raw)


def config_problem(site: SiteFile) -> CameraHealth:
    """How a site file that does not validate shows among the cameras: failed, misconfigured, and why."""
    return CameraHealth(camera=site.path.stem, uri=str(site.path), state=CameraState.failed, since=_now(),
                        reason=f"config error: {site.error}", misconfigured=True)


class _Stop(Exception):
    """Ends a file or folder camera's pipeline between two frames when the fleet stops it."""


def snapshot_jpeg(frame: Frame) -> bytes | None:
    """The frame at most ``_SNAPSHOT_WIDTH`` wide as a JPEG, for the cameras page and rechecks; None, logged, when
    its picture does not decode (a sub-stream camera's main key frame is decoded only here and for packs: one
    damaged key frame must not stop the loop that reports every camera), and when the sub-stream picture stands
    in for it: enlarged, it is not the camera's view a supervisor or a recheck takes it for."""
    try:
        image = frame.image
        if frame.stand_in:
            raise ValueError(frame.stand_in)
    except ValueError as exc:
        log.warning("camera %s: no snapshot of the frame of %s: %s", frame.source_id, frame.captured_at.isoformat(), exc)
        return None
    height, width = image.shape[:2]
    scale = min(1.0, _SNAPSHOT_WIDTH / width)
    small = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return jpeg.tobytes() if ok else None


class Camera:
    """One running camera: its source, its pipeline on a thread of its own, its counters."""

    def __init__(self, config: SiteConfig, fleet: "Fleet", restarts: int = 0):
        self.config = config
        self.id = config.source.id
        self.fleet = fleet
        self.restarts = restarts
        self.shared = fleet.detector_for(config)
        self.detector: CameraDetector = self.shared.for_camera(self.id)
        self.pipeline = Pipeline(config, [self.detector], fleet.sink, queue=fleet.queue)
        self.source = LiveStream(config.source) if config.source.kind == "stream" else None
        self.started_at = _now()
        self.ended_at: datetime | None = None
        self.ended_by: str | None = None  # why the thread ended: None while it runs
        self.latest: Frame | None = None
        self.frames_read = 0  # files and folders: frames taken from the source (streams count in their reader)
        self._saved_at = time.monotonic()
        self._snapshot_at = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{PIPELINE_THREAD}{self.id}", daemon=True)

    def start(self) -> "Camera":
        resumed = self.fleet.episodes.load(self.id)
        if resumed is not None:
            state, saved_at = resumed
            self.pipeline.engine.resume(state, _now())
            log.info("camera %s: resumed its open dwell episodes saved at %s", self.id, saved_at.isoformat(timespec="seconds"))
        self._thread.start()
        return self

    def _run(self) -> None:
        frames = self.source if self.source is not None else open_source(self.config.source)
        try:
            self.pipeline.run(frames, on_frame=self._on_frame)
            self.ended_by = "stopped" if self._stopping.is_set() else "the source ended"
        except _Stop:
            self.ended_by = "stopped"
        except Exception as exc:  # noqa: BLE001 - the fleet restarts the camera; the others go on
            self.ended_by = f"failed: {type(exc).__name__}: {exc}"
            log.exception("camera %s: pipeline failed", self.id)
        finally:
            close = getattr(frames, "close", None)
            if close:
                close()
            self._save_episodes()
            self.ended_at = _now()

    def _on_frame(self, frame: Frame) -> None:
        """After each analysed frame, on the pipeline's thread (which alone touches the engine)."""
        self.latest = frame
        if self.source is None:
            self.frames_read += 1
        if self._stopping.is_set() and self.source is None:
            raise _Stop
        if time.monotonic() - self._saved_at >= _SAVE_EPISODES_S:
            self._save_episodes()

    def _save_episodes(self) -> None:
        self._saved_at = time.monotonic()
        try:
            self.fleet.episodes.save(self.id, self.pipeline.engine.open_episodes(), _now())
        except Exception:  # noqa: BLE001 - a failed save costs continuity after a restart, never the camera
            log.exception("camera %s: could not save its open dwell episodes", self.id)

    def running(self) -> bool:
        return self._thread.is_alive()

    def hung(self) -> bool:
        """A reader that says "live" but has delivered nothing for ``_SILENT_LIVE_S``."""
        source = self.source
        if source is None or source.state != CameraState.live:
            return False
        last = source.last_frame_at or source.since
        return (_now() - last).total_seconds() > max(_SILENT_LIVE_S, 10 / self.config.source.sample_fps)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop reading; the pipeline thread finishes the frame in hand, saves the open episodes and ends."""
        self._stopping.set()
        if self.source is not None:
            self.source.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("camera %s: its pipeline did not stop within %.0f s", self.id, timeout)

    def write_snapshot(self, folder: StatusFolder) -> None:
        frame = self.latest
        if frame is None or time.monotonic() - self._snapshot_at < _SNAPSHOT_S:
            return
        self._snapshot_at = time.monotonic()
        if (jpeg := snapshot_jpeg(frame)) is not None:
            folder.write_snapshot(self.id, jpeg)

    def health(self) -> CameraHealth:
        source = self.source
        stats = self.shared.stats
        if source is not None:
            state, since, reason, misconfigured = source.state, source.since, source.reason, source.misconfigured
            frames_read, reconnects, decode_errors = source.frames_read, source.reconnects, source.decode_errors
            last_frame_at = source.last_frame_at
        else:
            state, since, reason, misconfigured = CameraState.live, self.started_at, None, False
            frames_read, reconnects, decode_errors = self.frames_read, 0, 0
            last_frame_at = self.latest.captured_at if self.latest else None
        if self.ended_by is not None:
            failed = self.ended_by.startswith("failed")
            state = CameraState.failed if failed else CameraState.stopped
            since, reason = self.ended_at or _now(), self.ended_by
        return CameraHealth(
            camera=self.id, uri=source.address if source else self.config.source.uri, state=state, since=since,
            reason=reason, misconfigured=misconfigured, frames_read=frames_read,
            frames_detected=stats.detected[self.id], reconnects=reconnects + self.restarts, decode_errors=decode_errors,
            dropped_frames=stats.dropped[self.id] + (source.dropped if source else 0),
            packs_raised=self.pipeline.raised, last_frame_at=last_frame_at, model_latency_ms=self.detector.mean_latency_ms(),
        )


class Fleet:
    """All cameras of the sites folder in this process; ``run`` until ``stop_event`` is set."""

    def __init__(self, sites: Path, sink: EvidenceSink, data_dir: Path, registry: ModelRegistry, queue_workers: int = 1,
                 max_batch: int = 8, episodes_dir: Path | None = None, shadow_every_s: float = 30.0):
        self.memory = NativeMemory()  # before the fleet's threads: their malloc arenas are capped
        self.cpu = CpuByPart(THREAD_PARTS)
        # The cameras are the parallelism here: OpenCV spreading each small per-frame step (the motion
        # gate's resize, a JPEG) over every core cost 2.7 ms of CPU per frame instead of 1.5, and the
        # shared models infer on one thread each (``_MODEL_THREADS``).
        cv2.setNumThreads(1)
        self.sites = Path(sites)
        self.sink = sink
        self.registry = registry
        self.max_batch = max_batch
        self._models: dict[tuple[str, str], object] = {}  # (model, device): one loaded instance each
        self._shared: dict[tuple, SharedDetector] = {}  # cameras with the same models share one batching queue
        self.shadows: dict[str, ShadowRunner] = {}  # model -> its candidate version in shadow
        self._shadow_failed: set[tuple] = set()  # shadows that could not be loaded: not tried again until started anew
        self._shadow_loading: set[str] = set()
        self._stopping = threading.Event()
        self.shadow_every_s = shadow_every_s
        self.queue = EvidenceQueue(sink, data_dir / "evidence-queue", workers=queue_workers).start()
        self.episodes = EpisodeStore(episodes_dir or data_dir / "episodes")
        self.status_folder = StatusFolder(data_dir / "fleet")
        self.started_at = _now()
        self.cameras: dict[str, Camera] = {}
        self.files: dict[Path, SiteFile] = {}
        self._by_file: dict[Path, str] = {}  # which camera each file runs
        self._config_problems: dict[Path, CameraHealth] = {}
        self._deaths: dict[str, int] = {}
        self._restart_at: dict[str, float] = {}
        self._lock = threading.Lock()  # the metrics server reads the cameras from its own thread
        self._scan_lock = threading.Lock()  # a hand-over from a cluster's coordinator comes from another thread

    def detector_for(self, config: SiteConfig) -> SharedDetector:
        """The shared detector for a camera's models and device, loading each model once for the whole fleet."""
        key = (tuple(config.detection.models), config.detection.device)
        with self._lock:
            if key not in self._shared:
                models = []
                for name in config.detection.models:
                    if (name, config.detection.device) not in self._models:
                        self._models[name, config.detection.device] = self.registry.detector(name, config.detection.device,
                                                                                             threads=_MODEL_THREADS)
                    models.append(self._models[name, config.detection.device])
                self._shared[key] = SharedDetector(models, max_batch=self.max_batch).start()
                self._shared[key].shadows.update({name: runner for name, runner in self.shadows.items() if name in config.detection.models})
            return self._shared[key]

    # -- shadow mode -------------------------------------------------------------------------------
    def refresh_shadows(self) -> None:
        """Start, change or stop each loaded model's shadow to match its versions file. Loading runs in
        a thread of its own: a slow or broken candidate never holds up the supervision of the cameras."""
        for name, device in list(self._models):
            try:
                line = self.registry.line(name)
                state = line.state() if line is not None else None
            except (OSError, ValueError, TypeError, KeyError) as exc:  # a damaged versions file: the cameras run on
                log.error("shadow: the versions file of %s cannot be read: %s", name, exc)
                continue
            wanted = state.shadow if state is not None else None
            running = self.shadows.get(name)
            if (running.version if running is not None else None) == wanted or name in self._shadow_loading:
                continue
            if running is not None:
                self._attach(name, None)
                running.stop(timeout=0.0)  # it finishes the frame in hand on its own
                log.info("shadow: %s v%d stopped (%s)", name, running.version, "replaced" if wanted is not None else "ended")
            attempt = (name, wanted, len(state.history) if state is not None else 0)  # a new start after a failure tries again
            if wanted is None or attempt in self._shadow_failed:
                continue
            self._shadow_loading.add(name)
            threading.Thread(target=self._load_shadow, args=(name, device, line, state, attempt), name=f"{SHADOW_THREAD}load-{name}",
                             daemon=True).start()

    def _load_shadow(self, name: str, device: str, line, state, attempt: tuple) -> None:
        try:
            version = line.version(state, attempt[1])
            weights = line.weights_of(version) or self.registry.resolve_weights(self.registry.manifest(name), shipped=True)
            detector = self.registry.detector(name, device, weights=weights, threads=_MODEL_THREADS)
            live = self._models[name, device]
            if detector.names != live.names:
                raise ValueError("its classes differ from the current version's: their answers cannot be compared box by box")
            runner = ShadowRunner(detector, version.version, ShadowBook(line.shadow_folder), self.shadow_every_s)
        except Exception as exc:  # a broken candidate never touches the live cameras
            self._shadow_failed.add(attempt)
            log.error("shadow: %s v%s cannot be loaded: %s", name, attempt[1], exc)
            return
        finally:
            self._shadow_loading.discard(name)
        if not self._stopping.is_set():
            self._attach(name, runner.start())

    def _attach(self, name: str, runner: ShadowRunner | None) -> None:
        with self._lock:
            if runner is None:
                self.shadows.pop(name, None)
            else:
                self.shadows[name] = runner
            for shared in self._shared.values():
                if any(detector.name == name for detector in shared.detectors):
                    if runner is None:
                        shared.shadows.pop(name, None)
                    else:
                        shared.shadows[name] = runner

    # -- the sites folder ----------------------------------------------------------------------
    def scan(self) -> None:
        """Start, restart or stop cameras to match the sites folder."""
        with self._scan_lock:
            self._scan()

    def _scan(self) -> None:
        present = {p for p in self.sites.glob("*.yaml")} | {p for p in self.sites.glob("*.yml")}
        for path in sorted(set(self.files) - present):
            self._removed(path)
        for path in sorted(present):
            known = self.files.get(path)
            try:
                site = read_site(path, known)
            except OSError as exc:
                log.error("site config %s cannot be read: %s", path, exc)
                continue
            if site is known:
                continue
            self.files[path] = site
            self._changed(path, site, first=known is None)

    def _changed(self, path: Path, site: SiteFile, first: bool) -> None:
        if site.config is None:
            running = self._by_file.get(path)
            log.error("site config %s is invalid%s: %s", path.name,
                      f"; camera {running} keeps its previous config" if running else "", site.error)
            if running:
                return
            self._config_problems[path] = config_problem(site)
            return
        self._config_problems.pop(path, None)
        camera_id = site.config.source.id
        owner = next((p for p, c in self._by_file.items() if c == camera_id and p != path), None)
        if owner is not None:
            log.error("site config %s names camera %s, which %s already runs: ignored", path.name, camera_id, owner.name)
            return
        previous = self._by_file.get(path)
        if previous is not None:
            self._stop_camera(previous)
            if previous != camera_id:
                self.episodes.forget(previous)
        log.info("camera %s: %s from %s", camera_id, "starting" if first or previous is None else "config changed, restarting",
                 path.name)
        self._by_file[path] = camera_id
        self._start_camera(site.config)

    def _removed(self, path: Path) -> None:
        self.files.pop(path, None)
        self._config_problems.pop(path, None)
        camera_id = self._by_file.pop(path, None)
        if camera_id is not None:
            log.info("camera %s: site config %s removed, stopping", camera_id, path.name)
            self._stop_camera(camera_id)
            self.episodes.forget(camera_id)

    def hand_over(self, path: Path) -> None:
        """The camera of ``path`` moves to another machine: it stops here with its open episodes saved,
        not forgotten (unlike a removed file), so the machine taking it over resumes its dwell clocks."""
        with self._scan_lock:
            self.files.pop(path, None)
            self._config_problems.pop(path, None)
            camera_id = self._by_file.pop(path, None)
            if camera_id is not None:
                log.info("camera %s: handed over to another node, stopping here", camera_id)
                self._stop_camera(camera_id)
            path.unlink(missing_ok=True)

    def _start_camera(self, config: SiteConfig, restarts: int = 0) -> None:
        camera = Camera(config, self, restarts)
        with self._lock:
            self.cameras[camera.id] = camera
        camera.start()

    def _stop_camera(self, camera_id: str) -> None:
        with self._lock:
            camera = self.cameras.pop(camera_id, None)
        if camera is not None:
            camera.stop()
        self._restart_at.pop(camera_id, None)

    # -- supervision -----------------------------------------------------------------------------
    def supervise(self) -> None:
        """Restart cameras whose thread died (after a growing pause) or whose reader hung."""
        for camera in list(self.cameras.values()):
            if camera.running() and not camera.hung():
                continue
            if camera.running():  # hung: a fresh reader; the old thread is abandoned once it returns
                log.error("camera %s: no frame for %.0f s while connected; replacing its reader", camera.id, _SILENT_LIVE_S)
                self._replace(camera)
                continue
            if camera.ended_by == "the source ended":
                continue  # a file or folder camera that played to its end stays stopped
            due = self._restart_at.get(camera.id)
            if due is None:
                deaths = self._deaths[camera.id] = self._deaths.get(camera.id, 0) + 1
                pause = _RESTART_PAUSES_S[min(deaths, len(_RESTART_PAUSES_S)) - 1]
                self._restart_at[camera.id] = time.monotonic() + pause
                log.warning("camera %s: %s; restarting in %.0f s", camera.id, camera.ended_by, pause)
            elif time.monotonic() >= due:
                self._replace(camera)

    def _replace(self, camera: Camera) -> None:
        self._stop_camera(camera.id)
        self._start_camera(camera.config, camera.restarts + 1)

    # -- health ------------------------------------------------------------------------------------
    def status(self) -> FleetStatus:
        with self._lock:
            cameras = [camera.health() for camera in self.cameras.values()]
        every = [shared.stats for shared in list(self._shared.values())]
        batches, frames = sum(s.batches for s in every), sum(s.batched_frames for s in every)
        return FleetStatus(
            written_at=_now(), pid=os.getpid(), started_at=self.started_at,
            cameras=sorted(cameras + list(self._config_problems.values()), key=lambda c: c.camera),
            detector=DetectorHealth(batches=batches, mean_batch=frames / batches if batches else 0.0,
                                    dropped=sum(sum(s.dropped.values()) for s in every), model_s=sum(s.model_s for s in every)),
            shadows=[ShadowHealth(model=name, version=runner.version, frames=dict(runner.counts)) for name, runner in list(self.shadows.items())],
            cpu_s=self.cpu.read(),
        )

    def report(self) -> None:
        for camera in list(self.cameras.values()):
            camera.write_snapshot(self.status_folder)
        self.status_folder.write(self.status())

    # -- the service loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        log.info("fleet started: sites folder %s, %d workers storing evidence", self.sites, self.queue.workers)
        while not stop.is_set():
            with self._scan_lock:
                self._scan()
                self.supervise()
            self.refresh_shadows()
            self.report()
            self.memory.tick()
            stop.wait(_SCAN_S)
        self.stop()

    def stop(self) -> None:
        """Readers stop, each camera saves its open episodes, the model answers what it holds, and
        the evidence queue finishes the pack in hand; accepted violations not yet stored stay spooled
        on disk and are stored by the next start."""
        log.info("fleet stopping: %d cameras", len(self.cameras))
        self._stopping.set()
        for camera in list(self.cameras.values()):  # kept in the list, so the last status shows them stopped
            camera.stop()
        for shared in self._shared.values():
            shared.stop()
        for runner in list(self.shadows.values()):
            runner.stop()
        self.queue.stop()
        self.status_folder.write(self.status())
        log.info("fleet stopped: %d packs stored this run, %d violations spooled for the next start",
                 self.queue.stored, self.queue.pending)
