"""Every table of a nonsite database, in one place; Alembic migrations (``migrations/``) create and change them.

The pipeline's pack index, the drone batch's progress, and the review desk's users, decisions,
cases and audit chain share one database and so one migration history. They live in the
evidence stage because it is the first stage that writes to the database: the review UI reads
and extends the same tables downstream, and nothing upstream needs them.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class UtcDateTime(TypeDecorator):
    """An instant, stored as UTC and read back as an aware UTC datetime, whatever the database keeps.

    SQLite keeps a datetime as its wall-clock text and drops the offset, so before this a pack's
    camera-local capture time and a decision's UTC time sat side by side as naive values eight
    hours apart. Values are converted to UTC on the way in (a naive value is taken as UTC) and
    given their zone on the way out, so pages can show every time in the bureau's zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

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
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("threshold_at", UtcDateTime(), nullable=False, index=True),
    Column("last_seen", UtcDateTime(), nullable=False),
    Column("dwell_s", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("status", String(32), nullable=False, default="pending_review", index=True),
    Column("indexed_at", UtcDateTime(), nullable=False),
    Column("purged", String(16)),  # None, 'images' (rejected, after N days) or 'all' (case expired)
    Column("places", JSON),  # [[lon, lat], ...]: drone subjects on the ground, or the camera's position
    Column("places_approximate", Boolean),  # an oblique drone shot's projection is approximate
    Column("plate", String(32), index=True),  # the read number plate, if any (0005)
    Column("shop_licence", String(64), index=True),  # the shop's licence number, if the zone names one (0005)
    Column("model", String(256)),  # the detector that saw it; None: indexed before 0005, PackIndex.repair fills it
)

flight_images = Table(
    "flight_images", metadata,  # a drone flight's images already processed: a rerun resumes after them
    Column("flight_id", String(128), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("name", String(512), nullable=False),
    Column("packs", Integer, nullable=False),
    Column("done_at", UtcDateTime(), nullable=False),
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("display_name", String(64)),  # shown on pages and papers, e.g. 王警官 (0005)
    Column("locale", String(8)),  # the officer's chosen language (zh_CN, en); None: the browser's (0005)
    Column("team", String(64)),  # the team or grid (网格) the officer works in: their "my cases" include its cases (0006)
)

shops = Table(
    "shops", metadata,  # 一店一册: one record per shop, keyed by its business licence number (0005)
    Column("licence", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("address", String(512), nullable=False, default=""),
    Column("contact", String(256), nullable=False, default=""),
    Column("street", String(128), nullable=False, default="", index=True),  # 街道
    Column("grid", String(64), nullable=False, default="", index=True),  # 网格
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

sessions = Table(
    "sessions", metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),  # 12 hours after log-in, however busy
    Column("last_seen_at", UtcDateTime(), nullable=False),  # the idle timeout counts from here (0004)
)

login_attempts = Table(
    "login_attempts", metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, index=True),
    Column("ip", String(64), nullable=False, index=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("ok", Boolean, nullable=False),
)

decisions = Table(
    "decisions", metadata,
    Column("pack_id", String(64), primary_key=True),  # one decision per pack: the second writer loses
    Column("decision", String(16), nullable=False),
    Column("reason", String(32)),
    Column("note", Text),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)

corrections = Table(
    "corrections", metadata,  # an officer's fix of a subject's box or class: what training uses instead of the detection
    Column("pack_id", String(64), primary_key=True),
    Column("subject", Integer, primary_key=True),  # index of the subject in the threshold key frame
    Column("x1", Float, nullable=False),
    Column("y1", Float, nullable=False),
    Column("x2", Float, nullable=False),
    Column("y2", Float, nullable=False),
    Column("class_name", String(64), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
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
    Column("deadline", UtcDateTime()),
    Column("outcome", String(16)),
    Column("assignee_id", Integer, ForeignKey("users.id")),
    Column("team", String(64), index=True),  # the team or grid (网格) the case is dispatched to (0006)
    Column("due_at", UtcDateTime(), index=True),  # when the current step must be done, from the procedure (0006)
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

case_approvals = Table(
    "case_approvals", metadata,  # a step that needs a supervisor's 审批: asked for, then approved or sent back (0006)
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, index=True),
    Column("step", JSON, nullable=False),  # the transition asked for, as the form sent it
    Column("requested_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("decided_by", Integer, ForeignKey("users.id")),
    Column("decided_at", UtcDateTime()),
    Column("approved", Boolean),  # None while pending
    Column("opinion", Text, nullable=False, default=""),
)

document_numbers = Table(
    "document_numbers", metadata,  # 文书编号: the last number issued per kind and year; bumped under a row lock (0006)
    Column("kind", String(32), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("last", Integer, nullable=False),
)

case_documents = Table(
    "case_documents", metadata,  # numbered papers of a case, as the PDF that was issued (0006)
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("year", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("number", String(64), nullable=False, unique=True),
    Column("sha256", String(64), nullable=False),
    Column("pdf", LargeBinary, nullable=False),
    Column("issued_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("delivery_method", String(32)),  # 送达: how, when and to whom it was served
    Column("delivered_at", UtcDateTime()),
    Column("recipient", String(128)),
    Column("delivered_by", Integer, ForeignKey("users.id")),
    UniqueConstraint("kind", "year", "seq", name="uq_document_kind_year_seq"),
)

case_rechecks = Table(
    "case_rechecks", metadata,  # 核查 material: an automatic look at the camera, or an officer's field photo (0006)
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, index=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("origin", String(16), nullable=False),  # 'camera', 'flight' or 'field'
    Column("result", String(16)),  # proposed: 'cleared' or 'still_present'; None for a field photo
    Column("detections", JSON, nullable=False, default=list),
    Column("image", LargeBinary, nullable=False),  # the after picture (JPEG), hashed below and in the audit log
    Column("sha256", String(64), nullable=False),
    Column("added_by", Integer, ForeignKey("users.id")),  # None: nonsite itself
    Column("confirmed_by", Integer, ForeignKey("users.id")),
    Column("confirmed_at", UtcDateTime()),
)

outbox_events = Table(
    "outbox_events", metadata,  # what the city platform is told, written in the same transaction as the act (0006)
    Column("id", Integer, primary_key=True),
    Column("kind", String(48), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)

outbox_deliveries = Table(
    "outbox_deliveries", metadata,  # one row per receiver and event: delivered once, retried until then (0006)
    Column("receiver", String(64), primary_key=True),
    Column("event_id", Integer, ForeignKey("outbox_events.id"), primary_key=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", UtcDateTime(), nullable=False, index=True),
    Column("delivered_at", UtcDateTime(), index=True),
    Column("last_error", Text),
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
    Column("at", UtcDateTime(), nullable=False),
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
    Column("at", UtcDateTime(), nullable=False),
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
