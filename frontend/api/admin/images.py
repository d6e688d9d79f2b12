"""The stored images: list, detail (with jobs), delete, and a redirect to the original."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import RedirectResponse

from frontend.api import recording
from frontend.errors import ApiError
from frontend.schemas.archive import StoredImageDetailResponse, StoredImageResponse
from frontend.schemas.face_api import ErrorResponse
from frontend.schemas.pagination import PageParams, PaginatedResponse, page_params
from frontend.services.archive import Archive

router = APIRouter()
STORAGE_ERRORS = {code: {"model": ErrorResponse} for code in (401, 403, 501, 503)}
FOUND = {302: {"description": "Location: a download URL that expires (FACE_API_URL_TTL_S)"}}
NOT_FOUND = {404: {"model": ErrorResponse}}


def _missing(image_id: str) -> ApiError:
    return ApiError(404, f"no image with id {image_id!r}")


@router.get("/images", response_model=PaginatedResponse[StoredImageResponse], responses=STORAGE_ERRORS,
            summary="Stored images, newest first")
async def list_images(page: PageParams = Depends(page_params),
                      archive: Archive = Depends(recording.required_archive)
                      ) -> PaginatedResponse[StoredImageResponse]:
    items, total = await archive.list_images(page.per_page, page.offset)
    return PaginatedResponse[StoredImageResponse].of(items, total, page)


@router.get("/images/{image_id}", response_model=StoredImageDetailResponse,
            responses={**STORAGE_ERRORS, **NOT_FOUND}, summary="One stored image with its jobs")
async def get_image(image_id: str,
                    archive: Archive = Depends(recording.required_archive)) -> StoredImageDetailResponse:
    image = await archive.get_image(image_id)
    if image is None:
        raise _missing(image_id)
    return image


@router.delete("/images/{image_id}", status_code=204, response_class=Response,
               responses={**STORAGE_ERRORS, **NOT_FOUND},
               summary="Delete an image, its jobs and (now, or queued for later) their objects")
async def delete_image(image_id: str, archive: Archive = Depends(recording.required_archive)) -> Response:
    if not await archive.delete_image(image_id):
        raise _missing(image_id)
    return Response(status_code=204)


@router.get("/images/{image_id}/download", status_code=302, response_class=RedirectResponse,
            responses={**FOUND, **STORAGE_ERRORS, **NOT_FOUND}, summary="Redirect to the original upload")
async def download_image(image_id: str,
                         archive: Archive = Depends(recording.required_archive)) -> RedirectResponse:
    url = await archive.original_url(image_id)
    if url is None:
        raise _missing(image_id)
    return RedirectResponse(url, status_code=302)
