"""The words of ``ip xfrm``: the token cursor, its errors, and the value syntaxes.

Everything here reads single tokens the way iproute2's ip/utils.c does: ``matches()``
abbreviations, C ``strtoul(..., 0)`` numbers, ALGO-KEYMAT keys and ``ADDR[/PLEN]``. The clauses
built from them are in ``clauses``; the state and policy grammars in ``state`` and ``policy``.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from xfrm_offload.v1 import xfrm_pb2

ALGO_KEYWORDS = ("aead", "enc", "auth", "auth-trunc")

REDACTED = "<key>"

# Largest key iproute2's buffer takes.
MAX_KEY_BYTES = 512

_E = TypeVar("_E")
#: An object's commands: (spellings, command), tried in order, the first prefix hit wins.
CommandTable = tuple[tuple[tuple[str, ...], str], ...]


class XfrmSyntaxError(Exception):
    """A command that does not follow the grammar.

    ``tokens`` never holds key material: the token after ``aead|enc|auth|auth-trunc NAME`` is
    replaced by ``<key>`` before the exception is built. ``index`` may equal ``len(tokens)``,
    meaning "something is missing at the end".
    """

    def __init__(
        self, tokens: Sequence[str], index: int, expected: str, *, prog: str = "xfrmctl"
    ) -> None:
        self.tokens: tuple[str, ...] = tuple(tokens)
        self.index = index
        self.expected = expected
        self.prog = prog
        super().__init__(f"argument {index}: {expected}")

    def render(self) -> str:
        """The command on one line, a ``^~~~`` marker under the bad token, then the message."""
        words = [self.prog, *(t if t == REDACTED else shlex.quote(t) for t in self.tokens)]
        line = " ".join(words)
        # Column where token `index` starts: prog, then each word plus a space.
        column = sum(len(w) + 1 for w in words[: self.index + 1])
        if self.index < len(self.tokens):
            width = len(words[self.index + 1])
            marker = " " * column + "^" + "~" * (width - 1)
        else:
            marker = " " * (len(line) + 1) + "^"
        return f"{line}\n{marker}\nerror: {self.expected}"


def redact(argv: Sequence[str]) -> list[str]:
    """Copy of argv with the key token of every ALGO replaced (keys never reach messages)."""
    out = list(argv)
    for i, token in enumerate(argv):
        if token in ALGO_KEYWORDS and i + 2 < len(argv):
            out[i + 2] = REDACTED
    return out


def matches(word: str, keyword: str) -> bool:
    """iproute2's matches(): word is a non-empty prefix of keyword."""
    return bool(word) and keyword.startswith(word)


def join_words(words: Sequence[str]) -> str:
    return "|".join(words)


def c_uint(text: str, bits: int) -> int | None:
    """C strtoul(text, 0) limited to `bits`: 0x hex, leading-0 octal, decimal. None if invalid."""
    if not text or text[0] in "+- \t":
        return None
    lowered = text.lower()
    if lowered.startswith("0x"):
        digits, base = text[2:], 16
    elif len(text) > 1 and text[0] == "0":
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    if not digits or not all(c in "0123456789abcdef"[:base] for c in digits.lower()):
        return None
    value = int(digits, base)
    return value if value < (1 << bits) else None


def parse_key(text: str) -> bytes | None:
    """iproute2's ALGO-KEYMAT: ``0x`` + hex (odd length left-padded) or the raw string bytes."""
    if len(text) > 2 and text.startswith("0x"):
        digits = text[2:]
        if len(digits) % 2:
            digits = "0" + digits
        try:
            key = bytes.fromhex(digits)
        except ValueError:
            return None
        # bytes.fromhex skips whitespace; iproute2 would not.
        if any(c.isspace() for c in digits):
            return None
    else:
        key = text.encode()
    return key if len(key) <= MAX_KEY_BYTES else None


@dataclass(frozen=True)
class Addr:
    text: str
    plen: int
    family: xfrm_pb2.AddressFamily


def parse_addr(text: str) -> Addr | None:
    """ADDR[/PLEN]; a bare address gets the full prefix length, as get_prefix() gives."""
    try:
        if "/" in text:
            base, _, plen_text = text.partition("/")
            addr = ipaddress.ip_address(base)
            plen = c_uint(plen_text, 8) if plen_text.isdigit() else None
            if plen is None or plen > addr.max_prefixlen:
                return None
        else:
            addr = ipaddress.ip_address(text)
            plen = addr.max_prefixlen
    except ValueError:
        return None
    family = xfrm_pb2.ADDRESS_FAMILY_INET6 if addr.version == 6 else xfrm_pb2.ADDRESS_FAMILY_INET
    return Addr(str(addr), plen, family)


class Cursor:
    """The token list and a position; every error it raises points at a token."""

    def __init__(self, argv: Sequence[str], start: int) -> None:
        self.argv = list(argv)
        self.shown = redact(argv)
        self.pos = start

    def at_end(self) -> bool:
        return self.pos >= len(self.argv)

    def peek(self) -> str | None:
        return None if self.at_end() else self.argv[self.pos]

    def take(self) -> str:
        word = self.argv[self.pos]
        self.pos += 1
        return word

    def error(self, expected: str, index: int | None = None) -> XfrmSyntaxError:
        return XfrmSyntaxError(self.shown, self.pos if index is None else index, expected)

    def value(self, expected: str) -> tuple[str, int]:
        """The token after a keyword, with its index; missing -> error at the end."""
        if self.at_end():
            raise self.error(expected)
        index = self.pos
        return self.take(), index

    def uint(self, expected: str, bits: int = 32) -> int:
        text, index = self.value(expected)
        number = c_uint(text, bits)
        if number is None:
            raise self.error(expected, index)
        return number

    def choice(self, options: dict[str, _E], what: str) -> _E:
        expected = f"expected {what} ({join_words(list(options))})"
        text, index = self.value(expected)
        if text not in options:
            raise self.error(expected, index)
        return options[text]


def expect_word(cur: Cursor, word: str, expected: str) -> None:
    if cur.peek() != word:
        raise cur.error(expected)
    cur.take()
