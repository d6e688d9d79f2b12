"""The data layer and the API-key store on real databases: SQLite and PostgreSQL.

PostgreSQL comes from tests/support/postgres.py (FACE_API_TEST_POSTGRES_URL,
127.0.0.1:5432, or a throw-away cluster); each test gets its own database.
No Triton needed.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import databases
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from frontend.auth.api_keys import ApiKeyRecord, ApiKeyStore, UsageCounter, hash_key, key_preview
from frontend.persistence import migrate, tables
from frontend.persistence.database import create_database, is_ready
from frontend.persistence.tables import api_keys
from tests.support.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["sqlite", "postgresql"]


# --- fixtures ---


@pytest.fixture(params=BACKENDS)
def empty_url(request, tmp_path):
    """A database URL with nothing in it yet (never migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/db/face-api.sqlite3"  # the db/ folder does not exist yet
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url


@pytest.fixture
def url(empty_url):
    migrate.upgrade(empty_url)
    return empty_url


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[databases.Database]:
    database = create_database(url)
    await database.connect()
    try:
        yield database
    finally:
        await database.disconnect()


@pytest.fixture
async def database(url):
    async with connected(url) as db:
        yield db


@pytest.fixture
def store(database):
    return ApiKeyStore(database)


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0), value
    assert abs(datetime.now(UTC) - value) < timedelta(minutes=5), value


