"""Edge protections without a stack: page bounds, trusted proxies, body deadlines, canonical
link expiries, private state files, offline API docs and the ./face-api front door."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from frontend import errors
from frontend.middleware import RequestContext
from frontend.persistence.database import ensure_sqlite_folder, make_private_file
from frontend.ratelimit import Rate, SqliteStore
from frontend.schemas.pagination import MAX_PAGE, MAX_PER_PAGE, PageParams, page_params
from frontend.settings import Settings
from frontend.storage.signing import InvalidLink, UrlSigner

ROOT = Path(__file__).resolve().parents[2]


# --- 1. pages ---

def test_page_is_bounded_so_the_offset_cannot_overflow():
    app = FastAPI()
    errors.install(app)

    @app.get("/list")
    def listing(page: PageParams = Depends(page_params)) -> dict:
        return {"offset": page.offset}

    http = TestClient(app)
    for huge in ("99999999999999999999", str(MAX_PAGE + 1)):
        response = http.get("/list", params={"page": huge})
        assert response.status_code == 422
        assert response.json() == {"detail": f"page: Input should be less than or equal to {MAX_PAGE}"}
    deepest = http.get("/list", params={"page": MAX_PAGE, "per_page": MAX_PER_PAGE}).json()["offset"]
    assert deepest < 2**40  # far below SQLite's and PostgreSQL's 2^63
    with pytest.raises(ValidationError):
        PageParams(page=MAX_PAGE + 1)


def test_an_unforeseen_error_is_a_json_500_without_the_exceptions_text():
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("secret path /srv/keys")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "internal error"}
    with pytest.raises(RuntimeError):  # still raised, so the server logs its traceback
        TestClient(app).get("/boom")


# --- 2. trusted proxies ---

@pytest.mark.parametrize(("value", "normalised"), [
    ("", ""), (" 127.0.0.1 , 10.0.0.0/8,", "127.0.0.1,10.0.0.0/8"), ("*", "*"),
    ("::1,fd00::/8", "::1,fd00::/8"),
])
def test_trusted_proxies_are_addresses_or_networks(value, normalised):
    assert Settings(trusted_proxies=value).trusted_proxies == normalised


@pytest.mark.parametrize("value", ["10.0.0.1/8", "proxy.example", "127.0.0.1,*", "300.1.1.1"])
def test_trusted_proxies_refuse_what_gunicorn_would_misread(value):
    with pytest.raises(ValidationError, match="FACE_API_TRUSTED_PROXIES|neither an IP address"):
        Settings(trusted_proxies=value)


def test_trusted_proxies_default_to_none():
    assert Settings().trusted_proxies == ""


@pytest.mark.parametrize("value", ["", "10.0.0.2,10.1.0.0/16"])
def test_gunicorn_gets_the_trusted_proxies(monkeypatch, value):
    """Without the setting gunicorn (and so uvicorn) believes X-Forwarded-* from 127.0.0.1 and ::1;
    frontend.gunicorn_conf (which serve and the container image both load) hands it over."""
    import importlib

    from gunicorn.config import Config

    import frontend.gunicorn_conf as conf

    monkeypatch.setenv("FACE_API_TRUSTED_PROXIES", value)
    config = Config()
    config.set("forwarded_allow_ips", importlib.reload(conf).forwarded_allow_ips)
    assert config.forwarded_allow_ips == [part for part in value.split(",") if part]


def test_an_empty_allow_list_trusts_no_one():
    """What gunicorn makes of --forwarded-allow-ips= is what uvicorn's worker gets."""
    from gunicorn.config import Config
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    config = Config()
    config.set("forwarded_allow_ips", "")
    allowed = config.forwarded_allow_ips
    assert allowed == []
    seen = {}

    async def app(scope, receive, send):
        seen.update(client=scope["client"], scheme=scope["scheme"])

    scope = {"type": "http", "scheme": "http", "client": ("127.0.0.1", 5000),
             "headers": [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]}
    asyncio.run(ProxyHeadersMiddleware(app, trusted_hosts=allowed)(scope, None, None))
    assert seen == {"client": ("127.0.0.1", 5000), "scheme": "http"}


# --- 3. slow uploads ---

