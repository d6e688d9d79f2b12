"""What the rest of the frontend may ask of object storage: one small interface.

Two backends implement it: ``local.LocalObjectStore`` (a folder; the embedded
default) and ``s3.S3ObjectStore`` (any S3-compatible server, on aiobotocore).
Keys are relative, slash-separated paths such as ``originals/ab/ab12….jpg``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

MAX_KEY_LENGTH = 255
# Each segment: letters, digits, ".", "_", "-", and not starting with "." (so no "..",
# no hidden files: the local backend keeps its signing key and temp files as dot-files).
_KEY = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9._\-]*(/[A-Za-z0-9_\-][A-Za-z0-9._\-]*)*")


def check_key(key: str) -> str:
    """``key`` itself when it is a valid object key; ValueError otherwise."""
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise ValueError(f"invalid object key {key!r}: use relative slash paths of letters, digits "
                         f"and . _ - (no empty or dot-leading segments), at most {MAX_KEY_LENGTH} characters")
    return key


class ObjectStoreError(Exception):
    """The store could not do what was asked (unreachable, refused, ...)."""


class ObjectNotFound(ObjectStoreError):
    """No object under that key."""


class ObjectStore(Protocol):
    backend: str  # "local" | "s3"

    async def start(self) -> None:
        """Connect, and make the bucket or folder when it is missing and allowed to."""

    async def close(self) -> None: ...

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there."""

    async def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFound when there is none."""

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at ``path`` under ``key`` without holding it in memory (videos)."""

    async def get_file(self, key: str, path: Path) -> None:
        """Write the object to ``path`` without holding it in memory; ObjectNotFound when there is none."""

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    async def exists(self, key: str) -> bool: ...

    async def is_ready(self) -> bool:
        """Reachable and usable right now (for /health); never raises."""

    async def download_url(self, key: str, *, public: bool = False) -> str:
        """A URL that fetches the object until it expires (settings.url_ttl_s).

        S3: a presigned GET URL, signed for the public endpoint when ``public``
        and FACE_API_S3_PUBLIC_ENDPOINT is set. Local: the frontend's own
        HMAC-signed ``/api/v1/files/{key}`` URL. Neither can be altered to
        reach another object or to live longer.
        """
