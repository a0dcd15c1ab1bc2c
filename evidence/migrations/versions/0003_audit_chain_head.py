"""The audit chain gets a head row that serialises appends, numbered entries, and a link that cannot fork.

Before, two appends running at once could both read the same last entry and chain onto it,
so ordinary concurrent use broke the chain. Now every append first updates the single
``audit_head`` row (which queues appends in the database itself), entries carry ``seq``
(1, 2, 3... in chain order, so a signed checkpoint can name the entry it vouches for), and
``prev_hash`` is unique, so a fork fails to commit instead of landing silently.

Existing entries are numbered in their id order, and the head row starts at the last of them.
A chain that forked under the old code cannot take the unique link: the upgrade stops and
names the forked entries rather than hide them.

Revision ID: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

GENESIS = "0" * 64

audit = sa.table("audit", sa.column("id", sa.Integer), sa.column("seq", sa.Integer),
                 sa.column("prev_hash", sa.String), sa.column("hash", sa.String))


def _refuse_a_forked_chain(conn) -> None:
    forks = conn.execute(
        sa.select(audit.c.prev_hash, sa.func.count()).group_by(audit.c.prev_hash).having(sa.func.count() > 1)
    ).all()
    if forks:
        raise RuntimeError(
            f"the audit chain forked {len(forks)} times before this release (e.g. {forks[0][1]} entries follow "
            f"{forks[0][0][:12]}); `nonsite audit verify` on the previous release lists them. Keep a copy of this "
            "database as the record and decide with the records officer how to continue before upgrading."
        )


def _number_entries(conn) -> tuple[int, str]:
    """Number the entries in id order (the order they were chained in); returns the last seq and hash."""
    rows = conn.execute(sa.select(audit.c.id, audit.c.hash).order_by(audit.c.id)).all()
    if rows:
        conn.execute(audit.update().where(audit.c.id == sa.bindparam("row_id")).values(seq=sa.bindparam("n")),
                     [{"row_id": row.id, "n": n} for n, row in enumerate(rows, start=1)])
    return len(rows), rows[-1].hash if rows else GENESIS


def upgrade() -> None:
    conn = op.get_bind()
    _refuse_a_forked_chain(conn)
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("seq", sa.Integer, nullable=True))
    seq, head = _number_entries(conn)
    with op.batch_alter_table("audit") as batch:
        batch.alter_column("seq", existing_type=sa.Integer, nullable=False)
        batch.create_unique_constraint("uq_audit_seq", ["seq"])
        batch.create_unique_constraint("uq_audit_prev_hash", ["prev_hash"])
    head_table = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head_table, [{"id": 1, "seq": seq, "hash": head}])


def downgrade() -> None:
    op.drop_table("audit_head")
    with op.batch_alter_table("audit") as batch:
        batch.drop_constraint("uq_audit_prev_hash", type_="unique")
        batch.drop_constraint("uq_audit_seq", type_="unique")
        batch.drop_column("seq")
