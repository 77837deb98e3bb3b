"""The runtime Security Association: ESP transform + sequence/replay + lifetime + stats.

An SA is direction-agnostic (``encap`` for outbound, ``decap`` for inbound), like a
kernel xfrm_state used by a test harness on both ends. Per packet, in the kernel's order:

- outbound: hard-expired? (XfrmOutStateExpired) -> frame for the mode (a packet that
  does not fit is XfrmOutStateModeError and uses no sequence number) -> next sequence
  number (exhausted: XfrmOutStateSeqError and one ``SeqOverflow`` event) -> count the
  lifetime -> encrypt.
- inbound: hard-expired? (XfrmInStateExpired) -> parse, SPI -> replay check (seq_hi
  inferred with ESN) -> decrypt and verify (failure: XfrmInStateProtoError and
  ``integrity_failed``) -> replay advance (a new seq_hi: one ``EsnAdvanced`` event) ->
  count the lifetime -> strip ESP. Drops after the ICV verified (wrong inner protocol
  for the mode) still advance the window and count, as in xfrm_input.

Lifetime bytes (curlft.bytes) count the cleartext IP packet: what goes into ``encap``
and what comes out of ``decap``; dummy packets and post-ICV drops count as packets with
0 bytes. (The kernel counts skb->len at slightly different points on TX and RX; the
cleartext length is the same number on both ends of a tunnel, which tests can check.)

Drops are counted in the SA (``drops``, plus the kernel's per-SA ``replay_window``,
``replay``, ``integrity_failed``) and in an ``XfrmStats`` that is either passed in (the
device's, which it aggregates) or owned by the SA (``stats``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import native
from .algorithms import ResolvedTransforms, check_transforms, validate_transforms
from .errors import InvalidArgument, NotSupported
from .esp import EspTransform, NonEsp
from .events import EsnAdvanced, Event, Expired, SAId, SeqOverflow
from .lifetime import Lifetime
from .replay import OutboundSequence, ReplayWindow, check_u32, check_window_size
from .selector import check_selector
from .stats import XfrmStat, XfrmStats
from .types import (
    IPPROTO_ESP,
    NO_REPLAY,
    Direction,
    EncapType,
    Family,
    Mode,
    SAConfig,
)

U32 = 0xFFFFFFFF
#: The MTU an SA assumes when no device gives one (ETH_DATA_LEN, every profile's default).
DEFAULT_MTU = 1500

#: What ``encap`` gives per packet: the ESP packet or the drop reason.
EncapResult = bytes | XfrmStat
#: What ``decap`` gives per packet: the cleartext packet, the drop reason, None for a
#: silently dropped dummy packet, or NonEsp for NAT-T keepalive / IKE (not counted).
DecapResult = bytes | XfrmStat | NonEsp | None


@dataclass(frozen=True, slots=True)
class CurLifetime:
    """xfrm_lifetime_cur: what the SA has used so far."""

    bytes: int
    packets: int
    add_time: float
    use_time: float | None


def _validate(config: SAConfig) -> None:
    """The kernel's generic checks (xfrm_user verify_newsa_info, xfrm_init_replay).

    Device and offload rules are not here: they belong to the device profile. Also every
    check the SA's parts built on first use (transforms, replay window, output sequence)
    would make, so that a bad configuration is refused when it is added.
    """
    check_selector(config.selector)
    if config.proto != IPPROTO_ESP:
        raise NotSupported("only ESP is implemented", field="proto", allowed=("50",))
    version = 4 if config.family == Family.INET else 6
    if config.daddr.version != version:
        raise InvalidArgument(
            f"daddr is not an address of family {config.family.name}", field="daddr"
        )
    if config.saddr.version != version:
        raise InvalidArgument(
            f"saddr is not an address of family {config.family.name}", field="saddr"
        )
    if config.encap is not None and config.encap.encap_type != EncapType.ESPINUDP:
        raise NotSupported(
            "only ESP-in-UDP (RFC 3948) encapsulation is implemented",
            field="encap.encap_type",
            allowed=(EncapType.ESPINUDP.name,),
        )
    if config.tfcpad < 0 or config.tfcpad > 0xFFFF:
        raise InvalidArgument("tfcpad out of range", field="tfcpad")
    if config.tfcpad and config.mode != Mode.TUNNEL:
        # verify_newsa_info refuses XFRMA_TFCPAD on an ESP state that is not tunnel
        # mode: padding after a transport payload would reach the upper layer.
        raise InvalidArgument("TFC padding can only be used in tunnel mode", field="tfcpad")
    rs = config.replay
    if config.esn:
        if config.replay_window == 0 and config.sa_dir != Direction.OUT:
            raise InvalidArgument("ESN replay window must be > 0", field="replay_window")
        if rs.seq == U32 and rs.seq_hi == U32:
            raise InvalidArgument(
                "replay.seq and replay.seq_hi both 0xffffffff", field="replay.seq"
            )
        if rs.oseq == U32 and rs.oseq_hi == U32:
            raise InvalidArgument(
                "replay.oseq and replay.oseq_hi both 0xffffffff", field="replay.oseq"
            )
    elif rs is not NO_REPLAY:  # the shared "nothing yet" state passes all of these
        for name in ("seq_hi", "oseq_hi"):
            if getattr(rs, name):
                raise InvalidArgument(f"replay.{name} needs the esn flag", field=f"replay.{name}")
        for name in ("seq", "oseq"):
            if getattr(rs, name) >= U32:
                raise InvalidArgument(
                    f"replay.{name} must be below 0xffffffff without esn", field=f"replay.{name}"
                )
    if config.sa_dir == Direction.OUT:
        if config.replay_window:
            raise InvalidArgument("an outbound SA has no replay window", field="replay_window")
        if rs.seq or rs.seq_hi:
            raise InvalidArgument("an outbound SA has no inbound sequence", field="replay.seq")
    elif config.sa_dir == Direction.IN:
        if rs.oseq or rs.oseq_hi:
            raise InvalidArgument("an inbound SA has no outbound sequence", field="replay.oseq")
        if config.oseq_may_wrap:
            raise InvalidArgument("oseq-may-wrap is for outbound SAs", field="extra_flags")
    elif config.sa_dir == Direction.FWD:
        raise InvalidArgument("an SA's dir is in or out", field="sa_dir", allowed=("IN", "OUT"))
    check_transforms(config.aead, config.enc, config.auth)
    check_window_size(config.replay_window)
    if rs is not NO_REPLAY:
        for name in ("seq", "seq_hi", "oseq", "oseq_hi"):
            check_u32(getattr(rs, name), f"replay.{name}")


class SecurityAssociation:
    """One SA at run time. ``iv_salt`` (>= 16 bytes) fixes the IV salt for tests.

    ``mtu`` is the MTU of the device the SA's packets leave by (``Device.mtu``); it
    bounds TFC padding as the route's MTU does in the kernel (``tfc_padto``).

    ``engine`` (``native``/``python``/``auto``; default: ``native.engine()``, the
    process-wide choice) picks which implementation runs the batch calls.
    """

    def __init__(
        self,
        config: SAConfig,
        now: float,
        *,
        iv_salt: bytes | None = None,
        stats: XfrmStats | None = None,
        engine: str | None = None,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        _validate(config)
        #: The device MTU TFC padding is clamped to (see ``tfc_padto``).
        self.mtu = mtu
        #: ``native`` or ``python``: which engine runs this SA's packet batches.
        self.engine = native.engine() if engine is None else native.resolve(engine)
        if iv_salt is not None and len(iv_salt) < 16:
            raise InvalidArgument("iv_salt must be at least 16 bytes", field="iv_salt")
        self.config = config
        self.sa_id = SAId(
            daddr=config.daddr, spi=config.spi, proto=config.proto, saddr=config.saddr
        )
        # None: drawn with the cipher contexts (see ``esp``), so an SA that never
        # carries a packet never asks the kernel for random bytes.
        self._iv_salt = iv_salt
        self.lifetime = Lifetime(config.lifetime, now)
        #: The xfrm_stat counters drops go to (the device's, if it passed one).
        self.stats = stats if stats is not None else XfrmStats()
        #: Every drop of this SA by reason (a plain dict: a Counter costs more to build).
        self.drops: dict[XfrmStat, int] = {}
        #: x->stats.integrity_failed: inbound packets whose ICV did not verify.
        self.integrity_failed = 0
        self._events: list[Event] = []
        self._overflow_reported = False
        #: Where the last batch reached the soft and the hard byte/packet limit: the
        #: indexes of the packets at which they fired (-1: not in that batch).
        self.batch_fired: tuple[int, int] = (-1, -1)
        #: How many results of the last batch are packets (bytes): all of them, or not.
        self.batch_packets = 0
        if self.lifetime.soft_expired:  # a limit of 0: fired already
            self._collect(now)

    # Built on first use: a keymanager installing 100,000 SAs pays for the runtime parts
    # of the ones that carry traffic (or are asked about) only. Everything that can
    # refuse the configuration ran in ``__init__`` (``_validate``).

    @functools.cached_property
    def transforms(self) -> ResolvedTransforms:
        """The validated algorithms: keys, ICV and block sizes."""
        return validate_transforms(self.config.aead, self.config.enc, self.config.auth)

    @functools.cached_property
    def replay(self) -> ReplayWindow:
        """The inbound anti-replay state."""
        c = self.config
        return ReplayWindow(c.replay_window, esn=c.esn, seq=c.replay.seq, seq_hi=c.replay.seq_hi)

    @functools.cached_property
    def oseq(self) -> OutboundSequence:
        """The outbound sequence counter."""
        c = self.config
        return OutboundSequence(
            esn=c.esn, may_wrap=c.oseq_may_wrap, oseq=c.replay.oseq, oseq_hi=c.replay.oseq_hi
        )

    @functools.cached_property
    def iv_salt(self) -> bytes:
        """The IV salt (and CBC IV key): given, or drawn once (shared by both engines)."""
        return self._iv_salt if self._iv_salt is not None else os.urandom(16)

    @functools.cached_property
    def _mtu_params(self) -> tuple[int, int, int]:
        """(header_len, ICV length, block alignment): x->props.header_len as
        esp_init_state sets it, crypto_aead_authsize, ALIGN(blocksize, 4)."""
        c = self.config
        t = self.transforms
        header_len = 8 + t.cipher.iv_size  # ESP header + explicit IV
        if c.mode == Mode.TUNNEL:
            header_len += 20 if c.family == Family.INET else 40
        if c.encap is not None:
            header_len += 8
        align = (max(t.cipher.block_size, 1) + 3) & ~3
        return header_len, t.icv_len, align

    def state_mtu(self, mtu: int) -> int:
        """The largest cleartext packet that fits ``mtu`` once ESP is added (xfrm_state_mtu)."""
        header_len, icv_len, align = self._mtu_params
        net_adj = 0
        if self.config.mode == Mode.TRANSPORT:
            net_adj = 20 if self.config.family == Family.INET else 40
        return ((mtu - header_len - icv_len - net_adj) & ~(align - 1)) + net_adj - 2

    @functools.cached_property
    def tfc_padto(self) -> int:
        """The length tunnel-mode TFC padding fills an inner packet up to (0: none).

        esp_output (esp4.c, esp6.c): padto = min(x->tfcpad, xfrm_state_mtu(x, mtu)) and
        only a packet shorter than padto is padded, so padding never makes the ESP packet
        exceed the MTU. xfrm_state_mtu is a u32 there: an MTU too small for the headers
        wraps to a huge value and leaves tfcpad itself as the limit, as here.
        """
        if not self.config.tfcpad:
            return 0
        return min(self.config.tfcpad, self.state_mtu(self.mtu) & U32)

    @functools.cached_property
    def esp(self) -> EspTransform:
        """The ESP framing and the cipher contexts (the Python reference)."""
        return EspTransform(
            self.config, self.transforms, iv_salt=self.iv_salt, tfc_padto=self.tfc_padto
        )

    @functools.cached_property
    def batch(self) -> EspTransform | native.NativeEsp:
        """What runs the packet batches: the native path or the reference ``esp``."""
        if self.engine == "native":
            return native.NativeEsp(
                self.config, self.transforms, iv_salt=self.iv_salt, tfc_padto=self.tfc_padto
            )
        return self.esp

    # -- state ------------------------------------------------------------------------
    @property
    def curlft(self) -> CurLifetime:
        lt = self.lifetime
        return CurLifetime(lt.bytes, lt.packets, lt.add_time, lt.use_time)

    @property
    def replay_window(self) -> int:
        """x->stats.replay_window: inbound packets left of the window."""
        return self.replay.replay_window

    @property
    def replay_drops(self) -> int:
        """x->stats.replay: inbound duplicates."""
        return self.replay.replay

    def pop_events(self) -> list[Event]:
        events = self._events
        self._events = []
        return events

    def poll(self, now: float) -> None:
        """Time-based expiry at ``now``: queues Expired events (see ``pop_events``)."""
        self._collect(now)

    def _collect(self, now: float) -> None:
        for hard, kind in self.lifetime.poll(now):
            self._events.append(Expired(sa=self.sa_id, hard=hard, kind=kind))

    def count_drop(self, reason: XfrmStat) -> XfrmStat:
        """Count a drop of this SA's traffic decided outside it (the crypto-offload RX path)."""
        return self._drop(reason)

    def _drop(self, reason: XfrmStat) -> XfrmStat:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        self.stats.inc(reason)
        if reason is XfrmStat.IN_STATE_PROTO_ERROR:
            self.integrity_failed += 1
        elif reason is XfrmStat.OUT_STATE_SEQ_ERROR and not self._overflow_reported:
            self._overflow_reported = True
            self._events.append(SeqOverflow(sa=self.sa_id))
        return reason

    # -- packets ----------------------------------------------------------------------
    def encap(self, packet: bytes, now: float) -> EncapResult:
        return self.encap_batch((packet,), now)[0]

    def decap(self, packet: bytes, now: float) -> DecapResult:
        return self.decap_batch((packet,), now)[0]

    def _count_drops(self, results: list[Any]) -> None:
        drop = self._drop
        for r in results:
            if r.__class__ is XfrmStat:
                drop(r)

    def _expired(self, batch: list[bytes], reason: XfrmStat) -> list[Any]:
        """A batch that arrives after the hard limit: every packet dropped, none read."""
        self.batch_fired = (-1, -1)
        self.batch_packets = 0
        return [self._drop(reason) for _ in batch]

    def encap_batch(self, packets: Iterable[bytes], now: float) -> list[EncapResult]:
        """Encapsulate each packet: the ESP packet or the drop's XfrmStat, in order.

        The batch call counts the lifetime per packet (``lifetime.BatchCount``); a hard
        limit reached at packet k drops packets k+1.. as XfrmOutStateExpired.
        """
        batch = packets if isinstance(packets, list) else list(packets)
        lt = self.lifetime
        if not lt.allow(now):
            out: list[EncapResult] = self._expired(batch, XfrmStat.OUT_STATE_EXPIRED)
        else:
            run = lt.batch()
            out, nok = self.batch.encap_many(batch, self.oseq.next, self.oseq, run)
            lt.end_batch(run, now)
            self.batch_fired = (run.soft_at, run.hard_at)
            self.batch_packets = nok
            if nok != len(out):
                self._count_drops(out)
        self._collect(now)
        return out

    def decap_batch(self, packets: Iterable[bytes], now: float) -> list[DecapResult]:
        """Decapsulate each packet: cleartext, XfrmStat drop, None (dummy) or NonEsp.

        Lifetimes as in ``encap_batch`` (XfrmInStateExpired after the hard limit).
        """
        batch = packets if isinstance(packets, list) else list(packets)
        lt = self.lifetime
        if not lt.allow(now):
            out: list[DecapResult] = self._expired(batch, XfrmStat.IN_STATE_EXPIRED)
        else:
            run = lt.batch()
            replay = self.replay
            out, ngood, advanced = self.batch.decap_many(
                batch, replay.check, replay.advance, replay, run
            )
            lt.end_batch(run, now)
            self.batch_fired = (run.soft_at, run.hard_at)
            self.batch_packets = ngood
            if ngood != len(out):
                self._count_drops(out)
            for seq_hi in advanced:
                self._events.append(EsnAdvanced(sa=self.sa_id, seq_hi=seq_hi))
        self._collect(now)
        return out

    def __repr__(self) -> str:
        c = self.config
        return (
            f"SecurityAssociation(spi={c.spi:#010x}, daddr={c.daddr}, mode={c.mode.name}, "
            f"esn={c.esn})"
        )