async def _app_reading_the_body(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":  # FastAPI answers 400 after Starlette's ClientDisconnect
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"There was an error parsing the body"})
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _upload_scope() -> dict:
    return {"type": "http", "path": "/api/v1/detect", "method": "POST",
            "headers": [(b"content-length", b"1000")], "client": ("127.0.0.1", 1)}


async def _trickle(middleware, sent: list, stop: asyncio.Event) -> None:
    async def receive():
        if stop.is_set():
            return {"type": "http.disconnect"}
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def send(message):
        sent.append(message)

    await middleware(_upload_scope(), receive, send)


def test_a_trickled_body_gets_408_at_its_deadline():
    middleware = RequestContext(_app_reading_the_body, 1000, body_timeout_s=0.4)
    sent: list = []
    started = time.monotonic()
    asyncio.run(_trickle(middleware, sent, asyncio.Event()))
    assert 0.35 < time.monotonic() - started < 1.5
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert b"FACE_API_BODY_TIMEOUT_S" in sent[1]["body"]
    assert len(sent) == 2  # the application's own answer (its error) goes nowhere
    assert middleware.uploads == 0


def test_an_application_failing_over_the_lost_body_does_not_reach_the_server():
    """After the 408, an error of the application over the body it never got is not a 500 in the log."""
    async def app(scope, receive, send):
        while (await receive())["type"] == "http.request":
            pass
        raise RuntimeError("client disconnected")

    middleware = RequestContext(app, 1000, body_timeout_s=0.2)
    sent: list = []
    asyncio.run(_trickle(middleware, sent, asyncio.Event()))
    assert [m.get("status") for m in sent] == [408, None] and middleware.uploads == 0


def test_a_body_that_arrives_in_time_passes_and_later_receives_have_no_deadline():
    async def app(scope, receive, send):
        await _app_reading_the_body(scope, receive, send)
        assert (await receive())["type"] == "http.disconnect"  # waits past the deadline

    async def main():
        middleware = RequestContext(app, 1000, body_timeout_s=0.2)
        chunks = [{"type": "http.request", "body": b"ab", "more_body": True},
                  {"type": "http.request", "body": b"c", "more_body": False}]

        async def receive():
            if chunks:
                return chunks.pop(0)
            await asyncio.sleep(0.4)
            return {"type": "http.disconnect"}

        sent = []

        async def send(message):
            sent.append(message)

        await middleware(_upload_scope(), receive, send)
        return middleware, sent

    middleware, sent = asyncio.run(main())
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"abc"
    assert middleware.uploads == 0


def test_uploads_in_progress_are_capped_per_worker():
    async def main():
        middleware = RequestContext(_app_reading_the_body, 1000, body_timeout_s=5, max_uploads_in_progress=2)
        stop = asyncio.Event()
        slow = [[], []]
        tasks = [asyncio.create_task(_trickle(middleware, sent, stop)) for sent in slow]
        await asyncio.sleep(0.1)
        assert middleware.uploads == 2
        refused: list = []
        await _trickle(middleware, refused, stop)
        stop.set()
        await asyncio.gather(*tasks)
        return middleware, refused

    middleware, refused = asyncio.run(main())
    assert refused[0]["status"] == 503
    headers = dict(refused[0]["headers"])
    assert headers[b"retry-after"] == b"2" and headers[b"connection"] == b"close"
    assert b"FACE_API_MAX_UPLOADS_IN_PROGRESS" in refused[1]["body"]
    assert middleware.uploads == 0


def test_requests_without_a_body_are_not_counted_or_timed():
    async def app(scope, receive, send):
        await asyncio.sleep(0.3)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = RequestContext(app, 1000, body_timeout_s=0.1, max_uploads_in_progress=1)
    middleware.uploads = 1  # full: a GET still passes
    sent: list = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/health", "method": "GET", "headers": [], "client": None}
    asyncio.run(middleware(scope, None, send))
    assert sent[0]["status"] == 204


# --- 5. signed links ---

@pytest.mark.parametrize("spelling", ["0{}", "00{}", "+{}", " {}", "{} ", "{}.0", "-{}", "{}\n"])
def test_only_the_canonical_expiry_is_accepted(spelling):
    signer = UrlSigner(b"k" * 32, 900, lambda: 1_800_000_000.0)
    expires = 1_800_000_900
    signature = signer.signature("originals/a.jpg", expires)
    assert signer.verify("originals/a.jpg", str(expires), signature) == 900
    with pytest.raises(InvalidLink):
        signer.verify("originals/a.jpg", spelling.format(expires), signature)


