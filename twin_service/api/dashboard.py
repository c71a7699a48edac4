"""The browser dashboards: clients/web served as static files at / (one vehicle), /fleet (the
fleet page) and /static/ (vendored libraries under /static/vendor/).

The page and its assets hold no data, so they stay open even when `read_key` is set; the page
passes the key (taken from its own ``?token=``) on every API call and WebSocket it opens.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from twin_service.errors import ApiError, error_item

router = APIRouter(include_in_schema=False)

# The browser re-validates on every load (ETag / Last-Modified from FileResponse), so a new
# version of the dashboard shows up without a hard refresh. Vendored libraries (vendor/) are
# loaded by versioned URLs (index.html: ?v=<version>) and change only with their version.
NO_CACHE = {"Cache-Control": "no-cache"}
LONG_CACHE = {"Cache-Control": "public, max-age=31536000, immutable"}
VENDOR = "vendor/"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
}


def web_dir() -> Path:
    """clients/web, found as a package so it works from a checkout and from a wheel."""
    spec = importlib.util.find_spec("clients.web")
    if spec is None or spec.origin is None:
        raise RuntimeError("clients.web (the browser dashboard) is not installed")
    return Path(spec.origin).resolve().parent


WEB_DIR = web_dir()


def _asset(name: str) -> Path:
    """The file under WEB_DIR that `name` names, or ApiError(404). A name the file system
    cannot take (a NUL byte, too long) names no asset either."""
    try:
        path = (WEB_DIR / name).resolve()
        found = path.is_relative_to(WEB_DIR) and path.suffix in MEDIA_TYPES and path.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise ApiError(
            404, [error_item(["path", "name"], f"no dashboard asset {name[:100]!r}", "not_found")]
        )
    return path


@router.get("/")
async def dashboard() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type=MEDIA_TYPES[".html"], headers=NO_CACHE)


@router.get("/fleet")
async def fleet_dashboard() -> FileResponse:
    return FileResponse(WEB_DIR / "fleet.html", media_type=MEDIA_TYPES[".html"], headers=NO_CACHE)


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    return FileResponse(WEB_DIR / "favicon.svg", media_type=MEDIA_TYPES[".svg"], headers=NO_CACHE)


@router.get("/static/{name:path}")
async def static_asset(name: str) -> FileResponse:
    path = _asset(name)
    vendored = path.relative_to(WEB_DIR).as_posix().startswith(VENDOR)
    headers = LONG_CACHE if vendored else NO_CACHE
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=headers)
