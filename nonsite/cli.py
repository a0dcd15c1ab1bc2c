"""``nonsite VERB [ARGS]``: one command line for every job; the same flag means the same everywhere."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 160)


_current: dict = {}


def _settings():
    """The settings of this command (read once from the environment, shared by its steps)."""
    from .settings import Settings

    if "settings" not in _current:
        _current["settings"] = Settings()
    return _current["settings"]


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
    from rules.evidence import LocalStore, verify_pack
    from rules.evidence.signing import load_public_key

    from .dossier_files import opened_dossier

    settings = _settings()
    public_key = load_public_key(Path(args.public_key)) if args.public_key else settings.public_key()
    with opened_dossier(Path(args.dir)) if args.dir else _nullcontext() as folder:
        store = LocalStore(folder) if folder else settings.open_store()
        index = None if folder else settings.open_index()
        pack_ids = args.packs or store.pack_ids()
        failed = 0
        for pack_id in pack_ids:
            row = index.get(pack_id) if index else None
            if row is not None and row.purged == "all":
                console.print(f"[yellow]GONE[/] {pack_id}: deleted by the retention job (index row and audit kept)")
                continue
            report = verify_pack(store, pack_id, row.manifest_sha256 if row else None, public_key, bool(row and row.purged))
            if report.ok:
                notes = "; ".join(report.notes) or ("no signature checked: no public key" if public_key is None else "")
                console.print(f"[green]OK[/]   {pack_id}: {report.checked} files match their SHA-256{'; ' + notes if notes else ''}")
            else:
                failed += 1
                for problem in report.problems:
                    console.print(f"[red]FAIL[/] {pack_id}: {problem}", highlight=False)
    console.print(f"{len(pack_ids) - failed} of {len(pack_ids)} packs verified")
    return 1 if failed else 0


def _nullcontext():
    from contextlib import nullcontext

    return nullcontext(None)


def cmd_keys(args) -> int:
    from rules.evidence.credentials import create_certificates
    from rules.evidence.signing import create_keys

    settings = _settings()
    try:
        public = create_keys(settings.keys_path)
    except FileExistsError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    ca = create_certificates(settings.keys_path)
    console.print(f"signing key created; give third parties the public key {public} and the C2PA trust anchor {ca}")
    return 0


def cmd_status(args) -> int:
    settings = _settings()
    store, index = settings.open_store(), settings.open_index()
    rows = index.rows()
    table = Table("what", "value", title="nonsite status")
    table.add_row("evidence store", f"MinIO s3://{settings.s3_bucket} at {settings.s3_endpoint}" if settings.s3_endpoint else str(settings.store_dir or settings.data_dir / "evidence"))
    spooled = store.spooled() if hasattr(store, "spooled") else []
    table.add_row("packs waiting in the local spool", f"{len(spooled)}" + (f": {', '.join(spooled[:10])}" if spooled else ""))
    for status in ("pending_review", "confirmed", "rejected"):
        table.add_row(f"packs {status.replace('_', ' ')}", str(sum(r.status == status for r in rows)))
    table.add_row("signing key", "present" if settings.signer else "none (run nonsite keys init)")
    console.print(table)
    return 0


def cmd_retention(args) -> int:
    from review_ui.retention import run_retention

    settings = _settings()
    ctx = _review_context(settings)
    report = run_retention(ctx.engine, ctx.store, settings.rejected_image_days, settings.case_legal_days)
    for line in report:
        console.print(line, highlight=False)
    console.print(f"retention: {len(report)} packs purged")
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench

    return run_bench(_settings(), console, frames=args.frames, models=args.model or ["coco"])


def cmd_models(args) -> int:
    from .settings import BUILT_MODELS_DIR

    settings = _settings()
    registry = settings.registry
    if args.build:
        for name, path in registry.build_missing(BUILT_MODELS_DIR):
            console.print(f"built {name}: {path}")
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


def cmd_train(args) -> int:
    from rules import load_config
    from vision.training import TrainRecipe, train_recipe

    from .settings import BUILT_MODELS_DIR

    settings = _settings()
    recipe = load_config(Path(args.recipe), TrainRecipe)
    overrides = {k: v for k, v in {"epochs": args.epochs, "imgsz": args.imgsz, "fraction_images": args.images}.items() if v}
    recipe = recipe.model_copy(update=overrides)
    result = train_recipe(
        recipe, settings.datasets_dir, settings.registry.models_dirs, Path(args.weights_out or BUILT_MODELS_DIR),
        Path(args.manifests_out or settings.manifests_dir), Path(args.runs), args.device, args.resume,
    )
    table = Table("model", "train / val images", *result.metrics, "minutes", title=f"trained {result.name}")
    table.add_row(result.name, f"{result.train_images} / {result.val_images}", *map(str, result.metrics.values()), f"{result.seconds / 60:.1f}")
    console.print(table)
    console.print(f"manifest: {result.manifest_path}  weights: {result.weights}")
    return 0


def cmd_dataset(args) -> int:
    from vision.datasets import SplitSpec, dataset_images, merge_datasets, split_images, validate_dataset

    if args.action == "validate":
        report = validate_dataset(Path(args.folder))
        for problem in report.problems:
            console.print(f"[red]problem[/] {problem}", highlight=False)
        console.print(f"{report.images} images, boxes per class {dict(report.boxes)}, {len(report.problems)} problems")
        return 0 if report.ok else 1
    if args.action == "export-decisions":
        from review_ui.training_export import export_decisions

        ctx = _review_context(_settings())
        counts = export_decisions(ctx.engine, ctx.store, Path(args.out))
        console.print(f"exported to {args.out}: {counts}")
        return 0
    if args.action == "split":
        spec = SplitSpec(by=args.by, pattern=args.pattern, val_fraction=args.val_fraction)
        train, val = split_images(dataset_images(Path(args.folder)), spec)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.txt").write_text("".join(f"{p.resolve()}\n" for p in train))
        (out / "val.txt").write_text("".join(f"{p.resolve()}\n" for p in val))
        console.print(f"{len(train)} train, {len(val)} val -> {out}/train.txt, val.txt")
        return 0
    sources = []
    for item in args.sources:
        folder, _, mapping = item.partition(":")
        pairs = dict(pair.split("=", 1) for pair in mapping.split(",") if pair)
        sources.append((Path(folder), pairs))
    counts = merge_datasets(sources, Path(args.out))
    console.print(f"merged into {args.out}: boxes per class {counts}")
    return 0


def _review_context(settings):
    from review_ui import Context, create_tables

    index = settings.open_index()
    create_tables(index.engine)
    return Context(index, settings.open_store(), settings.sites_path, settings.secure_cookies)


def cmd_serve(args) -> int:
    import uvicorn

    from review_ui import create_app

    app = create_app(_review_context(_settings()))
    console.print(f"review UI on http://{args.host}:{args.port}/  (API docs at /docs)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_user(args) -> int:
    import getpass
    import os

    from review_ui import add_user

    ctx = _review_context(_settings())
    password = args.password or os.environ.get("NONSITE_NEW_PASSWORD") or getpass.getpass(f"password for {args.name}: ")
    try:
        user = add_user(ctx.engine, args.name, password, args.role)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    console.print(f"user {user.username} ({user.role}) created")
    return 0


def cmd_audit(args) -> int:
    from review_ui import verify_chain

    report = verify_chain(_review_context(_settings()).engine)
    if report.ok:
        console.print(f"[green]OK[/] audit chain intact: {report.entries} entries")
        return 0
    console.print(f"[red]BROKEN[/] {report.problem}")
    return 1


def cmd_eval(args) -> int:
    from .evaluate import run_eval

    return run_eval(_settings(), console, Path(args.folder), args.model, args.classes, args.predict, args.tile,
                    args.overlap, args.limit, args.conf, Path(args.val_of) if args.val_of else None)


def cmd_batch(args) -> int:
    from rules import load_config
    from rules.drone import FlightConfig

    from .batch import run_batch

    config = load_config(Path(args.config), FlightConfig)
    if not Path(config.zones).is_absolute():
        config.zones = str(Path(args.config).parent / config.zones)
    summary = run_batch(_settings(), console, args.flight, config, args.flight_id, args.baseline)
    console.print(f"flight {summary.flight_id}: {summary.images} images ({summary.resumed} done before), "
                  f"{len(summary.skipped)} skipped, {summary.new_packs} new packs; GeoJSON: {summary.geojson}")
    return 0


def cmd_eval_change(args) -> int:
    from .change_eval import run_change_eval

    return run_change_eval(_settings(), console, Path(args.folder))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nonsite", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and warnings")
    verbs = parser.add_subparsers(dest="verb", required=True)
    serve = verbs.add_parser("serve", help="start the officers' review UI (FastAPI)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)
    user = verbs.add_parser("user", help="manage officers' accounts")
    user_verbs = user.add_subparsers(dest="action", required=True)
    add = user_verbs.add_parser("add", help="create a user (password asked, or from --password / NONSITE_NEW_PASSWORD)")
    add.add_argument("name")
    add.add_argument("--role", choices=["reviewer", "supervisor", "admin"], required=True)
    add.add_argument("--password")
    user.set_defaults(func=cmd_user)
    audit = verbs.add_parser("audit", help="check the audit log's hash chain")
    audit.add_argument("action", choices=["verify"])
    audit.set_defaults(func=cmd_audit)
    keys = verbs.add_parser("keys", help="the deployment's signing keys")
    keys.add_argument("action", choices=["init"])
    keys.set_defaults(func=cmd_keys)
    verbs.add_parser("status", help="evidence store, spooled packs, queue counts").set_defaults(func=cmd_status)
    retention = verbs.add_parser("retention", help="delete evidence whose retention period has passed")
    retention.add_argument("action", choices=["run"])
    retention.set_defaults(func=cmd_retention)
    verbs.add_parser("demo", help="run the pipeline on real sample frames and list the violations").set_defaults(func=cmd_demo)
    run = verbs.add_parser("run", help="run one source's config (video file, image folder, live stream)")
    run.add_argument("config", help="site config YAML: source, zones, rules")
    run.set_defaults(func=cmd_run)
    verify = verbs.add_parser("verify", help="recompute every hash of evidence packs")
    verify.add_argument("packs", nargs="*", help="pack ids (default: every pack in the store)")
    verify.add_argument("--dir", help="verify packs in a folder of packs, an exported dossier folder or its .zip instead of the store")
    verify.add_argument("--public-key", help="Ed25519 public key (PEM) to check signatures with (default: the deployment's)")
    verify.set_defaults(func=cmd_verify)
    bench = verbs.add_parser("bench", help="raw model time vs full pipeline time per frame")
    bench.add_argument("--frames", type=int, default=60, help="frames to time (default 60)")
    bench.add_argument("--model", action="append", help="registry name of a model; repeat to run several in one pass (default coco)")
    bench.set_defaults(func=cmd_bench)
    export = verbs.add_parser("export", help="export a .pt checkpoint to OpenVINO or ONNX for CPU inference")
    export.add_argument("checkpoint", help="trainable .pt checkpoint")
    export.add_argument("--out", required=True, help="target: a '*_openvino_model' folder or an '.onnx' file")
    export.add_argument("--format", choices=["openvino", "onnx"], default="openvino")
    export.add_argument("--imgsz", type=int, default=640, help="input size in pixels (default 640)")
    export.set_defaults(func=cmd_export)
    train = verbs.add_parser("train", help="fine-tune a detector from a recipe in models/recipes, then register it")
    train.add_argument("recipe", help="recipe YAML")
    train.add_argument("--epochs", type=int, help="override the recipe's epochs")
    train.add_argument("--imgsz", type=int, help="override the recipe's image size")
    train.add_argument("--images", type=int, help="use only the first N images (smoke runs)")
    train.add_argument("--device", default="cpu", help="'cpu' or a CUDA device such as '0'")
    train.add_argument("--resume", action="store_true", help="continue from the run's last.pt")
    train.add_argument("--runs", default="runs", help="working folder for training runs (default runs/)")
    train.add_argument("--weights-out", help="where weights go (default models/weights)")
    train.add_argument("--manifests-out", help="where the manifest goes (default models/)")
    train.set_defaults(func=cmd_train)
    dataset = verbs.add_parser("dataset", help="validate, split or merge YOLO-format datasets")
    dataset_verbs = dataset.add_subparsers(dest="action", required=True)
    validate = dataset_verbs.add_parser("validate", help="report missing labels, bad boxes, empty classes, duplicates")
    validate.add_argument("folder")
    split = dataset_verbs.add_parser("split", help="deterministic train/val lists that keep near-copies together")
    split.add_argument("folder")
    split.add_argument("--by", choices=["name", "group", "sequence_tail"], default="name")
    split.add_argument("--pattern", help="regex with group 'group', or groups 'seq' and 'frame'")
    split.add_argument("--val-fraction", type=float, default=0.2)
    split.add_argument("--out", required=True)
    export_decisions = dataset_verbs.add_parser("export-decisions", help="officers' decisions as a YOLO dataset (positives and hard negatives)")
    export_decisions.add_argument("--out", required=True)
    merge = dataset_verbs.add_parser("merge", help="merge datasets: FOLDER:old=new,old2=new2 ...")
    merge.add_argument("sources", nargs="+")
    merge.add_argument("--out", required=True)
    dataset.set_defaults(func=cmd_dataset)
    batch = verbs.add_parser("batch", help="a drone flight (folder, zip or s3://bucket/prefix) through tiled detection and geo rules")
    batch.add_argument("flight")
    batch.add_argument("--config", required=True, help="flight rules YAML (GeoJSON zones, rules, models, tiling)")
    batch.add_argument("--flight-id", help="id recorded on the packs (default: the folder or zip name)")
    batch.add_argument("--baseline", help="an earlier flight of the same area: raise suspected_new_structure packs for changes")
    batch.set_defaults(func=cmd_batch)
    evaluation = verbs.add_parser("eval", help="precision, recall, AP50: full frame vs tiled, on a labelled YOLO folder")
    evaluation.add_argument("folder", help="YOLO-format folder (images/, labels/, classes.txt)")
    evaluation.add_argument("--model", default="coco", help="registry name of the model (default coco)")
    evaluation.add_argument("--classes", nargs="+", required=True, help="ground-truth class names to score")
    evaluation.add_argument("--predict", nargs="+", help="model classes that count as those (default: the same names)")
    evaluation.add_argument("--tile", type=int, default=640, help="tile size in pixels (default 640)")
    evaluation.add_argument("--overlap", type=float, default=0.2, help="tile overlap share (default 0.2)")
    evaluation.add_argument("--limit", type=int, help="score only the first N images")
    evaluation.add_argument("--conf", type=float, default=0.25, help="operating confidence for precision/recall")
    evaluation.add_argument("--val-of", help="score only the held-out split of this training recipe")
    evaluation.set_defaults(func=cmd_eval)
    change = verbs.add_parser("eval-change", help="F1 / IoU of change detection on before/after/mask pairs, per set")
    change.add_argument("folder", help="folder of sets, each with before/, after/, mask/ (e.g. change_pairs)")
    change.set_defaults(func=cmd_eval_change)
    models = verbs.add_parser("models", help="list registered models and where their weights are")
    models.add_argument("--build", action="store_true", help="first export missing preferred weights from their checkpoints")
    models.set_defaults(func=cmd_models)
    return parser


def _flush_spool(settings) -> None:
    """Before exiting, one more try at uploading what waits in the spool; the rest stays for next time."""
    store = settings.__dict__.get("_store")
    if store is not None and hasattr(store, "drain_once"):
        store.stop()
        try:
            store.drain_once()
        except Exception as exc:  # storage still down: the packs stay spooled, nothing is lost
            console.print(f"[yellow]{len(store.spooled())} packs stay in the local spool ({exc})[/]")


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
    finally:
        if "settings" in _current:
            _flush_spool(_current.pop("settings"))


if __name__ == "__main__":
    sys.exit(main())
