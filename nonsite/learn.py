"""``nonsite learn MODEL``: the officers' decisions become a candidate model, judged by the promotion gate.

1. The site evaluation set grows with newly decided pictures and officers' judgements of what a
   candidate in shadow disagreed on (``review_ui.site_eval``); every other
   decided pack of the model is training data: confirmed boxes as labels, false detections as
   pictures with nothing to find, each pack's reason kept in ``decisions.jsonl``.
2. The model's current weights (the deployment's promoted version, else the shipped checkpoint) are
   fine-tuned on it, backbone frozen so a few hundred pictures cannot unlearn what it knew. The last
   epoch is kept: the evaluation set never chooses among epochs.
3. Current and candidate are scored on the site set, family by family, and on the model's fixed
   benchmark (its recipe's held-out split); ``vision.gate`` decides. The candidate is kept as the
   model's next version either way, with its report; ``--promote`` makes a passing one current.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from nonsite.evidence.audit import record_now
from nonsite.review_ui.site_eval import SiteEvalBook, SiteEvalSet, decided_packs
from nonsite.review_ui.training_export import export_decisions, export_judgement
from nonsite.rules.loader import load_config
from nonsite.vision.datasets import dataset_images, held_out_images, split_images
from nonsite.vision.evaluation import Scores, evaluate
from nonsite.vision.gate import GateResult, judge
from nonsite.vision.manifest import ModelManifest
from nonsite.vision.model_store import ModelLine, ModelVersion
from nonsite.vision.shadow_book import ShadowBook, ShadowError
from nonsite.vision.training import TrainRecipe
from nonsite.vision.weights import locate, weights_sha256

from .settings import REPO_ROOT, Settings

FREEZE_LAYERS = 10
SCORE_FLOOR = 0.01  # the gate ranks every detection down to here


@dataclass(frozen=True)
class LearningSets:
    eval_set: SiteEvalSet
    site_eval: dict[str, Path]  # violation family -> YOLO folder of its evaluation pictures
    train: Path
    train_pictures: frozenset[str]
    train_packs: int
    classes: list[str]  # the model's class names, which the exported labels number


@dataclass(frozen=True)
class LearnResult:
    version: ModelVersion
    gate: GateResult
    sets: LearningSets
    training_seconds: float
    promoted: bool


def class_names(settings: Settings, model: str) -> list[str]:
    detector = settings.registry.detector(model)
    return detector.manifest.classes or [detector.names[i] for i in sorted(detector.names)]


def build_sets(settings: Settings, model: str, workdir: Path) -> LearningSets:
    """Grow the evaluation set, then export it per family and everything else of the model as training data."""
    engine, store = settings.open_index().engine, settings.open_store()
    zone = ZoneInfo(settings.display_timezone)
    decided = [p for p in decided_packs(engine, store, zone) if model in p.models]
    book = ShadowBook(ModelLine(settings.model_versions_path, model).shadow_folder)
    judged = book.judged()
    eval_set = SiteEvalBook(settings.data_dir / "learning" / model).grow(decided, judged, zone)
    held_out, held_shadow = eval_set.packs(), eval_set.shadow_records()
    classes = class_names(settings, model)
    site_eval = {}
    for family in sorted({p.category for p in decided if p.pack_id in held_out}):
        site_eval[family] = workdir / "site_eval" / family
        export_decisions(engine, store, site_eval[family], {p.pack_id for p in decided if p.pack_id in held_out and p.category == family},
                         classes)
    for record_id, digest in sorted(held_shadow.items()):
        record = book.get(record_id)  # a judged picture of the set that is gone is an error, not a smaller set
        if record.digest() != digest:
            raise ShadowError(f"shadow record {record_id} changed since it joined the site evaluation set v{eval_set.version}")
        for family in record.families:
            site_eval.setdefault(family, workdir / "site_eval" / family)
            export_judgement(record, book.picture(record_id), site_eval[family], classes)
    training = [p for p in decided if p.pack_id not in held_out]
    export_decisions(engine, store, workdir / "train", {p.pack_id for p in training}, classes)
    return LearningSets(eval_set, site_eval, workdir / "train", frozenset(p.picture for p in training), len(training), classes)


def current_checkpoint(settings: Settings, manifest: ModelManifest) -> Path:
    """What the candidate starts from: the promoted version, else the shipped checkpoint (a .pt the registry can find)."""
    line = settings.registry.line(manifest.name)
    if line is not None and (promoted := line.current_weights()) is not None:
        return promoted
    for name in [manifest.build_from, *manifest.weights]:
        if name and name.endswith(".pt") and (found := locate(name, settings.registry.models_dirs)):
            return found
    raise FileNotFoundError(f"model {manifest.name}: no trainable checkpoint (.pt) among {[manifest.build_from, *manifest.weights]} in "
                            f"{', '.join(map(str, settings.registry.models_dirs))}")


def fine_tune(start: Path, train: Path, workdir: Path, epochs: int, imgsz: int, device: str = "cpu") -> Path:
    """The last epoch's weights after fine-tuning ``start`` on the YOLO folder ``train``."""
    from ultralytics import YOLO

    names = (train / "classes.txt").read_text(encoding="utf-8").split()
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data.yaml"
    # the training pictures stand in as ultralytics' validation split too: the site evaluation set never picks weights
    data.write_text(yaml.safe_dump({"path": str(train.resolve()), "train": "images", "val": "images", "names": dict(enumerate(names))}))
    YOLO(str(start)).train(data=str(data), epochs=epochs, imgsz=imgsz, batch=8, freeze=FREEZE_LAYERS, lr0=0.002, warmup_epochs=0,
                           device=device, workers=0, project=str(workdir), name="train", exist_ok=True, seed=0, deterministic=True,
                           plots=False, verbose=False, val=False)
    return workdir / "train" / "weights" / "last.pt"


