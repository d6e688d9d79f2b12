"""The SQLite connection reuse in frontend/persistence/database.py, on real SQLite files."""

from __future__ import annotations

import pytest

from frontend.persistence.database import ReusingSQLitePool, create_database


@pytest.fixture
async def database(tmp_path):
    db = create_database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    await db.connect()
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    yield db
    await db.disconnect()


def _pool(db) -> ReusingSQLitePool:
    pool = db._backend._pool
    assert isinstance(pool, ReusingSQLitePool)
    return pool


async def test_a_released_connection_serves_the_next_query(database):
    await database.fetch_val("SELECT 1")
    kept = list(_pool(database)._idle)
    assert len(kept) == 1
    await database.fetch_val("SELECT 2")
    assert _pool(database)._idle == kept  # the same connection again, not a new one


async def test_a_kept_connection_sees_writes_committed_by_another_process(database, tmp_path):
    await database.fetch_all("SELECT * FROM t")  # keep a connection open
    other = create_database(f"sqlite:///{tmp_path / 'db.sqlite3'}")  # as another worker would
    async with other:
        await other.execute("INSERT INTO t (v) VALUES ('from the other worker')")
    assert await database.fetch_val("SELECT v FROM t") == "from the other worker"


async def test_a_connection_left_inside_a_transaction_is_closed_not_kept(database):
    pool = _pool(database)
    connection = await pool.acquire()
    await connection.execute("BEGIN")
    await connection.execute("INSERT INTO t (v) VALUES ('uncommitted')")
    await pool.release(connection)
    assert connection not in pool._idle
    assert connection._connection is None  # closed: its transaction is rolled back
    assert await database.fetch_val("SELECT count(*) FROM t") == 0


async def test_transactions_still_commit_and_roll_back(database):
    async with database.transaction():
        await database.execute("INSERT INTO t (v) VALUES ('kept')")
    with pytest.raises(RuntimeError):
        async with database.transaction():
            await database.execute("INSERT INTO t (v) VALUES ('dropped')")
            raise RuntimeError("abort")
    assert [r[0] for r in await database.fetch_all("SELECT v FROM t")] == ["kept"]


async def test_disconnect_closes_the_kept_connections(tmp_path):
    db = create_database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    await db.connect()
    await db.fetch_val("SELECT 1")
    kept = list(_pool(db)._idle)
    threads = [connection._thread for connection in kept]
    assert kept and all(thread.daemon and thread.is_alive() for thread in threads)
    await db.disconnect()
    for thread in threads:
        thread.join(timeout=5)
    assert _pool(db)._idle == [] and not any(thread.is_alive() for thread in threads)


async def test_at_most_keep_connections_are_kept(tmp_path):
    db = create_database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    async with db:
        pool = _pool(db)
        connections = [await pool.acquire() for _ in range(pool._keep + 3)]
        for connection in connections:
            await pool.release(connection)
        assert len(pool._idle) == pool._keep
        assert sum(c._connection is None for c in connections) == 3


# --- CachingSQLiteConnection: compiled once per statement shape, one thread trip per statement ---

def _statements(n: int):
    """Statements of the shapes the service runs on every request, with values that depend on ``n``."""
    import uuid
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from sqlalchemy.dialects import sqlite

    from frontend.auth.api_keys import _COLUMNS
    from frontend.persistence.tables import api_keys, images, jobs

    when = datetime(2026, 1, 2, 3, 4, 5, n, tzinfo=UTC)
    return [
        sa.select(*_COLUMNS).where(api_keys.c.key_hash == f"hash-{n}"),
        sa.select(images.c.object_key).where(images.c.sha256 == f"sha-{n}"),
        sqlite.insert(images).values(
            id=f"image-{n}", sha256=f"sha-{n}", object_key=f"originals/{n}.jpg", content_type="image/jpeg",
            width=n, height=n + 1, channels=3, size_bytes=10 * n, created_at=when,
        ).on_conflict_do_nothing(index_elements=["sha256"]),
        sa.insert(jobs).values(
            id=str(uuid.UUID(int=n)), image_id=f"image-{n}", job_type="detect", method=None,
            parameters={"confidence": n / 10}, result={"faces": [{"x": n + 0.5}] * n}, face_count=n,
            model="scrfd_500m", total_ms=n + 0.25, processed_key=None, processed_content_type=None,
            processed_size_bytes=None, api_key_id=None, created_at=when),
        sa.select(images.c.id).where(images.c.id.in_([f"image-{i}" for i in range(n + 1)])),  # expanding IN
        sa.select(jobs.c.id).order_by(jobs.c.created_at).limit(n).offset(n),
    ]


