"""The admin API's statistics: totals of images, jobs, faces and bytes, and the activity of
the last 24 clock hours.

Kept apart because it is the one part that aggregates; its shaping is pure (hour_starts,
shape_activity, count_by), so it is tested without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import databases
import sqlalchemy as sa

from frontend.persistence.tables import cleanup_tasks, images, jobs
from frontend.schemas import archive as schema
from frontend.schemas.face_api import MaskMethod

HOURS = 24


def hour_starts(now: datetime) -> list[datetime]:
    """The starts of the 24 clock hours ending with the current one, oldest first (UTC)."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=HOURS - 1 - i) for i in range(HOURS)]


def shape_activity(starts: Sequence[datetime], rows: Iterable[tuple[str, int, int, int]],
                   new_images: int) -> schema.Activity:
    """``rows``: (job_type, hour index into ``starts``, jobs, faces), missing hours count zero."""
    hourly = [schema.ActivityHour(hour=start, detect=0, mask=0, faces=0) for start in starts]
    for job_type, index, count, faces in rows:
        if job_type in (schema.JobType.detect, schema.JobType.mask) and 0 <= index < len(hourly):
            setattr(hourly[index], job_type, getattr(hourly[index], job_type) + int(count))
            hourly[index].faces += int(faces or 0)
    detect = sum(h.detect for h in hourly)
    mask = sum(h.mask for h in hourly)
    return schema.Activity(since=starts[0], jobs=detect + mask, detect=detect, mask=mask,
                           faces=sum(h.faces for h in hourly), images=new_images, hourly=hourly)


def count_by(rows: Iterable[tuple[str | None, int]], keys: Iterable[str]) -> dict[str, int]:
    """Counts per key, every one of ``keys`` present (zero when absent); None keys are dropped."""
    counts = {key: 0 for key in keys}
    for key, count in rows:
        if key is not None:
            counts[key] = counts.get(key, 0) + int(count)
    return counts


class Statistics:
    """The statistics part of ``Archive`` (frontend/services/archive/__init__.py)."""

    database: databases.Database

    async def stats(self, now: datetime | None = None) -> schema.StatsResponse:
        now = now or datetime.now(UTC)
        db = self.database
        image_row = await db.fetch_one(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(images.c.size_bytes), 0))
            .select_from(images))
        groups = await db.fetch_all(
            sa.select(jobs.c.job_type, jobs.c.method, sa.func.count(),
                      sa.func.coalesce(sa.func.sum(jobs.c.face_count), 0),
                      sa.func.coalesce(sa.func.sum(jobs.c.processed_size_bytes), 0))
            .group_by(jobs.c.job_type, jobs.c.method))
        pending = await db.fetch_val(sa.select(sa.func.count()).select_from(cleanup_tasks))
        starts = hour_starts(now)
        # The hour index is computed with comparisons only: no date functions, so the same
        # query runs on SQLite (naive UTC text) and PostgreSQL (timestamptz).
        # (Inlined integers: PostgreSQL cannot infer the type of a CASE made of parameters.)
        hour = sa.case(*[(jobs.c.created_at < start, sa.literal_column(str(index)))
                         for index, start in enumerate(starts[1:])], else_=sa.literal_column(str(HOURS - 1)))
        activity = await db.fetch_all(
            sa.select(jobs.c.job_type, hour.label("hour"), sa.func.count(),
                      sa.func.coalesce(sa.func.sum(jobs.c.face_count), 0))
            .where(jobs.c.created_at >= starts[0]).group_by(jobs.c.job_type, hour))
        new_images = await db.fetch_val(
            sa.select(sa.func.count()).select_from(images).where(images.c.created_at >= starts[0]))
        return schema.StatsResponse(
            images_total=int(image_row[0]), images_bytes=int(image_row[1]),
            processed_bytes=sum(int(g[4]) for g in groups),
            jobs_total=sum(int(g[2]) for g in groups),
            jobs_by_type=count_by(((g[0], g[2]) for g in groups), [t.value for t in schema.JobType]),
            jobs_by_method=count_by(((g[1], g[2]) for g in groups if g[0] == schema.JobType.mask),
                                    [m.value for m in MaskMethod]),
            faces_total=sum(int(g[3]) for g in groups),
            cleanup_pending=int(pending),
            last_24h=shape_activity(starts, [(a[0], int(a[1]), int(a[2]), int(a[3])) for a in activity],
                                    int(new_images)),
        )
