"""Commands that run sources through the pipeline: run, demo, batch, survey, bench, eval, eval-change."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from .context import console, current_settings


def cmd_run(args) -> int:
    from nonsite.ingest import open_source
    from nonsite.rules import SiteConfig, load_config

    from .runner import build_pipeline, print_packs

    settings = current_settings()
    config = load_config(Path(args.config), SiteConfig)
    pipeline = build_pipeline(config, settings)
    frames = open_source(config.source)
    try:
        summary = pipeline.run(frames)
    except KeyboardInterrupt:
        console.print("[yellow]stopped[/]")
        return 130
    finally:
        close = getattr(frames, "close", None)
        if close:
            close()
    print_packs(console, summary.packs, f"{config.source.id}: {summary.frames} frames")
    return 0


def cmd_fleet(args) -> int:
    """Every camera of the sites folder in this process, until SIGTERM or SIGINT."""
    import logging
    import signal
    import threading

    from .fleet import Fleet

    settings = current_settings()
    stop = threading.Event()

    def on_signal(number, _frame) -> None:
        logging.getLogger("nonsite.fleet").info("received %s: stopping", signal.Signals(number).name)
        stop.set()

    sites = Path(args.sites) if args.sites else settings.sites_path
    address = args.ray or settings.ray_address
    if address:
        from .cluster import connect
        from .cluster_fleet import AnotherCoordinator, ClusterFleet

        connect(address)  # before the handlers below: joining Ray installs its own
        try:
            fleet = ClusterFleet(settings, sites, queue_workers=args.evidence_workers, max_batch=args.max_batch)
        except AnotherCoordinator as exc:
            console.print(f"[red]error:[/] {exc}", highlight=False)
            return 2
    else:
        fleet = Fleet(sites, settings.sink, settings.data_dir, settings.registry, queue_workers=args.evidence_workers,
                      max_batch=args.max_batch, episodes_dir=settings.episodes_path,
                      shadow_every_s=settings.shadow_every_s)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, on_signal)
    server = None
    if args.metrics_port:
        from .metrics import serve_metrics

        server = serve_metrics(args.metrics_host, args.metrics_port, fleet.status)
    try:
        fleet.run(stop)
    finally:
        if server is not None:
            server.shutdown()
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(current_settings(), console)


def cmd_bench(args) -> int:
    from .bench import run_bench

    return run_bench(current_settings(), console, frames=args.frames, models=args.model or ["coco"])


def _flight_config(path: str):
    """A flight or survey config, its zones file found beside it."""
    from nonsite.rules import load_config
    from nonsite.rules.drone import FlightConfig

    config = load_config(Path(path), FlightConfig)
    if not Path(config.zones).is_absolute():
        config.zones = str(Path(path).parent / config.zones)
    return config


def cmd_batch(args) -> int:
    from .batch import default_flight_id, run_batch

    config = _flight_config(args.config)
    settings = current_settings()
    flight_id = args.flight_id or default_flight_id(args.flight)
    analyse = None
    if address := args.ray or settings.ray_address:
        from functools import partial

        from .cluster import connect
        from .cluster_batch import analysed_on_cluster

        connect(address)
        analyse = partial(analysed_on_cluster, settings, config, flight_id, args.baseline, workers=args.workers)
    summary = run_batch(settings, console, args.flight, config, flight_id, args.baseline, analyse)
    console.print(f"flight {summary.flight_id}: {summary.images} images ({summary.resumed} done before), "
                  f"{len(summary.skipped)} skipped, {summary.new_packs} new packs; GeoJSON: {summary.geojson}")
    return 0


def cmd_survey(args) -> int:
    from nonsite.ingest.mosaic import MosaicRefused
    from nonsite.rules.loader import ConfigError

    try:
        return _compare(args) if args.previous else _survey(args)
    except (MosaicRefused, ConfigError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2


def _survey(args) -> int:
    from .survey import run_survey

    summary = run_survey(current_settings(), console, Path(args.mosaic), args.model or ["aerial_vehicle"], args.tile, args.overlap,
                         args.survey_id, args.device)
    console.print(f"survey {summary.survey_id}: {summary.windows} windows of {summary.core} px (+{summary.margin} px margin), "
                  f"{summary.resumed} done before, {summary.empty} without data, {len(summary.findings)} objects; "
                  f"GeoJSON: {summary.geojson}; GeoPackage: {summary.geopackage}")
    return 0


def _compare(args) -> int:
    from nonsite.rules.loader import ConfigError

    from .change_eval import change_detector
    from .survey_compare import compare_surveys

    if not args.config:
        raise ConfigError("comparing with a previous survey needs --config (the parcels and which kinds of change count where)")
    settings = current_settings()
    summary = compare_surveys(settings, console, Path(args.mosaic), Path(args.previous), _flight_config(args.config),
                              change_detector(settings), args.survey_id)
    kinds = Counter(c.kind for c in summary.changes)
    console.print(f"survey {summary.survey_id}: {summary.windows} windows at {summary.change_gsd_m:.2f} m a pixel, {summary.resumed} done "
                  f"before, {summary.outside} outside the previous survey; {len(summary.changes)} changes "
                  f"({', '.join(f'{k} {n}' for k, n in kinds.most_common()) or 'none'}), {summary.new_packs} new packs; "
                  f"GeoJSON: {summary.geojson}; GeoPackage: {summary.geopackage}")
    return 0


def cmd_eval(args) -> int:
    from .evaluate import run_eval

    return run_eval(current_settings(), console, Path(args.folder), args.model, args.classes, args.predict, args.tile,
                    args.overlap, args.limit, args.conf, Path(args.val_of) if args.val_of else None, as_json=args.json)


def cmd_eval_change(args) -> int:
    from .change_eval import run_change_eval, train_shipped

    settings = current_settings()
    if args.train:
        train_shipped(settings, Path(args.folder))
    return run_change_eval(settings, console, Path(args.folder))
