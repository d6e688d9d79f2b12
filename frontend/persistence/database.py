"""Create the async database handle and answer "is it reachable?".

Two backends, one API (`databases` over SQLAlchemy Core):

* ``sqlite:///relative/path.sqlite3`` (relative to the current directory) or
  ``sqlite:////absolute/path.sqlite3``: the embedded default; the file's folder
  is created on demand;
* ``postgresql://user:password@host:port/database``: asyncpg.

Alembic needs a SQLAlchemy URL for the same database: `sqlalchemy_url` maps
SQLite onto the standard library driver and PostgreSQL onto asyncpg (used
through an async engine, so no second PostgreSQL driver is needed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import time
from pathlib import Path

import aiosqlite
import databases
from databases.backends.common.records import Record, Row, create_column_maps
from databases.backends.sqlite import CompilationContext, SQLiteBackend, SQLiteConnection, SQLitePool
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.cursor import CursorResultMetaData
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.ddl import DDLElement
from sqlalchemy.sql.dml import ValuesBase

from frontend.observability import metrics

log = logging.getLogger("face_api.database")

SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"}
POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg"}

# How long a SQLite connection waits for another process's write lock before
# "database is locked" (the workers share one file).
SQLITE_BUSY_TIMEOUT_S = 15.0
# asyncpg pool per worker process; URL options ?min_size=&max_size= win.
POSTGRES_POOL = {"min_size": 1, "max_size": 10}
POSTGRES_CONNECT_TIMEOUT_S = 10.0
POSTGRES_COMMAND_TIMEOUT_S = 30.0


def backend_of(url: str) -> str:
    """'sqlite' or 'postgresql'; ValueError for any other kind of URL."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in SQLITE_SCHEMES:
        return "sqlite"
    if scheme in POSTGRES_SCHEMES:
        return "postgresql"
    raise ValueError(
        f"unsupported database URL {_redacted(url)!r}: use sqlite:///path/to/file.sqlite3 "
        "or postgresql://user:password@host:port/database"
    )


def sqlite_path(url: str) -> Path:
    """The file behind a sqlite URL (relative paths stay relative to the current directory)."""
    path = databases.DatabaseURL(url).database
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        raise ValueError(
            "an in-memory SQLite database cannot be shared between connections and worker "
            "processes: point FACE_API_DATABASE_URL at a file, e.g. sqlite:///.run/face-api.sqlite3"
        )
    return Path(path)


def make_private_folder(folder: Path) -> None:
    """Create `folder` and its missing parents as 0700 (what exists already is left as it is)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)


def make_private_file(path: Path) -> None:
    """Create `path` empty as 0600, or take group and other access away from it.

    SQLite creates a database's -wal and -shm files with the database file's own
    mode, so a private database file keeps them private too, whatever the umask.
    """
    make_private_folder(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = each.stat().st_mode
            if mode & 0o077:
                each.chmod(mode & 0o700)
        except FileNotFoundError:
            pass


def use_wal(connection: sqlite3.Connection, wait_s: float) -> None:
    """Put a SQLite file in write-ahead-log mode (persistent, per file).

    Switching a new file to WAL fails at once with "database is locked" while
    another process does the same: SQLite's busy timeout does not cover it, and
    gunicorn workers or launchers starting together do exactly that. So wait
    our turn, up to `wait_s`.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.02)


def ensure_sqlite_folder(url: str) -> None:
    """The SQLite file's folder (0700) and the file itself (0600): it holds key and session hashes."""
    if backend_of(url) == "sqlite":
        make_private_file(sqlite_path(url))


def create_database(url: str) -> databases.Database:
    """An unconnected `databases.Database` for `url` (call ``await db.connect()``)."""
    backend = backend_of(url)
    if backend == "sqlite":
        ensure_sqlite_folder(url)
        # `timeout` is sqlite3's busy timeout.
        database = ObservedDatabase(url, timeout=SQLITE_BUSY_TIMEOUT_S)
        # A databases upgrade that reshapes its SQLite backend must fail here, loudly.
        assert type(database._backend) is SQLiteBackend, type(database._backend)
        database._backend = ReusingSQLiteBackend(database.url, **database.options)
        return database
    options = {key: value for key, value in POSTGRES_POOL.items()
               if key not in databases.DatabaseURL(url).options}
    return ObservedDatabase(url, timeout=POSTGRES_CONNECT_TIMEOUT_S,
                            command_timeout=POSTGRES_COMMAND_TIMEOUT_S, **options)


def statement_kind(query) -> str:
    """select, insert, update, delete or other: a bounded label for a SQLAlchemy statement or SQL text."""
    for kind in ("select", "insert", "update", "delete"):
        if getattr(query, f"is_{kind}", False):
            return kind
    if isinstance(query, str):
        words = query.split(None, 1)
        first = words[0].lower() if words else ""
        return first if first in ("select", "insert", "update", "delete") else "other"
    return "other"


