"""Storage-backed mode: every detect/mask call recorded (original, job, processed output),
read back by the admin API, and deleted again through a cleanup queue.

Originals are content-addressed (``originals/<sha[:2]>/<sha256>.<ext>``): the same bytes
uploaded twice are one image row and one object. Processed outputs are
``processed/<job id>.<ext>``. Metadata lives in the database; a deleted image's
objects become ``cleanup_tasks`` rows first, so an object that cannot be deleted
now (object storage down) is retried later instead of being forgotten.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import databases
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from frontend.auth.api_keys import utc
from frontend.errors import ApiError
from frontend.imaging.decode import DecodedImage
from frontend.persistence.database import create_database
from frontend.persistence.tables import cleanup_tasks, images, jobs
from frontend.schemas import archive as schema
from frontend.schemas.face_api import DetectResponse, MaskMethod, MaskResponse
from frontend.services.detection import DetectParams
from frontend.services.masking import MaskedPhoto, MaskParams
from frontend.settings import Settings
from frontend.storage import ObjectNotFound, ObjectStore, ObjectStoreError, open_object_store

log = logging.getLogger("face_api.archive")

# Decoded format (frontend.imaging.decode) -> (extension, content type) of the original.
ORIGINAL_TYPES = {
    "JPEG": ("jpg", "image/jpeg"), "MPO": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"), "BMP": ("bmp", "image/bmp"), "GIF": ("gif", "image/gif"),
    "TIFF": ("tiff", "image/tiff"),
}
# Output format of /mask -> extension of the processed object.
PROCESSED_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
HOURS = 24
CLEANUP_BATCH = 500
GIVE_UP_AFTER = 3  # failed deletions in a row that end a cleanup run
ERROR_CHARS = 500


# --- pure helpers ---

def original_type(fmt: str | None) -> tuple[str, str]:
    """(extension, content type) of an upload decoded as ``fmt``; unknown formats are kept as .bin."""
    return ORIGINAL_TYPES.get((fmt or "").upper(), ("bin", "application/octet-stream"))


def original_key(sha256: str, fmt: str | None) -> str:
    return f"originals/{sha256[:2]}/{sha256}.{original_type(fmt)[0]}"


def processed_key(job_id: str, output_format: str) -> str:
    return f"processed/{job_id}.{PROCESSED_EXTENSIONS[output_format]}"


def parse_id(value: str) -> str | None:
    """The canonical form of a UUID, or None for anything else (answered 404, never a 500)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


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


# --- what gets recorded ---

@dataclass(frozen=True)
class Upload:
    data: bytes
    format: str | None  # as decoded: "JPEG", "PNG", ...
    width: int
    height: int
    channels: int


@dataclass(frozen=True)
class NewJob:
    job_type: str  # "detect" | "mask"
    parameters: dict[str, Any]
    result: dict[str, Any]
    face_count: int
    model: str
    total_ms: float
    method: str | None = None
    processed: bytes | None = None
    processed_format: str | None = None  # "jpeg" | "png" | "webp"
    processed_content_type: str | None = None
    api_key_id: str | None = None


@dataclass(frozen=True)
class Recorded:
    """What a caller learns about the recording of its call."""

    image_id: str | None = None
    job_id: str | None = None
    storage_ms: float | None = None
    error: str | None = None  # short reason, sent as X-Storage-Error

    def headers(self) -> dict[str, str]:
        if self.error is not None:
            return {"X-Storage-Error": self.error}
        if self.image_id is None or self.job_id is None:
            return {}
        return {"X-Image-Id": self.image_id, "X-Job-Id": self.job_id}


def upload_of(data: bytes, image: DecodedImage) -> Upload:
    return Upload(data, image.format, image.width, image.height, image.channels)


def detect_job(body: DetectResponse, params: DetectParams, api_key_id: str | None) -> NewJob:
    """The job record of a /detect call whose response is ``body``."""
    return NewJob(job_type="detect", parameters=asdict(params),
                  result=body.model_dump(mode="json", exclude={"image_id", "job_id"}),
                  face_count=body.summary.face_count, model=body.processing.model,
                  total_ms=body.processing.total_ms, api_key_id=api_key_id)


