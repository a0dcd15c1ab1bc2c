"""``nonsite VERB [ARGS]``: one command line for every job; the same flag means the same everywhere."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 160)


def _settings():
    from .settings import Settings

    return Settings()


def cmd_run(args) -> int:
    from ingest import open_source
    from rules import SiteConfig, load_config

    from .runner import build_pipeline, print_packs

    settings = _settings()
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


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(_settings(), console)


def cmd_verify(args) -> int:
    from rules.evidence import verify_pack

    settings = _settings()
    store, index = settings.open_store(), settings.open_index()
    pack_ids = args.packs or store.pack_ids()
    failed = 0
    for pack_id in pack_ids:
        row = index.get(pack_id)
        report = verify_pack(store, pack_id, row.manifest_sha256 if row else None)
        if report.ok:
            console.print(f"[green]OK[/]   {pack_id}: {report.checked} files match their SHA-256")
        else:
            failed += 1
            for problem in report.problems:
                console.print(f"[red]FAIL[/] {pack_id}: {problem}")
    console.print(f"{len(pack_ids) - failed} of {len(pack_ids)} packs verified")
    return 1 if failed else 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    return run_bench(_settings(), console, frames=args.frames, model=args.model)


def cmd_models(args) -> int:
    settings = _settings()
    registry = settings.registry
    table = Table("model", "weights", "categories")
    for name in registry.names():
        manifest = registry.manifest(name)
        try:
            weights = str(registry.resolve_weights(manifest))
        except FileNotFoundError as exc:
            weights = f"[red]missing[/] ({exc})"
        table.add_row(name, weights, ", ".join(manifest.categories))
    console.print(table)
    return 0


def cmd_export(args) -> int:
    from vision.export import export_weights

    target = export_weights(Path(args.checkpoint), Path(args.out), args.format, args.imgsz)
    console.print(f"exported {args.checkpoint} -> {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nonsite", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and warnings")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("demo", help="run the pipeline on real sample frames and list the violations").set_defaults(func=cmd_demo)
    run = verbs.add_parser("run", help="run one source's config (video file, image folder, live stream)")
    run.add_argument("config", help="site config YAML: source, zones, rules")
    run.set_defaults(func=cmd_run)
    verify = verbs.add_parser("verify", help="recompute every hash of evidence packs")
    verify.add_argument("packs", nargs="*", help="pack ids (default: every pack in the store)")
    verify.set_defaults(func=cmd_verify)
    bench = verbs.add_parser("bench", help="raw model time vs full pipeline time per frame")
    bench.add_argument("--frames", type=int, default=60, help="frames to time (default 60)")
    bench.add_argument("--model", default="coco", help="registry name of the model (default coco)")
    bench.set_defaults(func=cmd_bench)
    export = verbs.add_parser("export", help="export a .pt checkpoint to OpenVINO or ONNX for CPU inference")
    export.add_argument("checkpoint", help="trainable .pt checkpoint")
    export.add_argument("--out", required=True, help="target: a '*_openvino_model' folder or an '.onnx' file")
    export.add_argument("--format", choices=["openvino", "onnx"], default="openvino")
    export.add_argument("--imgsz", type=int, default=640, help="input size in pixels (default 640)")
    export.set_defaults(func=cmd_export)
    verbs.add_parser("models", help="list registered models and where their weights are").set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from ingest import SourceError
    from rules import ConfigError
    from vision import ManifestError, ModelNotFoundError

    try:
        return args.func(args)
    except (ConfigError, SourceError, ManifestError, ModelNotFoundError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
