"""The camera service on a Ray cluster: a coordinator places every camera on exactly one node.

Each Ray node runs one ``NodeFleet`` actor, pinned to it, which runs the ordinary ``Fleet`` over
a folder of the site configs assigned to that node: the same readers, shared model, motion gate,
evidence queue and episode saving as on one machine. The coordinator (``nonsite fleet --ray``)
reads the sites folder, places each camera on the node with the most room for it (frames per
second asked of it against the node's CPUs or GPUs, and only where the camera's models' weights
are), and writes it there. A camera runs on one node only: it moves only after its old node has
stopped it (a rebalance) or after Ray reports the node dead or its actor gone (a crash), since
the actor's threads die with it. A node that joins gets cameras from the busiest node, one move
per tick. A node that stops answering for ``_MISSES`` ticks is killed through Ray and its
cameras placed elsewhere.

Each camera's latest picture travels with its node's report to the head's status folder, where
the cameras page reads it. What survives a move: the camera's open dwell episodes, when
``episodes_dir`` is a folder every node shares (a node saves them every 30 s and when it hands a camera over). What does not: a
node's spooled violations wait on that node's disk for its restart (nothing is lost; they are late).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

from nonsite.ingest.health import CameraHealth, CameraState, DetectorHealth, FleetStatus, NodeHealth, StatusFolder
from nonsite.rules import SiteConfig

from .cluster import alive_nodes, node_name, node_settings, on_node, settings_on_node, spool_size
from .fleet import SiteFile, config_problem, read_site
from .settings import Settings

log = logging.getLogger("nonsite.fleet")

_TICK_S = 2.0
_ANSWER_S = 5.0  # how long a node's report may take before the tick counts a miss
_MISSES = 3  # missed reports in a row after which a node is treated as lost
_REJOIN_S = 30.0  # a node whose fleet failed to start is tried again after this long
_SETTLE_S = 30.0  # a camera that moved stays where it is at least this long (no ping-pong)
_HAND_OVER_S = 30.0
_CLAIM = "nonsite-camera-service"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class NodeFleet:
    """On one node: a ``Fleet`` over the node's folder of assigned site configs, started at once."""

    def __init__(self, values: dict, node: str, queue_workers: int = 1, max_batch: int = 8):
        from .fleet import Fleet

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # into Ray's worker log
        self.settings = settings_on_node(values, node)
        self.node = node
        self.sites = self.settings.data_dir / "assigned-sites"
        self.sites.mkdir(parents=True, exist_ok=True)
        for stale in self.sites.glob("*.yaml"):  # after a restart the coordinator assigns this node's cameras afresh
            stale.unlink()
        self.fleet = Fleet(self.sites, self.settings.sink, self.settings.data_dir, self.settings.registry, queue_workers=queue_workers,
                           max_batch=max_batch, episodes_dir=self.settings.episodes_path,
                           shadow_every_s=self.settings.shadow_every_s)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.fleet.run, args=(self.stopping,), name="fleet", daemon=True)
        self.thread.start()
        self._sent: dict[str, datetime] = {}  # camera -> when the picture last sent to the coordinator was taken

    def models(self) -> list[str]:
        return self.settings.registry.available()

    def assign(self, camera_id: str, config: bytes) -> bool:
        """Run (or re-run with a new config) this camera: the node's fleet sees the file at its next scan."""
        temporary = self.sites / f".{camera_id}.tmp"
        temporary.write_bytes(config)
        os.replace(temporary, self.sites / f"{camera_id}.yaml")
        return True

    def remove(self, camera_id: str) -> bool:
        """The camera's config was deleted: stop it and forget its episodes."""
        (self.sites / f"{camera_id}.yaml").unlink(missing_ok=True)
        return True

    def hand_over(self, camera_id: str) -> bool:
        """Stop the camera here, its episodes saved for the node that takes it; returns once it has stopped."""
        self.fleet.hand_over(self.sites / f"{camera_id}.yaml")
        return True

    def report(self) -> dict:
        return {"status": self.fleet.status().model_dump(mode="json"), "queue": self.fleet.queue.pending,
                "spooled": spool_size(self.settings.open_store()), "snapshots": self._new_snapshots()}

    def _new_snapshots(self) -> dict[str, bytes]:
        """Each camera's latest picture taken since the last report: the cameras page reads them on the head."""
        folder, fresh = self.fleet.status_folder, {}
        for camera in list(self.fleet.cameras):
            taken = folder.snapshot_written(camera)
            if taken is not None and taken != self._sent.get(camera) and (picture := folder.read_snapshot(camera)):
                fresh[camera], self._sent[camera] = picture, taken
        return fresh

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(120)


