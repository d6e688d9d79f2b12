"""The job records: list (filtered by type and method), detail, and a redirect to the output."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import RedirectResponse

from frontend.api import recording
from frontend.api.admin.images import FOUND, NOT_FOUND, STORAGE_ERRORS
from frontend.errors import ApiError
from frontend.schemas.archive import JobDetailResponse, JobResponse, JobType
from frontend.schemas.face_api import MaskMethod
from frontend.schemas.pagination import PageParams, PaginatedResponse, page_params
from frontend.services.archive import Archive

router = APIRouter()


def _missing(job_id: str) -> ApiError:
    return ApiError(404, f"no job with id {job_id!r}")


@router.get("/jobs", response_model=PaginatedResponse[JobResponse], responses=STORAGE_ERRORS,
            summary="Job records, newest first")
async def list_jobs(
    page: PageParams = Depends(page_params),
    job_type: JobType | None = Query(None, description="only detect or only mask jobs"),
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
    found, url = await archive.processed_url(job_id)
    if not found:
        raise _missing(job_id)
    if url is None:
        raise ApiError(404, "this job has no processed image")
    return RedirectResponse(url, status_code=302)
