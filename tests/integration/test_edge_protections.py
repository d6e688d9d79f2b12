"""Edge protections through the real stack: page bounds, trusted proxies, slow uploads,
canonical download links, private state files and the offline API docs.

One stack with special settings serves every test here but one (which checks the
defaults on the session's stack): it trusts X-Forwarded-* from 127.0.0.1 only, so a
client connecting from 127.0.0.2 is an untrusted peer of the same stack.
"""

from __future__ import annotations

import re
import socket
import stat
import time
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest

from tests.integration.conftest import detect, unique_photo
from tests.integration.stack import ADMIN_PASSWORD, ROOT, start_stack

BODY_TIMEOUT_S = 3
LOGIN = "/api/v1/admin/auth/login"


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("edge"), env={
        "FACE_API_WORKERS": "2", "FACE_API_TRUSTED_PROXIES": "127.0.0.1",
        "FACE_API_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S), "FACE_API_MAX_UPLOADS_IN_PROGRESS": "2",
        "FACE_API_RATE_LIMIT_ADMIN_LOGIN": "3/minute"})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key(edge) -> str:
    assert edge.first_key
    return edge.first_key


def client(stack, address: str = "127.0.0.1", **kwargs) -> httpx.Client:
    """A client connecting from `address` (any 127.x.y.z is this host)."""
    return httpx.Client(base_url=stack.url, timeout=30,
                        transport=httpx.HTTPTransport(local_address=address), **kwargs)


def wrong_login(http: httpx.Client, forwarded_for: str | None = None, **headers: str) -> httpx.Response:
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return http.post(LOGIN, json={"username": "admin", "password": "not-the-password"}, headers=headers)


def logged_clients(stack, done, timeout: float = 10) -> list[str]:
    """The `client` of the login's request log lines, once `done(them)` (they are written
    after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        clients = [line["client"] for line in stack.request_lines() if line["path"] == LOGIN]
        if done(clients) or time.monotonic() > deadline:
            return clients
        time.sleep(0.2)


# --- 1. pages ---

@pytest.mark.parametrize("listing", ["images", "jobs", "api-keys"])
def test_a_huge_page_is_422_not_500(edge, listing):
    with client(edge, auth=("admin", ADMIN_PASSWORD)) as admin:
        response = admin.get(f"/api/v1/admin/{listing}", params={"page": "99999999999999999999"})
        assert response.status_code == 422, response.text
        assert response.json() == {"detail": "page: Input should be less than or equal to 1000000"}
        deepest = admin.get(f"/api/v1/admin/{listing}", params={"page": 1_000_000, "per_page": 100})
        assert deepest.status_code == 200 and deepest.json()["items"] == []


# --- 2. trusted proxies ---

def test_an_untrusted_peer_cannot_escape_the_login_limit_with_x_forwarded_for(edge):
    with client(edge, "127.0.0.2") as http:
        answers = [wrong_login(http, f"198.51.100.{i}").status_code for i in range(5)]
    assert answers == [401, 401, 401, 429, 429]


def test_a_trusted_proxy_gives_each_forwarded_client_its_own_allowance(edge):
    with client(edge) as proxy:
        first = [wrong_login(proxy, "203.0.113.1").status_code for _ in range(4)]
        other = wrong_login(proxy, "203.0.113.2")
        # A proxy appends the address it saw: the last untrusted entry is the client.
        chained = wrong_login(proxy, "192.0.2.99, 203.0.113.1")
    assert first == [401, 401, 401, 429]
    assert other.status_code == 401 and other.headers["x-ratelimit-remaining"] == "2"
    assert chained.status_code == 429
    logged = set(logged_clients(edge, lambda clients: {"203.0.113.1", "203.0.113.2"} <= set(clients)))
    assert {"203.0.113.1", "203.0.113.2", "127.0.0.2"} <= logged
    assert not {"198.51.100.1", "192.0.2.99"} & logged


def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(edge):
    def secure_cookie(address: str) -> bool:
        with client(edge, address) as http:
            headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": f"192.0.2.{address[-1]}"}
            response = http.post(LOGIN, json={"username": "admin", "password": ADMIN_PASSWORD},
                                 headers=headers)
        assert response.status_code == 204, response.text
        return all("secure" in line.lower().split("; ") for line in response.headers.get_list("set-cookie"))

    assert secure_cookie("127.0.0.1")
    assert not secure_cookie("127.0.0.3")


def test_by_default_no_proxy_is_trusted(stack):
    """The session's stack runs with the defaults: X-Forwarded-* from 127.0.0.1 is ignored."""
    with client(stack) as http:
        response = http.post(LOGIN, json={"username": "admin", "password": ADMIN_PASSWORD},
                             headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.50"})
    assert response.status_code == 204
    assert not any("secure" in line.lower().split("; ") for line in response.headers.get_list("set-cookie"))
    logged = logged_clients(stack, lambda clients: bool(clients))
    assert "203.0.113.50" not in logged and logged[-1] == "127.0.0.1"


# --- 3. slow uploads ---

def slow_upload(edge, key: str) -> socket.socket:
    """Headers of a 100 kB upload and its first bytes; the rest is up to the caller."""
    sock = socket.create_connection(("127.0.0.1", urlsplit(edge.url).port), timeout=30)
    sock.sendall((f"POST /api/v1/detect HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
                  "Content-Type: multipart/form-data; boundary=slow\r\nContent-Length: 100000\r\n\r\n"
                  '--slow\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
                  "xx").encode())
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, whether the server then closed the connection)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    try:
        closed = sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        closed = True
    return int(lines[0].split()[1]), headers, body, closed


