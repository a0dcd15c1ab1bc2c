"""Cases the way the bureaus run them: approvals, deadlines, numbered documents, rechecks, hand-off.

- ``users.team`` and ``cases.team`` (the team or grid a case is dispatched to) and ``cases.due_at`` (when its current
  step is due, from the procedure configuration).
- ``case_approvals``: steps that need a supervisor's approval, with the opinion.
- ``document_numbers`` and ``case_documents``: 文书编号 per kind and year, and the issued PDFs with
  their delivery (送达) record.
- ``case_rechecks``: automatic rechecks of the camera and officers' field photos.
- ``outbox_events`` and ``outbox_deliveries``: events for the city platform's webhooks.

Revision ID: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("team", sa.String(64), nullable=True))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("team", sa.String(64), nullable=True))
        batch.add_column(sa.Column("due_at", WHEN, nullable=True))
        batch.create_index("ix_cases_team", ["team"])
        batch.create_index("ix_cases_due_at", ["due_at"])
    op.create_table(
        "case_approvals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False, index=True),
        sa.Column("step", sa.JSON, nullable=False),
        sa.Column("requested_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("requested_at", WHEN, nullable=False),
        sa.Column("decided_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("decided_at", WHEN, nullable=True),
        sa.Column("approved", sa.Boolean, nullable=True),
        sa.Column("opinion", sa.Text, nullable=False),
    )
    op.create_table(
        "document_numbers",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "case_documents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("number", sa.String(64), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("pdf", sa.LargeBinary, nullable=False),
        sa.Column("issued_by", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("issued_at", WHEN, nullable=False),
        sa.Column("delivery_method", sa.String(32), nullable=True),
        sa.Column("delivered_at", WHEN, nullable=True),
        sa.Column("recipient", sa.String(128), nullable=True),
        sa.Column("delivered_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.UniqueConstraint("kind", "year", "seq", name="uq_document_kind_year_seq"),
    )
    op.create_table(
        "case_rechecks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False, index=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("result", sa.String(16), nullable=True),
        sa.Column("detections", sa.JSON, nullable=False),
        sa.Column("image", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("added_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("confirmed_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("confirmed_at", WHEN, nullable=True),
    )
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("at", WHEN, nullable=False),
    )
    op.create_table(
        "outbox_deliveries",
        sa.Column("receiver", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.Integer, sa.ForeignKey("outbox_events.id"), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_at", WHEN, nullable=False, index=True),
        sa.Column("delivered_at", WHEN, nullable=True, index=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )


def downgrade() -> None:
    for table in ("outbox_deliveries", "outbox_events", "case_rechecks", "case_documents", "document_numbers", "case_approvals"):
        op.drop_table(table)
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_due_at")
        batch.drop_index("ix_cases_team")
        batch.drop_column("due_at")
        batch.drop_column("team")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("team")
