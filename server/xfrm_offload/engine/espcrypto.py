"""The cryptographic core of one SA: seal and open the ESP part (SPI .. ICV).

This is all a crypto-offload NIC does. AEAD IVs follow the kernel's ``seqiv``: the 8-byte
explicit IV is BE64(seq) XOR a per-SA random salt, so it never repeats under one key. CBC
IVs are AES-ECB(iv_key, BE128(seq)) with a per-SA random iv_key: unique per packet and
unpredictable without the key (the role the kernel's ``echainiv`` plays, not its exact
construction). ESN: AEAD AAD is SPI||seq_hi||seq_lo; for CBC+HMAC seq_hi is appended to the
ICV input (RFC 4303 §2.2.1); it never goes on the wire.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from .algorithms import ResolvedTransforms
from .errors import PacketDrop
from .stats import XfrmStat

M32 = 0xFFFFFFFF

Seal = Callable[[bytes, int], bytes]
Open = Callable[[bytes, int, int, int], bytes]


class EspCrypto:
    """The cryptographic core of one SA: ``seal`` and ``open`` the ESP part.

    ``seal(plaintext_with_trailer, seq64) -> SPI||seq_lo||IV||ciphertext||ICV``.
    ``open(buf, start, end, seq_hi) -> plaintext_with_trailer`` for the ESP part found
    in ``buf[start:end]``; raises PacketDrop(IN_HDR_ERROR) if too short or misaligned,
    PacketDrop(IN_STATE_PROTO_ERROR) if the ICV does not verify.
    """

    __slots__ = (
        "align",
        "icv_len",
        "iv_len",
        "min_len",
        "open",
        "seal",
        "spi",
        "spi_bytes",
    )

    def __init__(self, t: ResolvedTransforms, spi: int, *, esn: bool, iv_salt: bytes) -> None:
        self.spi = spi
        self.spi_bytes = spi.to_bytes(4, "big")
        self.iv_len = t.cipher.iv_size
        self.icv_len = t.icv_len
        # Kernel: align = ALIGN(cipher block size, 4).
        self.align = max(4, t.cipher.block_size)
        self.min_len = 8 + self.iv_len + self.icv_len + max(2, t.cipher.block_size)
        self.seal: Seal
        self.open: Open
        if t.auth is None:
            self._build_aead(t, esn, iv_salt)
        else:
            self._build_cbc_hmac(t, esn, iv_salt)

    # -- AEAD: rfc4106 / rfc4543 / rfc7539esp ------------------------------------------
    def _build_aead(self, t: ResolvedTransforms, esn: bool, iv_salt: bytes) -> None:
        spi_b = self.spi_bytes
        nsalt = t.salt
        ivs = int.from_bytes(iv_salt[:8], "big")
        icv_len = self.icv_len
        min_len = self.min_len
        gmac = t.cipher.auth_only
        aead: AESGCM | ChaCha20Poly1305
        if t.cipher.name.startswith("rfc7539esp"):
            aead = ChaCha20Poly1305(t.cipher_key)
        else:
            aead = AESGCM(t.cipher_key)
        enc: Callable[[bytes, bytes, bytes], bytes] = aead.encrypt
        dec: Callable[[bytes, bytes, bytes], bytes] = aead.decrypt
        proto_error = XfrmStat.IN_STATE_PROTO_ERROR
        key = t.cipher_key

        if icv_len != 16:
            # AESGCM's one-shot API has a fixed 16-byte tag: truncated ICVs take the
            # streaming API (slower, but these are rare configurations).
            def enc_trunc(nonce: bytes, data: bytes, aad: bytes) -> bytes:
                e = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
                e.authenticate_additional_data(aad)
                ct = e.update(data) + e.finalize()
                return ct + e.tag[:icv_len]

            def dec_trunc(nonce: bytes, data: bytes, aad: bytes) -> bytes:
                tag = data[-icv_len:]
                d = Cipher(
                    algorithms.AES(key), modes.GCM(nonce, tag, min_tag_length=icv_len)
                ).decryptor()
                d.authenticate_additional_data(aad)
                return d.update(data[:-icv_len]) + d.finalize()

            enc = enc_trunc
            dec = dec_trunc

        if gmac:
            # RFC 4543: nothing is encrypted; AAD = SPI, seq (ESN: hi, lo), IV, payload.
            def seal(plain: bytes, seq: int) -> bytes:
                iv = (seq ^ ivs).to_bytes(8, "big")
                hdr = spi_b + (seq & M32).to_bytes(4, "big")
                aad = spi_b + seq.to_bytes(8, "big") if esn else hdr
                return hdr + iv + plain + enc(nsalt + iv, b"", aad + iv + plain)

            def open_(buf: bytes, start: int, end: int, seq_hi: int) -> bytes:
                if end - start < min_len:
                    raise PacketDrop(XfrmStat.IN_HDR_ERROR)
                hdr = buf[start : start + 8]
                aad = hdr[:4] + seq_hi.to_bytes(4, "big") + hdr[4:] if esn else hdr
                iv = buf[start + 8 : start + 16]
                plain = buf[start + 16 : end - icv_len]
                try:
                    dec(nsalt + iv, buf[end - icv_len : end], aad + iv + plain)
                except InvalidTag:
                    raise PacketDrop(proto_error) from None
                return plain

        elif esn:

            def seal(plain: bytes, seq: int) -> bytes:
                iv = (seq ^ ivs).to_bytes(8, "big")
                s8 = seq.to_bytes(8, "big")
                return spi_b + s8[4:] + iv + enc(nsalt + iv, plain, spi_b + s8)

            def open_(buf: bytes, start: int, end: int, seq_hi: int) -> bytes:
                if end - start < min_len:
                    raise PacketDrop(XfrmStat.IN_HDR_ERROR)
                aad = (
                    buf[start : start + 4] + seq_hi.to_bytes(4, "big") + buf[start + 4 : start + 8]
                )
                try:
                    return dec(nsalt + buf[start + 8 : start + 16], buf[start + 16 : end], aad)
                except InvalidTag:
                    raise PacketDrop(proto_error) from None

        else:

            def seal(plain: bytes, seq: int) -> bytes:
                iv = (seq ^ ivs).to_bytes(8, "big")
                hdr = spi_b + (seq & M32).to_bytes(4, "big")
                return hdr + iv + enc(nsalt + iv, plain, hdr)

            def open_(buf: bytes, start: int, end: int, seq_hi: int) -> bytes:
                if end - start < min_len:
                    raise PacketDrop(XfrmStat.IN_HDR_ERROR)
                try:
                    return dec(
                        nsalt + buf[start + 8 : start + 16],
                        buf[start + 16 : end],
                        buf[start : start + 8],
                    )
                except InvalidTag:
                    raise PacketDrop(proto_error) from None

        self.seal = seal
        self.open = open_

    # -- cipher + HMAC: cbc(aes) / ecb(cipher_null) with hmac(...) / digest_null ----------
    def _build_cbc_hmac(self, t: ResolvedTransforms, esn: bool, iv_salt: bytes) -> None:
        assert t.auth is not None
        spi_b = self.spi_bytes
        iv_len = self.iv_len
        icv_len = self.icv_len
        min_len = self.min_len
        block = t.cipher.block_size
        akey = t.auth_key
        digest = t.auth.digest
        key = t.cipher_key
        cbc = not t.cipher.auth_only
        if cbc:
            # iv_salt is 16+ random bytes: the IV key (see the module docstring).
            ivgen = Cipher(algorithms.AES(iv_salt[:16]), modes.ECB()).encryptor().update

        def mac(body: bytes, seq_hi: bytes) -> bytes:
            if not icv_len:
                return b""
            return hmac.digest(akey, body + seq_hi if esn else body, digest)[:icv_len]

        def seal(plain: bytes, seq: int) -> bytes:
            hdr = spi_b + (seq & M32).to_bytes(4, "big")
            if cbc:
                iv = ivgen(seq.to_bytes(16, "big"))
                e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
                body = hdr + iv + e.update(plain) + e.finalize()
            else:
                body = hdr + plain
            return body + mac(body, (seq >> 32).to_bytes(4, "big"))

        def open_(buf: bytes, start: int, end: int, seq_hi: int) -> bytes:
            if end - start < min_len or (end - start - 8 - iv_len - icv_len) % block:
                raise PacketDrop(XfrmStat.IN_HDR_ERROR)
            body = buf[start : end - icv_len]
            if icv_len and not hmac.compare_digest(
                mac(body, seq_hi.to_bytes(4, "big")), buf[end - icv_len : end]
            ):
                raise PacketDrop(XfrmStat.IN_STATE_PROTO_ERROR)
            if not cbc:
                return body[8:]
            d = Cipher(algorithms.AES(key), modes.CBC(body[8 : 8 + iv_len])).decryptor()
            return d.update(body[8 + iv_len :]) + d.finalize()

        self.seal = seal
        self.open = open_
