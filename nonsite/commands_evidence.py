"""Commands about stored evidence and the review side: verify, keys, status, retention, serve, user, audit."""
from __future__ import annotations

from pathlib import Path

from rich.table import Table

from .context import console, current_settings, review_context


def cmd_verify(args) -> int:
    """Packs in the store against the index and the audit log; or a dossier; or a folder of packs."""
    from nonsite.evidence.signing import load_public_key

    settings = current_settings()
    public_key = load_public_key(Path(args.public_key)) if args.public_key else settings.public_key()
    tsa_ca = settings.tsa_ca_file.read_bytes() if settings.tsa_ca_file else None  # who may time-stamp packs
    if args.dir:
        return _verify_dir(Path(args.dir), public_key, args.packs, tsa_ca)
    from nonsite.evidence.verify import verify_deployment

    report = verify_deployment(settings.open_store(), settings.open_index(), public_key, args.packs or None, tsa_ca)
    _print_packs(report.packs, public_key)
    for problem in report.problems:
        console.print(f"[red]FAIL[/] {problem}", highlight=False)
    good = sum(r.ok for r in report.packs)
    console.print(f"{good} of {len(report.packs)} packs verified; {len(report.problems)} problems across the index, store and audit log")
    return 0 if report.ok else 1


def _print_packs(reports, public_key) -> None:
    for report in reports:
        if report.ok:
            notes = "; ".join(report.notes) or ("no signature checked: no public key" if public_key is None else "")
            console.print(f"[green]OK[/]   {report.pack_id}: {report.checked} files match their SHA-256{'; ' + notes if notes else ''}")
        for problem in report.problems:
            console.print(f"[red]FAIL[/] {report.pack_id}: {problem}", highlight=False)


def _verify_dir(path: Path, public_key, pack_ids: list[str], tsa_ca: bytes | None) -> int:
    """A dossier (zip or folder with dossier.json) as a whole, else a plain folder of packs."""
    from nonsite.evidence import LocalStore, verify_pack
    from nonsite.evidence.dossiers import DOSSIER_MANIFEST, verify_dossier

    if not path.exists():
        console.print(f"[red]error:[/] {path}: no such file or folder", highlight=False)
        return 2
    if path.is_file() or (path / DOSSIER_MANIFEST).is_file():
        report = verify_dossier(path, public_key)
        for problem in report.problems:
            console.print(f"[red]FAIL[/] {problem}", highlight=False)
        notes = "; ".join(report.notes)
        console.print(f"{'[green]OK[/]' if report.ok else '[red]FAILED[/]'} {report.audience or ''} dossier {path.name}: "
                      f"{report.checked} files match their SHA-256{'; ' + notes if notes else ''}", highlight=False)
        return 0 if report.ok else 1
    store = LocalStore(path)
    reports = [verify_pack(store, pack_id, None, public_key, tsa_ca=tsa_ca) for pack_id in pack_ids or store.pack_ids()]
    _print_packs(reports, public_key)
    console.print(f"{sum(r.ok for r in reports)} of {len(reports)} packs verified")
    return 0 if all(r.ok for r in reports) else 1


def cmd_keys(args) -> int:
    """``keys init`` makes the key pair; ``keys sign`` signs standard input (the signing command of a
    deployment whose key only a separate OS user may read)."""
    import sys

    from nonsite.evidence.credentials import create_certificates
    from nonsite.evidence.signing import FileSigner, create_keys

    settings = current_settings()
    if args.action == "sign":
        signer = FileSigner.load(settings.keys_dir)
        if signer is None:
            console.print(f"[red]error:[/] no signing key in {settings.keys_dir}", highlight=False)
            return 2
        sys.stdout.buffer.write(signer.sign(sys.stdin.buffer.read()))
        return 0
    try:
        public = create_keys(settings.keys_dir)
    except FileExistsError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    ca = create_certificates(settings.keys_dir)
    console.print(f"signing key created; give third parties the public key {public} and the C2PA trust anchor {ca}")
    return 0


