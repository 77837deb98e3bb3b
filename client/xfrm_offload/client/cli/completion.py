"""``xfrmctl completion bash|zsh``: the shell scripts; the candidates are completion.py's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from ..completion import completion_main


def run_completion(tokens: Sequence[str], out: TextIO, err: TextIO) -> int:
    """``completion bash|zsh`` prints a script; ``completion complete ...`` the candidates."""
    return completion_main(tokens, out=out, err=err)
