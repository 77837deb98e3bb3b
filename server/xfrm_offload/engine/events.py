"""Events the engine produces, as small frozen dataclasses (what `ip xfrm monitor` shows).

The engine never delivers them itself: objects that produce events append them
to a list their owner drains (aioquic's ``next_event`` style), and the server
fans them out to WatchEvents subscribers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .types import IPAddress, Mode, Selector


class LimitKind(enum.Enum):
    """Which xfrm_lifetime_cfg limit was reached."""

    BYTES = "bytes"
    PACKETS = "packets"
    ADD_TIME = "add_time"
    USE_TIME = "use_time"


@dataclass(frozen=True, slots=True)
class SAId:
    """How the kernel names an SA in events: xfrm_usersa_id (daddr, spi, proto) plus saddr."""

    daddr: IPAddress
    spi: int
    proto: int
    saddr: IPAddress


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every engine event."""


@dataclass(frozen=True, slots=True)
class Expired(Event):
    """XFRM_MSG_EXPIRE: a soft limit (rekey now) or a hard limit (the SA stopped)."""

    sa: SAId
    #: True for the hard limit: the SA no longer passes traffic.
    hard: bool
    #: Which limit fired.
    kind: LimitKind


@dataclass(frozen=True, slots=True)
class SeqOverflow(Event):
    """The outbound sequence number space is exhausted (-EOVERFLOW, XfrmOutStateSeqError)."""

    sa: SAId


@dataclass(frozen=True, slots=True)
class EsnAdvanced(Event):
    """xdo_dev_state_advance_esn: the inbound replay window moved to a new seq_hi."""

    sa: SAId
    #: The new high 32 bits of the inbound sequence number.
    seq_hi: int


@dataclass(frozen=True, slots=True)
class Acquire(Event):
    """XFRM_MSG_ACQUIRE: outbound traffic matched a policy whose template has no SA."""

    #: The device whose policy matched.
    dev: str
    #: The policy's offload handle on that device.
    policy_handle: int
    #: The policy's index.
    policy_index: int
    #: The selector built from the packet that triggered it.
    sel: Selector
    #: The template that found no SA: its addresses, reqid, protocol and mode.
    daddr: IPAddress | None
    saddr: IPAddress | None
    reqid: int
    proto: int
    mode: Mode
