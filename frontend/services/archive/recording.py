"""Recording a /detect, /mask or preview call: the upload into object storage (once per
distinct SHA-256), its ``images`` row, the masked output, the ``jobs`` row.

Kept apart because it runs inline on every request in storage-backed mode, under a rule
the other parts do not have: a failure here never costs the caller its result. It is
reported instead (``X-Storage-Error``), and an object stored for a record that failed is
queued for deletion.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import databases
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from frontend.imaging.decode import DecodedImage
from frontend.persistence.database import ObservedDatabase
from frontend.persistence.tables import images, jobs
from frontend.schemas.face_api import DetectResponse, MaskResponse
from frontend.services.archive.cleanup import queue_for_deletion
from frontend.services.archive.naming import original_key, original_type, processed_key
from frontend.services.detection import DetectParams
from frontend.services.masking import MaskedPhoto, MaskParams
from frontend.storage import ObjectStore

log = logging.getLogger("face_api.archive")


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


# --- recording it ---

class _StoreStage(Exception):
    """Which dependency failed while recording, for the X-Storage-Error reason."""

    def __init__(self, reason: str, error: Exception):
        super().__init__(f"{reason}: {error!r}")
        self.reason = reason


def _is_sqlite(database: databases.Database) -> bool:
    return database.url.dialect == "sqlite"


# The two statements every recorded call runs, built once (ObservedDatabase.execute_prepared).
_IMAGE_BY_SHA256 = (sa.select(images.c.id, images.c.object_key)
                    .where(images.c.sha256 == sa.bindparam("sha256")))
_INSERT_JOB = sa.insert(jobs).values({name: sa.bindparam(name) for name in (
    "id", "image_id", "job_type", "method", "parameters", "result", "face_count", "model", "total_ms",
    "processed_key", "processed_content_type", "processed_size_bytes", "api_key_id", "created_at")})


class Recorder:
    """The recording part of ``Archive`` (frontend/services/archive/__init__.py)."""

    database: ObservedDatabase
    objects: ObjectStore

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
            row = await self.database.fetch_one_prepared(_IMAGE_BY_SHA256, {"sha256": sha})
        key = row["object_key"] if row is not None else original_key(sha, upload.format)
        stored = False
        with _stage("object storage unavailable"):
            if row is None or not await self.objects.exists(key):
                await self.objects.put(key, upload.data, content_type)
                stored = True
        if row is not None and not stored:
            image_id = row["id"]  # seen before, its object in place: nothing to write for it
        else:
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
                await self.database.execute_prepared(_INSERT_JOB, dict(
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
            await queue_for_deletion(self.database, [key], reason)
        except Exception as error:
            log.warning("orphaned object %s (%s) could not be queued for cleanup: %r", key, reason, error)


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
