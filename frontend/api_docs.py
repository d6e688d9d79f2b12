"""The interactive API documentation, /docs (Swagger UI) and /redoc (ReDoc), served offline.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN: a browser without
the internet, or one that should not tell a third party who reads the docs, gets
a blank page. Here the same files come from the ``fastapi-offline`` package
(requirements.txt) under /docs/assets/, and both pages start them from a file of
ours rather than an inline script, so they can carry a strict
Content-Security-Policy: nothing from another origin, no inline script.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request, Response

STATIC = Path(fastapi_offline.__file__).parent / "static"
ASSETS_PATH = "/docs/assets"
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"

_SWAGGER_INIT = """\
window.ui = SwaggerUIBundle({
  url: document.body.dataset.openapi,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""

_REDOC_INIT = """\
Redoc.init(document.body.dataset.openapi, {}, document.getElementById("redoc"));
"""

_PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png?v={version}">
{head}
</head>
<body data-openapi="{openapi}">
{body}
</body>
</html>
"""

_SWAGGER_HEAD = '<link rel="stylesheet" href="{assets}/swagger-ui.css?v={version}">'
_SWAGGER_BODY = ('<div id="swagger-ui"></div>\n'
                 '<script src="{assets}/swagger-ui-bundle.js?v={version}"></script>\n'
                 '<script src="{assets}/swagger-init.js?v={version}"></script>')
_REDOC_BODY = ('<div id="redoc"></div>\n'
               '<script src="{assets}/redoc.standalone.js?v={version}"></script>\n'
               '<script src="{assets}/redoc-init.js?v={version}"></script>')

# Swagger UI needs nothing but our own files (and data: images from its stylesheet).
# ReDoc styles itself by inserting <style> elements (styled-components) and searches
# in a worker it starts from a blob: URL; neither reaches another origin.
_COMMON = ["default-src 'none'", "script-src 'self'", "img-src 'self' data:", "font-src 'self' data:",
           "connect-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"]
SWAGGER_CSP = "; ".join([*_COMMON, "style-src 'self'"])
REDOC_CSP = "; ".join([*_COMMON, "style-src 'self' 'unsafe-inline'", "worker-src 'self' blob:"])

HTML = "text/html; charset=utf-8"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


@cache
def assets() -> dict[str, Asset]:
    """Every file the two pages load, read once."""
    found = {name: Asset((STATIC / name).read_bytes(), TYPES[Path(name).suffix])
             for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")}
    # ReDoc's sidebar shows its vendor's logo from their CDN; an empty image instead fails
    # to load, and ReDoc then leaves it out (the CSP would block the request anyway).
    redoc = found["redoc.standalone.js"]
    found["redoc.standalone.js"] = Asset(redoc.body.replace(REDOC_LOGO, b"data:,"), redoc.media_type)
    found["swagger-init.js"] = Asset(_SWAGGER_INIT.encode(), TYPES[".js"])
    found["redoc-init.js"] = Asset(_REDOC_INIT.encode(), TYPES[".js"])
    return found


@cache
def version() -> str:
    """Changes whenever any asset does: it busts caches after an upgrade."""
    digest = hashlib.sha256()
    for name, asset in sorted(assets().items()):
        digest.update(name.encode() + b"\0" + asset.body)
    return digest.hexdigest()[:12]


def _headers(policy: str, cache_control: str) -> dict[str, str]:
    return {"Content-Security-Policy": policy, "Cache-Control": cache_control,
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def _page(request: Request, title: str, head: str, body: str) -> bytes:
    root = request.scope.get("root_path", "")
    fill = {"assets": root + ASSETS_PATH, "version": version()}
    return _PAGE.format(title=title, openapi=root + request.app.openapi_url, head=head.format(**fill),
                        body=body.format(**fill), **fill).encode()


def router() -> APIRouter:
    docs = APIRouter(include_in_schema=False)

    @docs.get("/docs")
    async def swagger_ui(request: Request) -> Response:
        page = _page(request, f"{request.app.title} - Swagger UI", _SWAGGER_HEAD, _SWAGGER_BODY)
        return Response(page, media_type=HTML, headers=_headers(SWAGGER_CSP, "no-cache"))

    @docs.get("/redoc")
    async def redoc(request: Request) -> Response:
        page = _page(request, f"{request.app.title} - ReDoc", "", _REDOC_BODY)
        return Response(page, media_type=HTML, headers=_headers(REDOC_CSP, "no-cache"))

    @docs.get(ASSETS_PATH + "/{name}")
    async def asset(name: str, v: str | None = None) -> Response:
        found = assets().get(name)
        if found is None:
            return Response(status_code=404, headers=_headers(SWAGGER_CSP, "no-store"))
        cache_control = "public, max-age=31536000, immutable" if v == version() else "no-cache"
        return Response(found.body, media_type=found.media_type, headers=_headers(SWAGGER_CSP, cache_control))

    return docs
