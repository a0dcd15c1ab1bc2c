"""A real PostgreSQL server for the tests: Debian's postgresql binaries, a cluster in a temporary
folder, listening on loopback only, stopped at the end. Run as the ``postgres`` account when the
tests run as root (initdb refuses root)."""
from __future__ import annotations

import getpass
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import Integer, create_engine, select, text
from sqlalchemy.engine import Engine

from nonsite.evidence.schema import metadata

from .streams import free_port


def _binaries() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (make test installs Debian's postgresql)")
    return found[-1].parent


class PostgresServer:
    def __init__(self, folder: Path):
        self.folder, self.port, self.bin = folder, free_port(), _binaries()
        self.as_root = getpass.getuser() == "root"
        if self.as_root:
            account = pwd.getpwnam("postgres")
            os.chown(folder, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(folder / "data"), "-U", "nonsite", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        self._run("pg_ctl", "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "-t", "60", "start",
                  "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {folder} -c fsync=off -c synchronous_commit=off "
                        "-c full_page_writes=off -c max_connections=60")
        self.count = 0

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.as_root:
            command = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120, cwd=self.folder)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://nonsite@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        self.count += 1
        name = f"nonsite_{self.count}"
        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")


def copy_rows(source: Engine, target: Engine) -> Engine:
    """Every row of ``source`` into ``target`` (both at the current schema), identity counters moved past them."""
    with source.connect() as read, target.begin() as write:
        for table in reversed(metadata.sorted_tables):  # what the migrations wrote (the audit chain's genesis head) goes
            write.execute(table.delete())
        for table in metadata.sorted_tables:
            rows = [dict(r) for r in read.execute(select(table)).mappings()]
            if rows:
                write.execute(table.insert(), rows)
            keys = [c for c in table.primary_key.columns if isinstance(c.type, Integer)]
            if len(keys) == 1 and rows:
                write.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', '{keys[0].name}'), "
                                   f"(SELECT max({keys[0].name}) FROM {table.name}))"))
    return target