@dataclass
class Node:
    """The coordinator's view of one Ray node."""

    id: str
    name: str
    address: str
    cpus: float
    gpus: float
    actor: object
    ready: object  # the answer to ``models()``: the node's fleet is up once it arrives
    since: datetime = field(default_factory=_now)
    state: str = "starting"
    models: list[str] = field(default_factory=list)
    cameras: dict[str, str] = field(default_factory=dict)  # camera id -> digest of the config it was given
    report: dict | None = None
    misses: int = 0

    def capacity(self, settings: Settings, gpu: bool) -> float:
        return self.gpus * settings.camera_fps_per_gpu if gpu else self.cpus * settings.camera_fps_per_cpu

    def health(self, state: str | None = None) -> NodeHealth:
        report = self.report or {}
        return NodeHealth(name=self.name, address=self.address, state=state or self.state, since=self.since, cpus=self.cpus,
                          gpus=self.gpus, models=self.models, cameras=sorted(self.cameras),
                          evidence_queue=report.get("queue", 0), spooled_packs=report.get("spooled", 0),
                          cpu_s=report.get("status", {}).get("cpu_s", {}))


class AnotherCoordinator(RuntimeError):
    """A camera service already runs this cluster's cameras: a second would run every camera twice."""


class _Claim:
    """A named actor that lives as long as the coordinator that made it: the cluster's one claim to run the cameras."""

    def __init__(self, holder: str):
        self.holder = holder

    def who(self) -> str:
        return self.holder


def claim_cluster() -> object:
    """Hold the cluster's camera-service claim, or fail naming who holds it."""
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    try:
        claim = ray.remote(_Claim).options(name=_CLAIM, num_cpus=0).remote(holder)
        ray.get(claim.who.remote())
        return claim
    except ValueError:
        running = ray.get(ray.get_actor(_CLAIM).who.remote(), timeout=_ANSWER_S)
        raise AnotherCoordinator(f"another camera service already runs this cluster's cameras ({running}); "
                                 "a second one would run every camera twice: stop it first") from None


def demand(config: SiteConfig) -> float:
    """Frames per second the camera asks of its node's model: every sampled frame, once per model."""
    return config.source.sample_fps * len(config.detection.models)


def needs_gpu(config: SiteConfig) -> bool:
    return config.detection.device != "cpu"


