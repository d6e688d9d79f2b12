"""FastAPI dependencies shared by the routers.

The ones that only read the request are ``async def``: FastAPI runs a plain ``def``
dependency on its thread pool, a round trip to a thread (and back to the event loop)
per dependency and request, which /api/v1/detect paid eight times per call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Query, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBasic

from frontend.auth import admin as admin_auth
from frontend.auth.admin import AdminAuth, AdminIdentity
from frontend.errors import ApiError
from frontend.inference.served import ServedPipelines
from frontend.inference.triton import TritonClient
from frontend.middleware import client_host
from frontend.observability import metrics
from frontend.services.detection import DetectParams
from frontend.services.recognition.service import Recognition
from frontend.settings import Settings

# The key itself is checked by frontend.auth.access before the upload is read;
# declaring the header here puts it into the OpenAPI description.
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False,
    description="required when FACE_API_API_KEY_ENABLED=true (the default); keys look like xyl_…",
)


async def api_key(key: str | None = Security(_api_key_header)) -> str | None:
    return key


class _Documented:
    """A security scheme that only describes itself in OpenAPI: `admin` reads the request."""

    async def __call__(self, request: Request) -> None:
        return None


class _BasicScheme(_Documented, HTTPBasic):
    pass


class _SessionScheme(_Documented, APIKeyCookie):
    pass


_admin_basic = _BasicScheme(scheme_name="AdminBasic", realm=admin_auth.REALM, auto_error=False,
                            description="the admin credentials (FACE_API_ADMIN_USERNAME / _PASSWORD)")
_admin_session = _SessionScheme(
    name=admin_auth.SESSION_COOKIE, scheme_name="AdminSession", auto_error=False,
    description="set by POST /api/v1/admin/auth/login; unsafe methods also need the "
                f"{admin_auth.CSRF_COOKIE} cookie's value in the {admin_auth.CSRF_HEADER} header")
log = logging.getLogger("face_api.admin")


def admin_state(request: Request) -> AdminAuth:
    """The admin credentials; 503 when none are configured."""
    state: AdminAuth | None = request.app.state.admin
    if state is None:
        raise ApiError(503, admin_auth.NOT_CONFIGURED)
    return state


def unauthorized(request: Request, detail: str) -> ApiError:
    """401, with the Basic challenge unless a page's script asked (no browser prompt there)."""
    challenge = admin_auth.wants_basic_challenge(request.headers)
    headers = {"WWW-Authenticate": f'Basic realm="{admin_auth.REALM}"'} if challenge else None
    return ApiError(401, detail, headers)


def refuse_cross_site(request: Request) -> None:
    if admin_auth.is_cross_site(request.headers, request.headers.get("host")):
        raise ApiError(403, admin_auth.CROSS_SITE)


def client_address(request: Request) -> str:
    # The same address as the rate limits and the request log (FACE_API_TRUSTED_PROXIES).
    return client_host(request.scope) or "unknown"


async def count_login_attempt(request: Request) -> dict[str, str]:
    """Spend one of the client's admin login attempts (FACE_API_RATE_LIMIT_ADMIN_LOGIN):
    the X-RateLimit-* headers, or 429 once they are used up."""
    limited = await request.app.state.access.limit("admin_login", f"ip:{client_address(request)}")
    if limited.status != 200:
        raise ApiError(limited.status, limited.detail, limited.headers)
    return limited.headers


@contextmanager
def session_database() -> Iterator[None]:
    """A failing session store is a 503 that says so, not a 500 or a pretended bad session."""
    try:
        yield
    except Exception as error:
        log.warning("admin session store failed: %r", error)
        raise ApiError(503, "the admin session database is unavailable; try again shortly",
                       {"Retry-After": "5"}) from error


async def _basic(request: Request, state: AdminAuth, username: str, password: str) -> AdminIdentity:
    client = client_address(request)
    locked = state.locked_for(client)
    if locked:
        metrics.RATE_LIMITED.labels("admin_login").inc()
        rate = request.app.state.access.rates["admin_login"]
        raise ApiError(429, f"too many login attempts: {rate}; retry in {locked} s",
                       {"Retry-After": str(locked)})
    if state.check(username, password):
        return AdminIdentity(username, "basic")
    try:
        await count_login_attempt(request)  # wrong guesses spend the login's allowance
    except ApiError as refused:
        if refused.status_code == 429 and refused.headers:
            state.lock(client, float(refused.headers["Retry-After"]))
        raise
    metrics.AUTH_FAILURES.labels("admin_login").inc()
    raise unauthorized(request, admin_auth.BAD_CREDENTIALS)


async def admin(request: Request, _basic_scheme: None = Security(_admin_basic),
                _session_scheme: None = Security(_admin_session)) -> AdminIdentity:
    """The guard of every admin endpoint but login and logout: HTTP Basic or a session cookie.

    Unsafe methods are refused when a browser marks them cross-site, and with a
    session cookie they need its CSRF token in X-CSRF-Token (403 otherwise).
    """
    state = admin_state(request)
    unsafe = request.method in admin_auth.UNSAFE_METHODS
    if unsafe:
        refuse_cross_site(request)
    basic = admin_auth.parse_basic(request.headers.get("authorization"))
    if basic is False:
        metrics.AUTH_FAILURES.labels("admin_login").inc()
        raise unauthorized(request, admin_auth.BAD_CREDENTIALS)
    if basic is not None:
        return await _basic(request, state, *basic)
    token = request.cookies.get(admin_auth.SESSION_COOKIE)
    if not token or state.sessions is None:
        raise unauthorized(request, admin_auth.AUTH_REQUIRED)
    with session_database():
        session = await state.sessions.find(token)
    if session is None:
        raise unauthorized(request, admin_auth.BAD_SESSION)
    if unsafe and not admin_auth.csrf_matches(session.csrf_hash, request.headers.get(admin_auth.CSRF_HEADER)):
        raise ApiError(403, admin_auth.BAD_CSRF)
    return AdminIdentity(session.username, "session")


async def detect_params(
    confidence: float = Query(0.5, ge=0.0, le=1.0, description="minimum confidence threshold"),
    nms_threshold: float = Query(0.4, ge=0.0, le=1.0, description="NMS IoU threshold"),
    max_faces: int = Query(0, ge=0, le=10_000, description="0 means no limit"),
) -> DetectParams:
    """The detection query parameters that /detect and /mask share."""
    return DetectParams(confidence, nms_threshold, max_faces)


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def triton(request: Request) -> TritonClient:
    return request.app.state.triton


async def catalog(request: Request) -> ServedPipelines:
    return request.app.state.catalog


async def recognition(request: Request) -> Recognition:
    return request.app.state.recognition


async def request_id(request: Request) -> str:
    return request.state.request_id
