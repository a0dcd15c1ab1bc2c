"""``nonsite bench``: raw model time per frame against the full pipeline per frame, in one run.

With several ``--model`` flags the pipeline runs them all in one pass over each frame (combined
inference); the raw figure is then the sum of each model's own batched time on the same frames.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nonsite.evidence import EvidenceSink, LocalStore, PackIndex, open_database
from nonsite.ingest import open_source
from nonsite.vision.plates import TextReader

from .demo import demo_scene
from .pipeline import Pipeline
from .settings import Settings


def run_bench(settings: Settings, console: Console, frames: int, models: list[str], rounds: int = 3) -> int:
    camera = "cam-carpark-01" if settings.datasets_dir.is_dir() else "cam-fallback-bus"
    config = demo_scene(settings, camera).model_copy(deep=True)
    config.detection.models = models
    config.source.repeat = max(config.source.repeat, 50)
    detectors = [settings.registry.detector(name, config.detection.device) for name in models]
    images = [f.image for f in islice(open_source(config.source), frames)]
    for detector in detectors:
        detector.detect(images[: detector.batch])  # warm-up: first call compiles / allocates
    TextReader().lines(images[0])  # and the OCR that reads plates and shop signs

    raw_runs: dict[str, list[float]] = {d.name: [] for d in detectors}
    pipeline_runs: list[float] = []
    evidence_runs: list[tuple[float, int]] = []
    for _ in range(rounds):  # alternate the two so drift in machine load hits both alike
        for detector in detectors:
            started = time.perf_counter()
            detector.detect(images)
            raw_runs[detector.name].append((time.perf_counter() - started) / len(images))
        with tempfile.TemporaryDirectory() as scratch:  # packs of the bench run go to a throw-away store
            index = PackIndex(open_database(f"sqlite:///{Path(scratch) / 'bench.db'}"))
            pipeline = Pipeline(config, detectors, EvidenceSink(LocalStore(Path(scratch) / "evidence"), index, settings.signer))
            summary = pipeline.run(islice(open_source(config.source), len(images)))
        pipeline_runs.append(summary.total_s / summary.frames)
        evidence_runs.append((summary.evidence_s, len(summary.packs)))
    raw = {name: statistics.median(runs) for name, runs in raw_runs.items()}
    raw_s, pipeline_s = sum(raw.values()), statistics.median(pipeline_runs)
    evidence_s, packs = sorted(evidence_runs)[len(evidence_runs) // 2]
    frame_path_s = pipeline_s - evidence_s / len(images)

    cores = os.cpu_count() or 1
    weights = ", ".join(f"{d.name}: {Path(str(d.weights)).name}" for d in detectors)
    table = Table(title=f"nonsite bench ({weights}), {summary.frames} frames of {config.source.id}, median of {rounds} alternating rounds")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, seconds in raw.items():
        table.add_row(f"raw model {name}, ms per frame (batched predict, decoded images)", f"{seconds * 1000:.1f}")
    if len(raw) > 1:
        table.add_row("raw models together, ms per frame", f"{raw_s * 1000:.1f}")
    table.add_row("pipeline, ms per frame (decode+detect+track+rules+evidence)", f"{pipeline_s * 1000:.1f}")
    table.add_row("pipeline / raw model", f"{pipeline_s / raw_s:.3f}")
    table.add_row("packs written during the pipeline run", str(packs))
    if packs:
        table.add_row("evidence work per pack, ms (OCR, privacy copies, images, hashes, signing, store)", f"{evidence_s / packs * 1000:.0f}")
        table.add_row("frame path without pack writing / raw model", f"{frame_path_s / raw_s:.3f}")
    table.add_row(f"model frames per second per CPU core ({cores} cores)", f"{1 / raw_s / cores:.2f}")
    table.add_row("cameras at 1 fps one machine can carry (pipeline)", f"{1 / pipeline_s:.1f}")
    console.print(table)
    return 0