def cmd_status(args) -> int:
    settings = current_settings()
    store, index = settings.open_store(), settings.open_index()
    rows = index.rows()
    table = Table("what", "value", title="nonsite status")
    location = (f"MinIO s3://{settings.s3_bucket} at {settings.s3_endpoint}" if settings.s3_endpoint
                else str(settings.store_dir or settings.data_dir / "evidence"))
    table.add_row("evidence store", location)
    spooled = store.spooled() if hasattr(store, "spooled") else []
    table.add_row("packs waiting in the local spool", f"{len(spooled)}" + (f": {', '.join(spooled[:10])}" if spooled else ""))
    for status in ("pending_review", "confirmed", "rejected"):
        table.add_row(f"packs {status.replace('_', ' ')}", str(sum(r.status == status for r in rows)))
    table.add_row("signing", f"by command: {settings.signing_command}" if settings.signing_command else
                  f"key in {settings.keys_dir}" + ("" if settings.public_key() else " (created when the first pack is written)"))
    if settings.keys_inside_data_dir:
        table.add_row("[red]warning[/]", "the signing key is inside the data folder: whoever can edit packs can re-sign them")
    console.print(table)
    _print_cameras(settings.fleet_dir)
    return 0


def _print_cameras(fleet_dir: Path) -> None:
    """The camera service's cameras as its status folder last recorded them, or why there are none to show."""
    from datetime import datetime, timezone

    from rich.markup import escape

    from nonsite.ingest.health import BUREAU_ZONE, age_in_words
    from nonsite.review_ui.camera_status import cameras_report

    report = cameras_report(fleet_dir, datetime.now(timezone.utc))
    written = report.written_at.astimezone(BUREAU_ZONE).strftime("%Y-%m-%d %H:%M:%S") if report.written_at else ""
    if report.fleet == "none":
        console.print(f"cameras: no camera service is running here (no status in {fleet_dir}); start one with `nonsite fleet`",
                      highlight=False)
        return
    if report.fleet == "unreadable":
        console.print(f"[red]cameras: the camera service's status cannot be read[/] (last written {written}): "
                      f"{escape(report.problem or '')}", highlight=False)
        return
    if report.fleet == "stale":
        console.print(f"[yellow]cameras: the camera service has not reported since {written}: it was stopped, has died or hangs; "
                      "the cameras below are as it last saw them[/]", highlight=False)
    if report.nodes:
        _print_nodes(report.nodes)
    table = Table("camera", *(["node"] if report.nodes else []), "state", "last frame", "frames read / detected", "reconnects", "dropped",
                  "packs", title=f"cameras ({report.fleet}, reported {written} {BUREAU_ZONE.key})")
    for camera in report.cameras:
        state = escape(camera.state_text) + (" [red](misconfigured)[/]" if camera.misconfigured else "")
        colour = "green" if camera.up else "red" if camera.state == "failed" else "yellow"
        age = camera.last_frame_age_seconds
        table.add_row(escape(camera.camera), *([escape(camera.node or "-")] if report.nodes else []), f"[{colour}]{state}[/]",
                      "never" if age is None else f"{age_in_words(age)} ago", f"{camera.frames_read} / {camera.frames_detected}",
                      str(camera.reconnects), str(camera.dropped_frames), str(camera.packs_raised))
    console.print(table)


def _print_nodes(nodes) -> None:
    """The cluster's nodes: what each offers and runs, and what it holds back (queued violations, spooled packs)."""
    from rich.markup import escape

    table = Table("node", "address", "state", "CPUs / GPUs", "models", "cameras", "evidence queue", "spooled packs",
                  title="cluster nodes")
    for node in nodes:
        colour = {"ready": "green", "lost": "red"}.get(node.state, "yellow")
        table.add_row(escape(node.name), node.address, f"[{colour}]{node.state}[/]", f"{node.cpus:g} / {node.gpus:g}",
                      escape(", ".join(node.models)), f"{len(node.cameras)}: {escape(', '.join(node.cameras))}" if node.cameras else "0",
                      str(node.evidence_queue), str(node.spooled_packs))
    console.print(table)


def cmd_retention(args) -> int:
    from nonsite.review_ui.retention import run_retention

    settings = current_settings()
    ctx = review_context(settings)
    report = run_retention(ctx.engine, ctx.store, settings.rejected_image_days, settings.case_legal_days)
    for line in report:
        console.print(line, highlight=False)
    console.print(f"retention: {len(report)} packs purged")
    return 0


