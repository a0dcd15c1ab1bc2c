"""Every table of a nonsite database, in one place; Alembic migrations (``migrations/``) create and change them.

The pipeline's pack index, the drone batch's progress, and the review desk's users, decisions,
cases and audit chain share one database and so one migration history. They live in the
evidence stage because it is the first stage that writes to the database: the review UI reads
and extends the same tables downstream, and nothing upstream needs them.
"""
from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

packs_table = Table(
    "packs",
    metadata,
    Column("pack_id", String(64), primary_key=True),
    Column("category", String(48), nullable=False, index=True),
    Column("source_id", String(128), nullable=False, index=True),
    Column("rule_id", String(128), nullable=False),
    Column("zone_id", String(128), nullable=False),
    Column("shop_name", String(256)),
    Column("subject_key", String(256), nullable=False, index=True),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("threshold_at", DateTime(timezone=True), nullable=False, index=True),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("dwell_s", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("status", String(32), nullable=False, default="pending_review", index=True),
    Column("indexed_at", DateTime(timezone=True), nullable=False),
    Column("purged", String(16)),  # None, 'images' (rejected, after N days) or 'all' (case expired)
    Column("places", JSON),  # [[lon, lat], ...]: drone subjects on the ground, or the camera's position
    Column("places_approximate", Boolean),  # an oblique drone shot's projection is approximate
)

flight_images = Table(
    "flight_images", metadata,  # a drone flight's images already processed: a rerun resumes after them
    Column("flight_id", String(128), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("name", String(512), nullable=False),
    Column("packs", Integer, nullable=False),
    Column("done_at", DateTime(timezone=True), nullable=False),
)

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
    Column("expires_at", DateTime(timezone=True), nullable=False),  # 12 hours after log-in, however busy
    Column("last_seen_at", DateTime(timezone=True), nullable=False),  # the idle timeout counts from here (0004)
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
    Column("seq", Integer, nullable=False),  # 1, 2, 3...: a checkpoint names the entry it vouches for
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False, index=True),
    Column("action", String(48), nullable=False, index=True),
    Column("target", String(128), nullable=False, default="", index=True),
    Column("details", JSON, nullable=False, default=dict),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("seq", name="uq_audit_seq"),
    UniqueConstraint("prev_hash", name="uq_audit_prev_hash"),  # two entries after the same one: a fork fails to commit
)

audit_head = Table(
    "audit_head", metadata,  # one row: every append updates it first, which makes concurrent appends queue
    Column("id", Integer, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)
