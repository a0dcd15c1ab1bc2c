"""Tables of the review application, beside the pipeline's ``packs`` table in the same database."""
from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Integer, MetaData, String, Table, Text
from sqlalchemy.engine import Engine

from rules.evidence.index import metadata as pipeline_metadata

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions", metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

login_attempts = Table(
    "login_attempts", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, index=True),
    Column("ip", String(64), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("ok", Boolean, nullable=False),
)

decisions = Table(
    "decisions", metadata,
    Column("pack_id", String(64), primary_key=True),  # one decision per pack: the second writer loses
    Column("decision", String(16), nullable=False),
    Column("reason", String(32)),
    Column("note", Text),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

cases = Table(
    "cases", metadata,
    Column("id", Integer, primary_key=True),
    Column("subject_key", String(256), nullable=False, index=True),
    Column("category", String(48), nullable=False),
    Column("source_id", String(128), nullable=False),
    Column("place", String(256), nullable=False),
    Column("state", String(24), nullable=False, index=True),
    Column("notice_kind", String(16)),
    Column("deadline", DateTime(timezone=True)),
    Column("outcome", String(16)),
    Column("assignee_id", Integer, ForeignKey("users.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

case_packs = Table(
    "case_packs", metadata,
    Column("pack_id", String(64), primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, index=True),
)

case_events = Table(
    "case_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("from_state", String(24)),
    Column("to_state", String(24), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("details", JSON, nullable=False, default=dict),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False, index=True),
    Column("action", String(48), nullable=False, index=True),
    Column("target", String(128), nullable=False, default="", index=True),
    Column("details", JSON, nullable=False, default=dict),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)


def create_tables(engine: Engine) -> None:
    pipeline_metadata.create_all(engine)
    metadata.create_all(engine)
