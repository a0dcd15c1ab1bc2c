"""``nonsite VERB [ARGS]``: one command line for every job; the same flag means the same everywhere."""
from __future__ import annotations

import argparse
import logging
import sys

from .commands_evidence import cmd_audit, cmd_keys, cmd_retention, cmd_serve, cmd_status, cmd_user, cmd_verify
from .commands_models import cmd_dataset, cmd_export, cmd_learn, cmd_models, cmd_promote, cmd_rollback, cmd_shadow, cmd_train
from .commands_outbox import cmd_outbox
from .commands_pipeline import cmd_batch, cmd_bench, cmd_demo, cmd_eval, cmd_eval_change, cmd_fleet, cmd_run, cmd_survey
from .context import console, finish


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nonsite", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and warnings")
    verbs = parser.add_subparsers(dest="verb", required=True)
    serve = verbs.add_parser("serve", help="start the officers' review UI (FastAPI)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)
    # Passwords are asked at the terminal (twice) or read from NONSITE_NEW_PASSWORD in scripts, never
    # taken as an argument: the command line shows in `ps` and in shell history.
    user = verbs.add_parser("user", help="manage officers' accounts")
    user_verbs = user.add_subparsers(dest="action", required=True)
    roles = ["reviewer", "supervisor", "admin"]
    add = user_verbs.add_parser("add", help="create a user (password asked, or from NONSITE_NEW_PASSWORD)")
    add.add_argument("name")
    add.add_argument("--role", choices=roles, required=True)
    user_verbs.add_parser("list", help="every account: role, status, live sessions")
    user_verbs.add_parser("disable", help="stop a user logging in and end their sessions").add_argument("name")
    user_verbs.add_parser("enable", help="let a disabled user log in again").add_argument("name")
    user_verbs.add_parser("passwd", help="set a user's password (asked, or NONSITE_NEW_PASSWORD); ends their sessions").add_argument("name")
    role = user_verbs.add_parser("role", help="change a user's role; ends their sessions")
    role.add_argument("name")
    role.add_argument("role", choices=roles)
    user_verbs.add_parser("logout", help="end every session of a user (a lost phone, a shared terminal)").add_argument("name")
    user.set_defaults(func=cmd_user)
    audit = verbs.add_parser("audit", help="check the audit log's hash chain, or anchor its head in a signed checkpoint")
    audit.add_argument("action", choices=["verify", "checkpoint"])
    audit.set_defaults(func=cmd_audit)
    keys = verbs.add_parser("keys", help="the deployment's signing keys")
    keys.add_argument("action", choices=["init", "sign"], help="init: create the key pair; sign: sign standard input (a signing command)")
    keys.set_defaults(func=cmd_keys)
    verbs.add_parser("status", help="evidence store, spooled packs, queue counts").set_defaults(func=cmd_status)
    outbox = verbs.add_parser("outbox", help="webhook deliveries to the city platform: per receiver delivered, pending, last error")
    outbox.add_argument("--deliver", action="store_true", help="first deliver what is due now, until nothing is "
                        "(exit 1 if events still wait: a receiver is down or refusing)")
    outbox.set_defaults(func=cmd_outbox)
    retention = verbs.add_parser("retention", help="delete evidence whose retention period has passed")
    retention.add_argument("action", choices=["run"])
    retention.set_defaults(func=cmd_retention)
    verbs.add_parser("demo", help="run the pipeline on real sample frames and list the violations").set_defaults(func=cmd_demo)
    run = verbs.add_parser("run", help="run one source's config (video file, image folder, live stream)")
    run.add_argument("config", help="site config YAML: source, zones, rules")
    run.set_defaults(func=cmd_run)
    fleet = verbs.add_parser("fleet", help="run every camera of the sites folder as one service (until SIGTERM)")
    fleet.add_argument("--sites", help="folder of camera site configs (default: the data folder's sites/, which the zone editor writes)")
    fleet.add_argument("--metrics-host", default="127.0.0.1", help="address of the Prometheus /metrics endpoint")
    fleet.add_argument("--metrics-port", type=int, default=9108, help="port of the Prometheus /metrics endpoint (0: none)")
    fleet.add_argument("--evidence-workers", type=int, default=1, help="threads that build, sign and store packs")
    fleet.add_argument("--max-batch", type=int, default=8, help="most frames, across cameras, in one model call (1: no batching)")
    fleet.add_argument("--ray", metavar="ADDRESS", help="run the cameras on a Ray cluster ('auto' or the head's host:port; "
                       "default: NONSITE_RAY_ADDRESS, else this process)")
    fleet.set_defaults(func=cmd_fleet, log_level=logging.INFO)
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
    train.add_argument("--base", help="override the recipe's base checkpoint (to compare, e.g., yolo11n_coco_recovered.pt)")
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
    batch.add_argument("--ray", metavar="ADDRESS", help="analyse the pictures on a Ray cluster ('auto' or the head's host:port; "
                       "default: NONSITE_RAY_ADDRESS, else in this process)")
    batch.add_argument("--workers", type=int, default=2, help="on a cluster: workers analysing pictures at once, one CPU each")
    batch.set_defaults(func=cmd_batch)
    survey = verbs.add_parser("survey", help="an orthomosaic GeoTIFF of any size through tiled detection, window by window, to GeoJSON "
                              "and GeoPackage; with --previous, compared with the earlier survey of the area, raising packs for changes")
    survey.add_argument("mosaic", help="GeoTIFF or Cloud-Optimized GeoTIFF (8/16-bit, RGB/RGBA, any CRS)")
    survey.add_argument("--previous", help="the previous survey's GeoTIFF of the same area (any CRS and resolution): compare the two")
    survey.add_argument("--config", help="with --previous: survey rules YAML (parcels as GeoJSON or GeoPackage, which kinds count where)")
    survey.add_argument("--model", action="append", help="registry name of a model; repeat for several (default aerial_vehicle)")
    survey.add_argument("--tile", type=int, default=640, help="tile size in pixels (default 640)")
    survey.add_argument("--overlap", type=float, default=0.2, help="tile overlap share (default 0.2)")
    survey.add_argument("--survey-id", help="id of the run, which resumes by it (default: the file name)")
    survey.add_argument("--device", default="cpu", help="'cpu' or a CUDA device such as '0'")
    survey.set_defaults(func=cmd_survey)
    evaluation = verbs.add_parser("eval", help="precision, recall, AP50: full frame, tiled and multi-scale, on a labelled YOLO folder")
    evaluation.add_argument("folder", help="YOLO-format folder (images/, labels/, classes.txt)")
    evaluation.add_argument("--model", default="coco", help="registry name of the model (default coco)")
    evaluation.add_argument("--classes", nargs="+", required=True, help="ground-truth class names to score")
    evaluation.add_argument("--predict", nargs="+", help="model classes that count as those (default: the same names)")
    evaluation.add_argument("--tile", type=int, default=640, help="tile size in pixels (default 640)")
    evaluation.add_argument("--overlap", type=float, default=0.2, help="tile overlap share (default 0.2)")
    evaluation.add_argument("--limit", type=int, help="score only the first N images")
    evaluation.add_argument("--conf", type=float, default=0.25, help="operating confidence for precision/recall")
    evaluation.add_argument("--val-of", help="score only the held-out split of this training recipe")
    evaluation.add_argument("--json", action="store_true", help="print the scores as JSON (per mode: precision, recall, AP50) for scripts")
    evaluation.set_defaults(func=cmd_eval)
    change = verbs.add_parser("eval-change", help="change detection on before/after/mask pairs, per set: old vs new "
                                "(leave-one-pair-out), F1 / IoU / region precision")
    change.add_argument("folder", help="folder of sets, each with before/, after/, mask/ (e.g. change_pairs)")
    change.add_argument("--train", action="store_true", help="first retrain the shipped change classifier on every pair (deterministic)")
    change.set_defaults(func=cmd_eval_change)
    learn = verbs.add_parser("learn", help="officers' decisions since the last version -> a fine-tuned candidate, judged by the "
                             "promotion gate on the site evaluation set and the fixed benchmark")
    learn.add_argument("model", help="registry name of the model (e.g. aerial_vehicle)")
    learn.add_argument("--epochs", type=int, default=5)
    learn.add_argument("--imgsz", type=int, help="training image size (default: the manifest's)")
    learn.add_argument("--promote", action="store_true", help="make the candidate current if it passes the gate")
    learn.add_argument("--device", default="cpu")
    learn.set_defaults(func=cmd_learn)
    promote = verbs.add_parser("promote", help="make a version of a model current at this deployment (audit-logged)")
    promote.add_argument("model")
    promote.add_argument("version", type=int)
    promote.add_argument("--reason", default="", help="needed to promote a version the gate rejected")
    promote.add_argument("--by", default="admin", help="who decided (recorded in the audit log)")
    promote.set_defaults(func=cmd_promote)
    rollback = verbs.add_parser("rollback", help="back to the version that was current before the last promotion (audit-logged)")
    rollback.add_argument("model")
    rollback.add_argument("--reason", default="")
    rollback.add_argument("--by", default="admin")
    rollback.set_defaults(func=cmd_rollback)
    shadow = verbs.add_parser("shadow", help="run a version of a model beside the current one on the live cameras, raising nothing; "
                              "officers judge where the two disagree (audit-logged)")
    shadow.add_argument("model")
    shadow.add_argument("version", type=int, nargs="?")
    shadow.add_argument("--stop", action="store_true", help="end the shadow run")
    shadow.add_argument("--by", default="admin", help="who decided (recorded in the audit log)")
    shadow.set_defaults(func=cmd_shadow)
    models = verbs.add_parser("models", help="list registered models and where their weights are")
    models.add_argument("--build", action="store_true", help="first export missing preferred weights from their checkpoints")
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # One line per event with its time: a service's log is read long after the fact.
    level = logging.INFO if args.verbose else getattr(args, "log_level", logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from nonsite.ingest import SourceError
    from nonsite.rules import ConfigError
    from nonsite.vision import DatasetError, ManifestError, ModelNotFoundError
    from nonsite.vision.model_store import ModelStoreError
    from nonsite.vision.shadow_book import ShadowError

    try:
        return args.func(args)
    except (ConfigError, SourceError, ManifestError, ModelNotFoundError, DatasetError, ModelStoreError, ShadowError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    finally:
        finish()


if __name__ == "__main__":
    sys.exit(main())
