"""``nonsite outbox``: how far each webhook receiver of the city platform is; ``--deliver`` delivers what is due now."""
from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .context import console, current_settings

MOST_PASSES = 1000  # --deliver stops here even if a receiver keeps acknowledging (100 events a pass: 100 000 events)


def cmd_outbox(args) -> int:
    """The receivers' status; with ``--deliver``, passes first until none delivers anything (exit 1 if any event still waits)."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from nonsite.evidence.courier import status
    from nonsite.ingest.health import age_in_words

    settings = current_settings()
    courier = settings.courier()
    if args.deliver:
        for _ in range(MOST_PASSES):
            done = courier.run_once()
            if not done.delivered:
                break
    found = status(courier.engine, courier.receivers)
    if not found:
        console.print("no webhook receivers: list them in a file and set NONSITE_WEBHOOKS_FILE to it")
        return 0
    zone = ZoneInfo(settings.display_timezone)

    def shown(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if at else "-"

    table = Table("receiver", "delivered", "pending", "not queued", "oldest pending", "head event", "tries", "next try", "last error",
                  title=f"webhook outbox ({zone.key}), {datetime.now(timezone.utc).astimezone(zone):%Y-%m-%d %H:%M:%S}")
    table.columns[0].overflow = "fold"  # the whole address: it says where events go
    for row in found:
        name = escape(row.receiver) + (f"\n{escape(row.url)}" if row.url else "\n[yellow](not configured any more)[/]")
        table.add_row(name, str(row.delivered), f"[{'red' if row.last_error else 'yellow'}]{row.pending}[/]" if row.pending else "0",
                      str(row.not_queued), f"{age_in_words(row.oldest_pending_age_s)} ago" if row.head_event_id else "-",
                      str(row.head_event_id or "-"), str(row.head_attempts), shown(row.head_next_at), escape(row.last_error or ""))
    console.print(table)
    return 1 if args.deliver and any(row.pending or row.not_queued for row in found) else 0
