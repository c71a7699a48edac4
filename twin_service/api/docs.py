"""Swagger UI at /docs and ReDoc at /redoc, from assets shipped with the package (no CDN), so
the API docs work offline. The pages and assets hold no data and stay open like /openapi.json."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from twin_service.errors import ApiError, error_item

router = APIRouter(include_in_schema=False)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "static" / "docs"
ASSETS = {
    "swagger-ui/swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui/swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui/favicon-32x32.png": "image/png",
    "redoc/redoc.standalone.js": "text/javascript; charset=utf-8",
}
# Versioned files: a new release changes the page's asset URLs (?v=), so they may be cached.
CACHE = {"Cache-Control": "public, max-age=86400"}
VERSION = "swagger-ui-5.35.0.redoc-2.5.4"


def _url(request: Request, path: str) -> str:
    return f"{request.scope.get('root_path', '')}{path}"


def _asset_url(request: Request, name: str) -> str:
    return _url(request, f"/docs-assets/{name}?v={VERSION}")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=_url(request, "/openapi.json"),
        title="EV battery digital twin - Swagger UI",
        swagger_js_url=_asset_url(request, "swagger-ui/swagger-ui-bundle.js"),
        swagger_css_url=_asset_url(request, "swagger-ui/swagger-ui.css"),
        swagger_favicon_url=_asset_url(request, "swagger-ui/favicon-32x32.png"),
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=_url(request, "/openapi.json"),
        title="EV battery digital twin - ReDoc",
        redoc_js_url=_asset_url(request, "redoc/redoc.standalone.js"),
        redoc_favicon_url=_asset_url(request, "swagger-ui/favicon-32x32.png"),
        with_google_fonts=False,
    )


@router.get("/docs-assets/{name:path}")
async def docs_asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        msg = f"no documentation asset {name[:100]!r}"
        raise ApiError(404, [error_item(["path", "name"], msg, "not_found")])
    return FileResponse(ASSETS_DIR / name, media_type=media_type, headers=CACHE)
