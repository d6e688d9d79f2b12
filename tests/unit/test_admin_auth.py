"""Admin authentication without a running stack: the credential and cross-site checks, the
development password, the production refusal, the structural guard, and the 501/503 answers
of an app without a database or without an admin password (in-process, no Triton needed)."""

from __future__ import annotations

import base64
import stat

import pytest
from fastapi.testclient import TestClient

from frontend.api import dependencies as deps
from frontend.app import check, create_app
from frontend.auth.admin import (
    NOT_CONFIGURED,
    AdminAuth,
    credentials_match,
    csrf_matches,
    hash_token,
    is_cross_site,
    looks_like_token,
    new_token,
    parse_basic,
    wants_basic_challenge,
)
from frontend.settings import Settings
from runtime.admin_password import admin_environment, kept_secret
from tests.support.routes import OPEN, admin_endpoints, calls

PASSWORD = "a-long-admin-password"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# --- credentials ---

@pytest.mark.parametrize(("username", "password", "expected"), [
    ("admin", PASSWORD, True),
    ("admin", PASSWORD + "x", False),
    ("admin", PASSWORD[:-1], False),
    ("admin", "", False),
    ("Admin", PASSWORD, False),
    ("", PASSWORD, False),
    ("admin ", PASSWORD, False),
])
def test_credentials_match_both_exactly(username, password, expected):
    assert credentials_match(username, password, "admin", PASSWORD) is expected


def test_credentials_allow_any_unicode():
    assert credentials_match("ádmin", "pässwörd-✓-long", "ádmin", "pässwörd-✓-long")
    assert not credentials_match("ádmin", "pässwörd-✓-lonG", "ádmin", "pässwörd-✓-long")


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("", None),
    ("Bearer abc", None),
    (basic("admin", "pw"), ("admin", "pw")),
    ("basic " + base64.b64encode(b"admin:pw").decode(), ("admin", "pw")),  # the scheme is case-insensitive
    (basic("admin", "p:w:x"), ("admin", "p:w:x")),  # only the first colon separates
    (basic("", ""), ("", "")),
    ("Basic", False),
    ("Basic !!!notbase64", False),
    ("Basic " + base64.b64encode(b"no-colon").decode(), False),
    ("Basic " + base64.b64encode(b"admin:\xff\xfe").decode(), False),  # not UTF-8
])
def test_parse_basic(header, expected):
    assert parse_basic(header) == expected


# --- tokens ---

def test_tokens_are_random_and_only_their_hash_compares():
    token = new_token()
    assert looks_like_token(token) and token != new_token()
    assert hash_token(token) != token and len(hash_token(token)) == 64
    assert csrf_matches(hash_token(token), token)
    assert not csrf_matches(hash_token(token), new_token())
    assert not csrf_matches(hash_token(token), None)
    assert not csrf_matches(hash_token(token), "")
    for junk in (None, "", "short", token + "x", token[:-1] + "!", 42):
        assert not looks_like_token(junk)


# --- cross-site requests ---

@pytest.mark.parametrize(("headers", "host", "cross"), [
    ({}, "api.example.com", False),  # curl, scripts: no browser headers
    ({"origin": "https://api.example.com"}, "api.example.com", False),
    ({"origin": "https://API.example.com"}, "api.example.com", False),
    ({"origin": "https://api.example.com"}, "api.example.com:443", False),
    ({"origin": "http://127.0.0.1:8080"}, "127.0.0.1:8080", False),
    ({"origin": "http://[::1]:8080"}, "[::1]:8080", False),
    ({"origin": "https://evil.example"}, "api.example.com", True),
    ({"origin": "https://api.example.com.evil.example"}, "api.example.com", True),
    ({"origin": "http://127.0.0.1:9999"}, "127.0.0.1:8080", True),  # another app on this host
    ({"origin": "https://api.example.com"}, "api.example.com:8443", True),
    ({"origin": "null"}, "api.example.com", True),
    ({"origin": "file://"}, "api.example.com", True),
    ({"origin": "https://api.example.com"}, None, True),
    ({"sec-fetch-site": "cross-site"}, "api.example.com", True),
    ({"sec-fetch-site": "same-origin", "origin": "https://api.example.com"}, "api.example.com", False),
    ({"sec-fetch-site": "same-site"}, "api.example.com", False),
])
def test_is_cross_site(headers, host, cross):
    assert is_cross_site(headers, host) is cross


