"""Does motion gating save model calls without losing violations? Gating off vs on, one replay.

The footage: ``parking_lot_cctv`` (in the shared datasets folder), 21 real frames of one fixed
CCTV camera over a surface car park (854x480, taken from one video, frames 16 to 297). To make
the camera as static as a real car-park camera mostly is, each frame is shown 8 times in a row,
one picture every 5 s: 168 frames, 14 minutes of footage in which the picture changes 20 times.
The rules are the tests' whole-lot camera (``tests/conftest.py::WHOLE_LOT``: any car, truck or
bus in the lot for 60 s is a violation, no cooldown), so there are many packs to compare.

Both runs store their packs in a fresh data folder of their own. "identical" means the same pack
ids (source, rule, zone, threshold time and subject box) and the same first-seen, last-seen and
dwell in each manifest. Where the model's answer can change between two pictures the background
model sees as one (consecutive video frames 1/30 s apart, on which a car's confidence sits right
at the rule's 0.4: 0.400 on one, 0.414 on the next), the gate looks again at any picture that
is not identical to the one the model last saw, as long as the confidence of an object a rule
judges (in its zone, or continuing its subject) is within 0.03 of the rule's threshold; without
that, 2 of 45 packs started their dwell clock one re-check later. A car at the threshold outside
every zone does not count: on a live stream, where codec noise makes no two pictures identical,
it made the model look at every frame.

    .venv/bin/python benchmarks/motion_gating.py
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nonsite.ingest import list_images, open_source
from nonsite.rules import SiteConfig
from nonsite.runner import build_pipeline
from nonsite.settings import Settings

REPEATS = 8
INTERVAL_S = 5
RULES = {
    "zones": [{"id": "whole-lot", "polygon": [[0, 200], [854, 200], [854, 480], [0, 480]], "inertia": 2}],
    "rules": [{"id": "lot-no-parking", "kind": "illegal_parking", "zones": ["whole-lot"], "classes": ["car", "truck", "bus"],
               "min_confidence": 0.4, "dwell_s": 60, "hold_s": 30, "grace_s": 60, "cooldown_s": 0}],
}


def static_replay(images: list[Path], folder: Path, repeats: int = REPEATS) -> Path:
    """Each real frame copied ``repeats`` times, under names that sort in playing order."""
    folder.mkdir(parents=True)
    for number, image in enumerate(images):
        for again in range(repeats):
            shutil.copyfile(image, folder / f"{number:03d}_{again:02d}{image.suffix}")
    return folder


def replay_config(folder: Path, motion: dict | None) -> SiteConfig:
    source = {"id": "cam-carpark-static", "kind": "folder", "uri": str(folder), "frame_interval_s": INTERVAL_S,
              "start_time": "2026-11-24T08:00:00"}
    detection = {"models": ["coco"], **({"motion": motion} if motion is not None else {})}
    return SiteConfig.model_validate({"source": source, "detection": detection, **RULES})


def pack_facts(packs) -> list[tuple]:
    return sorted((p.pack_id, p.manifest.times.first_seen, p.manifest.times.last_seen, round(p.manifest.dwell_s, 3)) for p in packs)


def main() -> None:
    console = Console()
    base = Settings()
    with tempfile.TemporaryDirectory(prefix="motion-gating-") as scratch:
        root = Path(scratch)
        folder = static_replay(list_images(base.datasets_dir / "parking_lot_cctv" / "images"), root / "replay")
        runs = {}
        for name, motion in (("off", None), ("on", {})):
            settings = Settings(data_dir=root / name, keys_dir=root / "keys", models_dir=base.models_dir,
                                datasets_dir=base.datasets_dir)
            config = replay_config(folder, motion)
            pipeline = build_pipeline(config, settings)
            pipeline.detectors[0].detect([next(iter(open_source(config.source))).image])  # warm-up, not counted
            runs[name] = pipeline.run(open_source(config.source))
        off, on = runs["off"], runs["on"]
        same = pack_facts(off.packs) == pack_facts(on.packs)
        common = {p.pack_id for p in off.packs} & {p.pack_id for p in on.packs}
        table = Table("gating", "frames", "model calls", "packs", "wall s / frame", "model s / frame", "evidence s / frame",
                      title=f"motion gating on a static car-park replay ({REPEATS}x each real frame, every {INTERVAL_S} s)")
        for name, summary in runs.items():
            table.add_row(name, str(summary.frames), str(summary.model_frames), str(len(summary.packs)),
                          f"{summary.total_s / summary.frames:.4f}", f"{summary.detect_s / summary.frames:.4f}",
                          f"{summary.evidence_s / summary.frames:.4f}")
        console.print(table)
        console.print(f"model calls cut {off.model_frames / on.model_frames:.1f}x; packs identical: {same} "
                      f"({len(common)} of {len(off.packs)} pack ids the same)")


if __name__ == "__main__":
    main()
