"""Rate limits shared by every worker: GCRA decisions over a shared store.

``gcra`` holds the arithmetic; ``stores`` keeps each caller's state where all
workers see it (Redis across nodes, a SQLite file on one node).
"""

from frontend.ratelimit.gcra import Decision, Rate
from frontend.ratelimit.stores import RateLimitStore, RedisStore, SqliteStore, open_store

__all__ = ["Decision", "Rate", "RateLimitStore", "RedisStore", "SqliteStore", "open_store"]
