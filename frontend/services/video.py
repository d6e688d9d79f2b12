"""POST /api/v1/mask/video and GET /api/v1/mask/video/{job_id} below their router.

Submitting does everything that can refuse a video before it is queued, cheapest first:
video jobs on at all (501), the detect pipeline served (503), the key's queued and
running jobs (429), then the upload, streamed to a temporary file within
FACE_API_VIDEO_MAX_BYTES (413), probed in a thread (422: not a video, truncated, no
frames; 413: too long or too large). Only a video that passed all of them is stored
(an ``images`` row, content type video/..., deduplicated by SHA-256 like photos) and
queued (frontend/video/jobs.py); a worker process does the rest (frontend/video/worker.py).

The status answers only the API key that submitted the job (404 for any other), and
hands out the output as a signed download URL, like the admin API's downloads.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from anyio import to_thread
from fastapi import UploadFile
from sqlalchemy.dialects import postgresql, sqlite

from frontend.auth.api_keys import utc
from frontend.errors import ApiError
from frontend.inference.served import ServedPipelines
from frontend.observability.context import note_upload
from frontend.persistence.tables import images
from frontend.schemas import video as schema
from frontend.services.archive import Archive
from frontend.services.archive.naming import parse_id
from frontend.services.detection import DetectParams
from frontend.settings import Settings
from frontend.storage import ObjectStoreError
from frontend.video import io
from frontend.video import jobs as queue
from frontend.video.pipeline import VideoOptions

log = logging.getLogger("face_api.video")

CHUNK_BYTES = 1024 * 1024
STATUS_PATH = "/api/v1/mask/video/{job_id}"
OFF_WITHOUT_WORKERS = "video jobs are off on this service (FACE_API_VIDEO_WORKERS=0)"
OFF_WITHOUT_STORAGE = ("video jobs keep their videos in object storage: set FACE_API_STORAGE_ENABLED=true "
                       "(and FACE_API_VIDEO_WORKERS to 1 or more)")
STORAGE_DOWN = ApiError(503, "object storage is unavailable; try again shortly", {"Retry-After": "5"})
# Extension of the uploaded file's name -> content type of the stored original.
INPUT_TYPES = {"mp4": "video/mp4", "m4v": "video/x-m4v", "mov": "video/quicktime", "mkv": "video/x-matroska",
               "webm": "video/webm", "avi": "video/x-msvideo", "mpg": "video/mpeg", "mpeg": "video/mpeg",
               "ts": "video/mp2t", "3gp": "video/3gpp", "ogv": "video/ogg", "flv": "video/x-flv"}
# What a demuxer's name says when the file name says nothing useful (first match wins).
CONTAINER_EXTENSIONS = (("webm", "webm"), ("matroska", "mkv"), ("mp4", "mp4"), ("mov", "mov"), ("avi", "avi"),
                        ("mpegts", "ts"), ("mpeg", "mpg"), ("ogg", "ogv"), ("flv", "flv"))


@dataclass(frozen=True)
class VideoRequest:
    """The query parameters of POST /api/v1/mask/video, named as VideoOptions names them."""

    method: str
    strength: int
    padding: float
    confidence: float
    nms_threshold: float
    max_faces: int
    max_missed: int
    lookahead: int
    container: str
    codec: str
    quality: int
    audio: bool

    @classmethod
    def of(cls, detect: DetectParams, **rest: Any) -> VideoRequest:
        return cls(confidence=detect.confidence, nms_threshold=detect.nms_threshold,
                   max_faces=detect.max_faces, **rest)

    def parameters(self) -> dict[str, Any]:
        return asdict(self)


# --- refusals that need no upload ---

def check_enabled(settings: Settings, archive: Archive | None) -> Archive:
    if archive is None:
        raise ApiError(501, OFF_WITHOUT_STORAGE)
    if settings.video_workers == 0:
        raise ApiError(501, OFF_WITHOUT_WORKERS)
    return archive


def check_request(request: VideoRequest) -> None:
    """422 for parameters that cannot go together."""
    if request.container == "webm" and request.codec != "vp9":
        raise ApiError(422, "a webm container holds vp9 video: use codec=vp9, or container mp4 or mkv")
    problem = VideoOptions(**request.parameters()).problem()  # the pipeline's own checks (masking)
    if problem:
        raise ApiError(422, problem)


async def check_jobs_per_key(archive: Archive, settings: Settings, api_key_id: str | None) -> None:
    active = await queue.count_active(archive.database, api_key_id)
    if active >= settings.video_max_jobs_per_key:
        whose = "this API key" if api_key_id is not None else "this service (no API keys)"
        raise ApiError(429, f"{active} video jobs of {whose} are queued or running, the most allowed "
                            f"(FACE_API_VIDEO_MAX_JOBS_PER_KEY={settings.video_max_jobs_per_key}); "
                            "submit again when one is done", {"Retry-After": "10"})


# --- the upload ---

async def save_upload(upload: UploadFile, path: Path, max_bytes: int) -> tuple[int, str]:
    """Copy the upload to ``path`` chunk by chunk (never whole in memory): (bytes, SHA-256 hex).
    413 past ``max_bytes``."""
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as file:
        while chunk := await upload.read(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                note_upload(size)
                raise ApiError(413, f"the video is larger than {max_bytes} bytes (FACE_API_VIDEO_MAX_BYTES)")
            digest.update(chunk)
            await to_thread.run_sync(file.write, chunk)
    note_upload(size)
    if size == 0:
        raise ApiError(422, "the upload is empty (0 bytes)")
    return size, digest.hexdigest()


async def probe(path: Path) -> io.VideoInfo:
    """io.probe off the event loop; 422 with its reason when it is not a usable video."""
    try:
        info = await to_thread.run_sync(io.probe, path)
    except io.VideoError as error:
        raise ApiError(422, f"not a usable video: {error}") from None
    if info.frames == 0:
        raise ApiError(422, "not a usable video: it has no frames")
    return info


def check_limits(info: io.VideoInfo, settings: Settings) -> None:
    """413 for a video over the duration or frame-size limits."""
    if info.duration_s > settings.video_max_duration_s:
        raise ApiError(413, f"the video lasts {info.duration_s:.1f} s, longer than "
                            f"{settings.video_max_duration_s:g} s (FACE_API_VIDEO_MAX_DURATION_S)")
    pixels = info.width * info.height
    if pixels > settings.video_max_pixels:
        raise ApiError(413, f"the video's frames are {info.width}x{info.height} = {pixels} pixels, more than "
                            f"{settings.video_max_pixels} (FACE_API_VIDEO_MAX_PIXELS)")


def input_type(container: str, filename: str | None) -> tuple[str, str]:
    """(extension, content type) of the stored original: the file name's when it names a video
    format, else what the demuxer found."""
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    if suffix in INPUT_TYPES:
        return suffix, INPUT_TYPES[suffix]
    name = (container or "").lower()
    if name in INPUT_TYPES:
        return name, INPUT_TYPES[name]
    for marker, extension in CONTAINER_EXTENSIONS:
        if marker in name:
            return extension, INPUT_TYPES[extension]
    return "bin", "application/octet-stream"


def describe(info: Any) -> dict[str, Any]:
    """io.VideoInfo as JSON (the job's ``input``)."""
    described = {field: getattr(info, field) for field in (
        "width", "height", "frames", "duration_s", "rotation", "has_audio", "video_codec", "container",
        "size_bytes")}
    described["fps"] = float(info.fps) if info.fps else None
    return described


# --- submitting ---

async def submit(upload: UploadFile, request: VideoRequest, *, settings: Settings, catalog: ServedPipelines,
                 archive: Archive | None, api_key_id: str | None) -> schema.VideoJobCreated:
    archive = check_enabled(settings, archive)
    check_request(request)
    pipeline = catalog.detect()  # 503 while the detector's detect pipeline is not served
    await check_jobs_per_key(archive, settings, api_key_id)
    with tempfile.TemporaryDirectory(prefix="face-api-upload-", dir=settings.video_temp_dir) as folder:
        suffix = Path(upload.filename or "").suffix.lower()
        # The name's extension helps the demuxer tell apart formats that share one (mov/mp4).
        path = Path(folder) / ("upload" + (suffix if suffix.lstrip(".") in INPUT_TYPES else ""))
        size, sha = await save_upload(upload, path, settings.video_max_bytes)
        info = await probe(path)
        check_limits(info, settings)
        extension, content_type = input_type(info.container, upload.filename)
        image_id = await _store_original(archive, path, sha, size, info, extension, content_type)
    await check_jobs_per_key(archive, settings, api_key_id)  # (again: others may have queued meanwhile)
    job_id = await queue.enqueue(archive.database, queue.NewVideoJob(
        image_id=image_id, method=request.method, parameters=request.parameters(), model=pipeline.detector,
        frames_total=info.frames, info=describe(info), api_key_id=api_key_id))
    log.info("video job %s queued: %dx%d, %s frames, %.1f s", job_id, info.width, info.height, info.frames,
             info.duration_s)
    return schema.VideoJobCreated(job_id=job_id, status_url=STATUS_PATH.format(job_id=job_id),
                                  state=schema.VideoJobState.queued)


async def _store_original(archive: Archive, path: Path, sha: str, size: int, info: Any, extension: str,
                          content_type: str) -> str:
    """The original in object storage (once per distinct SHA-256) and its images row; its id."""
    database = archive.database
    key = await database.fetch_val(sa.select(images.c.object_key).where(images.c.sha256 == sha))
    fresh = key is None
    key = key or f"originals/{sha[:2]}/{sha}.{extension}"
    try:
        if fresh or not await archive.objects.exists(key):
            await archive.objects.put_file(key, path, content_type)
    except ObjectStoreError as error:
        log.warning("cannot store a video original: %r", error)
        raise STORAGE_DOWN from None
    # Concurrent uploads of the same bytes race on the unique sha256: the losers' inserts do nothing.
    insert = sqlite.insert if database.url.dialect == "sqlite" else postgresql.insert
    await database.execute(insert(images).values(
        id=str(uuid.uuid4()), sha256=sha, object_key=key, content_type=content_type, width=info.width,
        height=info.height, channels=3, size_bytes=size, created_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=["sha256"]))
    image_id = await database.fetch_val(sa.select(images.c.id).where(images.c.sha256 == sha))
    if image_id is None:  # deleted between the two statements by an admin
        raise ApiError(503, "the video was deleted while it was stored; submit it again",
                       {"Retry-After": "1"})
    return image_id


# --- the status ---

async def status(archive: Archive | None, job_id: str, api_key_id: str | None,
                 keys_enabled: bool) -> schema.VideoJobStatus:
    """The job as its submitter sees it; 404 for anyone else, and for ids that are no video job."""
    if archive is None:
        raise ApiError(501, OFF_WITHOUT_STORAGE)
    canonical = parse_id(job_id)
    row = await queue.get(archive.database, canonical) if canonical is not None else None
    if row is None or (keys_enabled and row["api_key_id"] != api_key_id):
        raise ApiError(404, f"no video job with id {job_id!r}")
    output = None
    if row["state"] == queue.DONE and row["processed_key"]:
        try:
            url = await archive.objects.download_url(row["processed_key"], public=True)
        except ObjectStoreError as error:
            log.warning("no download URL for %s: %r", row["processed_key"], error)
            raise STORAGE_DOWN from None
        output = schema.VideoOutput(url=url, content_type=row["processed_content_type"] or "video/mp4",
                                    size_bytes=row["processed_size_bytes"] or 0)
    return status_of(row, output)


def status_of(row: Any, output: schema.VideoOutput | None) -> schema.VideoJobStatus:
    """A jobs row as the status body (pure: the URL is made by the caller)."""
    result = row["result"] or {}
    done, total = int(row["frames_done"] or 0), row["frames_total"]
    fraction = min(1.0, done / total) if total else None
    finished = row["state"] == queue.DONE
    return schema.VideoJobStatus(
        job_id=row["id"], state=row["state"],
        progress=schema.VideoProgress(frames_done=done, frames_total=total,
                                      fraction=round(fraction, 4) if fraction is not None else None),
        attempts=int(row["attempts"] or 0), error=row["error"], parameters=row["parameters"] or {},
        input=result.get("input") or {}, faces=row["face_count"] if finished else None,
        faces_masked=result.get("faces_masked") if finished else None,
        timings=result.get("timings") if finished else None, output=output,
        created_at=utc(row["created_at"]), started_at=utc(row["started_at"]),
        finished_at=utc(row["finished_at"]))
