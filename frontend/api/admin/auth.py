"""Admin sessions: POST /auth/login, GET /auth/session, POST /auth/logout.

`open_router` (login, logout) is the only part of the admin API served without
the guard; `router` (session) is included behind it like every other admin router.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request, Response

from frontend.api import dependencies as deps
from frontend.auth import admin as admin_auth
from frontend.auth.admin import AdminAuth, AdminIdentity
from frontend.errors import ApiError
from frontend.observability import metrics
from frontend.schemas.admin import AdminSessionResponse, LoginRequest
from frontend.settings import Settings

log = logging.getLogger("face_api.admin")

open_router = APIRouter(prefix="/auth")
router = APIRouter(prefix="/auth")

NO_SESSIONS = ("admin sessions are kept in the database (FACE_API_DATABASE_ENABLED=false): "
               "use HTTP Basic authentication")


def _secure(request: Request, settings: Settings) -> bool:
    # Unset: follow the scheme the request came in with (behind a proxy, its X-Forwarded-Proto
    # when it connects from an address in FACE_API_TRUSTED_PROXIES).
    if settings.admin_cookie_secure is not None:
        return settings.admin_cookie_secure
    return request.url.scheme == "https"


def _set_cookies(response: Response, token: str, csrf_token: str, max_age: int, secure: bool) -> None:
    response.set_cookie(admin_auth.SESSION_COOKIE, token, max_age=max_age, path="/", secure=secure,
                        httponly=True, samesite="strict")
    # Readable by the console's script, which echoes it in X-CSRF-Token.
    response.set_cookie(admin_auth.CSRF_COOKIE, csrf_token, max_age=max_age, path="/", secure=secure,
                        httponly=False, samesite="strict")


async def _login_gate(request: Request) -> tuple[AdminAuth, dict[str, str]]:
    """Checks before the credentials: configured, same-site, under the rate limit.

    Every attempt counts, good or bad, per client address.
    """
    state = deps.admin_state(request)
    deps.refuse_cross_site(request)
    return state, await deps.count_login_attempt(request)


@open_router.post("/login", status_code=204, response_class=Response, responses={
    401: {"description": "wrong username or password"},
    403: {"description": "a cross-site request (login CSRF)"},
    429: {"description": "too many login attempts from this address (FACE_API_RATE_LIMIT_ADMIN_LOGIN)"},
    501: {"description": "no database: sessions cannot be kept; use HTTP Basic"},
    503: {"description": "no admin password configured"},
})
async def login(body: LoginRequest, request: Request,
                gate: tuple[AdminAuth, dict[str, str]] = Depends(_login_gate),
                settings: Settings = Depends(deps.settings)) -> Response:
    """Check the credentials and open a session: 204 with the ``face_api_session`` cookie
    (HttpOnly) and the ``face_api_csrf`` cookie (the console sends its value in X-CSRF-Token)."""
    state, headers = gate
    if not state.check(body.username, body.password):
        log.warning("admin login failed for %r from %s", body.username[:100], deps.client_address(request))
        metrics.AUTH_FAILURES.labels("admin_login").inc()
        raise ApiError(401, admin_auth.BAD_CREDENTIALS, headers)
    if state.sessions is None:
        raise ApiError(501, NO_SESSIONS, headers)
    with deps.session_database():
        previous = request.cookies.get(admin_auth.SESSION_COOKIE)
        if previous:
            await state.sessions.revoke(previous)  # a new login replaces the session it came with
        new = await state.sessions.create(state.username)
    response = Response(status_code=204, headers={**headers, "Cache-Control": "no-store"})
    _set_cookies(response, new.token, new.csrf_token, settings.admin_session_ttl_s,
                 _secure(request, settings))
    return response


@router.get("/session", response_model=AdminSessionResponse)
async def session(identity: AdminIdentity = Depends(deps.admin)) -> AdminSessionResponse:
    """Who is logged in (by session cookie or HTTP Basic); 401 otherwise."""
    return AdminSessionResponse(authenticated=True, username=identity.username)


@open_router.post("/logout", status_code=204, response_class=Response, responses={
    403: {"description": "a cross-site request"}, 503: {"description": "no admin password configured"}})
async def logout(request: Request, settings: Settings = Depends(deps.settings)) -> Response:
    """Revoke the session server-side and clear both cookies; 204 with or without a session."""
    state = deps.admin_state(request)
    deps.refuse_cross_site(request)
    token = request.cookies.get(admin_auth.SESSION_COOKIE)
    if token and state.sessions is not None:
        with deps.session_database():
            await state.sessions.revoke(token)
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    _set_cookies(response, "", "", 0, _secure(request, settings))
    return response
