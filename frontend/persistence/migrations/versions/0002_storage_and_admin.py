"""storage and admin: images, jobs, cleanup_tasks, admin_sessions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Spelled out (not imported from tables.py): a migration is a snapshot of its day.
    op.create_table(
        "images",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("object_key", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("channels", sa.SmallInteger, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
        sa.UniqueConstraint("sha256", name="uq_images_sha256"),
    )
    op.create_index("ix_images_created_at", "images", ["created_at"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("job_type", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("face_count", sa.Integer, nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("total_ms", sa.Float, nullable=False),
        sa.Column("processed_key", sa.String(255), nullable=True),
        sa.Column("processed_content_type", sa.String(64), nullable=True),
        sa.Column("processed_size_bytes", sa.BigInteger, nullable=True),
        sa.Column("api_key_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_jobs_image_id_images",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_jobs_image_id", "jobs", ["image_id"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_jobs_job_type_method", "jobs", ["job_type", "method"])

    op.create_table(
        "cleanup_tasks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("object_key", sa.String(255), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_cleanup_tasks"),
    )
    op.create_index("ix_cleanup_tasks_created_at", "cleanup_tasks", ["created_at"])

    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("csrf_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_admin_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_admin_sessions_token_hash"),
    )
    op.create_index("ix_admin_sessions_expires_at", "admin_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_admin_sessions_expires_at", table_name="admin_sessions")
    op.drop_table("admin_sessions")
    op.drop_index("ix_cleanup_tasks_created_at", table_name="cleanup_tasks")
    op.drop_table("cleanup_tasks")
    op.drop_index("ix_jobs_job_type_method", table_name="jobs")
    op.drop_index("ix_jobs_created_at", table_name="jobs")
    op.drop_index("ix_jobs_image_id", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_images_created_at", table_name="images")
    op.drop_table("images")
