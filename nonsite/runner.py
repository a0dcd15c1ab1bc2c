"""Build a pipeline from settings and print what it stored."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from rules import SiteConfig

from .pipeline import Pipeline, StoredPack
from .settings import Settings


def build_pipeline(config: SiteConfig, settings: Settings) -> Pipeline:
    detectors = [settings.registry.detector(name, config.detection.device) for name in config.detection.models]
    return Pipeline(config, detectors, settings.open_store(), settings.open_index(), settings.signer, credentials=settings.credentials)


def print_packs(console: Console, packs: list[StoredPack], title: str) -> None:
    table = Table(title=title)
    for column in ("category", "rule", "zone / shop", "threshold at", "dwell s", "pack"):
        table.add_column(column)
    for pack in packs:
        table.add_row(
            pack.category, pack.rule_id, pack.shop or pack.zone_id, pack.threshold_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{pack.dwell_s:.0f}", pack.location + ("" if pack.new else " (already stored)"),
        )
    console.print(table)
