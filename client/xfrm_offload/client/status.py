"""xfrmctl's exit statuses, shared by the CLI and its packet command.

A module of its own so that ``packets`` needs nothing from ``cli`` (which imports it): the
client's modules import each other one way only (tests/client/test_imports.py).
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """What xfrmctl's exit code means."""

    OK = 0
    SERVER_ERROR = 1
    USAGE = 2
    UNREACHABLE = 3
    INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
