"""Shapes of the video job API: POST /api/v1/mask/video and GET /api/v1/mask/video/{job_id}."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from frontend.schemas.face_api import PUBLIC_ERRORS, ErrorResponse


class VideoJobState(StrEnum):
    queued = "queued"  # waiting for a worker
    running = "running"  # a worker is on it (progress moves)
    done = "done"  # the output is ready (output.url)
    failed = "failed"  # it will not be done (error says why)


class VideoContainer(StrEnum):
    mp4 = "mp4"
    webm = "webm"
    mkv = "mkv"


class VideoCodec(StrEnum):
    h264 = "h264"
    vp9 = "vp9"


class VideoJobCreated(BaseModel):
    job_id: str
    status_url: str = Field(description="GET it (with the same API key) for state, progress and the output")
    state: VideoJobState


class VideoProgress(BaseModel):
    frames_done: int = Field(description="frames masked and written so far")
    frames_total: int | None = Field(description="frames in the video; null while the container does not say")
    fraction: float | None = Field(description="frames_done / frames_total, 0..1; null without a total")


class VideoOutput(BaseModel):
    url: str = Field(description="download URL of the masked video; expires (FACE_API_URL_TTL_S): "
                                 "GET the status again for a fresh one")
    content_type: str
    size_bytes: int


class VideoJobStatus(BaseModel):
    job_id: str
    state: VideoJobState
    progress: VideoProgress
    attempts: int = Field(description="runs started; a run interrupted by a stop or crash is retried")
    error: str | None = Field(description="why the job failed (or why its last run did); null otherwise")
    parameters: dict[str, Any] = Field(description="the request's query parameters, defaults filled in")
    input: dict[str, Any] = Field(description="what probing the upload found: width, height, fps, frames, "
                                              "duration_s, rotation, has_audio, video_codec, container, "
                                              "size_bytes")
    faces: int | None = Field(description="faces followed over the video (tracks); null until done")
    faces_masked: int | None = Field(
        description="masked face regions summed over the frames; null until done")
    timings: dict[str, float] | None = Field(
        description="milliseconds: queued_ms, download_ms, the pipeline's stages (they overlap), upload_ms, "
                    "total_ms; null until done")
    output: VideoOutput | None = Field(description="null until done")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


# Statuses both endpoints answer with {"detail"} (documented in OpenAPI).
SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    **PUBLIC_ERRORS,
    413: {"model": ErrorResponse,
          "description": "over FACE_API_VIDEO_MAX_BYTES, _MAX_DURATION_S or _MAX_PIXELS"},
    422: {"model": ErrorResponse, "description": "not a video, truncated, no frames, or bad parameters"},
    429: {"model": ErrorResponse,
          "description": "the rate limit of /api/v1/mask, or FACE_API_VIDEO_MAX_JOBS_PER_KEY jobs of this "
                         "key queued or running"},
    501: {"model": ErrorResponse, "description": "video jobs are off (FACE_API_VIDEO_WORKERS=0 or storage "
                                                 "disabled), or the detector has no detect pipeline"},
}
STATUS_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 501, 503)}