def test_a_trickled_upload_gets_408_within_the_timeout(edge, key):
    sock = slow_upload(edge, key)
    started = time.monotonic()
    try:
        sock.settimeout(0.5)
        status = None
        while time.monotonic() - started < BODY_TIMEOUT_S + 5:
            try:
                sock.sendall(b"x")  # a byte every half second: never done
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                peek = sock.recv(65536, socket.MSG_PEEK)
            except TimeoutError:
                continue
            if peek:
                break
        sock.settimeout(10)
        status, headers, body, closed = answer(sock)
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    assert status == 408, body
    assert BODY_TIMEOUT_S - 0.5 <= elapsed <= BODY_TIMEOUT_S + 3
    assert body == b'{"detail": "the request body did not arrive within 3 s (FACE_API_BODY_TIMEOUT_S)"}'
    assert headers["x-request-id"] and closed


def test_uploads_in_progress_beyond_the_cap_get_503(edge, key):
    """Two workers with room for two slow uploads each: of five at once, at least one is refused."""
    socks = [slow_upload(edge, key) for _ in range(5)]
    try:
        answers = [answer(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    statuses = sorted(status for status, *_ in answers)
    assert set(statuses) == {408, 503} and statuses.count(408) <= 4, statuses
    for status, headers, body, closed in answers:
        if status == 503:
            assert headers["retry-after"] == "2" and closed
            assert b"FACE_API_MAX_UPLOADS_IN_PROGRESS" in body
    # Once they are gone, uploads go through again.
    with client(edge, headers={"X-API-Key": key}) as http:
        assert detect(http, unique_photo()).status_code == 200


# --- 5. signed links ---

def test_a_download_link_works_only_as_it_was_written(edge, key):
    with client(edge, headers={"X-API-Key": key}) as http:
        assert detect(http, unique_photo()).status_code == 200
    with client(edge, auth=("admin", ADMIN_PASSWORD)) as admin:
        image_id = admin.get("/api/v1/admin/images", params={"per_page": 1}).json()["items"][0]["id"]
        redirect = admin.get(f"/api/v1/admin/images/{image_id}/download")
    assert redirect.status_code == 302
    link = urlsplit(urljoin(edge.url, redirect.headers["location"]))
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    with httpx.Client(base_url=edge.url, timeout=30) as anonymous:
        def fetch(expires: str) -> httpx.Response:
            return anonymous.get(f"{link.path}?{urlencode({**query, 'expires': expires})}")

        assert fetch(query["expires"]).status_code == 200
        for spelling in ("0{}", "+{}", " {}", "{} ", "00{}"):
            refused = fetch(spelling.format(query["expires"]))
            assert refused.status_code == 403, spelling
            assert refused.json() == {"detail": "invalid download link"}


# --- 7. private state ---

def test_state_files_are_private(edge, key):
    with client(edge, headers={"X-API-Key": key}) as http:
        assert detect(http, unique_photo()).status_code == 200  # database, rate limits, objects
    folder = edge.log_path.parent
    state = [p for p in folder.rglob("*") if not p.name.startswith("stack-") and not p.is_symlink()]
    names = {p.name for p in state}
    assert {"face-api.sqlite3", "rate-limits.sqlite3", "objects", "rate-limits.sqlite3-wal"} <= names
    readable = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in state if p.stat().st_mode & 0o077}
    assert not readable
    run = ROOT / ".run"
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    triton = [ROOT / ".run" / "triton" / f"tritonserver-{edge.triton_grpc}.log",
              *(ROOT / ".run" / "triton" / f"models-{edge.triton_grpc}").rglob("*")]
    readable = {str(p): oct(stat.S_IMODE(p.lstat().st_mode)) for p in triton
                if not p.is_symlink() and p.lstat().st_mode & 0o077}
    assert not readable


# --- 4. API docs ---

def test_the_api_docs_need_nothing_but_this_service(edge):
    with client(edge) as http:
        for page in ("/docs", "/redoc"):
            response = http.get(page)
            assert response.status_code == 200
            assert "default-src 'none'" in response.headers["content-security-policy"]
            references = re.findall(r'(?:src|href)="([^"]+)"', response.text)
            assert references and all(ref.startswith("/docs/assets/") for ref in references)
            for ref in references:
                asset = http.get(ref)
                assert asset.status_code == 200, ref
                kind = asset.headers["content-type"].split(";")[0]
                assert kind == {"js": "text/javascript", "css": "text/css", "png": "image/png"}[
                    ref.split("?")[0].rsplit(".", 1)[1]]


def test_swagger_ui_and_redoc_render_offline(edge):
    """In Chromium: both pages render, and no request leaves the origin (CSP errors fail it)."""
    from tests.support.browser import launch_chromium

    with launch_chromium() as browser:
        for page_path, ready in (("/docs", ".opblock"), ("/redoc", ".menu-content")):
            page = browser.new_page()
            requests: list[str] = []
            problems: list[str] = []
            page.on("request", lambda r, seen=requests: seen.append(r.url))
            page.on("console", lambda m, seen=problems: seen.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, seen=problems: seen.append(str(e)))
            page.goto(edge.url + page_path)
            page.wait_for_selector(ready, timeout=30_000)
            assert page.locator(ready).count() >= 1
            page.close()
            foreign = [u for u in requests if not u.startswith((edge.url, f"blob:{edge.url}"))]
            assert not foreign and not problems, (page_path, foreign, problems)
