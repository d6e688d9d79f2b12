"""API keys: format, hashing, the key store and the per-key usage counter.

A key is ``xyl_`` + 43 URL-safe base64 characters (32 random bytes). Only its
SHA-256 is stored, with an 8-character prefix and a 4-character suffix so
people can recognise a key in a list (``xyl_AbCd...wxyz``). The full key is
returned once, by `ApiKeyStore.create` / `ensure_first_key`.

Usage (``request_count``, ``last_used_at``) is counted in memory by each
worker's `UsageCounter` and added to the database every few seconds, so an
authenticated request costs one indexed read, not a write.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import databases
import sqlalchemy as sa

from frontend.persistence.database import ObservedDatabase
from frontend.persistence.tables import api_keys

log = logging.getLogger("face_api.api_keys")

KEY_PREFIX = "xyl_"
KEY_RANDOM_BYTES = 32
KEY_LENGTH = len(KEY_PREFIX) + 43  # token_urlsafe(32): 43 characters, no padding
_KEY_PATTERN = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{43}}")
PREFIX_CHARS = 8
SUFFIX_CHARS = 4
NAME_MAX_CHARS = 100
LIST_MAX_LIMIT = 1000
# pg_advisory_xact_lock key serialising ensure_first_key across processes.
FIRST_KEY_LOCK_ID = 0x66616365_6B657931  # "facekey1"


# --- the key format (pure functions) ---

def generate_key() -> str:
    """A new full API key: ``xyl_`` + 256 random bits, URL-safe base64."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def hash_key(key: str) -> str:
    """SHA-256 hex of the full key: what the database stores and looks up.

    A fast hash is the right tool here, not bcrypt/argon2: those slow down
    guessing of low-entropy passwords, but a key is 256 random bits, so no
    guessing attack exists, and a deterministic hash lets the unique index on
    ``key_hash`` find a key in one lookup on every request.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    """The first 8 characters, e.g. ``xyl_AbCd``."""
    return key[:PREFIX_CHARS]


def key_suffix(key: str) -> str:
    """The last 4 characters."""
    return key[-SUFFIX_CHARS:]


def preview(prefix: str, suffix: str) -> str:
    return f"{prefix}...{suffix}"


def key_preview(key: str) -> str:
    """How a key is shown after creation: ``xyl_AbCd...wxyz``."""
    return preview(key_prefix(key), key_suffix(key))


def looks_like_key(value: Any) -> bool:
    """A cheap format check, so that garbage never reaches the database."""
    return isinstance(value, str) and len(value) == KEY_LENGTH and _KEY_PATTERN.fullmatch(value) is not None


def validate_name(name: Any) -> str:
    """The name stripped; ValueError unless it has 1 to 100 characters."""
    if not isinstance(name, str):
        raise ValueError("name must be a string")
    name = name.strip()
    if not name:
        raise ValueError("name must not be empty")
    if len(name) > NAME_MAX_CHARS:
        raise ValueError(f"name must be at most {NAME_MAX_CHARS} characters (got {len(name)})")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise ValueError("name must not contain control characters (newlines, tabs, ...)")
    return name


# --- records ---

@dataclass(frozen=True)
class ApiKeyRecord:
    """A key's metadata: everything but the key itself."""

    id: str
    name: str
    key_prefix: str
    key_suffix: str
    key_preview: str
    is_active: bool
    request_count: int
    last_used_at: datetime | None  # aware, UTC
    created_at: datetime  # aware, UTC