class ClusterFleet:
    """Every camera of the sites folder, on the nodes of the Ray cluster this process is connected to."""

    def __init__(self, settings: Settings, sites: Path, queue_workers: int = 1, max_batch: int = 8):
        self.claim = claim_cluster()  # before any camera is placed
        self.settings = settings
        self.sites = Path(sites)
        self.fleet_options = (queue_workers, max_batch)  # for every node's fleet
        self.node_class = ray.remote(NodeFleet)
        self.nodes: dict[str, Node] = {}
        self.lost: dict[str, NodeHealth] = {}  # by node name, until the node comes back
        self._rejoin_at: dict[str, float] = {}
        self.wanted: dict[str, SiteFile] = {}  # camera id -> its site file
        self.problems: dict[Path, CameraHealth] = {}
        self.unplaced: dict[str, str] = {}
        self._files: dict[Path, SiteFile] = {}  # each file as last read (and logged)
        self._moved_at: dict[str, float] = {}
        self.status_folder = StatusFolder(settings.fleet_dir)
        self.started_at = _now()
        self._status = FleetStatus(written_at=_now(), pid=os.getpid(), started_at=self.started_at, cameras=[])

    # -- nodes ------------------------------------------------------------------------------------
    def watch_nodes(self) -> None:
        alive = alive_nodes()
        for node_id, info in alive.items():
            if node_id not in self.nodes and time.monotonic() >= self._rejoin_at.get(node_id, 0):
                self._join(node_id, info)
        for node in list(self.nodes.values()):
            if node.id not in alive:
                self._lose(node, "Ray reports the node dead")
            elif node.state == "starting" and ray.wait([node.ready], timeout=0)[0]:
                try:
                    node.models = ray.get(node.ready)
                except RayActorError as exc:
                    self._lose(node, f"its fleet could not start: {exc}")
                    continue
                node.state, node.since = "ready", _now()
                self.lost.pop(node.name, None)
                log.info("node %s (%s) ready: %g CPUs, %g GPUs, models %s", node.name, node.address, node.cpus, node.gpus,
                         ", ".join(node.models) or "none")

    def _join(self, node_id: str, info: dict) -> None:
        name = node_name(info)
        actor = self.node_class.options(num_cpus=0, max_concurrency=4, scheduling_strategy=on_node(node_id)).remote(
            node_settings(self.settings), name, *self.fleet_options)
        resources = info.get("Resources", {})
        self.nodes[node_id] = Node(node_id, name, info["NodeManagerAddress"], resources.get("CPU", 0.0), resources.get("GPU", 0.0),
                                   actor, actor.models.remote())
        log.info("node %s (%s) joined: starting its fleet", name, info["NodeManagerAddress"])

    def _lose(self, node: Node, why: str) -> None:
        self.nodes.pop(node.id, None)
        self._rejoin_at[node.id] = time.monotonic() + _REJOIN_S  # until Ray itself says whether it is dead
        self.lost[node.name] = node.health("lost")
        try:
            ray.kill(node.actor)  # a node that stopped answering must not run its cameras beside their new place
        except Exception:  # noqa: BLE001 - a dead node's actor is gone already
            pass
        log.warning("node %s lost (%s): its %d cameras go to other nodes%s", node.name, why, len(node.cameras),
                    f": {', '.join(sorted(node.cameras))}" if node.cameras else "")

    def _ask(self, node: Node, call, timeout: float = _ANSWER_S):
        """A call on a node's fleet; None if it did not answer (and the node lost if its actor died)."""
        try:
            return ray.get(call, timeout=timeout)
        except ActorUnavailableError:  # unreachable for now, perhaps for good: the report's misses decide
            return None
        except RayActorError as exc:
            self._lose(node, f"its fleet died: {type(exc).__name__}")
        except GetTimeoutError:
            if timeout:
                log.warning("node %s did not answer within %.0f s", node.name, timeout)
        return None

    def ready_nodes(self) -> list[Node]:
        return [node for node in self.nodes.values() if node.state == "ready"]

    # -- cameras ------------------------------------------------------------------------------------
    def read_sites(self) -> None:
        """The cameras the sites folder asks for; a broken file keeps its camera's previous config."""
        wanted: dict[str, SiteFile] = {}
        problems: dict[Path, CameraHealth] = {}
        paths = sorted({*self.sites.glob("*.yaml"), *self.sites.glob("*.yml")})
        for path in paths:
            try:
                site = read_site(path, self._files.get(path))
            except OSError as exc:
                log.error("site config %s cannot be read: %s", path, exc)
                continue
            new = self._files.get(path) is not site
            self._files[path] = site
            if site.config is None:
                running = next((c for c, s in self.wanted.items() if s.path == path), None)
                if new:
                    log.error("site config %s is invalid%s: %s", path.name,
                              f"; camera {running} keeps its previous config" if running else "", site.error)
                if running:
                    wanted[running] = self.wanted[running]
                else:
                    problems[path] = config_problem(site)
                continue
            camera_id = site.config.source.id
            if camera_id in wanted:
                if new:
                    log.error("site config %s names camera %s, which %s already runs: ignored", path.name, camera_id,
                              wanted[camera_id].path.name)
                continue
            wanted[camera_id] = site
        self._files = {path: site for path, site in self._files.items() if path in paths}
        self.wanted, self.problems = wanted, problems

    def load(self, node: Node, gpu: bool) -> float:
        return sum(demand(self.wanted[c].config) for c in node.cameras if c in self.wanted and needs_gpu(self.wanted[c].config) == gpu)

    def _room(self, node: Node, config: SiteConfig, extra: float = 0.0) -> float | None:
        """The node's share of capacity in use once it also runs ``config``; None if it cannot run it."""
        gpu = needs_gpu(config)
        capacity = node.capacity(self.settings, gpu)
        if capacity <= 0 or not set(config.detection.models) <= set(node.models):
            return None
        return (self.load(node, gpu) + demand(config) + extra) / capacity

    def _choose(self, config: SiteConfig) -> tuple[Node | None, str]:
        nodes = self.ready_nodes()
        if not nodes:
            return None, "no node of the cluster is ready"
        fits = [(share, node.name, node) for node in nodes if (share := self._room(node, config)) is not None]
        if not fits:
            missing = [m for m in config.detection.models if not any(m in node.models for node in nodes)]
            if missing:
                return None, f"no node has the weights of {', '.join(missing)}"
            return None, "it needs a GPU and no node has one" if needs_gpu(config) else "no node has CPUs"
        share, _, node = min(fits, key=lambda fit: fit[:2])
        if share > 1.0:
            return None, f"every node is full ({demand(config):g} frames/s asked; add a node or lower sample_fps)"
        return node, ""

    def place(self) -> None:
        """Remove, re-configure and place cameras so the nodes run exactly what the sites folder asks."""
        for node in self.ready_nodes():
            for camera_id, digest in list(node.cameras.items()):
                site = self.wanted.get(camera_id)
                if site is None:
                    if self._ask(node, node.actor.remove.remote(camera_id)):
                        node.cameras.pop(camera_id)
                        log.info("camera %s: removed from the sites folder, stopped on node %s", camera_id, node.name)
                elif site.digest != digest:
                    self._assign(node, camera_id, site)
                if node.id not in self.nodes:
                    break  # lost meanwhile: its cameras are placed below
        placed = {camera_id for node in self.nodes.values() for camera_id in node.cameras}
        unplaced = {}
        for camera_id, site in self.wanted.items():
            if camera_id in placed:
                continue
            node, why = self._choose(site.config)
            if node is None:
                if self.unplaced.get(camera_id) != why:
                    log.error("camera %s cannot be placed: %s", camera_id, why)
                unplaced[camera_id] = why
            else:
                self._assign(node, camera_id, site)
        self.unplaced = unplaced

    def _assign(self, node: Node, camera_id: str, site: SiteFile) -> None:
        if not self._ask(node, node.actor.assign.remote(camera_id, site.raw)):
            return  # tried again next tick, here or (if the node is lost) elsewhere
        moved = camera_id not in node.cameras
        node.cameras[camera_id] = site.digest
        log.info("camera %s: %s node %s", camera_id, "placed on" if moved else "new config sent to", node.name)

    def rebalance(self) -> None:
        """Move one camera from the busiest node to the idlest when that evens them out (a new node gets work)."""
        nodes = self.ready_nodes()
        if len(nodes) < 2 or self.unplaced:
            return
        busiest = max(nodes, key=lambda n: (self.load(n, False) / max(n.capacity(self.settings, False), 1e-9), n.name))
        top = self.load(busiest, False) / max(busiest.capacity(self.settings, False), 1e-9)
        for camera_id in sorted(busiest.cameras, key=lambda c: demand(self.wanted[c].config) if c in self.wanted else 0):
            site = self.wanted.get(camera_id)
            if site is None or needs_gpu(site.config) or time.monotonic() - self._moved_at.get(camera_id, -_SETTLE_S) < _SETTLE_S:
                continue
            targets = [(share, n.name, n) for n in nodes if n is not busiest and (share := self._room(n, site.config)) is not None]
            if not targets:
                continue
            share, _, target = min(targets, key=lambda t: t[:2])
            if share >= top:
                return  # moving it would leave the target as busy as the busiest is now
            log.info("camera %s: moving from node %s to node %s to spread the load", camera_id, busiest.name, target.name)
            if not self._ask(busiest, busiest.actor.hand_over.remote(camera_id), timeout=_HAND_OVER_S):
                return  # not stopped there (or the node is lost, and placing takes care of it): it must not run twice
            busiest.cameras.pop(camera_id)
            self._moved_at[camera_id] = time.monotonic()
            self._assign(target, camera_id, site)
            return

    # -- health ---------------------------------------------------------------------------------------
    def report(self) -> None:
        nodes = self.ready_nodes()
        calls = {node.id: node.actor.report.remote() for node in nodes}
        ray.wait(list(calls.values()), num_returns=len(calls), timeout=_ANSWER_S)
        cameras: list[CameraHealth] = []
        detectors: list[DetectorHealth] = []
        for node in nodes:
            answer = self._ask(node, calls[node.id], timeout=0)
            if answer is None:
                node.misses += 1
                if node.misses >= _MISSES and node.id in self.nodes:
                    self._lose(node, f"no answer for {node.misses} ticks")
                continue
            node.misses, node.report = 0, answer
            for camera, picture in answer.get("snapshots", {}).items():
                self.status_folder.write_snapshot(camera, picture)
            status = FleetStatus.model_validate(answer["status"])
            cameras += [camera.model_copy(update={"node": node.name}) for camera in status.cameras]
            if status.detector is not None:
                detectors.append(status.detector)
        cameras += list(self.problems.values())
        cameras += [CameraHealth(camera=c, uri=str(self.wanted[c].path), state=CameraState.failed, since=_now(),
                                 reason=f"not placed: {why}") for c, why in self.unplaced.items()]
        batches = sum(d.batches for d in detectors)
        detector = DetectorHealth(batches=batches, mean_batch=sum(d.mean_batch * d.batches for d in detectors) / batches if batches else 0.0,
                                  dropped=sum(d.dropped for d in detectors), model_s=sum(d.model_s for d in detectors))
        node_health = [node.health() for node in self.nodes.values()] + list(self.lost.values())
        self._status = FleetStatus(written_at=_now(), pid=os.getpid(), started_at=self.started_at,
                                   cameras=sorted(cameras, key=lambda c: c.camera), detector=detector,
                                   nodes=sorted(node_health, key=lambda n: n.name), unplaced=dict(self.unplaced))
        self.status_folder.write(self._status)

    def status(self) -> FleetStatus:
        """The last merged status (for /metrics, read from another thread)."""
        return self._status

    # -- the service loop ------------------------------------------------------------------------------
    def tick(self) -> None:
        self.watch_nodes()
        self.read_sites()
        self.place()
        self.rebalance()
        self.report()

    def run(self, stop: threading.Event) -> None:
        log.info("fleet started on the Ray cluster: sites folder %s", self.sites)
        while not stop.is_set():
            self.tick()
            stop.wait(_TICK_S)
        self.stop()

    def stop(self) -> None:
        """Every node's fleet stops as a one-machine fleet does (episodes saved, accepted violations spooled)."""
        log.info("fleet stopping: %d nodes", len(self.nodes))
        calls = {node.name: node.actor.stop.remote() for node in self.nodes.values()}
        ray.wait(list(calls.values()), num_returns=len(calls), timeout=120)
        self.report_final()
        log.info("fleet stopped")

    def report_final(self) -> None:
        stopped = [camera.model_copy(update={"state": CameraState.stopped, "since": _now(), "reason": "stopped"})
                   for camera in self._status.cameras]
        self.status_folder.write(self._status.model_copy(update={"written_at": _now(), "cameras": stopped}))
