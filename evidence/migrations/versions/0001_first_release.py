"""The tables of the first release (0.1), created where they are missing.

Databases of that release were made without migrations and, depending on which commands ran,
hold only some of these tables (``nonsite run`` alone made only ``packs``); each table is
created here only if absent, so such a database continues with its rows kept.

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _tables() -> dict[str, tuple[list[sa.Column], list[str]]]:
    """Each table's columns and the columns with an index, as 0.1 declared them."""
    return {
        "packs": ([
            sa.Column("pack_id", sa.String(64), primary_key=True),
            sa.Column("category", sa.String(48), nullable=False),
            sa.Column("source_id", sa.String(128), nullable=False),
            sa.Column("rule_id", sa.String(128), nullable=False),
            sa.Column("zone_id", sa.String(128), nullable=False),
            sa.Column("shop_name", sa.String(256)),
            sa.Column("subject_key", sa.String(256), nullable=False),
            sa.Column("first_seen", TZ, nullable=False),
            sa.Column("threshold_at", TZ, nullable=False),
            sa.Column("last_seen", TZ, nullable=False),
            sa.Column("dwell_s", sa.Float, nullable=False),
            sa.Column("confidence", sa.Float, nullable=False),
            sa.Column("manifest_sha256", sa.String(64), nullable=False),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("indexed_at", TZ, nullable=False),
            sa.Column("purged", sa.String(16)),
        ], ["category", "source_id", "subject_key", "threshold_at", "status"]),
        "flight_images": ([
            sa.Column("flight_id", sa.String(128), primary_key=True),
            sa.Column("sha256", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(512), nullable=False),
            sa.Column("packs", sa.Integer, nullable=False),
            sa.Column("done_at", TZ, nullable=False),
        ], []),
        "users": ([
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("username", sa.String(64), nullable=False, unique=True),
            sa.Column("password_hash", sa.String(256), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("active", sa.Boolean, nullable=False),
            sa.Column("created_at", TZ, nullable=False),
        ], []),
        "sessions": ([
            sa.Column("token_sha256", sa.String(64), primary_key=True),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
            sa.Column("csrf", sa.String(64), nullable=False),
            sa.Column("expires_at", TZ, nullable=False),
        ], []),
        "login_attempts": ([
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("ip", sa.String(64), nullable=False),
            sa.Column("at", TZ, nullable=False),
            sa.Column("ok", sa.Boolean, nullable=False),
        ], ["username", "ip"]),
        "decisions": ([
            sa.Column("pack_id", sa.String(64), primary_key=True),
            sa.Column("decision", sa.String(16), nullable=False),
            sa.Column("reason", sa.String(32)),
            sa.Column("note", sa.Text),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
            sa.Column("at", TZ, nullable=False),
        ], []),
        "cases": ([
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("subject_key", sa.String(256), nullable=False),
            sa.Column("category", sa.String(48), nullable=False),
            sa.Column("source_id", sa.String(128), nullable=False),
            sa.Column("place", sa.String(256), nullable=False),
            sa.Column("state", sa.String(24), nullable=False),
            sa.Column("notice_kind", sa.String(16)),
            sa.Column("deadline", TZ),
            sa.Column("outcome", sa.String(16)),
            sa.Column("assignee_id", sa.Integer, sa.ForeignKey("users.id")),
            sa.Column("created_at", TZ, nullable=False),
            sa.Column("updated_at", TZ, nullable=False),
        ], ["subject_key", "state"]),
        "case_packs": ([
            sa.Column("pack_id", sa.String(64), primary_key=True),
            sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        ], ["case_id"]),
        "case_events": ([
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
            sa.Column("at", TZ, nullable=False),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
            sa.Column("from_state", sa.String(24)),
            sa.Column("to_state", sa.String(24), nullable=False),
            sa.Column("note", sa.Text, nullable=False),
            sa.Column("details", sa.JSON, nullable=False),
        ], ["case_id"]),
        "audit": ([
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("at", TZ, nullable=False),
            sa.Column("actor", sa.String(64), nullable=False),
            sa.Column("action", sa.String(48), nullable=False),
            sa.Column("target", sa.String(128), nullable=False),
            sa.Column("details", sa.JSON, nullable=False),
            sa.Column("prev_hash", sa.String(64), nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
        ], ["actor", "action", "target"]),
    }


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, (columns, indexed) in _tables().items():
        if name in existing:
            continue
        op.create_table(name, *columns)
        for column in indexed:
            op.create_index(f"ix_{name}_{column}", name, [column])


def downgrade() -> None:
    for name in reversed(list(_tables())):
        op.drop_table(name)
