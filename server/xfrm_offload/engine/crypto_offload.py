"""Crypto offload framing: the host's half and the NIC's half of ESP.

In crypto offload (XFRM_DEV_OFFLOAD_CRYPTO) the host frames the packet and runs the
sequence numbers and the replay window; the NIC only seals and opens in place and reports
a per-packet status (``CryptoStatus``, the kernel's enum). These functions are the two
halves over one SA's ``EspTransform``: the Python reference. The native engine has the
NIC's halves in C too (``nic_seal`` / ``nic_open`` in _esp.c, the same rules as
``nic_tx_seal`` / ``nic_rx_crypto``); ``EspTransform`` and ``native.NativeEsp`` both
offer them as ``nic_seal`` / ``nic_open``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from .errors import PacketDrop
from .espcrypto import M32
from .nonesp import NotEsp
from .stats import XfrmStat

if TYPE_CHECKING:
    from .esp import EspTransform


class CryptoStatus(enum.IntEnum):
    """The kernel's per-packet crypto offload RX status (enum in include/net/xfrm.h)."""

    CRYPTO_SUCCESS = 1
    CRYPTO_GENERIC_ERROR = 2
    CRYPTO_TRANSPORT_AH_AUTH_FAILED = 4
    CRYPTO_TRANSPORT_ESP_AUTH_FAILED = 8
    CRYPTO_TUNNEL_AH_AUTH_FAILED = 16
    CRYPTO_TUNNEL_ESP_AUTH_FAILED = 32
    CRYPTO_INVALID_PACKET_SYNTAX = 64
    CRYPTO_INVALID_PROTOCOL = 128


def host_tx_frame(transform: EspTransform, packet: bytes, seq: int) -> bytes:
    """What the host stack hands a crypto-offload NIC: the packet fully framed for ESP.

    Outer headers, ESP header with the sequence number, a zeroed IV slot, the cleartext
    payload with its trailer, and zeroed room for the ICV. The NIC is then told ``seq``
    (the 64-bit number, for the IV and ESN AAD) and only encrypts/authenticates in place.
    Raises PacketDrop(OUT_STATE_MODE_ERROR) for a packet that does not fit the mode.
    """
    c = transform.crypto
    saved = c.seal

    def frame_only(plain: bytes, seq64: int) -> bytes:
        hdr = c.spi_bytes + (seq64 & M32).to_bytes(4, "big")
        return hdr + bytes(c.iv_len) + plain + bytes(c.icv_len)

    c.seal = frame_only
    try:
        return transform.encap(packet, lambda: seq)
    finally:
        c.seal = saved


def nic_tx_crypto(transform: EspTransform, frame: bytes, esp_offset: int, seq: int) -> bytes:
    """The NIC's TX work on a host frame: fill the IV, encrypt, write the ICV.

    ``esp_offset`` is where the ESP header starts in ``frame`` (after any NAT-T UDP
    header). Returns the frame with the ESP part sealed. For IPv6 NAT-T the host must
    redo the UDP checksum (NETIF_F_HW_ESP_TX_CSUM is not emulated here).
    """
    c = transform.crypto
    plain = frame[esp_offset + 8 + c.iv_len : len(frame) - c.icv_len]
    return frame[:esp_offset] + c.seal(plain, seq)


def nic_tx_seal(transform: EspTransform, frame: bytes, seq: int) -> bytes | None:
    """The NIC's TX work where it finds the ESP part itself (``EspTransform.locate``):
    the sealed frame, or None for a frame it cannot seal, which the driver reports as an
    ESP transmit error (no ESP part where the SA puts it, no room for the IV and the
    ICV, a CBC payload that is not a whole number of blocks, a sequence number outside
    64 bits)."""
    try:
        start, _end, _ = transform.locate(frame)
        c = transform.crypto
        if len(frame) < start + 8 + c.iv_len + c.icv_len:
            return None  # no room for the IV and the ICV: sealing would grow the frame
        return nic_tx_crypto(transform, frame, start, seq)
    except Exception:  # any frame the host built wrong
        return None


def nic_rx_crypto(
    transform: EspTransform, packet: bytes, seq_hi: int
) -> tuple[CryptoStatus, bytes]:
    """The NIC's RX work: verify and decrypt in place, report a kernel crypto status.

    On CRYPTO_SUCCESS the returned frame has the ESP part's ciphertext replaced by the
    plaintext (ESP header, IV, trailer and ICV bytes stay where they were) so the host
    can run ``host_rx_finish``. On failure the packet comes back unchanged.
    """
    auth_failed = (
        CryptoStatus.CRYPTO_TUNNEL_ESP_AUTH_FAILED
        if transform.tunnel
        else CryptoStatus.CRYPTO_TRANSPORT_ESP_AUTH_FAILED
    )
    try:
        start, end, _ = transform.locate(packet)
        c = transform.crypto
        plain = c.open(packet, start, end, seq_hi)
    except NotEsp:
        return CryptoStatus.CRYPTO_INVALID_PROTOCOL, packet
    except PacketDrop as drop:
        if drop.reason is XfrmStat.IN_STATE_PROTO_ERROR:
            return auth_failed, packet
        return CryptoStatus.CRYPTO_INVALID_PACKET_SYNTAX, packet
    body = start + 8 + c.iv_len
    return CryptoStatus.CRYPTO_SUCCESS, packet[:body] + plain + packet[body + len(plain) :]


def host_rx_finish(transform: EspTransform, frame: bytes) -> bytes | XfrmStat | None:
    """The host's RX work after CRYPTO_SUCCESS: strip ESP framing (esp_input_done2).

    Returns the cleartext packet, None for a dummy, or the drop's XfrmStat.
    """
    try:
        start, end, field = transform.locate(frame)
        c = transform.crypto
        plain = frame[start + 8 + c.iv_len : end - c.icv_len]
        return transform.finish(frame, start, field, plain)
    except PacketDrop as drop:
        return drop.reason
    except NotEsp:
        return XfrmStat.IN_HDR_ERROR
