"""Serve the console: /admin (the page) and /admin/assets/<version>/<file> (its files).

Caching: every asset URL carries a version (a hash of all the files, taken at
start-up), so assets are cached for a year as immutable and a new release is
fetched at once; the page itself is revalidated on every visit. Every response
carries a strict Content-Security-Policy: no inline script or style, no
third-party origin but the object store that serves the photos.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from frontend.api import dependencies as deps
from frontend.settings import Settings

STATIC = Path(__file__).parent / "static"
VERSION_SLOT = "{{version}}"
BINARY = "application/octet-stream"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".html": "text/html; charset=utf-8"}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


class Bundle:
    """The console's files, read once; ``version`` changes whenever any of them does."""

    def __init__(self, root: Path = STATIC):
        self.root = root

    @cached_property
    def assets(self) -> dict[str, Asset]:
        found = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and path.name != "index.html":
                kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or BINARY
                found[path.relative_to(self.root).as_posix()] = Asset(path.read_bytes(), kind)
        return found

    @cached_property
    def version(self) -> str:
        digest = hashlib.sha256()
        for name, asset in self.assets.items():
            digest.update(name.encode() + b"\0" + asset.body + b"\0")
        digest.update((self.root / "index.html").read_bytes())
        return digest.hexdigest()[:12]

    @cached_property
    def page(self) -> bytes:
        return (self.root / "index.html").read_text().replace(VERSION_SLOT, self.version).encode()


BUNDLE = Bundle()


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def content_security_policy(settings: Settings) -> str:
    """Only our own files; photos also from the S3 host that presigned links point at."""
    images = ["'self'", "blob:", "data:"]
    if settings.storage_backend == "s3":
        hosts = {_origin(settings.s3_public_endpoint), _origin(settings.s3_endpoint)} - {None}
        images += sorted(hosts) or ["https://*.amazonaws.com"]
    return "; ".join([
        "default-src 'none'", "script-src 'self'", "style-src 'self'", f"img-src {' '.join(images)}",
        "connect-src 'self'", "font-src 'self'", "manifest-src 'self'", "form-action 'self'",
        "frame-ancestors 'none'", "base-uri 'none'",
    ])


def _headers(settings: Settings, cache: str) -> dict[str, str]:
    return {"Content-Security-Policy": content_security_policy(settings), "Cache-Control": cache,
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer", "Cross-Origin-Opener-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()"}


@router.get("/admin")
async def console_page(request: Request, settings: Settings = Depends(deps.settings)) -> Response:
    """The console shell; it asks /api/v1/admin/auth/session and shows the login form or the app."""
    etag = f'"{BUNDLE.version}"'
    headers = {**_headers(settings, "no-cache"), "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(BUNDLE.page, media_type=TYPES[".html"], headers=headers)


@router.get("/admin/")
async def console_slash() -> RedirectResponse:
    return RedirectResponse("/admin", status_code=308)


@router.get("/admin/assets/{version}/{path:path}")
async def console_asset(version: str, path: str, settings: Settings = Depends(deps.settings)) -> Response:
    asset = BUNDLE.assets.get(path)
    if asset is None:
        return Response(status_code=404, headers=_headers(settings, "no-store"))
    # An old version's URL (a page loaded before an upgrade) still gets today's file, uncached.
    cache = "public, max-age=31536000, immutable" if version == BUNDLE.version else "no-cache"
    return Response(asset.body, media_type=asset.media_type, headers=_headers(settings, cache))
