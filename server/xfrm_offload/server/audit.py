"""The audit log: one structured line per control-plane change and per key disclosure.

Fields: ``who`` (the caller's identity, ``uid:1000`` or ``cert:km.example``), ``rpc``,
``dev``, ``handle`` (the state or policy, when there is one), ``result`` (``OK`` or the
status code's name) and, for refusals, ``detail`` (the status message, which never
holds key material). Key disclosures (``include_keys``) add ``keys=disclosed`` and
the number of states returned. Nothing else of a request is written: no key, no SA.

The lines go to stderr (in the server's ``--log-format``) or, with ``--audit-log FILE``,
appended to FILE as JSON lines (created mode 0600). They do not depend on
``--log-level``: an audit line is never filtered out.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from . import logs

LOGGER = "xfrm_offload.audit"


class Audit:
    """Where audit lines go."""

    def __init__(self, target: Path | None, fmt: str = "text") -> None:
        # A logger of its own, outside logging's tree: never filtered or reformatted by
        # the root logger, and two servers in one process (tests) never share it.
        self.log = logging.Logger(LOGGER, logging.INFO)
        handler: logging.Handler
        if target is None:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logs.formatter(fmt))
        else:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.close(fd)  # created 0600 before logging opens it
            handler = logging.FileHandler(target, encoding="utf-8")
            handler.setFormatter(logs.formatter("json"))
        self.log.addHandler(handler)
        self.handler = handler

    def record(self, who: str, rpc: str, result: str, **fields: Any) -> None:
        line = {"who": who, "rpc": rpc, **{k: v for k, v in fields.items() if v is not None}}
        line["result"] = result
        self.log.info("audit", extra=logs.fields(**line))

    def close(self) -> None:
        self.log.removeHandler(self.handler)
        self.handler.close()
