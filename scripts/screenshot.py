"""Take the README's dashboard screenshot from a running demo.

Starts ``scripts/run_demo.py --port <free port>`` (the service and the demo bridge), opens the
dashboard in headless Chromium (Debian's, or CHROMIUM_PATH; Playwright never downloads one) at
1280x800 with every request outside the service blocked, waits until it shows live data and a
filled forecast card, lets the charts run for ``--settle`` seconds, saves the screenshot
(default docs/img/dashboard.png) and stops the demo with SIGINT, as Ctrl-C would. Progress
goes to stderr; the demo's own output too.

    .venv/bin/python scripts/screenshot.py [--out docs/img/dashboard.png] [--settle 60]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The browser set-up of the dashboard tests (Debian's Chromium, the flags, offline routing);
# the script needs the test extra (Playwright) anyway.
sys.path.insert(0, str(REPO_ROOT / "tests"))
from support.browser import CHROMIUM_ARGS, Offline, chromium_path  # noqa: E402
from support.processes import free_port  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "docs" / "img" / "dashboard.png"
VIEWPORT = {"width": 1280, "height": 800}
STARTUP_TIMEOUT_S = 300.0  # a cold numba cache compiles for about 2 minutes
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 40.0  # run_demo stops the bridge (it flushes), then the service

# The page shows the vehicle live, its charts have points, the forecast card is filled.
READY = """() => {
    const q = (s) => document.querySelector(s);
    return q('#status-connection').dataset.state === 'live'
        && Number(q('#chart-soc').dataset.points) >= 2
        && q('#stat-fade').textContent !== '—'
        && Number(q('#chart-forecast').dataset.points) > 1
        && !q('#forecast-usage').hidden
        && !q('#twin-aging').hidden;
}"""


def log(message: str) -> None:
    print(f"screenshot: {message}", file=sys.stderr, flush=True)


def wait_healthy(url: str, demo: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise SystemExit(f"screenshot: the demo exited with code {demo.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"screenshot: {url}/health did not answer within {timeout_s:.0f} s")


def stop(demo: subprocess.Popen[bytes]) -> None:
    if demo.poll() is not None:
        return
    log("stopping the demo (SIGINT)")
    demo.send_signal(signal.SIGINT)
    try:
        demo.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log("the demo did not stop; killing it")
        demo.kill()
        demo.wait()


def shoot(url: str, out: Path, settle_s: float) -> None:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise SystemExit(
            "screenshot: Chromium not found (apt-get install chromium, or set CHROMIUM_PATH)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = Offline(browser, url, viewport=VIEWPORT, color_scheme="dark").page
            page.goto(f"{url}/")
            log("waiting for live data and the forecast card")
            page.wait_for_function(READY, timeout=READY_TIMEOUT_S * 1000)
            log(f"live; letting the charts run for {settle_s:g} s")
            page.wait_for_timeout(settle_s * 1000)
            page.wait_for_function(READY, timeout=READY_TIMEOUT_S * 1000)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.mouse.move(0, 0)  # no hover read-out in the picture
            page.screenshot(path=str(out))
            log(f"wrote {out} ({out.stat().st_size} bytes)")
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/screenshot.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write (%(default)s)")
    parser.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="seconds of live data after the page is ready (%(default)s)",
    )
    args = parser.parse_args(argv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log(f"starting the demo on {url}")
    demo = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "run_demo.py"), "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    try:
        wait_healthy(url, demo, STARTUP_TIMEOUT_S)
        log("service up")
        shoot(url, args.out.resolve(), args.settle)
    finally:
        stop(demo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
