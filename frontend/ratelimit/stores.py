"""Where the limiter's state lives, so that every worker sees the same numbers.

* RedisStore: one Lua script runs the GCRA step atomically inside Redis, on
  Redis's own clock, so any number of frontend nodes share limits.
* SqliteStore: the single-node default. The same step in an IMMEDIATE
  transaction on a local SQLite file (WAL): gunicorn's workers are separate
  processes, so a per-process dict would multiply the limit by the worker count.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from anyio import to_thread

from frontend.persistence.database import make_private_file, use_wal
from frontend.ratelimit.gcra import Decision, Rate, decide


class RateLimitStore(Protocol):
    async def hit(self, key: str, rate: Rate) -> Decision: ...

    async def close(self) -> None: ...


LOCK_WAIT_S = 5.0


class SqliteStore:
    """GCRA state in a SQLite file shared by the processes of one machine."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        make_private_file(self.path)  # 0600 in a 0700 folder; SQLite gives -wal/-shm the same mode
        self._local = threading.local()
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS rate_limits (key TEXT PRIMARY KEY, tat REAL NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=LOCK_WAIT_S, isolation_level=None, check_same_thread=False)
        try:
            use_wal(db, LOCK_WAIT_S)
        except sqlite3.OperationalError:
            db.close()
            raise
        db.execute("PRAGMA synchronous=OFF")  # losing limiter state in a power cut is harmless
        return db

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def hit_sync(self, key: str, rate: Rate, now: float | None = None) -> Decision:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # one writer at a time across every process
        try:
            now = time.time() if now is None else now
            row = db.execute("SELECT tat FROM rate_limits WHERE key = ?", (key,)).fetchone()
            decision, new_tat = decide(row[0] if row else None, now, rate)
            if new_tat is not None:
                db.execute("INSERT INTO rate_limits (key, tat) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET tat = excluded.tat", (key, new_tat))
            if random.random() < 0.001:  # now and then, forget callers whose allowance is full again
                db.execute("DELETE FROM rate_limits WHERE tat < ?", (now,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return decision

    async def hit(self, key: str, rate: Rate) -> Decision:
        return await to_thread.run_sync(self.hit_sync, key, rate)

    async def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()


# KEYS[1] = the caller's key; ARGV = interval (s), period (s).
# Returns {allowed 0/1, remaining, retry_after (s, string), reset_after (s, string)}.
_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
-- the same slack as gcra.decide: epoch seconds resolve only ~2e-7 s in a double
if new_tat - now <= period + interval * 1e-3 then
  redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000))
  local remaining = math.max(0, math.floor((period - (new_tat - now)) / interval + 1e-3))
  return {1, remaining, '0', tostring(new_tat - now)}
end
return {0, 0, tostring(new_tat - period - now), tostring(tat - now)}
"""


class RedisStore:
    """GCRA state in Redis, shared by every worker of every frontend node."""

    def __init__(self, url: str, prefix: str = "face-api:rate:"):
        import redis.asyncio as redis

        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._script = self._redis.register_script(_GCRA_LUA)

    async def hit(self, key: str, rate: Rate) -> Decision:
        allowed, remaining, retry_after, reset_after = await self._script(
            keys=[self.prefix + key], args=[rate.interval_s, rate.period_s])
        return Decision(bool(allowed), rate.count, int(remaining), float(retry_after), float(reset_after))

    async def close(self) -> None:
        await self._redis.aclose()


def open_store(redis_url: str | None, sqlite_path: str | os.PathLike) -> RateLimitStore:
    return RedisStore(redis_url) if redis_url else SqliteStore(sqlite_path)
