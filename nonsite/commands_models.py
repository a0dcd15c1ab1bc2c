"""Commands about detectors and their data: models, export, train, dataset."""
from __future__ import annotations

from pathlib import Path

from rich.table import Table

from .context import console, current_settings, review_context


def cmd_models(args) -> int:
    from .settings import BUILT_MODELS_DIR

    settings = current_settings()
    registry = settings.registry
    if args.build:
        for name, path in registry.build_missing(BUILT_MODELS_DIR):
            console.print(f"built {name}: {path}")
    table = Table("model", "version here", "weights", "categories")
    for name in registry.names():
        manifest = registry.manifest(name)
        try:
            weights = str(registry.resolve_weights(manifest))
        except FileNotFoundError as exc:
            weights = f"[red]missing[/] ({exc})"
        table.add_row(name, str(registry.line(name).state().current), weights, ", ".join(manifest.categories))
    console.print(table)
    return 0


def cmd_export(args) -> int:
    from nonsite.vision.export import export_weights

    target = export_weights(Path(args.checkpoint), Path(args.out), args.format, args.imgsz)
    console.print(f"exported {args.checkpoint} -> {target}")
    return 0


def cmd_train(args) -> int:
    from nonsite.rules import load_config
    from nonsite.vision.training import TrainRecipe, train_recipe

    from .settings import BUILT_MODELS_DIR

    settings = current_settings()
    recipe = load_config(Path(args.recipe), TrainRecipe)
    overrides = {k: v for k, v in {"epochs": args.epochs, "imgsz": args.imgsz, "fraction_images": args.images, "base": args.base}.items() if v}
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
    from nonsite.vision.datasets import SplitSpec, dataset_images, merge_datasets, split_images, validate_dataset

    if args.action == "validate":
        report = validate_dataset(Path(args.folder))
        for problem in report.problems:
            console.print(f"[red]problem[/] {problem}", highlight=False)
        console.print(f"{report.images} images, boxes per class {dict(report.boxes)}, {len(report.problems)} problems")
        return 0 if report.ok else 1
    if args.action == "export-decisions":
        from nonsite.review_ui.training_export import export_decisions

        ctx = review_context(current_settings())
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


def _point(point: dict | None) -> str:
    return f"{point['precision']:.3f} ({point['low']:.3f}-{point['high']:.3f})" if point else "never reaches it"


def cmd_learn(args) -> int:
    from .learn import run_learn

    result = run_learn(current_settings(), args.model, args.epochs, args.imgsz, args.promote, device=args.device)
    table = Table("family / benchmark", "operating recall", "current precision (95%)", "candidate precision (95%)", "AP50 current -> candidate",
                  title=f"{args.model} v{result.version.version}: {'passed' if result.gate.passed else 'refused'} by the gate")
    for family, figures in result.gate.families.items():
        table.add_row(family, f"{figures['operating_recall']:.2f}", _point(figures["current"]), _point(figures["candidate"]), "")
    for name, figures in result.gate.fixed.items():
        table.add_row(name, "", "", "", f"{figures['current_ap50']:.3f} -> {figures['candidate_ap50']:.3f}")
    console.print(table)
    for reason in result.gate.reasons:
        console.print(f"[yellow]refused:[/] {reason}", highlight=False)
    console.print(f"site evaluation set v{result.sets.eval_set.version} ({len(result.sets.eval_set.pictures)} pictures, sha256 "
                  f"{result.sets.eval_set.sha256[:16]}…); trained on {result.sets.train_packs} packs in {result.training_seconds:.0f} s; "
                  f"{'promoted: now current' if result.promoted else 'kept as a candidate'}")
    return 0


def cmd_promote(args) -> int:
    from .learn import promote_version

    version = promote_version(current_settings(), args.model, args.version, args.by, args.reason)
    console.print(f"{args.model} v{version.version} is current (weights {version.sha256[:16]}…)")
    return 0


def cmd_shadow(args) -> int:
    from .learn import start_shadow, stop_shadow

    settings = current_settings()
    if args.stop:
        number = stop_shadow(settings, args.model, args.by)
        console.print(f"{args.model} v{number} no longer runs in shadow")
        return 0
    if args.version is None:
        console.print("[red]error:[/] name the version to run in shadow, or --stop", highlight=False)
        return 2
    version = start_shadow(settings, args.model, args.version, args.by)
    console.print(f"{args.model} v{version.version} runs in shadow beside the current version from the camera service's next scan; "
                  "its disagreements wait for officers on the desk's model check page (/shadow)")
    return 0


def cmd_rollback(args) -> int:
    from .learn import roll_back

    version = roll_back(current_settings(), args.model, args.by, args.reason)
    console.print(f"{args.model} back to v{version.version}" + (" (the shipped weights)" if version.version == 0 else ""))
    return 0
