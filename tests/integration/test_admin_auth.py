"""Admin authentication: the session store on SQLite and PostgreSQL, and login, sessions,
logout, HTTP Basic, CSRF and cross-site refusals through the real running stack.

The login rate limit has its test in test_rate_limits.py (a stack with a small limit).
"""

from __future__ import annotations

import base64
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from http.cookiejar import CookieJar
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from frontend.app import create_app
from frontend.auth.admin import PURGE_AFTER, AdminSessions, hash_token, new_token
from frontend.persistence import migrate
from frontend.persistence.database import create_database
from frontend.persistence.tables import admin_sessions
from frontend.settings import Settings
from tests.integration.stack import ADMIN_PASSWORD, Stack
from tests.support.routes import OPEN, admin_endpoints

LOGIN = "/api/v1/admin/auth/login"
LOGOUT = "/api/v1/admin/auth/logout"
SESSION = "/api/v1/admin/auth/session"
KEYS = "/api/v1/admin/api-keys"
TTL_S = 43200
T0 = datetime(2030, 5, 17, 12, 0, tzinfo=UTC)


# --- the session store on both databases ---


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/face-api.sqlite3"
        migrate.upgrade(url)
        yield url
        return
    with request.getfixturevalue("postgres_server").database() as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
async def sessions(url):
    async with create_database(url) as database:
        yield AdminSessions(database, TTL_S)


async def stored(sessions: AdminSessions) -> list[dict]:
    return [dict(row._mapping) for row in await sessions.database.fetch_all(sa.select(admin_sessions))]


async def test_session_lives_until_its_ttl(sessions):
    new = await sessions.create("admin", now=T0)
    assert new.session.expires_at == T0 + timedelta(seconds=TTL_S)
    for moment in (T0, T0 + timedelta(seconds=TTL_S - 1)):
        found = await sessions.find(new.token, now=moment)
        assert found is not None and found.username == "admin" and found.id == new.session.id
        assert found.created_at == T0 and found.expires_at == new.session.expires_at
    assert await sessions.find(new.token, now=T0 + timedelta(seconds=TTL_S)) is None
    assert await sessions.find(new.token, now=T0 + timedelta(days=3)) is None


async def test_only_hashes_are_stored(sessions):
    new = await sessions.create("admin", now=T0)
    [row] = await stored(sessions)
    assert row["token_hash"] == hash_token(new.token) and row["csrf_hash"] == hash_token(new.csrf_token)
    assert new.token not in str(row) and new.csrf_token not in str(row)
    # The CSRF token is no session token.
    assert await sessions.find(new.csrf_token, now=T0) is None


async def test_revoked_session_is_gone_at_once(sessions):
    new = await sessions.create("admin", now=T0)
    other = await sessions.create("admin", now=T0)
    assert await sessions.revoke(new.token, now=T0 + timedelta(minutes=1)) is True
    assert await sessions.find(new.token, now=T0 + timedelta(minutes=1)) is None
    assert await sessions.revoke(new.token, now=T0 + timedelta(minutes=2)) is False  # once is enough
    assert await sessions.find(other.token, now=T0 + timedelta(minutes=1)) is not None
    assert await sessions.revoke(new_token()) is False


async def test_unknown_and_malformed_tokens(sessions):
    await sessions.create("admin", now=T0)
    for token in (None, "", new_token(), "x" * 43, "not a token", "' OR 1=1 --"):
        assert await sessions.find(token, now=T0) is None


async def test_times_are_kept_in_utc(sessions):
    """A `now` with another offset is the same instant: expiry does not move with time zones."""
    seoul = T0.astimezone(timezone(timedelta(hours=9)))
    new = await sessions.create("admin", now=seoul)
    assert new.session.expires_at == T0 + timedelta(seconds=TTL_S)
    found = await sessions.find(new.token, now=T0 + timedelta(seconds=TTL_S - 1))
    assert found is not None and found.expires_at.utcoffset() == timedelta(0)
    assert found.expires_at == T0 + timedelta(seconds=TTL_S)
    assert await sessions.find(new.token, now=(T0 + timedelta(seconds=TTL_S)).astimezone(
        timezone(timedelta(hours=-7)))) is None


async def test_login_purges_sessions_expired_over_a_day_ago(sessions):
    old = await sessions.create("admin", now=T0)
    expired = T0 + timedelta(seconds=TTL_S)
    await sessions.create("admin", now=expired + PURGE_AFTER - timedelta(seconds=1))
    assert len(await stored(sessions)) == 2  # expired, but only just: still kept
    await sessions.create("admin", now=expired + PURGE_AFTER + timedelta(seconds=1))
    rows = await stored(sessions)
    assert len(rows) == 2 and hash_token(old.token) not in {row["token_hash"] for row in rows}
    assert await sessions.purge(now=expired + PURGE_AFTER + timedelta(seconds=1)) == 0


# --- through the running stack ---