def cmd_serve(args) -> int:
    import uvicorn

    from nonsite.review_ui import create_app
    from nonsite.review_ui.rechecker import rechecker_for

    settings = current_settings()
    courier = settings.courier()  # delivers the outbox to the webhooks while the app serves (its lifespan)
    ctx = review_context(settings)
    app = create_app(ctx, courier)
    console.print(f"review UI on http://{args.host}:{args.port}/  (API schema at /api/openapi.json after log-in)"
                  + (f"; webhooks: {', '.join(r.id for r in courier.receivers)}" if courier.receivers else ""))
    rechecker = rechecker_for(ctx, settings.registry).start()  # looks at the camera again once a rectification deadline passes
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        rechecker.stop()
    return 0


def _new_password(name: str) -> str:
    """NONSITE_NEW_PASSWORD for scripts, else asked twice at the terminal; never a command-line argument."""
    import getpass
    import os

    from nonsite.review_ui.auth import check_password

    given = os.environ.get("NONSITE_NEW_PASSWORD")
    if given:
        return check_password(given)
    password = getpass.getpass(f"new password for {name}: ")
    check_password(password)
    if getpass.getpass("the same again: ") != password:
        raise ValueError("the two passwords differ")
    return password


def _cli_actor() -> str:
    """Who the audit log names for a server-side command: 'cli:' and the operating-system user."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"[:64]
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "cli"


def cmd_user(args) -> int:
    """``user add|list|disable|enable|passwd|role|logout``; every change is in the audit log."""
    from rich.markup import escape

    from nonsite.review_ui.auth import add_user, end_sessions, list_users, set_active, set_password, set_role

    ctx = review_context(current_settings())
    actor = _cli_actor()
    if args.action == "list":
        table = Table("user", "role", "status", "sessions", title="nonsite users")
        for u in list_users(ctx.engine):
            table.add_row(escape(u["username"]), u["role"], "active" if u["active"] else "disabled", str(u["sessions"]))
        console.print(table)
        return 0
    try:
        if args.action == "add":
            user = add_user(ctx.engine, args.name, _new_password(args.name), args.role, actor=actor)
            done = f"user {user.username} ({user.role}) created"
        elif args.action in ("disable", "enable"):
            ended = set_active(ctx.engine, args.name, args.action == "enable", actor)
            done = f"user {args.name} {args.action}d" + (f"; {ended} sessions ended" if args.action == "disable" else "")
        elif args.action == "passwd":
            ended = set_password(ctx.engine, args.name, _new_password(args.name), actor)
            done = f"password of {args.name} changed; {ended} sessions ended"
        elif args.action == "role":
            done = f"{args.name} is now {args.role}; {set_role(ctx.engine, args.name, args.role, actor)} sessions ended"
        else:
            done = f"{end_sessions(ctx.engine, args.name, actor)} sessions of {args.name} ended"
    except (ValueError, LookupError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except (EOFError, KeyboardInterrupt):
        console.print("[red]error:[/] no password given", highlight=False)
        return 2
    console.print(escape(done), highlight=False)
    return 0


def cmd_audit(args) -> int:
    """``verify`` prints every problem of the chain (exit 1 if any); ``checkpoint`` anchors its head now."""
    from rich.markup import escape

    from nonsite.evidence.audit import checkpoint, verify_chain

    settings = current_settings()
    engine = review_context(settings).engine
    if args.action == "checkpoint":
        checkpoints = settings.audit_checkpoints()
        written = checkpoint(engine, checkpoints)
        how = "signed" if written.signed else "[yellow]unsigned[/] (no signing key)"
        console.print(f"checkpoint of entry {written.seq}, {how}, in {escape(checkpoints.describe())}")
        return 0
    report = verify_chain(engine, settings.audit_checkpoints(signing=False))
    for warning in report.warnings:
        console.print(f"[yellow]note[/] {escape(warning)}")
    if report.ok:
        anchored = f", anchored by the checkpoint of entry {report.anchor.seq}" if report.anchor else ""
        console.print(f"[green]OK[/] audit chain intact: {report.entries} entries{anchored}")
        return 0
    console.print(f"[red]BROKEN[/] {len(report.problems)} problems in the audit chain of {report.entries} entries:")
    for problem in report.problems:
        console.print(f"  {escape(problem)}")
    return 1