def fixed_benchmarks(settings: Settings, model: str) -> dict[str, tuple[Path, list[Path]]]:
    """The model's fixed benchmarks: the held-out split of its recipe's dataset, and the places the recipe holds out
    whole (so a candidate fine-tuned on one bureau's streets may not forget other places); none without a recipe."""
    path = REPO_ROOT / "models" / "recipes" / f"{model}.yaml"
    if not path.is_file():
        return {}
    recipe = load_config(path, TrainRecipe)
    folder = Path(recipe.dataset.replace("{datasets}", str(settings.datasets_dir)))
    images = dataset_images(folder)
    _, held_out = split_images(images, recipe.split)
    benchmarks = {f"{folder.name} (held-out split of the {model} recipe)": (folder, held_out)}
    if places := held_out_images(images, recipe.split):
        benchmarks[f"{folder.name} (places the {model} recipe never trains on)"] = (folder, places)
    return benchmarks


def score(settings: Settings, model: str, weights: Path | None, sets: LearningSets) -> tuple[dict, dict]:
    """Site scores per family and fixed-benchmark scores of one model version, every detection down to ``SCORE_FLOOR``."""
    registry, classes = settings.registry, sets.classes
    manifest = registry.manifest(model)
    from nonsite.vision.detector import Detector

    detector = Detector(manifest.model_copy(update={"conf": SCORE_FLOOR}), weights or registry.resolve_weights(manifest))
    site: dict[str, Scores] = {}
    for family, folder in sets.site_eval.items():
        wanted = [c for c in manifest.categories.get(family, classes) if c in classes]
        site[family] = evaluate(detector.detect, folder, wanted, set(wanted), min_confidence=manifest.conf)
    fixed: dict[str, Scores] = {}
    for name, (folder, images) in fixed_benchmarks(settings, model).items():
        wanted = [c for c in (folder / "classes.txt").read_text().split() if c in classes]
        fixed[name] = evaluate(detector.detect, folder, wanted, set(wanted), min_confidence=manifest.conf, images=images)
    return site, fixed


def judge_candidate(settings: Settings, model: str, candidate: Path, sets: LearningSets) -> GateResult:
    manifest = settings.registry.manifest(model)
    site_now, fixed_now = score(settings, model, None, sets)
    site_new, fixed_new = score(settings, model, candidate, sets)
    return judge(site_now, site_new, manifest.conf, fixed_now, fixed_new)


def run_learn(settings: Settings, model: str, epochs: int = 5, imgsz: int | None = None, promote: bool = False, by: str = "nonsite learn",
              device: str = "cpu") -> LearnResult:
    manifest = settings.registry.manifest(model)
    workdir = settings.data_dir / "learning" / model / "runs" / time.strftime("%Y%m%dT%H%M%S")
    sets = build_sets(settings, model, workdir)
    if sets.train_packs == 0:
        raise ValueError(f"model {model}: no decided pack outside the evaluation set to learn from yet")
    start = current_checkpoint(settings, manifest)
    started = time.perf_counter()
    candidate = fine_tune(start, sets.train, workdir, epochs, imgsz or manifest.imgsz, device)
    seconds = time.perf_counter() - started
    SiteEvalBook(settings.data_dir / "learning" / model).mark_trained(set(sets.train_pictures))
    gate = judge_candidate(settings, model, candidate, sets)
    report = {"gate": gate.as_dict(), "started_from": weights_sha256(start), "site_eval": {"version": sets.eval_set.version,
              "sha256": sets.eval_set.sha256, "pictures": len(sets.eval_set.pictures)}, "train_packs": sets.train_packs,
              "train_pictures": len(sets.train_pictures), "epochs": epochs, "imgsz": imgsz or manifest.imgsz,
              "training_seconds": round(seconds, 1)}
    line = ModelLine(settings.model_versions_path, model)
    version = line.add_candidate(candidate, weights_sha256(Path(str(settings.registry.resolve_weights(manifest, shipped=True)))), report)
    engine = settings.open_index().engine
    record_now(engine, by, "model.candidate", f"{model} v{version.version}",
               {"sha256": version.sha256, "passed": gate.passed, "reasons": gate.reasons, "site_eval_sha256": sets.eval_set.sha256})
    promoted = promote and gate.passed
    if promoted:
        promote_version(settings, model, version.version, by)
    return LearnResult(version, gate, sets, seconds, promoted)


def promote_version(settings: Settings, model: str, number: int, by: str, reason: str = "") -> ModelVersion:
    version = ModelLine(settings.model_versions_path, model).promote(number, by, reason)
    record_now(settings.open_index().engine, by, "model.promoted", f"{model} v{number}", {"sha256": version.sha256, "reason": reason})
    return version


def roll_back(settings: Settings, model: str, by: str, reason: str = "") -> ModelVersion:
    version = ModelLine(settings.model_versions_path, model).rollback(by, reason)
    record_now(settings.open_index().engine, by, "model.rolled_back", f"{model} v{version.version}", {"sha256": version.sha256,
                                                                                                      "reason": reason})
    return version


def start_shadow(settings: Settings, model: str, number: int, by: str) -> ModelVersion:
    """Version ``number`` runs beside the current one on the live cameras from the camera service's next scan."""
    version = ModelLine(settings.model_versions_path, model).start_shadow(number, by)
    record_now(settings.open_index().engine, by, "model.shadow_started", f"{model} v{number}", {"sha256": version.sha256})
    return version


def stop_shadow(settings: Settings, model: str, by: str) -> int:
    number = ModelLine(settings.model_versions_path, model).stop_shadow(by)
    record_now(settings.open_index().engine, by, "model.shadow_stopped", f"{model} v{number}")
    return number
