"""Sessions remember when they were last used, so an idle session ends before its 12 hours are up.

Before, a session lasted 12 hours from log-in however long it lay unused: a terminal left logged
in at the desk stayed open all shift. ``last_seen_at`` is when the session last answered a
request; the review UI ends a session idle for longer than its idle timeout. Sessions that exist
at the upgrade count as seen at the upgrade, so nobody is logged out by it.

Revision ID: 0004
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

sessions = sa.table("sessions", sa.column("last_seen_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.get_bind().execute(sessions.update().values(last_seen_at=datetime.now(timezone.utc)))
    with op.batch_alter_table("sessions") as batch:
        batch.alter_column("last_seen_at", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("last_seen_at")