def mask_job(body: MaskResponse, content: bytes, media_type: str, detect: DetectParams, params: MaskParams,
             api_key_id: str | None) -> NewJob:
    """The job record of a mask call: ``body`` describes it, ``content`` is the masked photo."""
    return NewJob(job_type="mask", parameters={**asdict(detect), **asdict(params)},
                  result=body.model_dump(mode="json", exclude={"image_id": True, "job_id": True,
                                                               "output": {"image_base64"}}),
                  face_count=body.summary.face_count, model=body.processing.model,
                  total_ms=body.processing.total_ms, method=params.method, processed=content,
                  processed_format=params.format, processed_content_type=media_type, api_key_id=api_key_id)


def stamp(body: DetectResponse, recorded: Recorded, started: float) -> None:
    """Put the record's ids and timing into a response; its total then includes the recording."""
    body.image_id, body.job_id = recorded.image_id, recorded.job_id
    body.profiling.storage_ms = recorded.storage_ms
    body.processing.total_ms = body.profiling.total_ms = _since(started)


@dataclass
class CleanupReport:
    deleted: int = 0  # objects deleted (or already gone)
    kept: int = 0  # tasks dropped because a newer row uses the object again
    failed: int = 0  # tasks that stay queued after a failed try
    stopped: bool = False  # gave up after failures in a row; the rest was not tried
    last_error: str | None = None


class _StoreStage(Exception):
    """Which dependency failed while recording, for the X-Storage-Error reason."""

    def __init__(self, reason: str, error: Exception):
        super().__init__(f"{reason}: {error!r}")
        self.reason = reason


class _Gone(Exception):
    """The image vanished inside the delete transaction (a concurrent delete): roll back."""


def _is_sqlite(database: databases.Database) -> bool:
    return database.url.dialect == "sqlite"


