"""Names of stored things: the object key and content type of an original or a processed
output, and the canonical form of an image or job id.

Kept apart because recording, reading and deleting all rely on them, and they need neither
the database nor the object store. Originals are content-addressed
(``originals/<sha[:2]>/<sha256>.<ext>``): the same bytes uploaded twice are one object.
Processed outputs are ``processed/<job id>.<ext>``.
"""

from __future__ import annotations

import uuid

# Decoded format (frontend.imaging.decode) -> (extension, content type) of the original.
ORIGINAL_TYPES = {
    "JPEG": ("jpg", "image/jpeg"), "MPO": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"), "BMP": ("bmp", "image/bmp"), "GIF": ("gif", "image/gif"),
    "TIFF": ("tiff", "image/tiff"),
}
# Output format of /mask -> extension of the processed object.
PROCESSED_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}


def original_type(fmt: str | None) -> tuple[str, str]:
    """(extension, content type) of an upload decoded as ``fmt``; unknown formats are kept as .bin."""
    return ORIGINAL_TYPES.get((fmt or "").upper(), ("bin", "application/octet-stream"))


def original_key(sha256: str, fmt: str | None) -> str:
    return f"originals/{sha256[:2]}/{sha256}.{original_type(fmt)[0]}"


def processed_key(job_id: str, output_format: str) -> str:
    return f"processed/{job_id}.{PROCESSED_EXTENSIONS[output_format]}"


def parse_id(value: str) -> str | None:
    """The canonical form of a UUID, or None for anything else (answered 404, never a 500)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None
