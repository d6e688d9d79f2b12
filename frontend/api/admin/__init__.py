"""The admin API under /api/v1/admin: one module per resource.

Only the session endpoints login and logout (``auth.open_router``) are open;
every router in GUARDED is included behind the admin guard (cookie session or
HTTP Basic, CSRF checks on unsafe methods), so a new admin endpoint cannot be
added without it: add its module's router to GUARDED.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from frontend.api import dependencies as deps
from frontend.api.admin import api_keys, auth, images, jobs, metrics, preview, stats

GUARDED: list[APIRouter] = [
    auth.router,  # GET /auth/session
    api_keys.router,
    metrics.router,  # the console's live health
    # storage-backed mode (501 while it is off, but /test/mask)
    stats.router,
    images.router,
    jobs.router,
    preview.router,
]

# What the guard may answer, for the OpenAPI description of every guarded endpoint.
GUARD_RESPONSES: dict[int | str, dict] = {
    401: {"description": "no, wrong or expired credentials (session cookie or HTTP Basic)"},
    403: {"description": "a cross-site request, or a session request without its X-CSRF-Token"},
    429: {"description": "too many wrong HTTP Basic passwords from this address"},
    503: {"description": "no admin password configured (FACE_API_ADMIN_PASSWORD)"},
}

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
router.include_router(auth.open_router)
for guarded in GUARDED:
    router.include_router(guarded, dependencies=[Depends(deps.admin)], responses=GUARD_RESPONSES)