async def table_names(url: str) -> set[str]:
    async with connected(url) as db:
        if db.url.dialect == "sqlite":
            rows = await db.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = await db.fetch_all("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {row[0] for row in rows}


# --- migrations ---

async def test_upgrade_downgrade_upgrade(empty_url):
    assert migrate.current(empty_url) is None
    assert "api_keys" not in await table_names(empty_url)

    migrate.upgrade(empty_url, "0001")
    assert migrate.current(empty_url) == "0001"
    assert {"api_keys", "alembic_version"} <= await table_names(empty_url)
    assert "images" not in await table_names(empty_url)

    async with connected(empty_url) as db:
        record, key = await ApiKeyStore(db).create("survives a second upgrade")
    migrate.upgrade(empty_url)  # 0001 -> head keeps the keys
    assert migrate.current(empty_url) == migrate.head() == "0003"
    assert {"images", "jobs", "cleanup_tasks", "admin_sessions"} <= await table_names(empty_url)
    migrate.upgrade(empty_url)  # at head already: nothing happens, nothing is lost
    assert migrate.current(empty_url) == "0003"
    async with connected(empty_url) as db:
        assert (await ApiKeyStore(db).find(key)) == record

    migrate.downgrade(empty_url, "0002")  # the video queue's columns go, the photo jobs stay
    assert migrate.current(empty_url) == "0002"
    migrate.downgrade(empty_url, "0001")
    assert "images" not in await table_names(empty_url)
    migrate.downgrade(empty_url, "base")
    assert migrate.current(empty_url) is None
    assert "api_keys" not in await table_names(empty_url)

    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == "0003"
    async with connected(empty_url) as db:
        assert await ApiKeyStore(db).count() == 0


def test_tables_match_the_migrations(url):
    """tables.py (what the code queries) and the migrations (what exists) describe one schema."""

    def differences(connection):
        return compare_metadata(MigrationContext.configure(connection), tables.metadata)

    assert migrate.run_with_connection(url, differences, lock=False) == []


RACE_SCRIPT = """
import sys, time
from frontend.persistence import migrate, tables
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
migrate.upgrade(sys.argv[1])
"""


async def test_concurrent_upgrades_do_not_collide(empty_url):
    """Launchers that start together all succeed; the schema is created exactly once."""
    start_at = f"{time.time() + 3.0:.3f}"  # after every interpreter has imported alembic
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    racers = [subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, empty_url, start_at], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for _ in range(4)]
    outputs = [racer.communicate(timeout=120)[0] for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 4, "\n".join(outputs)
    assert migrate.current(empty_url) == migrate.head()
    async with connected(empty_url) as db:
        assert await ApiKeyStore(db).count() == 0
        if db.url.dialect == "sqlite":
            assert await db.fetch_val("PRAGMA integrity_check") == "ok"
        assert await db.fetch_val("SELECT count(*) FROM alembic_version") == 1


async def test_sqlite_folder_is_created_and_file_used(tmp_path):
    url = f"sqlite:///{tmp_path}/deeper/still/face-api.sqlite3"
    migrate.upgrade(url)
    assert (tmp_path / "deeper" / "still" / "face-api.sqlite3").is_file()
    async with connected(url) as db:
        assert await db.fetch_val("PRAGMA journal_mode") == "wal"


# --- readiness ---

async def test_is_ready(url):
    database = create_database(url)
    assert await is_ready(database) is False  # not connected: False, no exception
    await database.connect()
    try:
        assert await is_ready(database) is True
    finally:
        await database.disconnect()
    assert await is_ready(database) is False


async def test_is_ready_false_for_unreachable_postgres():
    database = create_database("postgresql://postgres@127.0.0.1:1/nothing")
    with pytest.raises(OSError):
        await database.connect()
    assert await is_ready(database) is False


# --- the key store ---

async def test_key_lifecycle(store):
    record, key = await store.create("  build server  ")
    assert isinstance(record, ApiKeyRecord)
    assert record.name == "build server"
    assert record.is_active and record.request_count == 0 and record.last_used_at is None
    assert record.key_preview == key_preview(key) == f"{key[:8]}...{key[-4:]}"
    assert (record.key_prefix, record.key_suffix) == (key[:8], key[-4:])
    assert_utc(record.created_at)

    found = await store.find(key)
    assert found == record
    assert await store.get(record.id) == record
    assert await store.list() == [record]
    assert await store.count() == 1

    renamed = await store.update(record.id, name="CI")
    assert renamed is not None and renamed.name == "CI" and renamed.is_active
    disabled = await store.update(record.id, is_active=False)
    assert disabled is not None and disabled.is_active is False and disabled.name == "CI"
    assert (await store.find(key)).is_active is False
    enabled = await store.update(record.id, is_active=True, name="CI 2")
    assert enabled is not None and enabled.is_active is True and enabled.name == "CI 2"
    assert await store.update(record.id) == enabled  # nothing to change
    assert enabled.created_at == record.created_at

    assert await store.delete(record.id) is True
    assert await store.delete(record.id) is False
    assert await store.get(record.id) is None
    assert await store.find(key) is None
    assert await store.count() == 0


async def test_unknown_ids(store):
    await store.create("someone")
    for unknown in ["00000000-0000-4000-8000-000000000000", "", "x" * 500, "'; DROP TABLE api_keys; --"]:
        assert await store.get(unknown) is None
        assert await store.update(unknown, name="x") is None
        assert await store.update(unknown, is_active=False) is None
        assert await store.delete(unknown) is False
    assert await store.count() == 1


async def test_names_are_validated(store):
    for bad in ["", "   ", "x" * 101, "two\nlines"]:
        with pytest.raises(ValueError, match="name"):
            await store.create(bad)
    record, _ = await store.create("x" * 100)
    with pytest.raises(ValueError, match="name"):
        await store.update(record.id, name=" ")
    assert (await store.get(record.id)).name == "x" * 100


async def test_full_key_is_never_stored(store, database):
    record, key = await store.create("secret keeper")
    row = await database.fetch_one(sa.select(api_keys).where(api_keys.c.id == record.id))
    values = [str(row[column.name]) for column in api_keys.columns]
    assert hash_key(key) in values
    random_part = key[len("xyl_"):]
    for value in values:
        assert key not in value
        assert random_part not in value
        assert random_part[:20] not in value  # not even a large piece of it


async def test_find_unknown_and_malformed(store):
    _, key = await store.create("real")
    other = "xyl_" + ("A" * 43)
    assert await store.find(other) is None
    for garbage in ["", "xyl_", key + "x", key[:-1], "abc_" + key[4:], key.replace(key[10], "é"),
                    " " + key[1:], None, 42]:
        assert await store.find(garbage) is None


async def test_list_is_newest_first_and_pages(store):
    made = [(await store.create(f"key {index}"))[0] for index in range(5)]
    listed = await store.list()
    assert [record.id for record in listed] == [record.id for record in reversed(made)]
    assert [r.id for r in await store.list(limit=2)] == [made[4].id, made[3].id]
    assert [r.id for r in await store.list(limit=2, offset=2)] == [made[2].id, made[1].id]
    assert await store.list(limit=2, offset=10) == []
    assert await store.count() == 5
    with pytest.raises(ValueError):
        await store.list(limit=-1)
    with pytest.raises(ValueError):
        await store.list(offset=-1)


# --- usage counting ---

async def test_usage_counts_from_two_workers_add_up(url, store):
    first, _ = await store.create("first")
    second, _ = await store.create("second")
    async with connected(url) as db_a, connected(url) as db_b:
        worker_a, worker_b = UsageCounter(db_a, 60), UsageCounter(db_b, 60)
        expected = {first.id: 0, second.id: 0}
        previous_last = None
        for round_number in range(1, 6):
            for _ in range(round_number * 3):
                worker_a.record(first.id)
                worker_b.record(first.id)
            for _ in range(round_number):
                worker_b.record(second.id)
            expected[first.id] += round_number * 6
            expected[second.id] += round_number
            written = await asyncio.gather(worker_a.flush(), worker_b.flush())
            assert sum(written) == round_number * 7
            assert worker_a.pending() == {} and worker_b.pending() == {}

            now = {record.id: record for record in await store.list()}
            assert {key_id: now[key_id].request_count for key_id in expected} == expected
            last = now[first.id].last_used_at
            assert_utc(last)
            assert previous_last is None or last >= previous_last
            previous_last = last


async def test_last_used_never_moves_back(store, database):
    record, _ = await store.create("clock")
    counter = UsageCounter(database, 60)
    late = datetime.now(UTC).replace(microsecond=0)
    counter.record(record.id, late)
    await counter.flush()
    counter.record(record.id, late - timedelta(hours=1))  # a slower worker's older request
    await counter.flush()
    stored = await store.get(record.id)
    assert stored.request_count == 2
    assert stored.last_used_at == late
    counter.record(record.id, late + timedelta(seconds=1, microseconds=250))
    await counter.flush()
    assert (await store.get(record.id)).last_used_at == late + timedelta(seconds=1, microseconds=250)


async def test_usage_of_a_deleted_key_is_skipped(store, database):
    kept, _ = await store.create("kept")
    gone, _ = await store.create("gone")
    counter = UsageCounter(database, 60)
    counter.record(gone.id)
    counter.record(kept.id)
    assert await store.delete(gone.id)
    await counter.flush()  # no error
    assert counter.pending() == {}
    assert (await store.get(kept.id)).request_count == 1
    assert await store.count() == 1


async def test_failed_flush_keeps_the_counts(request, url, store):
    record, _ = await store.create("patient")
    if url.startswith("sqlite"):
        # Another process holds the write lock longer than this handle's busy timeout.
        flaky = databases.Database(url, timeout=0.1)
        await flaky.connect()
        blocker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        request.addfinalizer(blocker.close)
        recover = blocker.rollback
    else:
        flaky = create_database(url)  # not connected yet: every query fails
        recover = None
    counter = UsageCounter(flaky, 60)
    try:
        for _ in range(3):
            counter.record(record.id)
        assert await counter.flush() == 0  # logs a warning, does not raise
        counter.record(record.id)
        assert counter.pending() == {record.id: 4}
        assert (await store.get(record.id)).request_count == 0
        if recover is not None:
            recover()
        else:
            await flaky.connect()
        assert await counter.flush() == 4
    finally:
        await flaky.disconnect()
    assert counter.pending() == {}
    assert (await store.get(record.id)).request_count == 4


async def test_background_flush_and_stop(store, database):
    record, _ = await store.create("busy")
    counter = UsageCounter(database, interval_s=0.05)
    await counter.start()
    counter.record(record.id)
    counter.record(record.id)
    deadline = time.monotonic() + 10
    while (await store.get(record.id)).request_count < 2:
        assert time.monotonic() < deadline, "the background flush never wrote the counts"
        await asyncio.sleep(0.02)
    counter.record(record.id)  # counted after the last flush: stop() must write it
    await counter.stop()
    stored = await store.get(record.id)
    assert stored.request_count == 3
    assert_utc(stored.last_used_at)


async def test_stop_without_start_flushes(store, database):
    record, _ = await store.create("short-lived")
    counter = UsageCounter(database, 60)
    counter.record(record.id)
    await counter.stop()
    assert (await store.get(record.id)).request_count == 1


# --- the first key ---

async def test_ensure_first_key(store):
    key = await store.ensure_first_key()
    assert key is not None
    found = await store.find(key)
    assert found is not None and found.name == "default" and found.is_active
    assert await store.count() == 1
    assert await store.ensure_first_key() is None
    assert await store.count() == 1


async def test_ensure_first_key_not_when_keys_exist(store):
    record, _ = await store.create("already here")
    await store.update(record.id, is_active=False)
    assert await store.ensure_first_key("bootstrap") is None
    assert await store.count() == 1


async def test_ensure_first_key_races(url, store):
    """Workers starting together (separate connections) create exactly one key."""
    for _ in range(5):
        async with (connected(url) as db_a, connected(url) as db_b, connected(url) as db_c,
                    connected(url) as db_d):
            keys = await asyncio.gather(*(ApiKeyStore(db).ensure_first_key("race")
                                          for db in (db_a, db_b, db_c, db_d)))
        created = [key for key in keys if key is not None]
        assert len(created) == 1, keys
        assert await store.count() == 1
        assert (await store.find(created[0])).name == "race"
        for record in await store.list():
            await store.delete(record.id)