class Archive:
    def __init__(self, database: databases.Database, objects: ObjectStore):
        self.database = database
        self.objects = objects

    # --- recording ---

    async def try_record(self, upload: Upload, job: NewJob) -> Recorded:
        """Record the call; never raises: the caller's result matters more than its record."""
        started = time.perf_counter()
        try:
            image_id, job_id = await self.record(upload, job)
        except _StoreStage as error:
            log.warning("the %s call was not recorded: %s", job.job_type, error)
            return Recorded(storage_ms=_since(started), error=error.reason)
        except Exception:  # a bug here must not cost the caller its result either
            log.exception("the %s call was not recorded", job.job_type)
            return Recorded(storage_ms=_since(started), error="recording failed")
        return Recorded(image_id, job_id, _since(started))

    async def record_mask(self, data: bytes, photo: MaskedPhoto, body: MaskResponse, detect: DetectParams,
                          params: MaskParams, api_key_id: str | None) -> Recorded:
        """Record a /mask or preview call: the upload, the masked output and the job."""
        return await self.try_record(upload_of(data, photo.image), mask_job(
            body, photo.content, photo.media_type, detect, params, api_key_id))

    async def record(self, upload: Upload, job: NewJob) -> tuple[str, str]:
        """Put the original (unless stored already), insert-or-get its image row, put the
        processed output, insert the job. Raises _StoreStage naming what failed."""
        sha = hashlib.sha256(upload.data).hexdigest()
        _, content_type = original_type(upload.format)
        with _stage("database unavailable"):
            row = await self.database.fetch_one(sa.select(images.c.object_key).where(images.c.sha256 == sha))
        key = row["object_key"] if row is not None else original_key(sha, upload.format)
        stored = False
        with _stage("object storage unavailable"):
            if row is None or not await self.objects.exists(key):
                await self.objects.put(key, upload.data, content_type)
                stored = True
        with _stage("database unavailable"):
            image_id, created = await self._insert_or_get_image(sha, key, content_type, upload)
        if created and not stored:  # the row we saw was deleted meanwhile, its object with it
            with _stage("object storage unavailable"):
                await self.objects.put(key, upload.data, content_type)
        job_id = str(uuid.uuid4())
        processed = size = processed_type = None
        if job.processed is not None and job.processed_format is not None:
            processed = processed_key(job_id, job.processed_format)
            size, processed_type = len(job.processed), job.processed_content_type
            with _stage("object storage unavailable"):
                await self.objects.put(processed, job.processed, processed_type or "application/octet-stream")
        try:
            with _stage("database unavailable"):
                await self.database.execute(sa.insert(jobs).values(
                    id=job_id, image_id=image_id, job_type=job.job_type, method=job.method,
                    parameters=job.parameters, result=job.result, face_count=job.face_count, model=job.model,
                    total_ms=job.total_ms, processed_key=processed, processed_content_type=processed_type,
                    processed_size_bytes=size, api_key_id=job.api_key_id, created_at=datetime.now(UTC)))
        except _StoreStage:
            if processed is not None:
                await self._orphan(processed, f"job {job_id} not recorded")
            raise
        return image_id, job_id

    async def _insert_or_get_image(self, sha: str, key: str, content_type: str,
                                   upload: Upload) -> tuple[str, bool]:
        """The image row of ``sha`` and whether this call created it. Concurrent uploads of the
        same bytes race on the unique sha256: the losers' inserts do nothing, all read the winner."""
        new_id = str(uuid.uuid4())
        dialect_insert = sqlite.insert if _is_sqlite(self.database) else postgresql.insert
        await self.database.execute(dialect_insert(images).values(
            id=new_id, sha256=sha, object_key=key, content_type=content_type, width=upload.width,
            height=upload.height, channels=upload.channels, size_bytes=len(upload.data),
            created_at=datetime.now(UTC)).on_conflict_do_nothing(index_elements=["sha256"]))
        image_id = await self.database.fetch_val(sa.select(images.c.id).where(images.c.sha256 == sha))
        if image_id is None:  # deleted between the two statements: rare enough to report
            raise RuntimeError("the image row vanished while it was recorded")
        return image_id, image_id == new_id

    async def _orphan(self, key: str, reason: str) -> None:
        """An object stored for a record that failed: queue its deletion, or say where it is."""
        try:
            await self._queue([key], reason)
        except Exception as error:
            log.warning("orphaned object %s (%s) could not be queued for cleanup: %r", key, reason, error)

    # --- reading ---

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
        return schema.JobResponse(
            id=row["id"], image_id=row["image_id"], job_type=row["job_type"], method=row["method"],
            parameters=row["parameters"], face_count=row["face_count"], model=row["model"],
            total_ms=row["total_ms"], processed_url=await self._url(key, public=True) if key else None,
            processed_content_type=row["processed_content_type"],
            processed_size_bytes=row["processed_size_bytes"], api_key_id=row["api_key_id"],
            created_at=utc(row["created_at"]))

    async def _url(self, key: str, public: bool = False) -> str:
        try:
            return await self.objects.download_url(key, public=public)
        except ObjectStoreError as error:
            log.warning("no download URL for %s: %r", key, error)
            raise ApiError(503, "object storage is unavailable; try again shortly",
                           {"Retry-After": "5"}) from None

    # --- deleting ---

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
                task_ids = await self._queue(keys, f"image {image_id} deleted")
        except _Gone:
            return False
        try:
            await self.run_cleanup(task_ids, give_up_after=1)
        except Exception as error:  # the tasks are queued: a later run finishes them
            log.warning("cleanup after deleting image %s failed, tasks stay queued: %r", image_id, error)
        return True

    async def _queue(self, keys: Sequence[str], reason: str) -> list[str]:
        now = datetime.now(UTC)
        rows = [{"id": str(uuid.uuid4()), "object_key": key, "reason": reason[:100], "attempts": 0,
                 "created_at": now} for key in keys]
        for row in rows:
            await self.database.execute(sa.insert(cleanup_tasks).values(**row))
        return [row["id"] for row in rows]

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


class _stage:
    """``with _stage(reason):`` turns any failure inside into _StoreStage(reason)."""

    def __init__(self, reason: str):
        self.reason = reason

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if isinstance(error, Exception) and not isinstance(error, _StoreStage):
            raise _StoreStage(self.reason, error) from error
        return False


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)


async def clean_up(settings: Settings) -> tuple[CleanupReport, int]:
    """One run of the whole cleanup queue outside the app (start-up, `manage cleanup`):
    (what it did, tasks still queued). Raises when the database or the store cannot be opened."""
    objects = open_object_store(settings)
    await objects.start()
    try:
        async with create_database(settings.database_url) as database:
            archive = Archive(database, objects)
            report = await archive.run_cleanup()
            return report, await archive.pending_cleanup()
    finally:
        await objects.close()
