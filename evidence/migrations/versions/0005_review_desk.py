"""The review desk in the officers' language and law: shops, searchable packs, officers' names.

- ``shops``: 一店一册, one record per shop keyed by its business licence number, with the street
  (街道) and grid (网格) that statistics and filters group by.
- ``packs.plate``, ``packs.shop_licence``, ``packs.model``: what the queue searches and filters
  by, copied from the manifest when a pack is indexed.
- ``users.display_name`` (王警官 on pages and papers) and ``users.locale`` (the officer's language).

Packs indexed before this revision get plate, licence and model, and their times rewritten in UTC
(SQLite had kept them as camera wall-clock text), from their manifests by ``PackIndex.repair``;
``model IS NULL`` marks a row it has not reached yet.

Revision ID: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shops",
        sa.Column("licence", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("address", sa.String(512), nullable=False, server_default=""),
        sa.Column("contact", sa.String(256), nullable=False, server_default=""),
        sa.Column("street", sa.String(128), nullable=False, server_default="", index=True),
        sa.Column("grid", sa.String(64), nullable=False, server_default="", index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("packs") as batch:
        batch.add_column(sa.Column("plate", sa.String(32), nullable=True))
        batch.add_column(sa.Column("shop_licence", sa.String(64), nullable=True))
        batch.add_column(sa.Column("model", sa.String(256), nullable=True))
        batch.create_index("ix_packs_plate", ["plate"])
        batch.create_index("ix_packs_shop_licence", ["shop_licence"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("display_name", sa.String(64), nullable=True))
        batch.add_column(sa.Column("locale", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("locale")
        batch.drop_column("display_name")
    with op.batch_alter_table("packs") as batch:
        batch.drop_index("ix_packs_shop_licence")
        batch.drop_index("ix_packs_plate")
        batch.drop_column("model")
        batch.drop_column("shop_licence")
        batch.drop_column("plate")
    op.drop_table("shops")
