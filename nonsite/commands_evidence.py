"""Commands about stored evidence and the review side: verify, keys, status, retention, serve, user, audit."""
from __future__ import annotations

from pathlib import Path

from rich.table import Table

from .context import console, current_settings, review_context


def cmd_verify(args) -> int:
    from rules.evidence import LocalStore, verify_pack
    from rules.evidence.signing import load_public_key

    from .dossier_files import opened_dossier

    settings = current_settings()
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

    settings = current_settings()
    try:
        public = create_keys(settings.keys_path)
    except FileExistsError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2
    ca = create_certificates(settings.keys_path)
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
    table.add_row("signing key", "present" if settings.signer else "none (run nonsite keys init)")
    console.print(table)
    return 0


def cmd_retention(args) -> int:
    from review_ui.retention import run_retention

    settings = current_settings()
    ctx = review_context(settings)
    report = run_retention(ctx.engine, ctx.store, settings.rejected_image_days, settings.case_legal_days)
    for line in report:
        console.print(line, highlight=False)
    console.print(f"retention: {len(report)} packs purged")
    return 0


def cmd_serve(args) -> int:
    import uvicorn

    from review_ui import create_app

    app = create_app(review_context(current_settings()))
    console.print(f"review UI on http://{args.host}:{args.port}/  (API docs at /docs)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_user(args) -> int:
    import getpass
    import os

    from review_ui import add_user

    ctx = review_context(current_settings())
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

    report = verify_chain(review_context(current_settings()).engine)
    if report.ok:
        console.print(f"[green]OK[/] audit chain intact: {report.entries} entries")
        return 0
    console.print(f"[red]BROKEN[/] {report.problem}")
    return 1
