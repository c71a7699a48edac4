"""Container health check: exit 0 if the twin service answers GET PATH (default /health).

    python /app/healthcheck.py [PATH]

Uses TWIN_PORT (default 8008) on 127.0.0.1; standard library only, so the image needs no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/health"
    url = f"http://127.0.0.1:{os.environ.get('TWIN_PORT', '8008')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:  # URLError, HTTPError (e.g. 503 from /ready), timeouts
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
