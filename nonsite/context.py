"""What every command shares: the console, this invocation's settings, the review context."""
from __future__ import annotations

import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 160)

_current: dict = {}  # the settings of the running command


def current_settings():
    """The settings of this command (read once from the environment, shared by its steps)."""
    from .settings import Settings

    if "settings" not in _current:
        _current["settings"] = Settings()
    return _current["settings"]


def review_context(settings):
    """The review application's view of the deployment (its database migrated on opening)."""
    from zoneinfo import ZoneInfo

    from nonsite.review_ui import Context
    from nonsite.review_ui.procedure import load_procedure

    signer = settings.signer  # first: creates the deployment's key on first start
    settings.anchor_audit()
    return Context(settings.open_index(), settings.open_store(), settings.sites_path, settings.secure_cookies, signer, settings.public_key(),
                   settings.fleet_dir, ZoneInfo(settings.display_timezone),
                   settings.repeat_lookback_days, load_procedure(settings.procedure_file), settings.document_templates,
                   settings.data_dir / "surveys", settings.model_versions_path)


def flush_spool(settings) -> None:
    """Before exiting, one more try at uploading what waits in the spool; the rest stays for next time."""
    store = settings.__dict__.get("_store")
    if store is not None and hasattr(store, "drain_once"):
        store.stop()
        try:
            store.drain_once()
        except Exception as exc:  # storage still down: the packs stay spooled, nothing is lost
            console.print(f"[yellow]{len(store.spooled())} packs stay in the local spool ({exc})[/]")


def finish() -> None:
    """At the end of a command: one more upload try for spooled packs, then forget the settings."""
    if "settings" in _current:
        flush_spool(_current.pop("settings"))
