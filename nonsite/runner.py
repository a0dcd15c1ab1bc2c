"""Build a pipeline from settings and print what it stored."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from nonsite.evidence import StoredPack
from nonsite.rules import SiteConfig

from .pipeline import Pipeline
from .settings import Settings


def build_pipeline(config: SiteConfig, settings: Settings) -> Pipeline:
    detectors = [settings.registry.detector(name, config.detection.device) for name in config.detection.models]
    return Pipeline(config, detectors, settings.sink)


def print_packs(console: Console, packs: list[StoredPack], title: str) -> None:
    table = Table(title=title)
    for column in ("category", "rule", "zone / shop", "threshold at", "dwell s", "pack"):
        table.add_column(column)
    for pack in packs:
        m = pack.manifest
        table.add_row(
            m.category, m.rule.id, m.shop.name if m.shop else m.zone.id, m.times.threshold.strftime("%Y-%m-%d %H:%M:%S"),
            f"{m.dwell_s:.0f}", pack.location + ("" if pack.new else " (already stored)"),
        )
    console.print(table)
