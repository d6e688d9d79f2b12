"""The job records: list (filtered by type and method), detail, a redirect to the output, and
the output's thumbnail."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import RedirectResponse

from frontend.api import dependencies as deps
from frontend.api import recording
from frontend.api.admin.images import (
    FOUND,
    IF_NONE_MATCH,
    NOT_FOUND,
    STORAGE_ERRORS,
    THUMBNAIL,
    THUMBNAIL_SIZE,
    thumbnail_response,
)
from frontend.errors import ApiError
from frontend.schemas.archive import JobDetailResponse, JobResponse, JobType
from frontend.schemas.face_api import MaskMethod
from frontend.schemas.pagination import PageParams, PaginatedResponse, page_params
from frontend.services.archive import Archive
from frontend.settings import Settings

router = APIRouter()
NO_OUTPUT = "this job has no processed image"


def _missing(job_id: str) -> ApiError:
    return ApiError(404, f"no job with id {job_id!r}")


def _output(job_id: str, found: bool, output: str | None) -> str:
    """The job's processed output (its URL or object key), or the 404 saying why there is none."""
    if not found:
        raise _missing(job_id)
    if output is None:
        raise ApiError(404, NO_OUTPUT)
    return output


@router.get("/jobs", response_model=PaginatedResponse[JobResponse], responses=STORAGE_ERRORS,
            summary="Job records, newest first")
async def list_jobs(
    page: PageParams = Depends(page_params),
    job_type: JobType | None = Query(None, description="only jobs of this type (mask_video: video jobs, "
                                                       "with their state and progress)"),
    method: MaskMethod | None = Query(None, description="only mask jobs with this method"),
    archive: Archive = Depends(recording.required_archive),
) -> PaginatedResponse[JobResponse]:
    items, total = await archive.list_jobs(page.per_page, page.offset, job_type and job_type.value,
                                           method and method.value)
    return PaginatedResponse[JobResponse].of(items, total, page)


@router.get("/jobs/{job_id}", response_model=JobDetailResponse, responses={**STORAGE_ERRORS, **NOT_FOUND},
            summary="One job with its detection payload")
async def get_job(job_id: str, archive: Archive = Depends(recording.required_archive)) -> JobDetailResponse:
    job = await archive.get_job(job_id)
    if job is None:
        raise _missing(job_id)
    return job


@router.get("/jobs/{job_id}/download", status_code=302, response_class=RedirectResponse,
            responses={**FOUND, **STORAGE_ERRORS, **NOT_FOUND}, summary="Redirect to the processed image")
async def download_job(job_id: str,
                       archive: Archive = Depends(recording.required_archive)) -> RedirectResponse:
    url = _output(job_id, *await archive.processed_url(job_id))
    return RedirectResponse(url, status_code=302)


@router.get("/jobs/{job_id}/thumbnail", response_class=Response,
            responses={**THUMBNAIL, **STORAGE_ERRORS, **NOT_FOUND},
            summary="A JPEG thumbnail of the processed image (mask jobs)")
async def job_thumbnail(job_id: str, size: int = THUMBNAIL_SIZE,
                        if_none_match: str | None = IF_NONE_MATCH,
                        settings: Settings = Depends(deps.settings),
                        archive: Archive = Depends(recording.required_archive)) -> Response:
    key = _output(job_id, *await archive.processed_object(job_id))
    return await thumbnail_response(archive, key, "processed image", size, if_none_match, settings)
