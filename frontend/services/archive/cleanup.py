"""Deleting an image and its jobs, and the cleanup queue that deletes their objects.

Kept apart because deletion spans two stores that cannot share a transaction: the rows
go in one database transaction that also queues each object as a ``cleanup_tasks`` row,
and the objects are deleted after it, from the queue. An object that cannot be deleted
now (object storage down) stays queued and is retried later instead of being forgotten.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import databases
import sqlalchemy as sa

from frontend.persistence.tables import cleanup_tasks, images, jobs
from frontend.services.archive.naming import parse_id
from frontend.storage import ObjectStore, ObjectStoreError

log = logging.getLogger("face_api.archive")

CLEANUP_BATCH = 500
GIVE_UP_AFTER = 3  # failed deletions in a row that end a cleanup run
ERROR_CHARS = 500


@dataclass
class CleanupReport:
    deleted: int = 0  # objects deleted (or already gone)
    kept: int = 0  # tasks dropped because a newer row uses the object again
    failed: int = 0  # tasks that stay queued after a failed try
    stopped: bool = False  # gave up after failures in a row; the rest was not tried
    last_error: str | None = None


class _Gone(Exception):
    """The image vanished inside the delete transaction (a concurrent delete): roll back."""


async def queue_for_deletion(database: databases.Database, keys: Sequence[str], reason: str) -> list[str]:
    """One cleanup task per object key; the ids of the tasks."""
    now = datetime.now(UTC)
    rows = [{"id": str(uuid.uuid4()), "object_key": key, "reason": reason[:100], "attempts": 0,
             "created_at": now} for key in keys]
    for row in rows:
        await database.execute(sa.insert(cleanup_tasks).values(**row))
    return [row["id"] for row in rows]


class Cleaner:
    """The deleting part of ``Archive`` (frontend/services/archive/__init__.py)."""

    database: databases.Database
    objects: ObjectStore

    async def delete_image(self, image_id: str) -> bool:
        """Delete the image, its jobs, and (through the cleanup queue) their objects; False when
        there is no such image. The metadata is gone when this returns; objects that could not
        be deleted now stay queued."""
        image_id = parse_id(image_id)
        if image_id is None:
            return False
        try:
            async with self.database.transaction():
                processed = await self.database.fetch_all(
                    sa.delete(jobs).where(jobs.c.image_id == image_id).returning(jobs.c.processed_key))
                original = await self.database.fetch_val(
                    sa.delete(images).where(images.c.id == image_id).returning(images.c.object_key))
                if original is None:
                    raise _Gone
                keys = [original, *(r["processed_key"] for r in processed if r["processed_key"])]
                task_ids = await queue_for_deletion(self.database, keys, f"image {image_id} deleted")
        except _Gone:
            return False
        try:
            await self.run_cleanup(task_ids, give_up_after=1)
        except Exception as error:  # the tasks are queued: a later run finishes them
            log.warning("cleanup after deleting image %s failed, tasks stay queued: %r", image_id, error)
        return True

    async def pending_cleanup(self) -> int:
        return int(await self.database.fetch_val(sa.select(sa.func.count()).select_from(cleanup_tasks)))

    async def run_cleanup(self, task_ids: Sequence[str] | None = None,
                          give_up_after: int = GIVE_UP_AFTER) -> CleanupReport:
        """Work through the queue (or only ``task_ids``), oldest first: delete each object
        and its task; a failure counts an attempt and keeps the task. After ``give_up_after``
        failures in a row the run stops (the store is down: each try would only wait for its
        timeout). An object that an image or job row references again (the same bytes
        uploaded after the delete) is not deleted: only its task is."""
        report = CleanupReport()
        started = datetime.now(UTC)
        in_a_row = 0
        while True:
            # A failed task gets last_attempt_at = now, which takes it out of this run.
            query = sa.select(cleanup_tasks.c.id, cleanup_tasks.c.object_key).where(sa.or_(
                cleanup_tasks.c.last_attempt_at.is_(None), cleanup_tasks.c.last_attempt_at < started))
            if task_ids is not None:
                query = query.where(cleanup_tasks.c.id.in_(task_ids))
            rows = await self.database.fetch_all(
                query.order_by(cleanup_tasks.c.created_at, cleanup_tasks.c.id).limit(CLEANUP_BATCH))
            if not rows:
                return report
            for row in rows:
                in_a_row = 0 if await self._clean(row["id"], row["object_key"], report) else in_a_row + 1
                if in_a_row >= give_up_after:
                    report.stopped = True
                    return report

    async def _clean(self, task_id: str, key: str, report: CleanupReport) -> bool:
        """One task; False when the object could not be deleted (the task stays)."""
        if await self._referenced(key):
            report.kept += 1
        else:
            try:
                await self.objects.delete(key)
                report.deleted += 1
            except ObjectStoreError as error:
                report.failed += 1
                message = f"{type(error).__name__}: {error}"[:ERROR_CHARS]
                report.last_error = f"{key}: {message}"
                await self.database.execute(
                    sa.update(cleanup_tasks).where(cleanup_tasks.c.id == task_id)
                    .values(attempts=cleanup_tasks.c.attempts + 1, last_error=message,
                            last_attempt_at=datetime.now(UTC)))
                return False
        await self.database.execute(sa.delete(cleanup_tasks).where(cleanup_tasks.c.id == task_id))
        return True

    async def _referenced(self, key: str) -> bool:
        original = await self.database.fetch_val(
            sa.select(images.c.id).where(images.c.object_key == key).limit(1))
        if original is not None:
            return True
        return await self.database.fetch_val(
            sa.select(jobs.c.id).where(jobs.c.processed_key == key).limit(1)) is not None
