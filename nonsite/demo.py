"""``nonsite demo``: the whole pipeline on sequences built from real images, with a table of what it found.

Scenes are ordinary site configs (``nonsite/scenes/*.yaml``) whose paths start with
``{datasets}`` (NONSITE_DATASETS_DIR). When that imagery is absent the demo falls back to the
pictures that ship inside Ultralytics, so it still runs end to end on a bare machine.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import Progress

from nonsite.evidence import StoredPack
from nonsite.ingest import open_source
from nonsite.rules import SiteConfig, load_config
from nonsite.rules.loader import validate_config

from .runner import build_pipeline, print_packs
from .settings import Settings

SCENES = Path(__file__).parent / "scenes"


def load_scene(path: Path, datasets: Path) -> SiteConfig:
    text = path.read_text(encoding="utf-8").replace("{datasets}", str(datasets))
    if "{ultralytics_assets}" in text:
        import ultralytics

        text = text.replace("{ultralytics_assets}", str(Path(ultralytics.__file__).parent / "assets"))
    return validate_config(yaml.safe_load(text), yaml.compose(text), SiteConfig, str(path))


def demo_scenes(settings: Settings) -> list[SiteConfig]:
    if settings.datasets_dir.is_dir():
        return [load_scene(p, settings.datasets_dir) for p in sorted(SCENES.glob("*.yaml")) if p.name != "fallback.yaml"]
    return [load_scene(SCENES / "fallback.yaml", settings.datasets_dir)]


def demo_scene(settings: Settings, source_id: str) -> SiteConfig:
    return next(scene for scene in demo_scenes(settings) if scene.source.id == source_id)


def installed_scenes(settings: Settings) -> list[SiteConfig]:
    """The demo cameras as site configs in the sites folder, where the admin pages edit their zones.

    Written once; later runs read them back, so a zone drawn in the browser is what the next
    demo run enforces.
    """
    configs = []
    for scene in demo_scenes(settings):
        path = settings.sites_path / f"{scene.source.id}.yaml"
        if not path.exists():
            path.write_text(yaml.safe_dump(scene.model_dump(mode="json", exclude_defaults=True), sort_keys=False, allow_unicode=True))
        configs.append(load_config(path, SiteConfig))
    return configs


def run_demo(settings: Settings, console: Console) -> int:
    scenes = installed_scenes(settings)
    if not settings.datasets_dir.is_dir():
        console.print(f"[yellow]{settings.datasets_dir} not found: using the sample pictures shipped with Ultralytics[/]")
    packs: list[StoredPack] = []
    frames = 0
    with Progress(console=console, transient=True) as progress:
        for config in scenes:
            task = progress.add_task(f"{config.source.id}", total=None)
            pipeline = build_pipeline(config, settings)
            summary = pipeline.run(open_source(config.source), on_frame=lambda _f, t=task: progress.advance(t))
            packs += summary.packs
            frames += summary.frames
    print_packs(console, packs, f"nonsite demo: {frames} frames from {len(scenes)} cameras, {len(packs)} violations")
    store = settings.open_store()
    location = store.root.resolve() if hasattr(store, "root") else f"s3://{settings.s3_bucket}"
    console.print(f"evidence store: {location}  ·  check with: nonsite verify")
    console.print("review them: nonsite user add NAME --role reviewer, then nonsite serve")
    return 0 if packs else 1