def basic(username: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def cookies_of(response: httpx.Response) -> dict[str, str]:
    """name -> the whole Set-Cookie line."""
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


def cookie_value(line: str) -> str:
    return line.split(";", 1)[0].split("=", 1)[1]


def attributes(line: str) -> set[str]:
    return {part.strip().lower() for part in line.split(";")[1:]}


class Browser:
    """The console's view: sends back the session cookie and, on writes, the CSRF token."""

    def __init__(self, http: httpx.Client, login: httpx.Response):
        assert login.status_code == 204, login.text
        cookies = cookies_of(login)
        self.http = http
        self.token = cookie_value(cookies["face_api_session"])
        self.csrf = cookie_value(cookies["face_api_csrf"])

    def request(self, method: str, path: str, csrf: str | None = "", **kwargs) -> httpx.Response:
        headers = {"Cookie": f"face_api_session={self.token}; face_api_csrf={self.csrf}",
                   **kwargs.pop("headers", {})}
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf or self.csrf
        return self.http.request(method, path, headers=headers, **kwargs)


class NoCookies(CookieJar):
    """Keeps nothing: every test sends exactly the cookies it names."""

    def extract_cookies(self, response, request) -> None:
        pass


@pytest.fixture(scope="module")
def http(stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30, cookies=NoCookies()) as client:
        yield client


def login(http: httpx.Client, username: str = "admin", password: str = ADMIN_PASSWORD,
          **kwargs) -> httpx.Response:
    return http.post(LOGIN, json={"username": username, "password": password}, **kwargs)


def stack_database(stack: Stack) -> Path:
    return stack.log_path.parent / "face-api.sqlite3"


def test_login_opens_a_server_side_session(stack, http):
    response = login(http)
    assert response.status_code == 204 and response.content == b""
    assert response.headers["cache-control"] == "no-store"
    cookies = cookies_of(response)
    assert set(cookies) == {"face_api_session", "face_api_csrf"}
    session_flags = attributes(cookies["face_api_session"])
    assert {"httponly", "samesite=strict", "path=/", f"max-age={TTL_S}"} <= session_flags
    assert "secure" not in session_flags  # plain http here
    csrf_flags = attributes(cookies["face_api_csrf"])
    assert {"samesite=strict", "path=/", f"max-age={TTL_S}"} <= csrf_flags
    assert "httponly" not in csrf_flags  # the console's script reads it

    browser = Browser(http, response)
    assert browser.request("GET", SESSION, csrf=None).json() == {"authenticated": True, "username": "admin"}
    with closing(sqlite3.connect(stack_database(stack))) as db:
        rows = db.execute("SELECT token_hash, csrf_hash, username FROM admin_sessions").fetchall()
    assert (hash_token(browser.token), hash_token(browser.csrf), "admin") in rows
    assert browser.token not in str(rows) and browser.csrf not in str(rows)


def test_a_forwarded_https_from_an_untrusted_peer_does_not_make_cookies_secure(http):
    # X-Forwarded-Proto counts only from FACE_API_TRUSTED_PROXIES (none here); the trusted
    # case is in test_edge_protections.py.
    response = login(http, headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 204
    for line in cookies_of(response).values():
        assert "secure" not in attributes(line)


@pytest.mark.parametrize(("username", "password"), [
    ("admin", "wrong-password"), ("admin", ADMIN_PASSWORD + " "), ("admin", ADMIN_PASSWORD.upper()),
    ("root", ADMIN_PASSWORD), ("", ""), ("admin", ""),
])
def test_wrong_credentials_open_nothing(http, username, password):
    response = login(http, username, password)
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid username or password"}
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("body", [
    b'{"username": "admin", "password": ', b"not json", b"[]", b'{"username": "admin"}',
    b'{"username": "admin", "password": 123456789012}'])
def test_malformed_login_is_422(http, body):
    response = http.post(LOGIN, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def test_basic_authentication(http):
    ok = http.get(SESSION, headers=basic())
    assert ok.status_code == 200 and ok.json() == {"authenticated": True, "username": "admin"}
    assert "set-cookie" not in ok.headers  # Basic opens no session
    for headers in (basic(password="wrong-password"), basic("root"), {"Authorization": "Basic !!!"},
                    {"Authorization": "Basic " + base64.b64encode(b"no colon").decode()}):
        refused = http.get(SESSION, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.json() == {"detail": "invalid username or password"}
        assert refused.headers["www-authenticate"] == 'Basic realm="face-api admin"'


def test_no_credentials_is_401_without_a_prompt_for_scripts(http):
    response = http.get(SESSION)
    assert response.status_code == 401 and response.json() == {"detail": "admin authentication required"}
    assert response.headers["www-authenticate"] == 'Basic realm="face-api admin"'
    # A page's fetch(): no challenge, or the browser would show its own login prompt.
    scripted = http.get(SESSION, headers={"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"})
    assert scripted.status_code == 401 and "www-authenticate" not in scripted.headers
    # Other schemes are no admin credentials.
    assert http.get(SESSION, headers={"Authorization": "Bearer " + new_token()}).status_code == 401


def test_logout_revokes_the_session_server_side(http):
    browser = Browser(http, login(http))
    other = Browser(http, login(http))
    response = browser.request("POST", LOGOUT)
    assert response.status_code == 204
    cleared = cookies_of(response)
    assert set(cleared) == {"face_api_session", "face_api_csrf"}
    assert all("max-age=0" in attributes(line) for line in cleared.values())
    # A client that kept the cookie anyway gets nowhere.
    gone = browser.request("GET", SESSION, csrf=None)
    assert gone.status_code == 401
    assert gone.json() == {"detail": "the admin session is invalid or has expired: log in again"}
    assert browser.request("POST", KEYS, json={"name": "after logout"}).status_code == 401
    assert other.request("GET", SESSION, csrf=None).status_code == 200  # only that session ended
    # Without a session (or a second time) logout still answers 204.
    assert http.post(LOGOUT).status_code == 204
    assert browser.request("POST", LOGOUT).status_code == 204


def test_expired_session_is_refused(stack, http):
    browser = Browser(http, login(http))
    assert browser.request("GET", SESSION, csrf=None).status_code == 200
    # Move its expiry into the past where the stack keeps it (UTC wall time, as the store writes).
    past = (datetime.now(UTC) - timedelta(seconds=1)).replace(tzinfo=None).isoformat(" ")
    with closing(sqlite3.connect(stack_database(stack))) as db, db:
        changed = db.execute("UPDATE admin_sessions SET expires_at = ? WHERE token_hash = ?",
                             (past, hash_token(browser.token))).rowcount
    assert changed == 1
    response = browser.request("GET", SESSION, csrf=None)
    assert response.status_code == 401
    assert response.json()["detail"] == "the admin session is invalid or has expired: log in again"


def test_new_login_replaces_the_session_it_came_with(http):
    first = Browser(http, login(http))
    second = Browser(http, login(http, headers={"Cookie": f"face_api_session={first.token}"}))
    assert first.request("GET", SESSION, csrf=None).status_code == 401
    assert second.request("GET", SESSION, csrf=None).status_code == 200


def test_cookie_writes_need_the_csrf_token(http):
    browser = Browser(http, login(http))
    other = Browser(http, login(http))
    for csrf in (None, "wrong-token", new_token(), other.csrf, browser.token):
        response = browser.request("POST", KEYS, csrf=csrf, json={"name": "csrf test"})
        assert response.status_code == 403, csrf
        assert response.json() == {"detail": "missing or invalid CSRF token"}
    created = browser.request("POST", KEYS, json={"name": "csrf test"})
    assert created.status_code == 201
    key_id = created.json()["id"]
    path = f"{KEYS}/{key_id}"
    assert browser.request("PATCH", path, csrf=None, json={"is_active": False}).status_code == 403
    assert browser.request("DELETE", path, csrf=None).status_code == 403
    assert browser.request("GET", path, csrf=None).status_code == 200  # reads need no token
    assert browser.request("PATCH", path, json={"is_active": False}).json()["is_active"] is False
    assert browser.request("DELETE", path).status_code == 204


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"},  # another site on this host
    {"Sec-Fetch-Site": "cross-site"},
])
def test_cross_site_writes_are_refused(stack, http, headers):
    """Browsers replay cookies and cached Basic credentials: unsafe cross-site requests are refused."""
    refused = http.post(KEYS, json={"name": "cross-site"}, headers={**basic(), **headers})
    assert refused.status_code == 403 and refused.json() == {"detail": "cross-site request refused"}
    browser = Browser(http, login(http))
    assert browser.request("POST", KEYS, json={"name": "cross-site"}, headers=headers).status_code == 403
    # Login CSRF (logging a victim into the attacker's session) and forced logout too.
    assert login(http, headers=headers).status_code == 403
    assert browser.request("POST", LOGOUT, headers=headers).status_code == 403
    assert browser.request("GET", SESSION, csrf=None).status_code == 200  # still logged in
    # Reads are safe methods: a foreign page cannot see the answer anyway.
    assert http.get(KEYS, headers={**basic(), **headers}).status_code == 200


def test_same_origin_writes_pass(stack, http):
    same = {"Origin": stack.url, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    assert login(http, headers=same).status_code == 204
    created = http.post(KEYS, json={"name": "same origin"}, headers={**basic(), **same})
    assert created.status_code == 201, created.text
    assert http.delete(f"{KEYS}/{created.json()['id']}", headers={**basic(), **same}).status_code == 204


def test_every_admin_endpoint_needs_authentication(stack, http):
    """Enumerated from the app's routes, so an endpoint added later is checked as well."""
    endpoints = [e for e in admin_endpoints(create_app(Settings(admin_password=ADMIN_PASSWORD)))
                 if (e.method, e.path) not in OPEN]
    assert len(endpoints) >= 6
    placeholder = str(uuid.uuid4())
    stale = Browser(http, login(http))
    stale.request("POST", LOGOUT)
    for endpoint in endpoints:
        url = endpoint.url(placeholder)
        for headers in ({}, basic(password="wrong-password"), basic("root"),
                        {"Cookie": f"face_api_session={new_token()}"},
                        {"Cookie": f"face_api_session={stale.token}", "X-CSRF-Token": stale.csrf}):
            response = http.request(endpoint.method, url, headers=headers)
            assert response.status_code == 401, (endpoint.method, url, headers, response.text)
            assert response.headers["content-type"] == "application/json"
