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
