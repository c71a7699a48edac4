"""The service serves the browser dashboard (clients/web) at / and /static/, outside the API
schema, self-contained (no CDN; uPlot vendored under static/vendor/), and only the dashboard's
own files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from twin_service.app import create_app
from twin_service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
WEB_DIR = REPO_ROOT / "clients" / "web"
VENDOR_DIR = WEB_DIR / "vendor"
UPLOT_VERSION = "1.6.32"
UPLOT_JS = f"/static/vendor/uplot/uPlot.iife.min.js?v={UPLOT_VERSION}"
UPLOT_CSS = f"/static/vendor/uplot/uPlot.min.css?v={UPLOT_VERSION}"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def test_root_serves_the_dashboard(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    html = response.text
    for element_id in (
        "vehicle-select",
        "refresh-select",
        "gauge-soc",
        "gauge-soh",
        "gauge-power",
        "gauge-temperature",
        "chart-soc",
        "chart-power",
        "chart-soh",
        "range-buttons",
        "csv-export",
        "forecast-usage",
        "forecast-threshold",
        "twin-aging",
        "stat-fade",
        "stat-soh2",
        "stat-years80",
        "status-connection",
        "status-running",
        "status-model",
        "status-demo",
        "status-age",
        "chart-forecast",
        "forecast-legend",
        "forecast-model",
        "forecast-band-legend",
        "aging-range",
    ):
        assert f'id="{element_id}"' in html, element_id
    refresh_ms = [int(v) for v in re.findall(r'<option value="(\d+)"', html)]
    assert min(refresh_ms) == 500 and max(refresh_ms) == 5000
    assert '<meta name="viewport"' in html


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/static/app.js", "text/javascript"),
        ("/static/style.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ],
)
def test_assets(client: TestClient, path: str, media_type: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.content


@pytest.mark.parametrize(
    "path",
    [
        "/static/missing.js",
        "/static/__init__.py",  # the package marker is not an asset
        "/static/../python/client.py",
        "/static/%2e%2e/%2e%2e/twin_service/settings.py",
        "/static/..%2f..%2fconfig.yaml",
        "/static/vendor/uplot/LICENSE",  # no asset type
        "/static/vendor/VENDORED.md",
        "/static/vendor/uplot/missing.js",
        "/static/vendor/../../terminal/app.py",
        "/static/vendor/%2e%2e/%2e%2e/%2e%2e/config.yaml",
        "/static/vendor/uplot/%2e%2e/%2e%2e/%2e%2e/twin_service/settings.py",
    ],
)
def test_nothing_else_is_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_dashboard_routes_are_not_in_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not [p for p in paths if p.startswith(("/static", "/favicon"))]


def test_page_stays_open_with_a_read_key() -> None:
    # The page holds no data; it sends its key (from ?token= or #token=) to the API and sockets.
    with TestClient(create_app(Settings(read_key="secret"))) as client:
        assert client.get("/").status_code == 200
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/vehicles").status_code == 401


URL = re.compile(r"https?://[^\s\"'`)]+")


def test_no_external_resources() -> None:
    """No CDN, no fonts or scripts from elsewhere: the dashboard works offline."""
    for name in ("index.html", "app.js", "auth.js", "style.css", "favicon.svg"):
        text = (WEB_DIR / name).read_text()
        urls = set(URL.findall(text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
    html = (WEB_DIR / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert ref.startswith("/"), ref  # the service's own files only


@pytest.mark.parametrize("name", ["uplot/uPlot.iife.min.js", "uplot/uPlot.min.css"])
def test_vendored_files_load_nothing_from_elsewhere(name: str) -> None:
    """The only URL in the vendored files is uPlot's home page in the licence banner comment;
    nothing the browser would fetch (no url(), import or script source elsewhere)."""
    text = (VENDOR_DIR / name).read_text()
    without_banner = re.sub(r"/\*!.*?\*/", "", text, flags=re.S)
    assert URL.findall(without_banner) == []
    assert set(URL.findall(text)) <= {"https://github.com/leeoniya/uPlot"}
    assert not re.search(r"@import|url\(|importScripts|\bimport\(", without_banner)


def test_forecast_card_asks_for_the_model_comparison() -> None:
    """The forecast card draws the spread of the physical models (`by_model`), named from
    GET /models; the browser tests check the drawing."""
    script = (WEB_DIR / "app.js").read_text()
    assert "compare_models: true" in script
    assert "by_model" in script
    assert '"/models"' in script and '"/vehicles/presets"' in script
    assert "aging_out_of_range" in script
    assert '"/vehicles", { query: { order: "recent", limit: 1 } }' in script
    assert "X-Next-Cursor" in script
