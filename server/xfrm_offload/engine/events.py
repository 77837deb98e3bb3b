"""Events the engine produces, as small frozen dataclasses (what `ip xfrm monitor` shows).

The engine never delivers them itself: objects that produce events append them
to a list their owner drains (aioquic's ``next_event`` style), and the server
fans them out to WatchEvents subscribers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .spd import Policy
from .types import Direction, IPAddress, Mode, OffloadType, Selector


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


class DeleteReason(enum.StrEnum):
    """Why a state or policy was deleted (ObjectEvent.reason)."""

    USER = "user"
    LINK_DOWN = "link-down"
    #: A policy's hard time limit (the kernel deletes an expired policy itself).
    EXPIRED = "expired"


# -- the device's events: its tables and its link ------------------------------------


@dataclass(frozen=True, slots=True)
class StateAdded(Event):
    """A state was offloaded (xdo_dev_state_add succeeded)."""

    dev: str
    handle: int
    sa: SAId
    type: OffloadType
    dir: Direction


@dataclass(frozen=True, slots=True)
class StateDeleted(Event):
    """A state was deleted (XFRM_MSG_DELSA): by the host, or by a link-down flush."""

    dev: str
    handle: int
    sa: SAId
    reason: DeleteReason


@dataclass(frozen=True, slots=True)
class PolicyAdded(Event):
    """A policy was offloaded."""

    dev: str
    handle: int
    index: int
    dir: Direction


@dataclass(frozen=True, slots=True)
class PolicyDeleted(Event):
    """A policy was deleted (XFRM_MSG_DELPOLICY)."""

    dev: str
    handle: int
    index: int
    dir: Direction
    reason: DeleteReason


@dataclass(frozen=True, slots=True)
class PolicyExpired(Event):
    """XFRM_MSG_POLEXPIRE: a policy's soft (rekey) or hard (deleted) time limit.

    Carries the policy as it was and its current lifetime, as xfrm_user_polexpire
    carries the whole xfrm_userpolicy_info.
    """

    dev: str
    handle: int
    policy: Policy
    add_time: float
    use_time: float | None
    hard: bool


@dataclass(frozen=True, slots=True)
class NewMapping(Event):
    """XFRM_MSG_MAPPING: an ESP-in-UDP packet verified for an inbound SA came from
    another source address or port than the SA's (a NAT rebinding).

    ``old_*`` are the SA's own (saddr and encap sport), ``new_*`` the packet's. The SA
    keeps its encapsulation: changing it is the keymanager's move.
    """

    dev: str
    handle: int
    sa: SAId
    reqid: int
    old_saddr: IPAddress
    old_sport: int
    new_saddr: IPAddress
    new_sport: int


@dataclass(frozen=True, slots=True)
class LinkChanged(Event):
    """The link went up or down."""

    dev: str
    up: bool


@dataclass(frozen=True, slots=True)
class StateEvent(Event):
    """An SA's own event (Expired, SeqOverflow, EsnAdvanced) and where it happened."""

    dev: str
    handle: int
    event: Event
