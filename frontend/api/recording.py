"""Request-side access to storage-backed mode: the archive (when it is on) and who is asking."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator

import asyncpg
from fastapi import Request

from frontend.errors import ApiError
from frontend.services.archive import Archive

log = logging.getLogger("face_api.archive")

STORAGE_OFF = "storage-backed mode is off: set FACE_API_STORAGE_ENABLED=true"
# What a database that is down or unreachable raises, on either backend.
DATABASE_ERRORS = (OSError, TimeoutError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


async def archive(request: Request) -> Archive | None:
    """The archive, or None when storage-backed mode is off (nothing is recorded)."""
    return request.app.state.archive


async def required_archive(request: Request) -> AsyncIterator[Archive]:
    """The archive for endpoints that only exist in storage-backed mode: 501 without it,
    503 (not a bare 500) when the database fails while the endpoint runs."""
    found: Archive | None = request.app.state.archive
    if found is None:
        raise ApiError(501, STORAGE_OFF)
    try:
        yield found
    except DATABASE_ERRORS as error:
        log.warning("%s %s: the database failed: %r", request.method, request.url.path, error)
        raise ApiError(503, "the database is unavailable; try again shortly", {"Retry-After": "5"}) from error


async def api_key_id(request: Request) -> str | None:
    """The id of the API key that frontend.auth.access admitted; None without one."""
    return getattr(request.state, "api_key_id", None)
