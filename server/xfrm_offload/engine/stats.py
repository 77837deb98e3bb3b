"""The `/proc/net/xfrm_stat` counters (net/xfrm/xfrm_proc.c), by their kernel names."""

from __future__ import annotations

import enum
from collections import Counter


class XfrmStat(enum.StrEnum):
    """Every LINUX_MIB_XFRM* counter, in the order /proc/net/xfrm_stat prints them."""

    IN_ERROR = "XfrmInError"
    IN_BUFFER_ERROR = "XfrmInBufferError"
    IN_HDR_ERROR = "XfrmInHdrError"
    IN_NO_STATES = "XfrmInNoStates"
    IN_STATE_PROTO_ERROR = "XfrmInStateProtoError"
    IN_STATE_MODE_ERROR = "XfrmInStateModeError"
    IN_STATE_SEQ_ERROR = "XfrmInStateSeqError"
    IN_STATE_EXPIRED = "XfrmInStateExpired"
    IN_STATE_MISMATCH = "XfrmInStateMismatch"
    IN_STATE_INVALID = "XfrmInStateInvalid"
    IN_TMPL_MISMATCH = "XfrmInTmplMismatch"
    IN_NO_POLS = "XfrmInNoPols"
    IN_POL_BLOCK = "XfrmInPolBlock"
    IN_POL_ERROR = "XfrmInPolError"
    OUT_ERROR = "XfrmOutError"
    OUT_BUNDLE_GEN_ERROR = "XfrmOutBundleGenError"
    OUT_BUNDLE_CHECK_ERROR = "XfrmOutBundleCheckError"
    OUT_NO_STATES = "XfrmOutNoStates"
    OUT_STATE_PROTO_ERROR = "XfrmOutStateProtoError"
    OUT_STATE_MODE_ERROR = "XfrmOutStateModeError"
    OUT_STATE_SEQ_ERROR = "XfrmOutStateSeqError"
    OUT_STATE_EXPIRED = "XfrmOutStateExpired"
    OUT_POL_BLOCK = "XfrmOutPolBlock"
    OUT_POL_DEAD = "XfrmOutPolDead"
    OUT_POL_ERROR = "XfrmOutPolError"
    FWD_HDR_ERROR = "XfrmFwdHdrError"
    OUT_STATE_INVALID = "XfrmOutStateInvalid"
    ACQUIRE_ERROR = "XfrmAcquireError"
    OUT_STATE_DIR_ERROR = "XfrmOutStateDirError"
    IN_STATE_DIR_ERROR = "XfrmInStateDirError"


XFRM_STAT_NAMES: tuple[str, ...] = tuple(s.value for s in XfrmStat)


class XfrmStats:
    """A set of xfrm_stat counters (one per device; the server sums them for the total)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[XfrmStat] = Counter()

    def inc(self, stat: XfrmStat, n: int = 1) -> None:
        self._counts[stat] += n

    def __getitem__(self, stat: XfrmStat) -> int:
        return self._counts[stat]

    def as_dict(self) -> dict[str, int]:
        """Every counter, zeros included, in /proc/net/xfrm_stat order."""
        return {s.value: self._counts[s] for s in XfrmStat}

    def add(self, other: XfrmStats) -> None:
        self._counts.update(other._counts)

    def render(self) -> str:
        """The file's text: ``%-24s\\t%lu`` per line, as xfrm_proc.c prints it."""
        return "".join(f"{name:<24}\t{value}\n" for name, value in self.as_dict().items())