def with_values(statement: ClauseElement, values: dict) -> ClauseElement:
    """A prepared statement with ``values`` in place of its named bind parameters, as a
    statement built for this call would be (INSERT and UPDATE take them as ``values``)."""
    return statement.values(**values) if isinstance(statement, ValuesBase) else statement.params(**values)


class ObservedDatabase(databases.Database):
    """databases.Database that counts and times every statement (face_api_database_*)."""

    async def _observed(self, call, query, *args, **kwargs):
        return await metrics.observed(metrics.DATABASE_OPS, metrics.DATABASE_LATENCY, statement_kind(query),
                                      call, query, *args, **kwargs)

    async def execute(self, query, values=None):
        return await self._observed(super().execute, query, values)

    async def execute_many(self, query, values):
        return await self._observed(super().execute_many, query, values)

    async def fetch_all(self, query, values=None):
        return await self._observed(super().fetch_all, query, values)

    async def fetch_one(self, query, values=None):
        return await self._observed(super().fetch_one, query, values)

    async def fetch_val(self, query, values=None, column=0):
        return await self._observed(super().fetch_val, query, values, column=column)

    # A hot statement is built once, at import, with a named ``sa.bindparam`` for each value,
    # and run with each call's values: building a statement and its cache key afresh costs
    # a worker ~0.3 ms for the job insert, ~0.1 ms for a select, on every request.

    async def execute_prepared(self, statement: ClauseElement, values: dict):
        """What ``execute(with_values(statement, values))`` does, without building the statement again."""
        return await self._observed(self._run_prepared, statement, values, "execute")

    async def fetch_one_prepared(self, statement: ClauseElement, values: dict):
        """What ``fetch_one(with_values(statement, values))`` does, without building the statement again."""
        return await self._observed(self._run_prepared, statement, values, "fetch_one")

    async def _run_prepared(self, statement: ClauseElement, values: dict, call: str):
        if isinstance(self._backend, ReusingSQLiteBackend):  # compiled once, values bound by name
            async with self.connection() as connection:
                async with connection._query_lock:
                    return await getattr(connection._connection, call)(statement, values)
        # PostgreSQL: databases' asyncpg backend compiles every statement anyway
        return await getattr(databases.Database, call)(self, with_values(statement, values))


class ReusingSQLitePool(SQLitePool):
    """databases' SQLite "pool" opens a new aiosqlite connection (a thread and a file
    open) for every query and closes it afterwards: ~1 ms of a worker's CPU per API-key
    lookup. This one keeps up to ``keep`` idle connections and hands them out again.

    A connection goes back only when it is outside any transaction (autocommit
    mode, so the next statement on it sees everything committed meanwhile);
    one released mid-transaction (a failed task, say) is closed instead. Kept
    connections run on daemon threads, so one never left open cannot hold up
    the process's exit (it has no transaction to lose).
    """

    def __init__(self, url: databases.DatabaseURL, keep: int = 4, **options) -> None:
        super().__init__(url, **options)
        self._keep = keep
        self._idle: list[aiosqlite.Connection] = []

    async def acquire(self) -> aiosqlite.Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection._running and connection._connection is not None:
                return connection
        connection = aiosqlite.connect(database=self._database, isolation_level=None, **self._options)
        connection._thread.daemon = True
        await connection.__aenter__()
        return connection

    async def release(self, connection: aiosqlite.Connection) -> None:
        if (len(self._idle) < self._keep and connection._connection is not None
                and not connection.in_transaction):
            self._idle.append(connection)
            return
        await connection.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


# Compiled statements kept per worker (one entry per statement shape, not per value):
# the application has a few dozen shapes, so the bound is only a safety net.
COMPILED_CACHE_SIZE = 500


