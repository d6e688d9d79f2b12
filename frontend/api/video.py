"""POST /api/v1/mask/video (queue a video job) and GET /api/v1/mask/video/{job_id} (its state).

Thin: the parameters and dependencies are declared here, the work is
frontend/services/video.py. The POST is guarded like /api/v1/mask (API key and its
rate limit, frontend/auth/access.py, before the upload is read); the GET needs the
same API key that submitted the job, and spends no rate limit (it is polled).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from frontend.api import dependencies as deps
from frontend.api import recording
from frontend.errors import ApiError
from frontend.inference.served import ServedPipelines
from frontend.schemas.face_api import MaskMethod
from frontend.schemas.video import (
    STATUS_ERRORS,
    SUBMIT_ERRORS,
    VideoCodec,
    VideoContainer,
    VideoJobCreated,
    VideoJobStatus,
)
from frontend.services import archive as archiving
from frontend.services import video
from frontend.services.detection import DetectParams
from frontend.settings import Settings

router = APIRouter(prefix="/api/v1/mask/video", tags=["face-api"])


def video_params(
    detect: DetectParams = Depends(deps.detect_params),
    method: MaskMethod = Query(MaskMethod.gaussian, description="how faces are hidden (as /api/v1/mask)"),
    strength: int = Query(199, ge=2, le=1001, description="as /api/v1/mask: blur kernel or block size in "
                                                          "pixels for faces up to 200 px, scaled for larger"),
    padding: float = Query(0.15, ge=0.0, le=2.0, description="grow each box by this fraction of its size"),
    max_missed: int = Query(15, ge=0, le=300, description=(
        "frames a face the detector lost stays masked at its predicted place (tracking)")),
    lookahead: int = Query(8, ge=0, le=60, description=(
        "frames a new face is also masked before it was first found (faces entering, or missed at first)")),
    container: VideoContainer = Query(VideoContainer.mp4, description="output container"),
    codec: VideoCodec = Query(VideoCodec.h264, description="output video codec (webm takes vp9 only)"),
    quality: int = Query(23, ge=0, le=51, description="CRF-like: 0 best, 51 smallest; 23 is visually good"),
    audio: bool = Query(False, description="copy the input's audio track into the output"),
) -> video.VideoRequest:
    return video.VideoRequest.of(detect, method=method.value, strength=strength, padding=padding,
                                 max_missed=max_missed, lookahead=lookahead, container=container.value,
                                 codec=codec.value, quality=quality, audio=audio)


async def status_caller(request: Request, key: str | None = Depends(deps.api_key)) -> str | None:
    """The id of the API key asking (None when API keys are off); 401/403 like the POST."""
    admitted = await request.app.state.access.identify(key)
    if admitted.status != 200:
        raise ApiError(admitted.status, admitted.detail, admitted.headers or None)
    return admitted.key_id


@router.post("", status_code=202, response_model=VideoJobCreated, responses=SUBMIT_ERRORS,
             dependencies=[Depends(deps.api_key)], summary="Queue a video: every face masked in every frame")
async def submit(
    video_file: UploadFile = File(alias="video", description="the video: MP4, MOV, MKV, WebM, AVI, ..."),
    params: video.VideoRequest = Depends(video_params),
    settings: Settings = Depends(deps.settings),
    catalog: ServedPipelines = Depends(deps.catalog),
    archive: archiving.Archive = Depends(recording.required_archive),  # 501 without storage
    api_key_id: str | None = Depends(recording.api_key_id),
) -> JSONResponse:
    created = await video.submit(video_file, params, settings=settings, catalog=catalog, archive=archive,
                                 api_key_id=api_key_id)
    return JSONResponse(created.model_dump(mode="json"), 202, headers={"Location": created.status_url})


@router.get("/{job_id}", response_model=VideoJobStatus, responses=STATUS_ERRORS,
            summary="A video job's state, progress and, when done, its download URL")
async def job_status(
    job_id: str,
    settings: Settings = Depends(deps.settings),
    caller: str | None = Depends(status_caller),
    archive: archiving.Archive = Depends(recording.required_archive),
) -> VideoJobStatus:
    return await video.status(archive, job_id, caller, settings.api_key_enabled)
