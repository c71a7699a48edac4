"""Write the service's OpenAPI document: python -m twin_service.openapi_export [FILE]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from twin_service.app import create_app
from twin_service.settings import Settings

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def openapi_document() -> dict:
    """The document for default settings (independent of the local config file)."""
    return create_app(Settings()).openapi()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