def test_a_cached_compilation_gives_what_databases_compiles_for_every_value():
    import databases
    from databases.backends.sqlite import SQLiteConnection

    from frontend.persistence.database import CachingSQLiteConnection, ReusingSQLiteBackend

    backend = ReusingSQLiteBackend(databases.DatabaseURL("sqlite:///unused.sqlite3"))
    cached = backend.connection()
    assert isinstance(cached, CachingSQLiteConnection)
    plain = SQLiteConnection(backend._pool, backend._dialect)
    for n in (1, 2, 3):  # the first call fills the cache, the next ones bind new values into it
        for statement in _statements(n):
            sql, args, columns, _ = cached._compile(statement)
            expected_sql, expected_args, expected_columns, _ = plain._compile(statement)
            assert (sql, args) == (expected_sql, expected_args)
            assert [c[:2] for c in columns or []] == [c[:2] for c in expected_columns or []]
    # the expanding IN is never cached (its SQL has one placeholder per value)
    assert sum(entry is False for entry in backend._compiled.values()) == 1


async def test_rows_and_row_counts_are_those_of_databases(database):
    await database.execute("INSERT INTO t (v) VALUES ('a')")
    await database.execute("INSERT INTO t (v) VALUES (:v)", {"v": "b"})
    assert await database.execute("UPDATE t SET v = v || '!'") == 2  # no new row: the row count
    rows = await database.fetch_all("SELECT id, v FROM t ORDER BY id")
    assert [(row["id"], row[1]) for row in rows] == [(1, "a!"), (2, "b!")]
    assert (await database.fetch_one("SELECT v FROM t WHERE id = :id", {"id": 2}))["v"] == "b!"
    assert await database.fetch_one("SELECT v FROM t WHERE id = 99") is None
    assert await database.fetch_val("SELECT count(*) FROM t") == 2


# --- prepared statements: built once, run with each call's values ---

def _prepared_statements(n: int):
    """The hot statements the service prepares, with values for a call that depend on ``n``."""
    import uuid
    from datetime import UTC, datetime

    from frontend.auth.api_keys import _KEY_BY_HASH
    from frontend.services.archive.recording import _IMAGE_BY_SHA256, _INSERT_JOB

    when = datetime(2026, 1, 2, 3, 4, 5, n, tzinfo=UTC)
    return [
        (_KEY_BY_HASH, {"key_hash": f"hash-{n}"}),
        (_IMAGE_BY_SHA256, {"sha256": f"sha-{n}"}),
        (_INSERT_JOB, dict(
            id=str(uuid.UUID(int=n)), image_id=f"image-{n}", job_type="mask", method="gaussian",
            parameters={"confidence": n / 10}, result={"faces": [{"x": n + 0.5}] * n}, face_count=n,
            model="scrfd_500m", total_ms=n + 0.25, processed_key=f"processed/{n}.jpg",
            processed_content_type="image/jpeg", processed_size_bytes=n * 100, api_key_id=None,
            created_at=when)),
    ]


def test_a_prepared_statement_compiles_once_and_binds_what_databases_would():
    import databases
    from databases.backends.sqlite import SQLiteConnection

    from frontend.persistence.database import CachingSQLiteConnection, ReusingSQLiteBackend, with_values

    backend = ReusingSQLiteBackend(databases.DatabaseURL("sqlite:///unused.sqlite3"))
    cached = backend.connection()
    assert isinstance(cached, CachingSQLiteConnection)
    plain = SQLiteConnection(backend._pool, backend._dialect)
    for n in (1, 2, 3):
        for statement, given in _prepared_statements(n):
            sql, args, _, _ = cached._compile(statement, given)
            expected_sql, expected_args, _, _ = plain._compile(with_values(statement, given))
            assert (sql, args) == (expected_sql, expected_args)
            assert f"-{n}" in str(args)  # this call's values, not the first call's
    assert len(backend._compiled) == 3  # one compiled form per statement, whatever the values


async def test_prepared_statements_write_and_read_rows(tmp_path):
    import sqlalchemy as sa

    from frontend.persistence.database import ObservedDatabase
    from frontend.persistence.tables import images, jobs, metadata
    from frontend.services.archive.recording import _IMAGE_BY_SHA256, _INSERT_JOB

    path = tmp_path / "db.sqlite3"
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()

    db = create_database(f"sqlite:///{path}")
    assert isinstance(db, ObservedDatabase)
    async with db:
        await db.execute(sa.insert(images).values(
            id="image-1", sha256="sha-1", object_key="originals/sha-1.jpg", content_type="image/jpeg",
            width=2, height=3, channels=3, size_bytes=10, created_at=sa.func.now()))
        for n in (1, 2):
            _, given = _prepared_statements(n)[2]
            await db.execute_prepared(_INSERT_JOB, {**given, "image_id": "image-1"})
        row = await db.fetch_one_prepared(_IMAGE_BY_SHA256, {"sha256": "sha-1"})
        assert (row["id"], row["object_key"]) == ("image-1", "originals/sha-1.jpg")
        assert await db.fetch_one_prepared(_IMAGE_BY_SHA256, {"sha256": "sha-2"}) is None
        rows = await db.fetch_all(sa.select(jobs).order_by(jobs.c.face_count))
        assert [(r["face_count"], r["result"], r["parameters"], r["created_at"].microsecond)
                for r in rows] == [
            (1, {"faces": [{"x": 1.5}]}, {"confidence": 0.1}, 1),
            (2, {"faces": [{"x": 2.5}] * 2}, {"confidence": 0.2}, 2),
        ]
