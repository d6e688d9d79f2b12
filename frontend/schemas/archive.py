"""Shapes of the storage-backed admin API: stored images, jobs and the stats."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class JobType(StrEnum):
    detect = "detect"
    mask = "mask"
    mask_video = "mask_video"  # a queued video job (POST /api/v1/mask/video)


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class JobProgress(BaseModel):
    frames_done: int
    frames_total: int | None = Field(description="null while the video's container does not say")


class StoredImageResponse(BaseModel):
    id: str
    sha256: str = Field(description="SHA-256 of the uploaded bytes: the same bytes are one image")
    content_type: str = Field(description="of the original upload, e.g. image/jpeg")
    width: int = Field(description="upright width (after EXIF orientation)")
    height: int
    channels: int
    size_bytes: int = Field(description="bytes of the original upload")
    job_count: int = Field(description="detect and mask calls made on this image")
    original_url: str = Field(description="a download URL of the original; expires (FACE_API_URL_TTL_S)")
    processed_url: str | None = Field(
        description="download URL of the newest processed (masked) output; null when the image was "
                    "never masked. Signed for FACE_API_S3_PUBLIC_ENDPOINT when that is set")
    processed_job_id: str | None = Field(
        None, description="the mask job that made processed_url (for its thumbnail); null like processed_url")
    created_at: datetime = Field(description="first upload, UTC")


class JobResponse(BaseModel):
    id: str
    image_id: str = Field(description="the upload: a photo, or for mask_video jobs the video (content type "
                                      "video/...)")
    job_type: JobType
    method: str | None = Field(description="masking method; null for detect jobs")
    parameters: dict[str, Any] = Field(description="the call's query parameters, defaults filled in")
    face_count: int = Field(
        description="faces found; mask_video: faces followed over the video (0 until done)")
    model: str = Field(description="detector that ran")
    total_ms: float = Field(description="processing time of the call, recording excluded (mask_video: of the "
                                        "worker's run, 0 until done)")
    processed_url: str | None = Field(description="download URL of the masked output; null for detect (and "
                                                  "for a video job until it is done)")
    processed_content_type: str | None
    processed_size_bytes: int | None
    api_key_id: str | None = Field(description="the API key that made the call; null for admin previews")
    created_at: datetime
    # --- video jobs only; null for photo jobs, which are done when they are recorded ---
    state: JobState | None = Field(None, description="mask_video: queued, running, done or failed")
    progress: JobProgress | None = Field(None, description="mask_video: frames masked so far")
    attempts: int | None = Field(None, description="mask_video: runs started (interrupted runs are retried)")
    error: str | None = Field(None, description="mask_video: why it failed")
    started_at: datetime | None = Field(None, description="mask_video: start of the current or last run")
    finished_at: datetime | None = Field(None)


class JobDetailResponse(JobResponse):
    result: dict[str, Any] = Field(
        description="the response payload of the call: DetectResponse fields (mask jobs add masking and "
                    "output, without image_base64)")


class StoredImageDetailResponse(StoredImageResponse):
    jobs: list[JobResponse] = Field(description="every job on this image, newest first")


class ActivityHour(BaseModel):
    hour: datetime = Field(description="start of the clock hour, UTC")
    detect: int
    mask: int
    faces: int


class Activity(BaseModel):
    since: datetime = Field(description="start of the window: the 24 clock hours ending with the current one")
    jobs: int
    detect: int
    mask: int
    faces: int
    images: int = Field(description="new images (first uploads) in the window")
    hourly: list[ActivityHour] = Field(description="24 entries, oldest first, zero-filled")


class StatsResponse(BaseModel):
    images_total: int
    images_bytes: int = Field(description="bytes of the stored originals")
    processed_bytes: int = Field(description="bytes of the stored processed outputs")
    jobs_total: int
    jobs_by_type: dict[str, int] = Field(description="detect, mask and mask_video (video jobs, whatever "
                                                     "their state), always all three")
    jobs_by_method: dict[str, int] = Field(description="mask jobs per method, every method listed")
    faces_total: int = Field(description="faces found over all jobs")
    cleanup_pending: int = Field(description="objects waiting to be deleted from object storage")
    last_24h: Activity