def test_non_ascii_digits_are_refused():
    signer = UrlSigner(b"k" * 32, 900, lambda: 0.0)
    arabic = "١٢٣"  # int() reads these as 123
    with pytest.raises(InvalidLink):
        signer.verify("originals/a.jpg", arabic, signer.signature("originals/a.jpg", 123))


# --- 6. ./face-api ---

@pytest.fixture
def face_api(tmp_path):
    """Runs ./face-api with a PATH that has only what printing the help takes: were the
    bootstrap reached, dpkg-query, apt-get and pip would be missing and it would fail."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sed", "dirname"):
        (tools / tool).symlink_to(shutil.which(tool))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["/bin/bash", str(ROOT / "face-api"), *args], capture_output=True, text=True,
                              timeout=30, env={"PATH": str(tools), "HOME": str(tmp_path)})

    return run


def test_an_unknown_subcommand_is_an_error(face_api):
    done = face_api("modles")
    assert done.returncode == 2
    assert "unknown subcommand: modles" in done.stderr
    assert "./face-api serve" in done.stderr and done.stdout == ""


@pytest.mark.parametrize("args", [(), ("help",), ("-h",), ("--help",)])
def test_help_exits_zero(face_api, args):
    done = face_api(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("The one entry point of the face API")
    assert "./face-api help" in done.stdout and "set -euo" not in done.stdout
    assert "unknown" not in done.stderr


# --- 7. private state ---

def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_state_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        database = tmp_path / "state" / "deep" / "face-api.sqlite3"
        ensure_sqlite_folder(f"sqlite:///{database}")
        with sqlite3.connect(database) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE t (x)")
            db.execute("INSERT INTO t VALUES (1)")
            made = {p.name for p in database.parent.iterdir()}
            assert {"face-api.sqlite3-wal", "face-api.sqlite3-shm"} <= made
        store = SqliteStore(tmp_path / "limits" / "rate-limits.sqlite3")
        store.hit_sync("k", Rate.parse("1/minute"))
        for folder in (tmp_path / "state", tmp_path / "state" / "deep", tmp_path / "limits"):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert len(files) >= 5 and all(private(p) for p in files), {p: oct(p.stat().st_mode) for p in files}
    finally:
        os.umask(old)


def test_an_existing_readable_database_is_made_private(tmp_path):
    path = tmp_path / "old.sqlite3"
    path.write_bytes(b"")
    path.chmod(0o644)
    make_private_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_local_object_store_keeps_its_folders_private(tmp_path):
    from frontend.storage.local import LocalObjectStore

    old = os.umask(0o022)
    try:
        store = LocalObjectStore(tmp_path / "objects", UrlSigner(b"k" * 32, 900))

        async def main():
            await store.start()
            await store.put("originals/ab/cd.jpg", b"photo", "image/jpeg")

        asyncio.run(main())
    finally:
        os.umask(old)
    everything = list((tmp_path / "objects").rglob("*")) + [tmp_path / "objects"]
    assert len(everything) == 4 and all(private(p) for p in everything)


# --- 4. API docs ---

def test_docs_pages_load_only_their_own_files():
    from frontend.app import create_app

    app = create_app(Settings(database_enabled=False, api_key_enabled=False, storage_enabled=False))
    http = TestClient(app)
    for page in ("/docs", "/redoc"):
        response = http.get(page)
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "http" not in policy
        references = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert references and all(ref.startswith("/docs/assets/") for ref in references), references
        assert "<script>" not in response.text  # no inline script: the CSP would refuse it
        for ref in references:
            asset = http.get(ref)
            assert asset.status_code == 200 and asset.headers["content-security-policy"]
            assert asset.headers["content-type"].split(";")[0] in {"text/javascript", "text/css", "image/png"}
    bundle = http.get("/docs/assets/redoc.standalone.js").content
    assert b"cdn.redoc.ly" not in bundle
    assert http.get("/docs/assets/nothing.js").status_code == 404