class CachingSQLiteConnection(SQLiteConnection):
    """databases' SQLite connection, cheaper per statement (the same SQL, arguments and rows).

    * Compiled once per statement shape: databases compiles every statement afresh
      with SQLAlchemy (0.05–0.2 ms each; the job insert more). Like SQLAlchemy's own
      engine, this keys the compiled form on the statement's cache key and binds
      each call's values into it. Statements whose SQL depends on their values
      (expanding ``IN`` lists, literal-execute parameters) or that have no cache key
      are compiled as before.
    * One trip to the connection's thread per statement: databases sends execute,
      fetch and close to aiosqlite's thread one by one (three wake-ups of that
      thread and of the event loop); here one function on the thread does all three.
    """

    def __init__(self, pool: SQLitePool, dialect, cache: dict) -> None:
        super().__init__(pool, dialect)
        self._cache = cache

    def _compile(self, query: ClauseElement, values: dict | None = None):
        """databases' (SQL, arguments, result columns, context) of ``query``; ``values`` fill
        its named bind parameters (a statement ObservedDatabase runs prepared)."""
        entry = self._cached(query)
        if entry is None:
            return super()._compile(query if values is None else with_values(query, values))
        compiled, result_columns, extracted = entry
        params = compiled.construct_params(params=values, extracted_parameters=extracted)
        processors = compiled._bind_processors
        args = [processors[key](params[key]) if key in processors else params[key]
                for key in compiled.positiontup]
        context = self._dialect.execution_ctx_cls()
        context.dialect = self._dialect
        context.result_column_struct = (
            compiled._result_columns, compiled._ordered_columns, compiled._textual_ordered_columns,
            compiled._ad_hoc_textual, compiled._loose_column_name_matching)
        return compiled.string, args, result_columns, CompilationContext(context)

    def _cached(self, query: ClauseElement):
        """(compiled, its result columns, this call's bound values), or None: compile as databases does."""
        if isinstance(query, DDLElement) or not isinstance(query, ClauseElement):
            return None
        cache_key = query._generate_cache_key()
        if cache_key is None:
            return None
        found = self._cache.get(cache_key.key)
        if found is None:
            compiled = query.compile(dialect=self._dialect, cache_key=cache_key)
            # False: its SQL depends on the values (an expanding IN, say), so it is never cached
            varies = compiled.post_compile_params or compiled.literal_execute_params
            found = False if varies or compiled.positiontup is None else compiled
            if len(self._cache) >= COMPILED_CACHE_SIZE:
                self._cache.clear()
            self._cache[cache_key.key] = found
        if found is False:
            return None
        return found, found._result_columns, cache_key.bindparams

    async def _run(self, sql: str, args: list, fetch: str | None):
        """Execute, fetch (``"one"``, ``"all"`` or None) and close the cursor in one trip to the thread:
        (rows, description, lastrowid, rowcount)."""
        assert self._connection is not None, "Connection is not acquired"
        connection = self._connection

        def run():
            cursor = connection._conn.execute(sql, args)
            try:
                rows = {"all": cursor.fetchall, "one": cursor.fetchone}[fetch]() if fetch else None
                return rows, cursor.description, cursor.lastrowid, cursor.rowcount
            finally:
                cursor.close()

        return await connection._execute(run)

    def _records(self, rows: list, description, result_columns, context) -> list[Record]:
        column_maps = create_column_maps(result_columns)
        metadata = CursorResultMetaData(context, description)
        return [Record(Row(metadata, metadata._processors, metadata._keymap, row), result_columns,
                       self._dialect, column_maps) for row in rows]

    async def fetch_all(self, query: ClauseElement) -> list[Record]:
        query_str, args, result_columns, context = self._compile(query)
        rows, description, _, _ = await self._run(query_str, args, "all")
        return self._records(rows, description, result_columns, context)

    async def fetch_one(self, query: ClauseElement, values: dict | None = None) -> Record | None:
        query_str, args, result_columns, context = self._compile(query, values)
        row, description, _, _ = await self._run(query_str, args, "one")
        return None if row is None else self._records([row], description, result_columns, context)[0]

    async def execute(self, query: ClauseElement, values: dict | None = None):
        query_str, args, _, _ = self._compile(query, values)
        _, _, lastrowid, rowcount = await self._run(query_str, args, None)
        return rowcount if lastrowid == 0 else lastrowid


class ReusingSQLiteBackend(SQLiteBackend):
    """databases' SQLite backend on a ReusingSQLitePool, emptied on disconnect, with
    CachingSQLiteConnection's cheaper statements."""

    def __init__(self, database_url, **options) -> None:
        super().__init__(database_url, **options)
        self._pool = ReusingSQLitePool(self._database_url, **self._options)
        self._compiled: dict = {}

    def connection(self) -> CachingSQLiteConnection:
        return CachingSQLiteConnection(self._pool, self._dialect, self._compiled)

    async def disconnect(self) -> None:
        await super().disconnect()
        await self._pool.close()


async def is_ready(database: databases.Database, timeout_s: float = 2.0) -> bool:
    """True when connected and ``SELECT 1`` answers within `timeout_s`; never raises."""
    if not database.is_connected:  # (SQLite would answer anyway: it opens the file on demand)
        return False
    try:
        return await asyncio.wait_for(database.fetch_val("SELECT 1"), timeout_s) == 1
    except Exception as error:  # readiness is a yes/no question
        log.debug("database not ready: %r", error)
        return False


def sqlalchemy_url(url: str) -> URL:
    """The SQLAlchemy URL that Alembic uses for the database behind a `databases` URL.

    SQLite runs on the standard library's sqlite3 (synchronous); PostgreSQL on
    asyncpg through an async engine (``connection.run_sync``).
    """
    parsed = make_url(url)
    if backend_of(url) == "sqlite":
        sqlite_path(url)  # rejects in-memory databases
        return parsed.set(drivername="sqlite")
    # min_size/max_size configure the databases pool, not a connection.
    query = {key: value for key, value in parsed.query.items() if key not in POSTGRES_POOL}
    return parsed.set(drivername="postgresql+asyncpg", query=query)


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # only for an error message
        return url.split("@")[-1]
