"""ESP (RFC 4303) for one SA: outbound and inbound, transport and tunnel, IPv4 and IPv6.

Split along its seams: ``espcrypto.EspCrypto`` seals/opens the ESP part (SPI .. ICV)
given the 64-bit sequence number; this module's ``EspTransform`` frames whole IP packets
around it and runs the batch loops; ``crypto_offload`` holds the host's and the NIC's
halves of crypto offload; ``nonesp`` the NAT-T control kinds. The names stay importable
from here. ``EspTransform`` frames transport mode (ESP after the IPv4 header / the IPv6
hop-by-hop, routing and fragment headers) and tunnel mode (new outer header, any
inner/outer family), NAT-T UDP encapsulation (RFC 3948), TFC padding (tunnel mode, up to
the limit ``SecurityAssociation.tfc_padto`` computes from tfcpad and the MTU).

Drops are raised as ``PacketDrop(XfrmStat)``; the SA's packet loops catch and count them.
Inbound counters, chosen to give each a single meaning (see the report for the kernel
comparison): anything structurally wrong (too short for SPI/seq, IV and ICV; lengths that
disagree; CBC payload not block-aligned; pad length too large) is ``XfrmInHdrError``,
as mlx5 counts its bad-trailer drops (the kernel's software path folds these into
``XfrmInStateProtoError`` via esp_input's -EINVAL). ``XfrmInStateProtoError`` means only
"ICV did not verify". A next header that does not fit the mode (tunnel SA, inner not
IPv4/IPv6) is ``XfrmInStateModeError``; an SPI not ours is ``XfrmInNoStates``; ESP where
the SA wants ESP-in-UDP (or the reverse) is ``XfrmInStateMismatch``, as xfrm_input does.

NAT-T control traffic is not ESP and not an error: a keepalive (one 0xFF byte) or a
datagram starting with the 4-byte non-ESP marker (IKE) raises ``NotEsp`` with its kind,
uncounted, as the kernel's UDP encap receive hands them back (IKE) or eats them (keepalive).
Dummy packets (next header 59) are dropped silently: ``decap`` returns ``None``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from . import ipheader as ip
from .algorithms import ResolvedTransforms
from .crypto_offload import CryptoStatus as CryptoStatus
from .crypto_offload import host_rx_finish as host_rx_finish
from .crypto_offload import host_tx_frame as host_tx_frame
from .crypto_offload import nic_rx_crypto as nic_rx_crypto
from .crypto_offload import nic_tx_crypto as nic_tx_crypto
from .crypto_offload import nic_tx_seal
from .errors import PacketDrop
from .espcrypto import EspCrypto as EspCrypto
from .lifetime import BatchCount
from .nonesp import NonEsp as NonEsp
from .nonesp import NotEsp as NotEsp
from .replay import OutboundSequence, ReplayWindow
from .stats import XfrmStat
from .types import Family, Mode, SAConfig, SAExtraFlag, SAFlag

_PAD = bytes(range(1, 256))


#: What the batch loops give back: results, and how many of them are packets (bytes).
#: The lifetime counting of the batch is in the ``BatchCount`` they were handed.
EncapMany = tuple[list["bytes | XfrmStat"], int]
#: decap_many: results, how many results are packets (bytes), and the new seq_hi values
#: the replay window moved to.
DecapMany = tuple[list["bytes | XfrmStat | NonEsp | None"], int, list[int]]


@functools.cache
def _tos_map(noecn: bool, copy_dscp: bool) -> bytes:
    """Outer TOS for every inner TOS: built once per flag combination, not per SA (it
    is most of an SA's set-up time otherwise)."""
    return bytes(ip.ecn_encapsulate(t, noecn=noecn, copy_dscp=copy_dscp) for t in range(256))


@functools.cache
def _trailers(align: int, next_header: int) -> list[bytes]:
    """ESP trailers by pad length (shared between SAs; read-only)."""
    return [_PAD[:k] + bytes((k, next_header)) for k in range(align)]


class EspTransform:
    """One SA's ESP framing: ``encap`` and ``decap`` whole IP packets.

    ``encap(packet, next_seq)`` takes the cleartext IP packet and a callable giving the
    64-bit sequence number (called once the packet is known to fit the mode, so a
    malformed packet uses none); returns the ESP packet (outer IP header included).
    ``decap(packet, check_seq)`` takes the received IP packet and the replay check
    (seq_lo -> seq_hi to use); returns ``(result, seq_lo, seq_hi)`` where result is the
    cleartext packet, ``None`` for a dummy (next header 59), or the ``XfrmStat`` of a drop
    that happens *after* the ICV verified (the replay window still advances for it).
    Drops before that are raised as PacketDrop; NAT-T control traffic as NotEsp.
    """

    def __init__(
        self,
        config: SAConfig,
        transforms: ResolvedTransforms,
        *,
        iv_salt: bytes,
        tfc_padto: int = 0,
    ) -> None:
        """``tfc_padto``: tunnel mode pads shorter inner packets up to this length
        (``SecurityAssociation.tfc_padto``, tfcpad clamped to the MTU; 0: no padding)."""
        self.config = config
        self.crypto = EspCrypto(transforms, config.spi, esn=config.esn, iv_salt=iv_salt)
        self.tunnel = config.mode == Mode.TUNNEL
        self.outer_v6 = config.family == Family.INET6
        self.natt = config.encap is not None
        self.sport = config.encap.sport if config.encap else 0
        self.dport = config.encap.dport if config.encap else 0
        self.tfc_padto = tfc_padto
        self.saddr = config.saddr.packed
        self.daddr = config.daddr.packed
        self.nopmtudisc = bool(config.flags & SAFlag.NOPMTUDISC)
        proto = ip.IPPROTO_UDP if self.natt else ip.IPPROTO_ESP
        self.outer_proto = proto
        if self.outer_v6:
            self.tmpl6 = ip.IPv6Template(self.saddr, self.daddr, proto)
        else:
            self.tmpl4 = ip.IPv4Template(self.saddr, self.daddr, proto)
        copy_dscp = not (config.extra_flags & SAExtraFlag.DONT_ENCAP_DSCP)
        noecn = bool(config.flags & SAFlag.NOECN)
        #: Tunnel decap (the kernel's ipip/ip6 ECN and DSCP rules): an outer CE mark
        #: reaches an ECN-capable inner packet unless NOECN; DECAP_DSCP copies the DSCP.
        self.decap_ecn = not noecn
        self.decap_dscp = bool(config.flags & SAFlag.DECAP_DSCP)
        #: inner TOS/traffic class -> outer, for all 256 values (shared: 4 possible maps).
        self.tos_map = _tos_map(noecn, copy_dscp)
        align = self.crypto.align
        self.pad_mask = align - 1
        #: ESP trailers by pad length, per next header (4 and 41 for tunnel mode).
        self.trailers4 = _trailers(align, ip.IPPROTO_IPIP)
        self.trailers6 = _trailers(align, ip.IPPROTO_IPV6)
        self.ident = 0
        self.esn = config.esn
        self.encap: Callable[[bytes, Callable[[], int]], bytes]
        if self.tunnel:
            self.encap = self._encap_tunnel
        elif self.outer_v6:
            self.encap = self._encap_transport6
        else:
            self.encap = self._encap_transport4

    # -- batches ----------------------------------------------------------------------
    # One readable loop per direction; the native engine (native.py) has the same calls.
    def encap_many(
        self,
        packets: list[bytes],
        next_seq: Callable[[], int],
        oseq: OutboundSequence | None,
        life: BatchCount,
    ) -> EncapMany:
        out: list[bytes | XfrmStat] = []
        append = out.append
        encap = self.encap
        nok = 0
        for i, q in enumerate(packets):
            if life.hard_at >= 0:  # the hard limit fired at an earlier packet
                append(XfrmStat.OUT_STATE_EXPIRED)
                continue
            try:
                append(encap(q, next_seq))
            except PacketDrop as drop:
                append(drop.reason)
                continue
            nok += 1
            life.count(i, len(q))
        return out, nok

    def decap_many(
        self,
        packets: list[bytes],
        check: Callable[[int], int],
        advance: Callable[[int, int], bool],
        replay: ReplayWindow | None,
        life: BatchCount,
    ) -> DecapMany:
        out: list[bytes | XfrmStat | NonEsp | None] = []
        append = out.append
        advanced: list[int] = []
        decap = self.decap
        ngood = 0
        for i, q in enumerate(packets):
            if life.hard_at >= 0:
                append(XfrmStat.IN_STATE_EXPIRED)
                continue
            try:
                result, seq_lo, seq_hi = decap(q, check)
                if advance(seq_lo, seq_hi):
                    advanced.append(seq_hi)
            except PacketDrop as drop:
                append(drop.reason)
                continue
            except NotEsp as not_esp:
                append(not_esp.kind)
                continue
            # passed the ICV: counted, with 0 bytes for a dummy or a post-ICV drop
            if result.__class__ is bytes:
                ngood += 1
                life.count(i, len(result))
            else:
                life.count(i, 0)
            append(result)
        return out, ngood, advanced

    # -- crypto offload: the NIC's halves (crypto_offload.py; native.py has the same) ---
    def nic_seal(self, frame: bytes, seq: int) -> bytes | None:
        return nic_tx_seal(self, frame, seq)

    def nic_open(self, packet: bytes, seq_hi: int) -> tuple[CryptoStatus, bytes]:
        return nic_rx_crypto(self, packet, seq_hi)

    # -- outbound ---------------------------------------------------------------------
    def _trailer(self, length: int, next_header: int) -> bytes:
        padlen = -(length + 2) & self.pad_mask
        return _PAD[:padlen] + bytes((padlen, next_header))

    def _outer(self, esp: bytes, tos: int, df: bool) -> bytes:
        """Outer IP (and UDP) header for an ESP part, tunnel and transport alike."""
        n = len(esp)
        if self.natt:
            n += 8
            # the limits before the UDP header: its length field is 16 bits too
            if n > (0xFFFF if self.outer_v6 else 0xFFFF - 20):
                raise PacketDrop(XfrmStat.OUT_ERROR)
            if self.outer_v6:
                udp = ip.udp_header(self.sport, self.dport, n)
                csum = ip.udp6_checksum(self.saddr, self.daddr, udp + esp)
                esp = ip.udp_header(self.sport, self.dport, n, csum) + esp
            else:
                # RFC 3948 §2.1: UDP checksum 0 over IPv4.
                esp = ip.udp_header(self.sport, self.dport, n) + esp
        if self.outer_v6:
            if n > 0xFFFF:
                raise PacketDrop(XfrmStat.OUT_ERROR)
            return self.tmpl6.build(n, tos) + esp
        if n > 0xFFFF - 20:
            raise PacketDrop(XfrmStat.OUT_ERROR)
        if df:
            ident = 0  # ip_select_ident gives DF packets ID 0
        else:
            ident = self.ident = (self.ident + 1) & 0xFFFF
        return self.tmpl4.build(20 + n, tos, df, ident) + esp

    def _encap_tunnel(self, packet: bytes, next_seq: Callable[[], int]) -> bytes:
        n = len(packet)
        if n >= 20 and packet[0] >> 4 == 4:
            tos = packet[1]
            # Outer DF follows the inner one unless XFRM_STATE_NOPMTUDISC.
            df = bool(packet[6] & 0x40) and not self.nopmtudisc
            trailers = self.trailers4
        elif n >= 40 and packet[0] >> 4 == 6:
            tos = ((packet[0] & 0x0F) << 4) | (packet[1] >> 4)
            df = not self.nopmtudisc
            trailers = self.trailers6
        else:
            raise PacketDrop(XfrmStat.OUT_STATE_MODE_ERROR)
        if n < self.tfc_padto:
            # TFC padding (esp_output's tfclen): zeros after the inner packet, before
            # the ESP padding.
            packet = packet + bytes(self.tfc_padto - n)
            n = self.tfc_padto
        esp = self.crypto.seal(packet + trailers[-(n + 2) & self.pad_mask], next_seq())
        if not self.natt and not self.outer_v6:
            # The hot path (ESP in IPv4, the common tunnel), inlined.
            total = 20 + len(esp)
            if total > 0xFFFF:
                raise PacketDrop(XfrmStat.OUT_ERROR)
            if df:
                ident = 0
            else:
                ident = self.ident = (self.ident + 1) & 0xFFFF
            return self.tmpl4.build(total, self.tos_map[tos], df, ident) + esp
        return self._outer(esp, self.tos_map[tos], df)

    def _encap_transport4(self, packet: bytes, next_seq: Callable[[], int]) -> bytes:
        parsed = ip.parse_ipv4(packet)
        if parsed is None:
            raise PacketDrop(XfrmStat.OUT_STATE_MODE_ERROR)
        ihl, total, proto = parsed
        payload = packet[ihl:total]
        esp = self.crypto.seal(payload + self._trailer(len(payload), proto), next_seq())
        new_total = ihl + (8 if self.natt else 0) + len(esp)
        if new_total > 0xFFFF:
            raise PacketDrop(XfrmStat.OUT_ERROR)
        if self.natt:
            esp = ip.udp_header(self.sport, self.dport, 8 + len(esp)) + esp
        return ip.rewrite_ipv4_header(packet[:ihl], self.outer_proto, new_total) + esp

    def _encap_transport6(self, packet: bytes, next_seq: Callable[[], int]) -> bytes:
        parsed = ip.parse_ipv6(packet)
        if parsed is None:
            raise PacketDrop(XfrmStat.OUT_STATE_MODE_ERROR)
        total, _ = parsed
        point = ip.ipv6_esp_insert_point(packet, total)
        if point is None:
            raise PacketDrop(XfrmStat.OUT_STATE_MODE_ERROR)
        off, field = point
        payload = packet[off:total]
        esp = self.crypto.seal(payload + self._trailer(len(payload), packet[field]), next_seq())
        if off - 40 + (8 if self.natt else 0) + len(esp) > 0xFFFF:
            raise PacketDrop(XfrmStat.OUT_ERROR)
        if self.natt:
            n = 8 + len(esp)
            udp = ip.udp_header(self.sport, self.dport, n)
            csum = ip.udp6_checksum(packet[8:24], packet[24:40], udp + esp)
            esp = ip.udp_header(self.sport, self.dport, n, csum) + esp
        plen = off - 40 + len(esp)
        if plen > 0xFFFF:
            raise PacketDrop(XfrmStat.OUT_ERROR)
        return ip.rewrite_ipv6_header(packet[:off], field, self.outer_proto, plen) + esp

    # -- inbound ----------------------------------------------------------------------
    def locate(self, packet: bytes) -> tuple[int, int, int]:
        """Find the ESP part: (esp start, esp end, next-header field offset).

        The field offset is 9 (protocol) for IPv4. Raises PacketDrop / NotEsp.
        """
        if self.outer_v6:
            p6 = ip.parse_ipv6(packet)
            if p6 is None:
                raise PacketDrop(XfrmStat.IN_HDR_ERROR)
            end = p6[0]
            found = ip.ipv6_find_header(packet, end, self.outer_proto)
            if found is None:
                other = ip.IPPROTO_ESP if self.natt else ip.IPPROTO_UDP
                if ip.ipv6_find_header(packet, end, other) is not None:
                    raise PacketDrop(XfrmStat.IN_STATE_MISMATCH)
                raise PacketDrop(XfrmStat.IN_HDR_ERROR)
            start, field = found
        else:
            p4 = ip.parse_ipv4(packet)
            if p4 is None:
                raise PacketDrop(XfrmStat.IN_HDR_ERROR)
            start, end, proto = p4
            if not ip.ipv4_header_ok(packet, start):
                # a fragment (the kernel reassembles before xfrm) or a bad checksum
                raise PacketDrop(XfrmStat.IN_HDR_ERROR)
            if proto != self.outer_proto:
                if proto in (ip.IPPROTO_ESP, ip.IPPROTO_UDP):
                    raise PacketDrop(XfrmStat.IN_STATE_MISMATCH)
                raise PacketDrop(XfrmStat.IN_HDR_ERROR)
            field = 9
        if self.natt:
            if end - start < 8:
                raise PacketDrop(XfrmStat.IN_HDR_ERROR)
            ulen = (packet[start + 4] << 8) | packet[start + 5]
            if ulen < 8 or start + ulen > end:
                raise PacketDrop(XfrmStat.IN_HDR_ERROR)
            if not ip.udp_checksum_ok(packet, start, ulen, self.outer_v6):
                raise PacketDrop(XfrmStat.IN_HDR_ERROR)  # udp_rcv drops it first
            end = start + ulen
            start += 8
            if end - start == 1 and packet[start] == 0xFF:
                raise NotEsp(NonEsp.KEEPALIVE)
            if end - start >= 4 and packet[start : start + 4] == b"\x00\x00\x00\x00":
                raise NotEsp(NonEsp.IKE)
        if end - start < 8:
            # cannot even read SPI and sequence number (xfrm_parse_spi)
            raise PacketDrop(XfrmStat.IN_HDR_ERROR)
        return start, end, field

    def decap(
        self, packet: bytes, check_seq: Callable[[int], int]
    ) -> tuple[bytes | XfrmStat | None, int, int]:
        start, end, field = self.locate(packet)
        crypto = self.crypto
        if packet[start : start + 4] != crypto.spi_bytes:
            raise PacketDrop(XfrmStat.IN_NO_STATES)
        seq_lo = int.from_bytes(packet[start + 4 : start + 8], "big")
        seq_hi = check_seq(seq_lo)
        plain = crypto.open(packet, start, end, seq_hi)
        return self.finish(packet, start, field, plain), seq_lo, seq_hi

    def finish(
        self, packet: bytes, start: int, field: int, plain: bytes
    ) -> bytes | XfrmStat | None:
        """After the ICV verified: strip the trailer, restore the IP packet.

        ``start`` is where the ESP (or NAT-T UDP) header began in ``packet``.
        """
        n = len(plain)
        padlen = plain[n - 2]
        nh = plain[n - 1]
        plen = n - 2 - padlen
        if nh == ip.IPPROTO_NONE:
            if plen < 0:
                raise PacketDrop(XfrmStat.IN_HDR_ERROR)
            return None  # dummy packet (RFC 4303 §2.6): dropped silently
        if plen <= 0:
            # kernel: padlen + 2 + ICV >= payload is -EINVAL
            raise PacketDrop(XfrmStat.IN_HDR_ERROR)
        if self.tunnel:
            if nh == ip.IPPROTO_IPIP:
                if plen < 20 or plain[0] >> 4 != 4:
                    return XfrmStat.IN_STATE_MODE_ERROR
                inner = (plain[2] << 8) | plain[3]
                if inner < 20:
                    return XfrmStat.IN_HDR_ERROR
            elif nh == ip.IPPROTO_IPV6:
                if plen < 40 or plain[0] >> 4 != 6:
                    return XfrmStat.IN_STATE_MODE_ERROR
                inner = 40 + ((plain[4] << 8) | plain[5])
            else:
                return XfrmStat.IN_STATE_MODE_ERROR
            if inner > plen:
                return XfrmStat.IN_HDR_ERROR
            # The inner packet's own length drops TFC padding (ip_rcv trims likewise).
            outer_tos = ((packet[0] & 0x0F) << 4) | (packet[1] >> 4) if self.outer_v6 else packet[1]
            if self.decap_dscp or (self.decap_ecn and outer_tos & 3 == 3):
                return ip.decapsulate_tos(
                    outer_tos, plain[:inner], ecn=self.decap_ecn, copy_dscp=self.decap_dscp
                )
            return plain[:inner]
        if self.natt:
            start -= 8
        if self.outer_v6:
            return (
                ip.rewrite_ipv6_header(packet[:start], field, nh, start - 40 + plen) + plain[:plen]
            )
        return ip.rewrite_ipv4_header(packet[:start], nh, start + plen) + plain[:plen]
