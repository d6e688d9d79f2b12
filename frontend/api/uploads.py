"""Reading multipart uploads within the size limit."""

from __future__ import annotations

from fastapi import UploadFile

from frontend.errors import ApiError
from frontend.observability.context import note_upload


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """The upload's bytes; 413 past ``max_bytes`` (read no further than one byte beyond)."""
    data = await upload.read(max_bytes + 1)
    note_upload(len(data))
    if len(data) > max_bytes:
        raise ApiError(413, f"the upload is larger than {max_bytes} bytes (FACE_API_MAX_UPLOAD_BYTES)")
    return data