@pytest.mark.parametrize(("headers", "challenge"), [
    ({}, True), ({"sec-fetch-mode": "navigate"}, True),
    ({"sec-fetch-mode": "cors"}, False), ({"sec-fetch-mode": "same-origin"}, False),
])
def test_basic_challenge_only_outside_page_scripts(headers, challenge):
    assert wants_basic_challenge(headers) is challenge


# --- configuration ---

def test_production_needs_an_admin_password():
    signing_key = "k" * 32  # production needs it too (another check)
    with pytest.raises(RuntimeError, match="FACE_API_ADMIN_PASSWORD"):
        check(Settings(environment="production", admin_password=None, url_signing_key=signing_key))
    check(Settings(environment="production", admin_password=PASSWORD, url_signing_key=signing_key))
    check(Settings(environment="development", admin_password=None))


def test_configured_password_is_left_alone(tmp_path):
    said: list[str] = []
    settings = Settings(admin_password=PASSWORD)
    assert admin_environment(settings, said.append, tmp_path / "admin-password") == {}
    assert admin_environment(settings.model_copy(update={"environment": "production"}), said.append,
                             tmp_path / "admin-password") == {}
    assert said == [] and not (tmp_path / "admin-password").exists()


def test_production_without_password_refuses_and_generates_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="production needs admin credentials"):
        admin_environment(Settings(environment="production", admin_password=None), print,
                          tmp_path / "admin-password")
    assert list(tmp_path.iterdir()) == []


def test_development_password_is_generated_once_and_kept(tmp_path):
    path = tmp_path / "run" / "admin-password"
    settings = Settings(environment="development", admin_password=None, admin_username="root")
    said: list[str] = []
    env = admin_environment(settings, said.append, path)
    password = env["FACE_API_ADMIN_PASSWORD"]
    assert len(password) >= 20 and Settings(admin_password=password).admin_password == password
    assert said[0] == f"admin login: root / {password}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == password

    said.clear()
    assert admin_environment(settings, said.append, path) == env  # a restart keeps it
    assert password not in "\n".join(said) and str(path) in said[0]
    assert [p.name for p in path.parent.iterdir()] == ["admin-password"]  # no temporary left


def test_kept_secret_never_replaces_an_existing_one(tmp_path):
    path = tmp_path / "secret"
    assert kept_secret(path, lambda: "first-secret") == ("first-secret", True)
    assert kept_secret(path, lambda: "second-secret") == ("first-secret", False)


def test_unusable_password_file_is_refused(tmp_path):
    path = tmp_path / "admin-password"
    path.write_text("short\n")
    with pytest.raises(RuntimeError, match="delete it"):
        admin_environment(Settings(admin_password=None), print, path)


# --- the routes ---

def test_every_admin_route_but_login_and_logout_is_behind_the_guard():
    app = create_app(Settings(database_enabled=False, api_key_enabled=False, storage_enabled=False))
    endpoints = admin_endpoints(app)
    assert {(e.method, e.path) for e in endpoints} >= OPEN | {("GET", "/api/v1/admin/api-keys"),
                                                               ("GET", "/api/v1/admin/auth/session")}
    for endpoint in endpoints:
        assert endpoint.dependant is not None, f"{endpoint} is not a FastAPI route: cannot tell its guard"
        guarded = deps.admin in calls(endpoint.dependant)
        assert guarded is ((endpoint.method, endpoint.path) not in OPEN), endpoint


