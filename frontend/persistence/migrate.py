"""Schema migrations with Alembic, configured here in code (no alembic.ini).

    python -m frontend.persistence.migrate upgrade [REVISION]   (default: head)
    python -m frontend.persistence.migrate downgrade REVISION   (e.g. base)
    python -m frontend.persistence.migrate current
    python -m frontend.persistence.migrate revision -m "add images" [--autogenerate]
        (writes migrations/versions/0002_add_images.py, numbered after head;
        --autogenerate compares tables.py with the database's schema)

The database is FACE_API_DATABASE_URL (frontend.settings). The functions are
synchronous so the launcher can call `upgrade` before gunicorn forks its
workers. Upgrading an up-to-date database does nothing.

Concurrent upgrades (two launchers, or a launcher and ``manage``) are
serialised, so they cannot interleave DDL:

* PostgreSQL: the migration runs in one transaction that first takes a
  transaction-scoped advisory lock (`MIGRATION_LOCK_ID`); the second process
  waits, then finds the schema at head and does nothing.
* SQLite: the migration runs in one ``BEGIN IMMEDIATE`` transaction (the
  file's write lock, taken before Alembic reads its version table); the
  second process waits up to `SQLITE_LOCK_WAIT_S` on the busy timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from frontend.persistence.database import backend_of, ensure_sqlite_folder, sqlalchemy_url, use_wal

log = logging.getLogger("face_api.migrate")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key of schema migrations (any constant bigint unique to this use).
MIGRATION_LOCK_ID = 0x66616365_6D696772  # "facemigr"
SQLITE_LOCK_WAIT_S = 60.0

T = TypeVar("T")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")  # 0002_add_images.py
    return config


def head() -> str:
    """The newest revision this code knows."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None, "no migrations found"
    return revision


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision`; a no-op when it is there already."""

    def run(connection: Connection) -> None:
        before = _revision_of(connection)
        command.upgrade(_config_for(connection), revision)
        after = _revision_of(connection)
        if before != after:
            log.info("database schema upgraded: %s -> %s", before or "empty", after)

    run_with_connection(url, run)


def downgrade(url: str, revision: str) -> None:
    """Take the schema back to `revision` ("base" removes every table)."""

    def run(connection: Connection) -> None:
        before = _revision_of(connection)
        command.downgrade(_config_for(connection), revision)
        after = _revision_of(connection)
        if before != after:
            log.info("database schema downgraded: %s -> %s", before, after or "base")

    run_with_connection(url, run)


def current(url: str) -> str | None:
    """The revision the database is at; None for an empty (never migrated) database."""
    return run_with_connection(url, _revision_of, lock=False)


def revision(message: str, url: str | None = None) -> Path:
    """Write a new, numbered migration file; with `url`, autogenerate it against that database."""
    rev_id = f"{int(head()) + 1:04d}"
    if url is None:
        script = command.revision(alembic_config(), message=message, rev_id=rev_id)
    else:
        script = run_with_connection(url, lambda connection: command.revision(
            _config_for(connection), message=message, rev_id=rev_id, autogenerate=True))
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


def run_with_connection(url: str, action: Callable[[Connection], T], *, lock: bool = True) -> T:
    """Call ``action(connection)`` inside one transaction on the database behind `url`.

    With `lock`, the transaction first takes the migration lock (see the module
    docstring). It commits when `action` returns and rolls back if it raises.
    """
    if backend_of(url) == "sqlite":
        return _run_sqlite(url, action, lock)
    return _blocking(lambda: _run_postgres(url, action, lock))


def _run_sqlite(url: str, action: Callable[[Connection], T], lock: bool) -> T:
    ensure_sqlite_folder(url)
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=NullPool,
                              connect_args={"timeout": SQLITE_LOCK_WAIT_S})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions
        # begin (sqlite3 would run DDL outside any transaction).
        dbapi_connection.isolation_level = None
        if lock:
            # Write-ahead logging: readers in the frontend workers never
            # block the writer and vice versa.
            use_wal(dbapi_connection, SQLITE_LOCK_WAIT_S)

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if lock else "BEGIN")

    try:
        with engine.connect() as connection, connection.begin():
            return action(connection)
    finally:
        engine.dispose()


async def _run_postgres(url: str, action: Callable[[Connection], T], lock: bool) -> T:
    engine = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as connection, connection.begin():
            if lock:
                await connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                                         {"key": MIGRATION_LOCK_ID})
            return await connection.run_sync(action)
    finally:
        await engine.dispose()


def _blocking(factory: Callable[[], Any]) -> Any:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(1, thread_name_prefix="migrate") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _config_for(connection: Connection) -> Config:
    config = alembic_config()
    config.attributes["connection"] = connection  # env.py runs on this connection
    return config


def _revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frontend.persistence.migrate",
                                     description="Migrate the schema of FACE_API_DATABASE_URL.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upgrade", help="upgrade the schema (default: to head)")
    up.add_argument("revision", nargs="?", default="head")
    down = commands.add_parser("downgrade", help="downgrade the schema ('base' drops every table)")
    down.add_argument("revision")
    commands.add_parser("current", help="print the schema's revision")
    new = commands.add_parser("revision", help="write a new migration file (numbered after head)")
    new.add_argument("-m", "--message", required=True)
    new.add_argument("--autogenerate", action="store_true",
                     help="fill it in from tables.py vs. the schema of FACE_API_DATABASE_URL (at head)")
    args = parser.parse_args(argv)
    if args.command == "revision":
        from frontend.settings import Settings

        url = Settings().database_url if args.autogenerate else None
        print(f"[migrate] wrote {revision(args.message, url)}")
        return 0
    return run_cli(args.command, getattr(args, "revision", None))


def run_cli(command_name: str, revision: str | None = None, url: str | None = None) -> int:
    """The `migrate` command line (shared with ``python -m frontend.manage migrate``)."""
    from frontend.settings import Settings

    logging.basicConfig(level=logging.INFO, format="[migrate] %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # our own line says what changed
    url = url or Settings().database_url
    try:
        if command_name == "upgrade":
            upgrade(url, revision or "head")
        elif command_name == "downgrade":
            downgrade(url, revision or "")
        now = current(url)
    except Exception as error:
        print(f"[migrate] error: {error}", file=sys.stderr)
        return 1
    print(f"[migrate] schema revision: {now or 'none (empty database)'} (head: {head()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
