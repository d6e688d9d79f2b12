"""Thumbnails of stored videos (originals and masked outputs) for the admin console: the
first frame, turned upright, as a small JPEG.

A photo's thumbnail is made from its bytes in memory; a video can be hundreds of
megabytes, so it is read from a file: the local backend's own file, or a temporary
copy from S3 (the browser then keeps the thumbnail a day, see api/admin/images.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import av
import numpy as np
from anyio import to_thread
from PIL import Image

from frontend.errors import ApiError
from frontend.imaging.encode import encode_image
from frontend.imaging.thumbnail import QUALITY
from frontend.storage import ObjectNotFound, ObjectStore, ObjectStoreError

# Extensions of the video objects this service writes (originals and outputs).
VIDEO_EXTENSIONS = frozenset({"mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "3gp", "ogv",
                              "flv"})


def is_video_key(key: str) -> bool:
    return key.rsplit(".", 1)[-1].lower() in VIDEO_EXTENSIONS


def first_frame_thumbnail(path: Path, size: int, max_pixels: int) -> bytes:
    """JPEG of the first frame with its long side at most ``size``; ApiError 415 when there is none."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if (stream.codec_context.width or 0) * (stream.codec_context.height or 0) > max_pixels:
                raise ApiError(413, "the stored video's frames are over FACE_API_MAX_IMAGE_PIXELS")
            frame = next(container.decode(stream))
            rgb = frame.to_ndarray(format="rgb24")
            turns = (round(-(frame.rotation or 0)) % 360) // 90  # frame.rotation is anticlockwise
    except (av.error.FFmpegError, IndexError, StopIteration):
        raise ApiError(415, "the stored video has no frame to show") from None
    if turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=-turns))
    image = Image.fromarray(rgb)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return encode_image(np.asarray(image), "jpeg", QUALITY)


async def video_thumbnail(objects: ObjectStore, key: str, what: str, size: int, max_pixels: int) -> bytes:
    """The thumbnail of the video object ``key``; 404 when it is gone, 503 when storage fails."""
    local = getattr(objects, "path", None)  # the local backend: read its file in place
    try:
        if callable(local):
            path = local(key)
            if not path.is_file():
                raise ObjectNotFound(key)
            return await to_thread.run_sync(first_frame_thumbnail, path, size, max_pixels)
        with tempfile.TemporaryDirectory(prefix="face-api-poster-") as folder:
            copy = Path(folder) / "video"
            await objects.get_file(key, copy)
            return await to_thread.run_sync(first_frame_thumbnail, copy, size, max_pixels)
    except ObjectNotFound:
        raise ApiError(404, f"the {what} is no longer in object storage") from None
    except ObjectStoreError:
        raise ApiError(503, "object storage is unavailable; try again shortly",
                       {"Retry-After": "5"}) from None
