"""Logging of `python -m twin_service`: uvicorn's loggers and ours, with secrets redacted.

uvicorn logs every request's path with its query string (access log, and "WebSocket <path>"
lines), so a key passed as `?token=` would be written out. Every handler configured here
carries `RedactSecrets`, which rewrites `token=<value>` (and `api_key=`, `read_key=`),
`Bearer <value>`, the WebSocket auth subprotocol and the password of URLs such as
`redis://:password@host` to `***` before a record is formatted.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

REDACTED = "***"
_PATTERNS = (
    # query parameters: ?token=..., &api_key=...
    (re.compile(r"(?i)((?:^|[?&;\s])(?:[a-z_]*token|api_key|read_key)=)[^&\s\"'#]*"), r"\1***"),
    (re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+"), r"\1***"),
    (re.compile(r"(\btwin-auth\.)[A-Za-z0-9_-]+"), r"\1***"),
    # userinfo of URLs: scheme://user:password@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), r"\1***@"),
)
_HINTS = ("token", "key=", "bearer", "twin-auth.", "@")


def redact(text: str) -> str:
    """`text` with the secrets it may contain replaced by ***."""
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_arg(arg: Any) -> Any:
    return redact(arg) if isinstance(arg, str) else arg


class RedactSecrets(logging.Filter):
    """Redacts the message and its string arguments in place (the argument tuple keeps its
    shape: uvicorn's access formatter unpacks it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config(level: str = "info") -> dict[str, Any]:
    """A fresh `logging.config.dictConfig` mapping (dictConfig consumes parts of it): uvicorn's
    default handlers plus ours for the root logger, all redacting."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactSecrets}}
    config["formatters"]["service"] = {"format": LOG_FORMAT}
    config["handlers"]["service"] = {
        "formatter": "service",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["root"] = {"handlers": ["service"], "level": level.upper()}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"][name]["level"] = level.upper()
    return config
