"""Which ESP batch engine runs, and the glue to the native one (``_esp``, C + OpenSSL).

Two engines implement the same per-SA batch calls (``encap_many`` / ``decap_many``,
see ``esp.EspTransform``): the Python reference in ``esp.py`` (the readable one) and the
C extension ``_esp`` built from ``_esp.c`` against the system libcrypto (OpenSSL 3 EVP,
contexts and keys set once per SA). ``SecurityAssociation`` keeps the policy either way:
time limits, events, drop counters. The C part frames, seals and opens, runs the sequence
counter and the replay window it is handed, counts the lifetime's bytes and packets
against the limits it is handed (``lifetime.BatchCount``: where the soft and the hard
limit fired, every packet after the hard one dropped as expired), and gives back per
packet the output bytes or a shared result object (an ``XfrmStat``, ``None``, a
``NonEsp``) plus a verdict byte.

Selection: ``XFRM_OFFLOAD_ENGINE`` (``auto``, ``native``, ``python``; default ``auto``:
native when the extension imports) at import, ``set_engine`` afterwards (the server's
``--engine`` flag). A machine that could not build the extension runs the reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgument
from .esp import CryptoStatus, DecapMany, EncapMany, NonEsp, _tos_map
from .events import LimitKind
from .extensions import load_extension
from .stats import XfrmStat
from .types import Family, Mode, SAConfig, SAExtraFlag, SAFlag

if TYPE_CHECKING:
    from .algorithms import ResolvedTransforms
    from .lifetime import BatchCount
    from .replay import OutboundSequence, ReplayWindow

#: The C engine, or None (not built); $XFRM_OFFLOAD_NATIVE_DIR loads another build of it.
_esp = load_extension("xfrm_offload.engine", "_esp")

ENGINES = ("auto", "native", "python")
ENV = "XFRM_OFFLOAD_ENGINE"

#: Per-packet results by the C's result code (0: the bytes themselves).
_RESULTS = (
    None,
    None,  # dummy packet (next header 59)
    NonEsp.KEEPALIVE,
    NonEsp.IKE,
    XfrmStat.IN_HDR_ERROR,
    XfrmStat.IN_NO_STATES,
    XfrmStat.IN_STATE_PROTO_ERROR,
    XfrmStat.IN_STATE_MODE_ERROR,
    XfrmStat.IN_STATE_SEQ_ERROR,
    XfrmStat.IN_STATE_MISMATCH,
    XfrmStat.OUT_ERROR,
    XfrmStat.OUT_STATE_MODE_ERROR,
    XfrmStat.OUT_STATE_SEQ_ERROR,
    XfrmStat.IN_STATE_EXPIRED,
    XfrmStat.OUT_STATE_EXPIRED,
)
#: The limit kinds by the C's code (0: none fired).
_KINDS = (LimitKind.BYTES, LimitKind.BYTES, LimitKind.PACKETS)
_K_AEAD, _K_GMAC, _K_CBC, _K_NULL = range(4)


def available() -> bool:
    """True when the native extension was built and imports."""
    return _esp is not None


def resolve(name: str) -> str:
    """``auto``/``native``/``python`` -> the engine that runs (``native`` or ``python``).

    ``native`` without the extension is refused, naming the choice.
    """
    if name not in ENGINES:
        raise InvalidArgument(f"unknown engine {name!r}", field="engine", allowed=ENGINES)
    if name == "native" and _esp is None:
        raise InvalidArgument("the native engine is not built in this installation", field="engine")
    if name == "auto":
        return "native" if _esp is not None else "python"
    return name


def _from_env() -> str:
    try:
        return resolve(os.environ.get(ENV, "auto") or "auto")
    except InvalidArgument:
        return "python"  # a bad variable must not stop an import; the server checks it


_engine = _from_env()


def engine() -> str:
    """The engine new SAs use: ``native`` or ``python``."""
    return _engine


def set_engine(name: str) -> str:
    """Choose the engine for SAs created from now on; returns the one that runs."""
    global _engine
    _engine = resolve(name)
    return _engine


def describe() -> str:
    """One line for the start-up log: which engine, and with what."""
    if _engine == "native" and _esp is not None:
        return f"native (C, {_esp.OPENSSL_VERSION})"
    why = "" if _esp is not None else ", native extension not built"
    return f"python (reference{why})"


class NativeEsp:
    """One SA's batch calls on the C extension, shaped like ``EspTransform``'s."""

    __slots__ = ("_sa", "_wbytes", "ident")

    def __init__(
        self, config: SAConfig, t: ResolvedTransforms, *, iv_salt: bytes, tfc_padto: int = 0
    ) -> None:
        assert _esp is not None
        if t.auth is None:
            kind = _K_GMAC if t.cipher.auth_only else _K_AEAD
        else:
            kind = _K_NULL if t.cipher.auth_only else _K_CBC
        flags = int(config.flags)
        noecn = bool(flags & SAFlag.NOECN)
        copy_dscp = not (int(config.extra_flags) & SAExtraFlag.DONT_ENCAP_DSCP)
        encap = config.encap
        self._sa: Any = _esp.SA(
            kind=kind,
            chacha=t.cipher.name.startswith("rfc7539esp"),
            key=t.cipher_key,
            salt=t.salt,
            digest=t.auth.digest if t.auth is not None else "",
            auth_key=t.auth_key,
            icv_len=t.icv_len,
            iv_salt=iv_salt,
            spi=config.spi,
            esn=config.esn,
            tunnel=config.mode == Mode.TUNNEL,
            outer_v6=config.family == Family.INET6,
            natt=encap is not None,
            sport=encap.sport if encap is not None else 0,
            dport=encap.dport if encap is not None else 0,
            tfc_padto=tfc_padto,
            saddr=config.saddr.packed,
            daddr=config.daddr.packed,
            nopmtudisc=bool(flags & SAFlag.NOPMTUDISC),
            decap_ecn=not noecn,
            decap_dscp=bool(flags & SAFlag.DECAP_DSCP),
            tos_map=_tos_map(noecn, copy_dscp),
            window=config.replay_window,
            results=_RESULTS,
        )
        self._wbytes = (config.replay_window + 63) // 64 * 8
        #: The last IPv4 ID used on DF-clear outer headers.
        self.ident = 0

    def encap_many(
        self,
        packets: list[bytes],
        next_seq: Callable[[], int],
        oseq: OutboundSequence | None,
        life: BatchCount,
    ) -> EncapMany:
        assert oseq is not None  # the SA always hands its counter
        last, epoch, limit, wraps = oseq.batch_state()
        out, _, last, epoch, overflowed, nok, self.ident, counted = self._sa.encap(
            packets, last, epoch, limit, wraps, self.ident, _life_args(life)
        )
        oseq.set_batch_state(last, epoch, bool(overflowed))
        _take_count(life, counted)
        return out, nok

    def decap_many(
        self,
        packets: list[bytes],
        check: Callable[[int], int],
        advance: Callable[[int, int], bool],
        replay: ReplayWindow | None,
        life: BatchCount,
    ) -> DecapMany:
        assert replay is not None  # the SA always hands its window
        top, bitmap = replay.run_state()
        out, _, top, window, ngood, too_old, seen, advanced, counted = self._sa.decap(
            packets, top, bitmap.to_bytes(self._wbytes, "little"), _life_args(life)
        )
        replay.set_run_state(top, int.from_bytes(window, "little"))
        replay.replay_window += too_old
        replay.replay += seen
        _take_count(life, counted)
        return out, ngood, advanced

    def nic_seal(self, frame: bytes, seq: int) -> bytes | None:
        """crypto_offload.nic_tx_seal in C."""
        if not 0 <= seq <= _U64:  # the reference cannot write it in 8 bytes either
            return None
        sealed: bytes | None = self._sa.nic_seal(frame, seq)
        return sealed

    def nic_open(self, packet: bytes, seq_hi: int) -> tuple[CryptoStatus, bytes]:
        """crypto_offload.nic_rx_crypto in C (the packet itself back unless it opened)."""
        status, data = self._sa.nic_open(packet, seq_hi)
        return _STATUS[status], packet if data is None else data


_U64 = 2**64 - 1
_STATUS = {int(s): s for s in CryptoStatus}


def _life_args(life: BatchCount) -> tuple[int, int, int, int, int, int]:
    return (
        life.bytes,
        life.packets,
        life.soft_bytes,
        life.soft_packets,
        life.hard_bytes,
        life.hard_packets,
    )


def _take_count(life: BatchCount, counted: tuple[int, int, int, int, int, int]) -> None:
    """What the C counted (``life_result`` in _esp.c) into the batch's ``BatchCount``."""
    life.bytes, life.packets, life.soft_at, soft_kind, life.hard_at, hard_kind = counted
    life.soft_kind = _KINDS[soft_kind]
    life.hard_kind = _KINDS[hard_kind]


def raw_seal(cipher: str, key: bytes, packets: list[bytes]) -> list[bytes]:
    """Benchmark only: one EVP seal per packet (``aes-128-gcm``, ``chacha20-poly1305``,
    ``cbc-hmac-sha256``), the floor under any ESP engine on EVP."""
    if _esp is None:
        raise InvalidArgument("the native engine is not built", field="engine")
    result: list[bytes] = _esp.raw_seal(cipher, key, packets)
    return result


#: ``key_runs`` kinds (KEY_FLOW / KEY_ESP4 in _esp.c).
KEY_FLOW, KEY_ESP4 = 0, 1


def key_runs_native() -> Callable[[list[Any], int], list[tuple[bytes | None, int]]] | None:
    """The C ``key_runs`` (datapath.key_runs restated), or None when not built."""
    return None if _esp is None else _esp.key_runs
