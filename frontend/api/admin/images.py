"""The stored images: list, detail (with jobs), delete, a redirect to the original, and its thumbnail."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import RedirectResponse

from frontend.api import dependencies as deps
from frontend.api import recording
from frontend.errors import ApiError
from frontend.imaging import thumbnail
from frontend.schemas.archive import StoredImageDetailResponse, StoredImageResponse
from frontend.schemas.face_api import ErrorResponse
from frontend.schemas.pagination import PageParams, PaginatedResponse, page_params
from frontend.services.archive import Archive
from frontend.settings import Settings
from frontend.video.poster import is_video_key, video_thumbnail

router = APIRouter()
STORAGE_ERRORS = {code: {"model": ErrorResponse} for code in (401, 403, 501, 503)}
FOUND = {302: {"description": "Location: a download URL that expires (FACE_API_URL_TTL_S)"}}
NOT_FOUND = {404: {"model": ErrorResponse}}
THUMBNAIL = {
    200: {"description": "the thumbnail, a JPEG; `Cache-Control: private, max-age=86400` and an `ETag`",
          "content": {"image/jpeg": {}}},
    304: {"description": "`If-None-Match` names the current ETag: the cached thumbnail is still right"},
    413: {"model": ErrorResponse, "description": "the stored image is over FACE_API_MAX_IMAGE_PIXELS"},
}
THUMBNAIL_CACHE = "private, max-age=86400"  # ids are immutable: an id always shows the same picture
THUMBNAIL_SIZE = Query(thumbnail.DEFAULT_SIZE, ge=thumbnail.MIN_SIZE, le=thumbnail.MAX_SIZE,
                       description="the long side at most, in pixels (never upscaled)")
IF_NONE_MATCH = Header(None, description="an ETag from an earlier answer: 304 when it still holds")


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


@router.get("/images/{image_id}/thumbnail", response_class=Response,
            responses={**THUMBNAIL, **STORAGE_ERRORS, **NOT_FOUND},
            summary="A JPEG thumbnail of the original upload")
async def image_thumbnail(image_id: str, size: int = THUMBNAIL_SIZE,
                          if_none_match: str | None = IF_NONE_MATCH,
                          settings: Settings = Depends(deps.settings),
                          archive: Archive = Depends(recording.required_archive)) -> Response:
    key = await archive.original_object(image_id)
    if key is None:
        raise _missing(image_id)
    return await thumbnail_response(archive, key, "original image", size, if_none_match, settings)


async def thumbnail_response(archive: Archive, key: str, what: str, size: int, if_none_match: str | None,
                             settings: Settings) -> Response:
    """304 when the client has this thumbnail already, else the object's thumbnail (made off the
    event loop). Call it once the id is known to exist, so a deleted one is a 404, never a 304."""
    etag = thumbnail.etag(key, size)
    headers = {"ETag": etag, "Cache-Control": THUMBNAIL_CACHE}
    if thumbnail.etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    if is_video_key(key):  # a video job's original or output: its first frame, read from a file
        content = await video_thumbnail(archive.objects, key, what, size, settings.max_image_pixels)
    else:
        data = await archive.read_object(key, what)
        content = await to_thread.run_sync(thumbnail.make_thumbnail, data, size, settings.max_image_pixels)
    return Response(content, media_type="image/jpeg",
                    headers={**headers, "X-Content-Type-Options": "nosniff"})