def utc(value: datetime | None) -> datetime | None:
    """Aware UTC. SQLite hands back naive datetimes, which we always write in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _record(row: Any) -> ApiKeyRecord:
    created_at = utc(row["created_at"])
    assert created_at is not None
    return ApiKeyRecord(
        id=row["id"],
        name=row["name"],
        key_prefix=row["key_prefix"],
        key_suffix=row["key_suffix"],
        key_preview=preview(row["key_prefix"], row["key_suffix"]),
        is_active=bool(row["is_active"]),
        request_count=int(row["request_count"]),
        last_used_at=utc(row["last_used_at"]),
        created_at=created_at,
    )


_COLUMNS = [api_keys.c.id, api_keys.c.name, api_keys.c.key_prefix, api_keys.c.key_suffix,
            api_keys.c.is_active, api_keys.c.request_count, api_keys.c.last_used_at,
            api_keys.c.created_at]


# Every authenticated request runs this one: built once (ObservedDatabase.fetch_one_prepared).
_KEY_BY_HASH = sa.select(*_COLUMNS).where(api_keys.c.key_hash == sa.bindparam("key_hash"))


def _is_sqlite(database: databases.Database) -> bool:
    return database.url.dialect == "sqlite"


# --- the store ---

class ApiKeyStore:
    """CRUD on ``api_keys`` over a connected database (persistence.database.create_database)."""

    def __init__(self, database: ObservedDatabase):
        self.database = database

    async def create(self, name: str) -> tuple[ApiKeyRecord, str]:
        """A new active key named `name`: its record and the full key (shown only now)."""
        return await self._insert(self.database, validate_name(name))

    async def list(self, limit: int = 50, offset: int = 0) -> builtins.list[ApiKeyRecord]:
        """Newest first."""
        if not 0 <= limit <= LIST_MAX_LIMIT:
            raise ValueError(f"limit must be between 0 and {LIST_MAX_LIMIT}")
        if offset < 0:
            raise ValueError("offset must not be negative")
        query = (sa.select(*_COLUMNS)
                 .order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
                 .limit(limit).offset(offset))
        return [_record(row) for row in await self.database.fetch_all(query)]

    async def count(self) -> int:
        return int(await self.database.fetch_val(sa.select(sa.func.count()).select_from(api_keys)))

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        if not _plausible_id(key_id):
            return None
        row = await self.database.fetch_one(sa.select(*_COLUMNS).where(api_keys.c.id == key_id))
        return _record(row) if row is not None else None

    async def update(self, key_id: str, *, name: str | None = None,
                     is_active: bool | None = None) -> ApiKeyRecord | None:
        """Rename and/or (de)activate; None when no key has this id."""
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = validate_name(name)
        if is_active is not None:
            values["is_active"] = bool(is_active)
        if not _plausible_id(key_id):
            return None
        if values:
            query = (sa.update(api_keys).where(api_keys.c.id == key_id).values(**values)
                     .returning(*_COLUMNS))
            row = await self.database.fetch_one(query)
            return _record(row) if row is not None else None
        return await self.get(key_id)

    async def delete(self, key_id: str) -> bool:
        """True when a key was deleted."""
        if not _plausible_id(key_id):
            return False
        query = sa.delete(api_keys).where(api_keys.c.id == key_id).returning(api_keys.c.id)
        return await self.database.fetch_one(query) is not None

    async def find(self, full_key: str) -> ApiKeyRecord | None:
        """The key's record, active or not (so callers can tell 401 from 403).

        None for unknown keys, and for malformed input without asking the database.
        """
        if not looks_like_key(full_key):
            return None
        row = await self.database.fetch_one_prepared(_KEY_BY_HASH, {"key_hash": hash_key(full_key)})
        return _record(row) if row is not None else None

    async def ensure_first_key(self, name: str = "default") -> str | None:
        """Create a key if there is none at all, and return it; None when keys exist.

        Safe when several processes start at once: at most one key is created.
        PostgreSQL: the check and the insert share one transaction that first
        takes a transaction-scoped advisory lock, so the second process waits
        and then sees the first one's key (READ COMMITTED: every statement sees
        what was committed before it). SQLite: the transaction starts with
        ``BEGIN IMMEDIATE``, which takes the file's write lock before the count,
        so the check and the insert cannot interleave with another writer.
        Do not call it inside another transaction of the same task.
        """
        name = validate_name(name)
        async with self.database.connection() as connection:
            if _is_sqlite(self.database):
                await connection.execute("BEGIN IMMEDIATE")
                try:
                    key = await self._insert_if_empty(connection, name)
                except BaseException:
                    await connection.execute("ROLLBACK")
                    raise
                await connection.execute("COMMIT")
                return key
            async with connection.transaction():
                await connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)")
                                         .bindparams(key=FIRST_KEY_LOCK_ID))
                return await self._insert_if_empty(connection, name)

    async def _insert_if_empty(self, connection: databases.core.Connection, name: str) -> str | None:
        exists = await connection.fetch_val(sa.select(api_keys.c.id).limit(1))
        if exists is not None:
            return None
        _, key = await self._insert(connection, name)
        return key

    @staticmethod
    async def _insert(executor: databases.Database | databases.core.Connection,
                      name: str) -> tuple[ApiKeyRecord, str]:
        key = generate_key()
        record = ApiKeyRecord(
            id=str(uuid.uuid4()), name=name, key_prefix=key_prefix(key), key_suffix=key_suffix(key),
            key_preview=key_preview(key), is_active=True, request_count=0, last_used_at=None,
            created_at=datetime.now(UTC),
        )
        await executor.execute(sa.insert(api_keys).values(
            id=record.id, name=record.name, key_hash=hash_key(key), key_prefix=record.key_prefix,
            key_suffix=record.key_suffix, is_active=True, request_count=0, last_used_at=None,
            created_at=record.created_at,
        ))
        return record, key


def _plausible_id(key_id: Any) -> bool:
    return isinstance(key_id, str) and 0 < len(key_id) <= 36


# --- usage counting ---

class UsageCounter:
    """Counts authenticated requests per key in memory and adds them to the database in batches.

    `record` is synchronous and touches only memory (call it from the event
    loop's thread). `flush` adds the counts with one atomic
    ``request_count = request_count + n`` per key, so any number of workers
    and processes can flush side by side without losing a count, and moves
    ``last_used_at`` forward only (never back to an older time). A key deleted
    meanwhile matches no row and is skipped. When a flush fails (database
    down), the counts stay for the next try and a warning is logged: nothing
    ever raises into the request path.
    """

    def __init__(self, database: databases.Database, interval_s: float = 2.0):
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.database = database
        self.interval_s = interval_s
        self._pending: dict[str, tuple[int, datetime]] = {}
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None

    def record(self, key_id: str, when: datetime | None = None) -> None:
        """Count one request of `key_id`, used at `when` (default: now)."""
        when = utc(when) or datetime.now(UTC)
        count, last = self._pending.get(key_id, (0, when))
        self._pending[key_id] = (count + 1, max(last, when))

    def pending(self) -> dict[str, int]:
        """Requests counted but not yet written, per key id."""
        return {key_id: count for key_id, (count, _) in self._pending.items()}

    async def flush(self) -> int:
        """Write the pending counts; the number of requests written (0 when it failed)."""
        async with self._flush_lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                async with self.database.transaction():
                    # Sorted ids: concurrent flushes lock rows in one order, no deadlocks.
                    for key_id in sorted(batch):
                        count, last = batch[key_id]
                        await self.database.execute(_usage_update(key_id, count, last))
            except BaseException as error:
                self._merge_back(batch)
                if not isinstance(error, Exception):
                    raise  # cancelled: the counts stay for stop()'s final flush
                log.warning("could not write API key usage (%d requests kept for the next try): %r",
                            sum(count for count, _ in batch.values()), error)
                return 0
            return sum(count for count, _ in batch.values())

    async def start(self) -> None:
        """Flush every `interval_s` in a background task until `stop`."""
        if self._task is not None:
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop(self._stopping), name="api-key-usage-flush")

    async def stop(self) -> None:
        """Stop the background flushes and write what is left."""
        task, self._task = self._task, None
        if task is not None and self._stopping is not None:
            self._stopping.set()
            try:
                await asyncio.wait_for(task, timeout=max(5.0, self.interval_s))
            except TimeoutError:
                pass  # wait_for cancelled the loop; its counts went back to pending
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # stop() itself is being cancelled
        await self.flush()

    async def _loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.interval_s)
            except TimeoutError:
                await self.flush()

    def _merge_back(self, batch: dict[str, tuple[int, datetime]]) -> None:
        for key_id, (count, last) in batch.items():
            pending_count, pending_last = self._pending.get(key_id, (0, last))
            self._pending[key_id] = (pending_count + count, max(pending_last, last))


def _usage_update(key_id: str, count: int, last: datetime) -> sa.Update:
    column = api_keys.c.last_used_at
    newest = sa.case((sa.or_(column.is_(None), column < last), sa.literal(last, column.type)),
                     else_=column)
    return (sa.update(api_keys).where(api_keys.c.id == key_id)
            .values(request_count=api_keys.c.request_count + count, last_used_at=newest))
