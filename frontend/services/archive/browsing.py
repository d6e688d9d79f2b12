"""Reading the archive back for the admin API: images and jobs, newest first or one by id,
download URLs of their objects, and the objects' bytes (for thumbnails).

Kept apart because it only reads, and it answers in the admin API's terms: response
schemas, and ApiError 404/503 when an object is missing or the store is down.
"""

from __future__ import annotations

import logging
from typing import Any

import databases
import sqlalchemy as sa

from frontend.auth.api_keys import utc
from frontend.errors import ApiError
from frontend.persistence.tables import images, jobs
from frontend.schemas import archive as schema
from frontend.services.archive.naming import parse_id
from frontend.storage import ObjectNotFound, ObjectStore, ObjectStoreError

log = logging.getLogger("face_api.archive")


class Browser:
    """The reading part of ``Archive`` (frontend/services/archive/__init__.py)."""

    database: databases.Database
    objects: ObjectStore

    async def list_images(self, limit: int, offset: int) -> tuple[list[schema.StoredImageResponse], int]:
        """Newest first."""
        total = await self.database.fetch_val(sa.select(sa.func.count()).select_from(images))
        rows = await self.database.fetch_all(
            _image_query().order_by(images.c.created_at.desc(), images.c.id.desc())
            .limit(limit).offset(offset))
        return [await self._image(row) for row in rows], int(total)

    async def get_image(self, image_id: str) -> schema.StoredImageDetailResponse | None:
        image_id = parse_id(image_id)
        if image_id is None:
            return None
        row = await self.database.fetch_one(_image_query().where(images.c.id == image_id))
        if row is None:
            return None
        job_rows = await self.database.fetch_all(
            _job_query(False).where(jobs.c.image_id == image_id)
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc()))
        image = await self._image(row)
        return schema.StoredImageDetailResponse(**dict(image), jobs=[await self._job(r) for r in job_rows])

    async def list_jobs(self, limit: int, offset: int, job_type: str | None = None,
                        method: str | None = None) -> tuple[list[schema.JobResponse], int]:
        """Newest first, optionally of one type and/or masking method."""
        conditions = []
        if job_type is not None:
            conditions.append(jobs.c.job_type == job_type)
        if method is not None:
            conditions.append(jobs.c.method == method)
        total = await self.database.fetch_val(
            sa.select(sa.func.count()).select_from(jobs).where(sa.true(), *conditions))
        rows = await self.database.fetch_all(
            _job_query(False).where(sa.true(), *conditions)
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset))
        return [await self._job(row) for row in rows], int(total)

    async def get_job(self, job_id: str) -> schema.JobDetailResponse | None:
        job_id = parse_id(job_id)
        if job_id is None:
            return None
        row = await self.database.fetch_one(_job_query(True).where(jobs.c.id == job_id))
        if row is None:
            return None
        job = await self._job(row)
        return schema.JobDetailResponse(**dict(job), result=row["result"])

    async def original_url(self, image_id: str) -> str | None:
        key = await self.original_object(image_id)
        return await self._url(key) if key is not None else None

    async def processed_url(self, job_id: str) -> tuple[bool, str | None]:
        """(the job exists, URL of its processed output or None when it has none)."""
        found, key = await self.processed_object(job_id)
        return found, (await self._url(key, public=True) if key is not None else None)

    async def original_object(self, image_id: str) -> str | None:
        """The object key of an image's original; None when there is no such image."""
        image_id = parse_id(image_id)
        if image_id is None:
            return None
        return await self.database.fetch_val(sa.select(images.c.object_key).where(images.c.id == image_id))

    async def processed_object(self, job_id: str) -> tuple[bool, str | None]:
        """(the job exists, the object key of its processed output or None when it has none)."""
        job_id = parse_id(job_id)
        if job_id is None:
            return False, None
        row = await self.database.fetch_one(sa.select(jobs.c.processed_key).where(jobs.c.id == job_id))
        return (False, None) if row is None else (True, row["processed_key"])

    async def read_object(self, key: str, what: str) -> bytes:
        """An object's bytes. ApiError 404 when the store no longer has it (deleted meanwhile, or
        lost), 503 when the store fails; ``what`` names it in the 404's detail."""
        try:
            return await self.objects.get(key)
        except ObjectNotFound:
            log.warning("object %s is referenced but missing from object storage", key)
            raise ApiError(404, f"the {what} is no longer in object storage") from None
        except ObjectStoreError as error:
            log.warning("cannot read %s: %r", key, error)
            raise ApiError(503, "object storage is unavailable; try again shortly",
                           {"Retry-After": "5"}) from None

    async def _image(self, row: Any) -> schema.StoredImageResponse:
        latest = row["latest_processed"]
        return schema.StoredImageResponse(
            id=row["id"], sha256=row["sha256"], content_type=row["content_type"], width=row["width"],
            height=row["height"], channels=row["channels"], size_bytes=row["size_bytes"],
            job_count=row["job_count"], original_url=await self._url(row["object_key"]),
            processed_url=await self._url(latest, public=True) if latest else None,
            processed_job_id=row["latest_processed_job"] if latest else None,
            created_at=utc(row["created_at"]))

    async def _job(self, row: Any) -> schema.JobResponse:
        key = row["processed_key"]
        queued = row["state"] is not None  # a video job: it has a state and progress
        return schema.JobResponse(
            id=row["id"], image_id=row["image_id"], job_type=row["job_type"], method=row["method"],
            parameters=row["parameters"], face_count=row["face_count"], model=row["model"],
            total_ms=row["total_ms"], processed_url=await self._url(key, public=True) if key else None,
            processed_content_type=row["processed_content_type"],
            processed_size_bytes=row["processed_size_bytes"], api_key_id=row["api_key_id"],
            created_at=utc(row["created_at"]), state=row["state"],
            progress=schema.JobProgress(frames_done=row["frames_done"] or 0, frames_total=row["frames_total"])
            if queued else None, attempts=row["attempts"] if queued else None, error=row["error"],
            started_at=utc(row["started_at"]), finished_at=utc(row["finished_at"]))

    async def _url(self, key: str, public: bool = False) -> str:
        try:
            return await self.objects.download_url(key, public=public)
        except ObjectStoreError as error:
            log.warning("no download URL for %s: %r", key, error)
            raise ApiError(503, "object storage is unavailable; try again shortly",
                           {"Retry-After": "5"}) from None


def _image_query() -> sa.Select:
    job_count = (sa.select(sa.func.count()).select_from(jobs).where(jobs.c.image_id == images.c.id)
                 .scalar_subquery())
    def latest(column: sa.Column) -> sa.ScalarSelect:
        return (sa.select(column).where(jobs.c.image_id == images.c.id, jobs.c.processed_key.is_not(None))
                .order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(1).scalar_subquery())

    return sa.select(images, job_count.label("job_count"),
                     latest(jobs.c.processed_key).label("latest_processed"),
                     latest(jobs.c.id).label("latest_processed_job"))


def _job_query(with_result: bool) -> sa.Select:
    columns = [c for c in jobs.c if with_result or c.name != "result"]
    return sa.select(*columns)
