"""The outbox: events the city platform (智慧城管 / its case system) is told about.

An event is written in the same transaction as the act it reports (a pack stored, a decision, a
case step, a document issued), so an act that committed always has its event and one that rolled
back never does. Delivery to webhooks happens later, from the table (``nonsite.evidence.courier``):
nothing is lost across restarts, and a receiver that is down only delays its own deliveries.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from .schema import outbox_events

EVENT_KINDS = ("pack.stored", "pack.decided", "pack.undone", "case.step", "document.issued")


def emit(conn: Connection, kind: str, subject: str, payload: dict) -> int:
    """Queue one event inside the caller's transaction; returns its id (the receivers' idempotency key)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown outbox event kind {kind!r}; known: {', '.join(EVENT_KINDS)}")
    return conn.execute(insert(outbox_events).values(kind=kind, subject=subject, payload=payload,
                                                     at=datetime.now(timezone.utc))).inserted_primary_key[0]
