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
