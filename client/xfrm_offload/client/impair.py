"""``xfrmctl link set dev DEV impair ...``: tc-netem's words for a device's wire.

    impair none
    impair [ loss [ random ] PERCENT | loss gemodel P [ R [ 1-H [ 1-K ] ] ] ]
           [ duplicate PERCENT ] [ corrupt PERCENT ] [ reorder PERCENT [ gap N ] ]
           [ delay TIME [ JITTER ] ] [ rate RATE ] [ limit PACKETS ] [ seed N ]

PERCENT is ``5`` or ``5%``; TIME as tc takes it (``10ms``, ``250us``, ``1s``; a bare
number is microseconds); RATE as tc (``bit``, ``kbit``, ``mbit``, ``gbit``; ``bps``,
``kbps``, ``mbps``, ``gbps`` are bytes per second; a bare number is bits per second).
Errors point at the bad token (``XfrmSyntaxError``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from xfrm_offload.v1 import offload_pb2 as pb

from .grammar import XfrmSyntaxError

_TIME_UNITS = {
    "s": 1e6, "sec": 1e6, "secs": 1e6,
    "ms": 1e3, "msec": 1e3, "msecs": 1e3,
    "us": 1.0, "usec": 1.0, "usecs": 1.0, "": 1.0,
}  # fmt: skip
_RATE_UNITS = {
    "": 1, "bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12,
    "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9,
}  # fmt: skip


def _number_and_unit(text: str) -> tuple[float, str] | None:
    end = len(text)
    while end and not (text[end - 1].isdigit() or text[end - 1] == "."):
        end -= 1
    try:
        value = float(text[:end])
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value, text[end:].lower()


class _Reader:
    def __init__(self, tokens: Sequence[str], start: int) -> None:
        self.tokens = tokens
        self.i = start

    def error(self, expected: str, index: int | None = None) -> XfrmSyntaxError:
        return XfrmSyntaxError(self.tokens, self.i if index is None else index, expected)

    def more(self) -> bool:
        return self.i < len(self.tokens)

    def peek(self) -> str:
        return self.tokens[self.i] if self.more() else ""

    def take(self, expected: str) -> str:
        if not self.more():
            raise self.error(expected)
        token = self.tokens[self.i]
        self.i += 1
        return token

    def percent(self, what: str) -> float:
        token = self.take(f"expected {what} as a percentage")
        parsed = _number_and_unit(token)
        if parsed is None or parsed[1] not in ("", "%") or parsed[0] > 100:
            raise self.error(f"expected {what} as a percentage 0-100", self.i - 1)
        return parsed[0]

    def next_is_number(self) -> bool:
        return self.more() and _number_and_unit(self.peek()) is not None

    def time_us(self, what: str) -> int:
        token = self.take(f"expected {what} (like 10ms)")
        parsed = _number_and_unit(token)
        if parsed is None or parsed[1] not in _TIME_UNITS:
            raise self.error(f"expected {what} as a time (like 10ms, 250us, 1s)", self.i - 1)
        return round(parsed[0] * _TIME_UNITS[parsed[1]])

    def integer(self, what: str, low: int, high: int) -> int:
        token = self.take(f"expected {what}")
        try:
            value = int(token, 0)
        except ValueError:
            raise self.error(f"expected {what} as an integer", self.i - 1) from None
        if not low <= value <= high:
            raise self.error(f"expected {what} from {low} to {high}", self.i - 1)
        return value


def parse_impairment(tokens: Sequence[str], start: int) -> pb.Impairment:
    """The words from ``tokens[start]`` on (after ``impair``); ``none`` is no impairment."""
    r = _Reader(tokens, start)
    imp = pb.Impairment()
    if r.peek() == "none":
        r.i += 1
        if r.more():
            raise r.error("expected nothing after none")
        return imp
    if not r.more():
        raise r.error("expected none or an impairment (loss, duplicate, corrupt, ...)")
    seen: set[str] = set()
    while r.more():
        word = r.take("expected an impairment")
        if word in seen:
            raise r.error(f"{word} given twice", r.i - 1)
        seen.add(word)
        if word == "loss":
            if r.peek() == "gemodel":
                r.i += 1
                ge = imp.loss_burst
                ge.p = r.percent("P (good to bad)")
                if r.next_is_number():
                    ge.r = r.percent("R (bad to good)")
                    if r.next_is_number():
                        ge.bad_loss = r.percent("1-H (loss when bad)")
                        if r.next_is_number():
                            ge.good_loss = r.percent("1-K (loss when good)")
            else:
                if r.peek() == "random":
                    r.i += 1
                imp.loss_percent = r.percent("the loss")
        elif word == "duplicate":
            imp.duplicate_percent = r.percent("the duplication")
        elif word == "corrupt":
            imp.corrupt_percent = r.percent("the corruption")
        elif word == "reorder":
            imp.reorder_percent = r.percent("the reordering")
            if r.peek() == "gap":
                r.i += 1
                imp.reorder_gap = r.integer("the gap", 1, 2**32 - 1)
        elif word == "delay":
            imp.delay_us = r.time_us("the delay")
            if r.next_is_number():
                imp.jitter_us = r.time_us("the jitter")
        elif word == "rate":
            token = r.take("expected a rate (like 10mbit)")
            parsed = _number_and_unit(token)
            if parsed is None or parsed[1] not in _RATE_UNITS:
                raise r.error("expected a rate (like 100kbit, 10mbit, 1gbit)", r.i - 1)
            imp.rate_bps = round(parsed[0] * _RATE_UNITS[parsed[1]])
        elif word == "limit":
            imp.limit = r.integer("the limit in packets", 1, 100_000)
        elif word == "seed":
            imp.seed = r.integer("the seed", 0, 2**64 - 1)
        else:
            raise r.error(
                "expected loss, duplicate, corrupt, reorder, delay, rate, limit or seed",
                r.i - 1,
            )
    return imp


def _pct(value: float) -> str:
    return f"{value:g}%"


def _time(us: int) -> str:
    if us >= 1_000_000 and us % 1000 == 0:
        return f"{us / 1e6:g}s"
    if us >= 1000:
        return f"{us / 1e3:g}ms"
    return f"{us}us"


def format_impairment(dev: str, reply: pb.GetImpairmentResponse) -> str:
    """One device's impairment in tc's words, then its counters."""
    if not reply.HasField("impairment"):
        return f"{dev}: impair none\n"
    imp = reply.impairment
    words: list[str] = []
    if imp.HasField("loss_burst"):
        ge = imp.loss_burst
        words.append(f"loss gemodel {_pct(ge.p)}")
        if ge.HasField("r"):
            words.append(_pct(ge.r))
        words.append(f"{_pct(ge.bad_loss)} {_pct(ge.good_loss)}")
    elif imp.loss_percent:
        words.append(f"loss {_pct(imp.loss_percent)}")
    if imp.duplicate_percent:
        words.append(f"duplicate {_pct(imp.duplicate_percent)}")
    if imp.corrupt_percent:
        words.append(f"corrupt {_pct(imp.corrupt_percent)}")
    if imp.reorder_percent:
        words.append(f"reorder {_pct(imp.reorder_percent)} gap {imp.reorder_gap or 1}")
    if imp.delay_us or imp.jitter_us:
        words.append(f"delay {_time(imp.delay_us)}")
        if imp.jitter_us:
            words.append(_time(imp.jitter_us))
    if imp.rate_bps:
        words.append(f"rate {imp.rate_bps}bit")
    words.append(f"limit {imp.limit} seed {imp.seed}")
    c = reply.counters
    return (
        f"{dev}: impair {' '.join(words)}\n"
        f"    packets {c.packets} dropped {c.dropped} duplicated {c.duplicated}"
        f" corrupted {c.corrupted} reordered {c.reordered} sent {c.sent} waiting {c.waiting}\n"
    )