def test_without_admin_password_every_admin_endpoint_is_503():
    assert NOT_CONFIGURED == "the admin API is not configured: set FACE_API_ADMIN_PASSWORD"
    app = create_app(Settings(database_enabled=False, api_key_enabled=False, storage_enabled=False,
                              admin_password=None))
    with TestClient(app) as http:
        for endpoint in admin_endpoints(app):
            response = http.request(endpoint.method, endpoint.url("x"),
                                    headers={"Authorization": basic("admin", "x")})
            assert response.status_code == 503, (endpoint, response.text)
            assert response.json() == {"detail": NOT_CONFIGURED}


def test_without_database_api_keys_are_501_and_basic_still_works():
    app = create_app(Settings(database_enabled=False, api_key_enabled=False, storage_enabled=False,
                              admin_password=PASSWORD))
    auth = {"Authorization": basic("admin", PASSWORD)}
    with TestClient(app) as http:
        assert http.get("/api/v1/admin/auth/session", headers=auth).json() == {
            "authenticated": True, "username": "admin"}
        for method, path in [("GET", "/api-keys"), ("POST", "/api-keys"), ("GET", "/api-keys/x"),
                             ("PATCH", "/api-keys/x"), ("DELETE", "/api-keys/x")]:
            body = {"name": "n"} if method in ("POST", "PATCH") else None
            response = http.request(method, "/api/v1/admin" + path, headers=auth, json=body)
            assert response.status_code == 501, (method, path, response.text)
            assert "FACE_API_DATABASE_ENABLED=false" in response.json()["detail"]
        assert http.get("/api/v1/admin/api-keys").status_code == 401  # the guard comes first
        login = http.post("/api/v1/admin/auth/login", json={"username": "admin", "password": PASSWORD})
        assert login.status_code == 501 and "HTTP Basic" in login.json()["detail"]
        wrong = http.post("/api/v1/admin/auth/login", json={"username": "admin", "password": "nope"})
        assert wrong.status_code == 401


def test_openapi_documents_both_admin_schemes():
    spec = create_app(Settings(database_enabled=False, api_key_enabled=False,
                               storage_enabled=False)).openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["AdminBasic"] == {"type": "http", "scheme": "basic", "description": schemes[
        "AdminBasic"]["description"]}
    assert schemes["AdminSession"]["in"] == "cookie" and schemes["AdminSession"]["name"] == "face_api_session"
    keys = spec["paths"]["/api/v1/admin/api-keys"]
    assert keys["get"]["security"] == [{"AdminBasic": []}, {"AdminSession": []}]
    assert "security" not in spec["paths"]["/api/v1/admin/auth/login"]["post"]


def test_basic_lockout_ends_on_time():
    state = AdminAuth("admin", PASSWORD, None)
    assert state.locked_for("10.0.0.1", now=100.0) == 0
    state.lock("10.0.0.1", 19.2, now=100.0)
    assert state.locked_for("10.0.0.1", now=100.0) == 20
    assert state.locked_for("10.0.0.1", now=119.0) == 1
    assert state.locked_for("10.0.0.2", now=110.0) == 0  # per address
    assert state.locked_for("10.0.0.1", now=119.3) == 0
    state.lock("10.0.0.3", 5, now=200.0)  # ended lockouts are forgotten
    assert state.locked_for("10.0.0.1", now=119.0) == 0


def test_a_failing_session_store_is_503(tmp_path):
    """A database without the admin_sessions table (never migrated) stands in for one that fails."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/empty.sqlite3", api_key_enabled=False,
                              storage_enabled=False, rate_limit_enabled=False, admin_password=PASSWORD))
    with TestClient(app) as http:
        login = http.post("/api/v1/admin/auth/login", json={"username": "admin", "password": PASSWORD})
        assert login.status_code == 503, login.text
        assert login.json()["detail"] == "the admin session database is unavailable; try again shortly"
        cookie = {"Cookie": f"face_api_session={new_token()}"}
        assert http.get("/api/v1/admin/auth/session", headers=cookie).status_code == 503
        assert http.post("/api/v1/admin/auth/logout", headers=cookie).status_code == 503
        # HTTP Basic needs no session store.
        assert http.get("/api/v1/admin/auth/session", headers={"Authorization": basic("admin", PASSWORD)}
                        ).status_code == 200
