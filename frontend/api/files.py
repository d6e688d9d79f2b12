"""GET /api/v1/files/{key}: the local backend's signed download links.

No API key: the signature is the credential (frontend/storage/signing.py). With
the s3 backend, links are presigned S3 URLs and this route answers 501.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from frontend.errors import ApiError
from frontend.storage import ObjectNotFound, ObjectStoreError
from frontend.storage.signing import ExpiredLink, InvalidLink
from frontend.video.poster import is_video_key

# Types that mimetypes may not know on every system.
VIDEO_TYPES = {"mkv": "video/x-matroska", "webm": "video/webm", "mp4": "video/mp4"}

router = APIRouter(tags=["files"])

ERRORS = {403: {"description": "invalid download link, or download link expired"},
          404: {"description": "the object no longer exists"},
          501: {"description": "storage is disabled, or the s3 backend serves its own links"},
          503: {"description": "object storage is unavailable"}}


@router.get("/api/v1/files/{key:path}", response_class=Response, responses={
    200: {"description": "the object's bytes", "content": {"image/*": {}, "application/octet-stream": {}}},
    **ERRORS})
async def download(request: Request, key: str, expires: str | None = None,
                   signature: str | None = None) -> Response:
    """An object behind a link from ``processed_url`` and the like; it works until ``expires``."""
    store = getattr(request.app.state, "objects", None)
    if store is None or store.backend != "local":
        raise ApiError(501, "download links are served here only by the local storage backend")
    try:
        seconds_left = store.signer.verify(key, expires, signature)
        if is_video_key(key):  # up to FACE_API_VIDEO_MAX_BYTES: sent from the file, ranges allowed
            return _video_file(store.path(key), key, seconds_left)
        data = await store.get(key)
    except (InvalidLink, ExpiredLink) as error:
        raise ApiError(403, str(error)) from None
    except ObjectNotFound:
        raise ApiError(404, "the file no longer exists") from None
    except ValueError:  # a key no link was ever made for
        raise ApiError(403, "invalid download link") from None
    except ObjectStoreError:
        raise ApiError(503, "object storage is unavailable; try again shortly",
                       {"Retry-After": "5"}) from None
    return Response(data, media_type=_type_of(key), headers=_headers(seconds_left))


def _type_of(key: str) -> str:
    return mimetypes.guess_type(key)[0] or VIDEO_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")


def _headers(seconds_left: int) -> dict[str, str]:
    return {
        "Cache-Control": f"private, max-age={seconds_left}",
        "X-Content-Type-Options": "nosniff",
        # Served from the API's origin: never let an object act as a page there.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }


def _video_file(path: Path, key: str, seconds_left: int) -> FileResponse:
    if not path.is_file():
        raise ApiError(404, "the file no longer exists")
    return FileResponse(path, media_type=_type_of(key), headers=_headers(seconds_left))
