"""video jobs: the jobs table also holds queued background jobs (job_type mask_video)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Spelled out (not imported from tables.py): a migration is a snapshot of its day.
def columns() -> list[sa.Column]:
    # New objects on each call: a Column belongs to one table, and a process may migrate twice.
    return [
        sa.Column("state", sa.String(16), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("frames_done", sa.Integer, nullable=True),
        sa.Column("frames_total", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    # Plain ADD COLUMNs (nullable, or with a default): no table rebuild on SQLite.
    for column in columns():
        op.add_column("jobs", column)
    op.create_index("ix_jobs_state_created_at", "jobs", ["state", "created_at"])
    op.create_index("ix_jobs_api_key_id_state", "jobs", ["api_key_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_jobs_api_key_id_state", table_name="jobs")
    op.drop_index("ix_jobs_state_created_at", table_name="jobs")
    # Video jobs mean nothing to the older schema; their objects stay in storage.
    op.execute(sa.text("DELETE FROM jobs WHERE state IS NOT NULL"))
    with op.batch_alter_table("jobs") as batch:
        for column in reversed(columns()):
            batch.drop_column(column.name)
