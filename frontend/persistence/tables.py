"""The schema as SQLAlchemy Core tables: one MetaData for the whole service.

Every change to these tables ships with an Alembic migration in
``migrations/versions/`` (0001 creates ``api_keys``). The admin features add
``images``, ``jobs``, ``cleanup_tasks`` and ``admin_sessions`` here, each with
its own migration (0002, 0003, ...), never by editing 0001.

Datetimes are stored in UTC. PostgreSQL keeps the offset (timestamptz);
SQLite stores naive UTC text, which the stores turn back into aware UTC.
"""

from __future__ import annotations

import sqlalchemy as sa

# Deterministic constraint and index names, so later migrations can refer to
# them by name (and SQLite batch migrations can recreate them).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # UUID4 text
    sa.Column("name", sa.String(100), nullable=False),
    # sha256 hex of the full key; the key itself is never stored.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(16), nullable=False),  # "xyl_AbCd": shown in lists
    sa.Column("key_suffix", sa.String(8), nullable=False),  # last 4 characters
    sa.Column("is_active", sa.Boolean, nullable=False, default=True, server_default=sa.true()),
    sa.Column("request_count", sa.BigInteger, nullable=False, default=0, server_default="0"),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_api_keys_created_at", "created_at"),
)
