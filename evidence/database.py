"""Open a nonsite database and bring its schema up to date through the Alembic migrations.

A database made by the first release (tables created directly, no ``alembic_version``) goes
through the same migrations: the first one creates only the tables that are missing, so its
rows are kept. SQLite and PostgreSQL go through the same migrations.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Apply every migration the database has not had yet (a no-op when it is current)."""
    with engine.begin() as connection:
        command.upgrade(_config(connection), "head")


def open_database(url: str) -> Engine:
    """An engine on ``url`` whose schema is current."""
    engine = create_engine(url, future=True, connect_args={"timeout": 30} if url.startswith("sqlite") else {})  # audit appends queue for the write lock
    upgrade(engine)
    return engine


def head_revision() -> str:
    """The newest migration this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def schema_revision(engine: Engine) -> str | None:
    """The migration a database is at (None for an empty one)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
