"""A drone flight's pictures analysed by workers spread over a Ray cluster.

Tiled detection is the heavy part, so it runs in ``FlightWorker`` actors, one CPU each, spread
over the nodes; this process only reads the files, hashes them for resume and records what is
done. A worker killed mid-picture is restarted by Ray and the picture sent again (Ray retries an
actor's tasks); a picture analysed twice stores nothing twice, because pack ids are derived from
what was seen. At most two pictures per worker are in flight, so memory stays bounded on any
flight size.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import ray

from nonsite.ingest.flight import Skipped
from nonsite.rules.drone import FlightConfig

from .batch import FlightRun, Picture
from .cluster import node_settings, settings_on_node, spool_size
from .settings import Settings

log = logging.getLogger("nonsite.batch")

_IN_FLIGHT_PER_WORKER = 2


class FlightWorker:
    """On a node: the flight's models, zones and evidence sink, analysing one picture at a time.

    Each worker has a data folder of its own on its node (``<node>-flight-<slot>``): the MinIO
    spool there is drained by this worker alone, and again by its restart after a crash."""

    def __init__(self, values: dict, config: dict, zones: bytes, flight_id: str, baseline: str | None, slot: int):
        node = ray.get_runtime_context().get_node_id()[:12]
        settings = self.settings = settings_on_node(values, f"{node}-flight-{slot}")
        folder = settings.data_dir / "flights"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{flight_id}-zones.geojson").write_bytes(zones)  # the driver's file, wherever this node is
        config = FlightConfig.model_validate({**config, "zones": str(folder / f"{flight_id}-zones.geojson")})
        self.run = FlightRun(settings, config, flight_id, baseline)

    def process(self, name: str, data: bytes, seq: int) -> int | Skipped:
        return self.run.process_file(name, data, seq)

    def finish(self) -> int:
        """One more try to store what the spool holds; the packs still waiting on this node's disk."""
        store = self.settings.open_store()
        if spool_size(store):
            try:
                store.drain_once()
            except Exception as exc:  # noqa: BLE001 - still unreachable: the packs stay spooled, and are said to
                log.warning("spooled packs not stored at the end of the flight: %s", exc)
        return spool_size(store)


def analysed_on_cluster(settings: Settings, config: FlightConfig, flight_id: str, baseline: str | None, todo: Iterable[Picture],
                        workers: int = 2) -> Iterator[tuple[Picture, int | Skipped]]:
    """Each picture of ``todo`` with its outcome, in the order they finish."""
    worker = ray.remote(FlightWorker).options(num_cpus=1, max_restarts=-1, max_task_retries=-1, scheduling_strategy="SPREAD")
    values, zones = node_settings(settings), Path(config.zones).read_bytes()
    actors = [worker.remote(values, config.model_dump(mode="json"), zones, flight_id, baseline, slot) for slot in range(max(1, workers))]
    busy = [0] * len(actors)
    running: dict = {}  # the task's answer -> (picture, which worker)
    pictures = iter(todo)
    try:
        while True:
            while len(running) < _IN_FLIGHT_PER_WORKER * len(actors) and (picture := next(pictures, None)) is not None:
                chosen = busy.index(min(busy))
                running[actors[chosen].process.remote(picture.name, picture.data, picture.seq)] = (picture, chosen)
                busy[chosen] += 1
            if not running:
                break
            (answer,), _ = ray.wait(list(running), num_returns=1)
            picture, chosen = running.pop(answer)
            busy[chosen] -= 1
            yield picture, ray.get(answer)
        spooled = sum(ray.get([actor.finish.remote() for actor in actors], timeout=120))
        if spooled:
            log.warning("%d packs are indexed but wait in the spools of the cluster's nodes (the evidence store is out of reach); "
                        "they are stored when this flight's workers run there again", spooled)
    finally:
        for actor in actors:
            ray.kill(actor)
