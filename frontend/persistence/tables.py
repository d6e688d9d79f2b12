"""The schema as SQLAlchemy Core tables: one MetaData for the whole service.

Every change to these tables ships with an Alembic migration in
``migrations/versions/`` (0001 creates ``api_keys``; 0002 ``images``, ``jobs``,
``cleanup_tasks`` and ``admin_sessions``; 0003 adds the video job queue's columns to
``jobs``), never by editing an earlier one.

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

# --- storage-backed mode (migration 0002) ---

# One row per distinct upload: the same bytes uploaded twice are one image.
images = sa.Table(
    "images",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # UUID4 text
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),  # of the uploaded bytes
    sa.Column("object_key", sa.String(255), nullable=False),  # originals/<sha256>.<ext>
    sa.Column("content_type", sa.String(64), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("channels", sa.SmallInteger, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_images_created_at", "created_at"),
)

# One row per detect or mask call on an image, and per video job (job_type "mask_video",
# migration 0003): a video's original is an ``images`` row too (content type video/...), so
# listing, deleting and cleaning up work for both. Only video jobs have a state; the columns
# from ``state`` on are NULL (attempts 0) for photo jobs, which are done when recorded.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("image_id", sa.String(36), sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    sa.Column("job_type", sa.String(16), nullable=False),  # "detect" | "mask" | "mask_video"
    sa.Column("method", sa.String(16), nullable=True),  # masking method; NULL for detect
    sa.Column("parameters", sa.JSON, nullable=False),  # the request's query parameters
    sa.Column("result", sa.JSON, nullable=False),  # the DetectResponse-style payload
    sa.Column("face_count", sa.Integer, nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("total_ms", sa.Float, nullable=False),
    sa.Column("processed_key", sa.String(255), nullable=True),  # processed/<job id>.<ext>
    sa.Column("processed_content_type", sa.String(64), nullable=True),
    sa.Column("processed_size_bytes", sa.BigInteger, nullable=True),
    sa.Column("api_key_id", sa.String(36), nullable=True),  # who asked; no FK: keys may be deleted
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # --- the video job queue (frontend/video/jobs.py) ---
    sa.Column("state", sa.String(16), nullable=True),  # queued | running | done | failed
    # (No Python-side default: `databases` would send it as NULL; the server default applies.)
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # runs started
    sa.Column("frames_done", sa.Integer, nullable=True),
    sa.Column("frames_total", sa.Integer, nullable=True),  # NULL: the container does not say
    sa.Column("error", sa.Text, nullable=True),  # why it failed, for the caller
    sa.Column("claimed_by", sa.String(100), nullable=True),  # host:pid of the worker running it
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_jobs_image_id", "image_id"),
    sa.Index("ix_jobs_created_at", "created_at"),
    sa.Index("ix_jobs_job_type_method", "job_type", "method"),
    sa.Index("ix_jobs_state_created_at", "state", "created_at"),
    sa.Index("ix_jobs_api_key_id_state", "api_key_id", "state"),
)

# Objects whose metadata is gone but whose bytes may still be in object storage:
# deleted at once when possible, retried at start-up and by `manage cleanup` otherwise.
cleanup_tasks = sa.Table(
    "cleanup_tasks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("object_key", sa.String(255), nullable=False),
    sa.Column("reason", sa.String(100), nullable=False),  # e.g. "image <id> deleted"
    sa.Column("attempts", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_cleanup_tasks_created_at", "created_at"),
)

# Browser sessions of the admin console: only a hash of the cookie's token is kept.
admin_sessions = sa.Table(
    "admin_sessions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # sha256 hex
    sa.Column("csrf_hash", sa.String(64), nullable=False),  # sha256 hex of its CSRF token
    sa.Column("username", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_admin_sessions_expires_at", "expires_at"),
)
