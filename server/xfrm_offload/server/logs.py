"""Structured logging: one line per record, key=value (text) or a JSON object (json).

Fields passed as ``extra={"fields": {...}}`` are appended. Nothing that logs may
pass key material: the servicers log only names, handles, SPIs and addresses.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

FORMATS = ("text", "json")


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "fields", {}))
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self.json:
            return json.dumps(fields, default=str)
        return " ".join(f"{k}={_quote(v)}" for k, v in fields.items())


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return json.dumps(text)
    return text


def formatter(fmt: str = "text") -> logging.Formatter:
    """The structured line formatter, for handlers of their own (the audit log)."""
    return _Formatter(fmt)


def setup(level: str, fmt: str = "text") -> None:
    """Configure the root logger to write structured lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def fields(**kw: Any) -> dict[str, Any]:
    """``log.info("msg", extra=fields(dev="eth0"))``."""
    return {"fields": kw}


class RateLimitedLog:
    """One warning per key and interval; the next one counts what was left out (safe
    to share between threads: at worst a line too many)."""

    def __init__(self, interval: float = 1.0, logger: logging.Logger | None = None) -> None:
        self.interval = interval
        self.log = logger or logging.getLogger("xfrm_offload.server")
        #: key -> (monotonic time of the last line, requests not logged since)
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, key: str, message: str, **values: Any) -> bool:
        """Log ``message`` unless ``key`` was logged less than an interval ago."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return False
        suppressed = last[1] if last is not None else 0
        self._last[key] = (now, 0)
        extra = {**values, "suppressed": suppressed} if suppressed else values
        self.log.warning(message, extra=fields(**extra))
        return True
