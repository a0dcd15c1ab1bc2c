"""``nonsite bench``: raw model time per frame against the full pipeline per frame, in one run."""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ingest import open_source

from .demo import demo_scenes
from .pipeline import Pipeline
from .settings import Settings


def run_bench(settings: Settings, console: Console, frames: int, model: str, rounds: int = 3) -> int:
    config = demo_scenes(settings)[0].model_copy(deep=True)
    config.detection.models = [model]
    config.source.repeat = max(config.source.repeat, 50)
    detector = settings.registry.detector(model, config.detection.device)
    images = [f.image for f in islice(open_source(config.source), frames)]
    detector.detect(images[: detector.batch])  # warm-up: first call compiles / allocates

    raw_runs, pipeline_runs = [], []
    for _ in range(rounds):  # alternate the two so drift in machine load hits both alike
        started = time.perf_counter()
        detector.detect(images)
        raw_runs.append((time.perf_counter() - started) / len(images))
        with tempfile.TemporaryDirectory() as scratch:
            scratch_settings = settings.model_copy(update={"data_dir": Path(scratch), "database_url": None, "store_dir": None})
            pipeline = Pipeline(config, [detector], scratch_settings.open_store(), scratch_settings.open_index())
            summary = pipeline.run(islice(open_source(config.source), len(images)))
        pipeline_runs.append(summary.total_s / summary.frames)
    raw_s, pipeline_s = statistics.median(raw_runs), statistics.median(pipeline_runs)

    cores = os.cpu_count() or 1
    table = Table(title=f"nonsite bench: {model} ({Path(str(detector.weights)).name}), {summary.frames} frames "
                  f"of {config.source.id}, median of {rounds} alternating rounds")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("raw model, ms per frame (batched predict, decoded images)", f"{raw_s * 1000:.1f}")
    table.add_row("pipeline, ms per frame (decode+detect+track+rules+evidence)", f"{pipeline_s * 1000:.1f}")
    table.add_row("pipeline / raw model", f"{pipeline_s / raw_s:.3f}")
    table.add_row("packs written during the pipeline run", str(len(summary.packs)))
    table.add_row(f"model frames per second per CPU core ({cores} cores)", f"{1 / raw_s / cores:.2f}")
    table.add_row("cameras at 1 fps one machine can carry (pipeline)", f"{1 / pipeline_s:.1f}")
    console.print(table)
    return 0
