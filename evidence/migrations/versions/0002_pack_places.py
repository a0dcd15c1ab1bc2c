"""Packs record where their subjects stand on the ground, so maps and GeoJSON read the index.

Before, the drone batch wrote ground positions into each manifest and read them back from the
store to draw the map and write GeoJSON. ``places`` holds [[lon, lat], ...] (drone subjects, or
the camera's own position) and ``places_approximate`` says when the projection is approximate.
Packs indexed before this revision have no places until ``PackIndex.repair`` fills them in.

Revision ID: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packs") as batch:
        batch.add_column(sa.Column("places", sa.JSON, nullable=True))
        batch.add_column(sa.Column("places_approximate", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("packs") as batch:
        batch.drop_column("places_approximate")
        batch.drop_column("places")
