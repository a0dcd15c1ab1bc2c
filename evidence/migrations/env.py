"""Alembic runs migrations on the connection ``evidence.database`` hands it; there is no alembic.ini."""
from alembic import context

from nonsite.evidence.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
