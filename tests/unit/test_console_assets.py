"""How the console's files are served: versioned URLs, caching, and the security headers
(in-process app, no Triton needed). The console itself is tested in a real browser by
tests/integration/console/."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from frontend.app import create_app
from frontend.console.router import BUNDLE, STATIC, content_security_policy
from frontend.settings import Settings


@pytest.fixture(scope="module")
def http():
    app = create_app(Settings(database_enabled=False, api_key_enabled=False, storage_enabled=False,
                              admin_password="a-long-admin-password"))
    with TestClient(app) as client:
        yield client


def referenced_assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/admin/assets/[^"]+)"', page)


def test_page_points_at_this_versions_assets(http):
    response = http.get("/admin")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assets = referenced_assets(response.text)
    assert len(assets) == 3 and all(f"/admin/assets/{BUNDLE.version}/" in a for a in assets), assets
    assert "{{" not in response.text
    for url in assets:
        asset = http.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_page_revalidates_with_its_etag(http):
    etag = http.get("/admin").headers["etag"]
    again = http.get("/admin", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert http.get("/admin", headers={"If-None-Match": '"other"'}).status_code == 200


def test_every_module_the_app_imports_is_served_with_a_javascript_type(http):
    # ES modules are refused by the browser unless served as JavaScript.
    for path in sorted(STATIC.rglob("*.js")):
        name = path.relative_to(STATIC).as_posix()
        response = http.get(f"/admin/assets/{BUNDLE.version}/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("text/javascript"), name
        for imported in re.findall(r'from "(\.{1,2}/[^"]+)"', response.text):
            target = (path.parent / imported).resolve()
            assert target.is_file(), f"{name} imports {imported}, which does not exist"


def test_an_old_version_is_served_uncached_and_unknown_files_are_404(http):
    old = http.get("/admin/assets/000000000000/app.js")
    assert old.status_code == 200 and old.headers["cache-control"] == "no-cache"
    assert http.get(f"/admin/assets/{BUNDLE.version}/nope.js").status_code == 404
    assert http.get(f"/admin/assets/{BUNDLE.version}/../router.py").status_code == 404
    assert http.get(f"/admin/assets/{BUNDLE.version}/index.html").status_code == 404


def test_security_headers_on_page_and_assets(http):
    for url in ("/admin", f"/admin/assets/{BUNDLE.version}/app.js"):
        headers = http.get(url).headers
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"


def test_trailing_slash_redirects(http):
    response = http.get("/admin/", follow_redirects=False)
    assert response.status_code == 308 and response.headers["location"] == "/admin"


def test_no_inline_script_or_style_in_the_files():
    # The policy forbids both; a stray one would fail silently in the browser.
    page = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and "<style" not in page and "style=" not in page
    assert not re.search(r"\son[a-z]+=", page)
    for path in STATIC.rglob("*.js"):
        text = path.read_text()
        assert "innerHTML" not in text and "eval(" not in text, path.name


@pytest.mark.parametrize(("settings", "expected"), [
    (Settings(storage_backend="local"), "img-src 'self' blob: data:"),
    (Settings(storage_backend="s3", s3_endpoint="http://127.0.0.1:8333/",
              s3_public_endpoint="https://cdn.example.com/photos"),
     "img-src 'self' blob: data: http://127.0.0.1:8333 https://cdn.example.com"),
    (Settings(storage_backend="s3"), "img-src 'self' blob: data: https://*.amazonaws.com"),
])
def test_images_may_come_from_the_object_store_only(settings, expected):
    policy = content_security_policy(settings).split("; ")
    assert expected in policy
