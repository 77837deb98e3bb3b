"""Public AES-GCM-in-ESP vectors (../shared/vectors/esp_vectors.json) through the engine.

- Every vector (``esp-aead`` packets and the kernel's ``aead-primitive`` ones, whose AAD
  is SPI || seq too): ``EspCrypto.seal`` with an IV salt chosen so that BE64(seq) XOR salt
  is the vector's IV reproduces the vector's ESP bytes, and ``open`` inverts it.
- Every ``esp-aead`` vector: an inbound transport-mode SA configured from the vector
  turns the packet (wrapped in an outer IPv4 header, protocol 50) back into the payload
  and next header of the vector's plaintext (which already holds the ESP trailer); with
  one ICV bit flipped it is dropped as XfrmInStateProtoError.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from xfrm_offload.engine.algorithms import validate_transforms
from xfrm_offload.engine.esp import EspCrypto
from xfrm_offload.engine.ipheader import IPv4Template
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import Algorithm, Mode, ReplayState, SAConfig, SAFlag

# shared/ lies beside the checkout (CI's copy too); /work/shared where the checkout is elsewhere.
_BESIDE = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "esp_vectors.json"
VECTORS_PATH = _BESIDE if _BESIDE.exists() else Path("/work/shared/vectors/esp_vectors.json")
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text())
ESP_VECTORS = [v for v in VECTORS if v["category"] == "esp-aead"]
SADDR = ipaddress.IPv4Address("192.0.2.1")
DADDR = ipaddress.IPv4Address("192.0.2.2")


def _seq(v: dict[str, Any]) -> tuple[int, int, int]:
    """(spi, seq_hi, seq_lo) of a vector; primitives carry them in their 8-byte AAD."""
    aad = bytes.fromhex(v["aad"])
    if v["category"] == "esp-aead":
        hi = int(v.get("seq_hi", "0"), 16) if v["esn"] else 0
        return int(v["spi"], 16), hi, int.from_bytes(aad[-4:], "big")
    hi = int.from_bytes(aad[4:8], "big") if len(aad) == 12 else 0  # 12 octets: ESN
    return int.from_bytes(aad[:4], "big"), hi, int.from_bytes(aad[-4:], "big")


def _crypto(v: dict[str, Any], esn: bool) -> EspCrypto:
    spi, hi, lo = _seq(v)
    seq = (hi << 32) | lo
    iv_salt = (int(v["iv"], 16) ^ seq).to_bytes(8, "big") + bytes(8)
    aead = Algorithm("rfc4106(gcm(aes))", bytes.fromhex(v["keymat"]), v["icv_len"] * 8)
    return EspCrypto(validate_transforms(aead, None, None), spi, esn=esn, iv_salt=iv_salt)


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_seal_reproduces_vector(v: dict[str, Any]) -> None:
    esn = len(bytes.fromhex(v["aad"])) == 12
    crypto = _crypto(v, esn)
    spi, hi, lo = _seq(v)
    expected = (
        spi.to_bytes(4, "big")
        + lo.to_bytes(4, "big")
        + bytes.fromhex(v["iv"])
        + bytes.fromhex(v["expected_output"])
    )
    if "esp_packet" in v:
        assert expected == bytes.fromhex(v["esp_packet"])
    sealed = crypto.seal(bytes.fromhex(v["plaintext"]), (hi << 32) | lo)
    assert sealed == expected
    assert crypto.open(sealed, 0, len(sealed), hi) == bytes.fromhex(v["plaintext"])


def _inbound_sa(v: dict[str, Any]) -> SecurityAssociation:
    spi, hi, lo = _seq(v)
    esn = bool(v["esn"])
    config = SAConfig(
        daddr=DADDR,
        saddr=SADDR,
        spi=spi,
        mode=Mode.TRANSPORT,
        flags=SAFlag.ESN if esn else SAFlag.NONE,
        replay_window=32,
        # Put the window where the vector's sequence number is the next one expected,
        # so ESN inference yields the vector's seq_hi.
        replay=ReplayState(seq=max(lo - 1, 0), seq_hi=hi),
        aead=Algorithm("rfc4106(gcm(aes))", bytes.fromhex(v["keymat"]), v["icv_len"] * 8),
    )
    return SecurityAssociation(config, 0.0)


def _wrap(esp: bytes) -> bytes:
    return IPv4Template(SADDR.packed, DADDR.packed, 50).build(20 + len(esp)) + esp


@pytest.mark.parametrize("v", ESP_VECTORS, ids=[v["id"] for v in ESP_VECTORS])
def test_inbound_sa_decrypts_vector(v: dict[str, Any]) -> None:
    sa = _inbound_sa(v)
    packet = _wrap(bytes.fromhex(v["esp_packet"]))
    out = sa.decap(packet, 1.0)
    assert isinstance(out, bytes)
    plain = bytes.fromhex(v["plaintext"])
    pad_length, next_header = plain[-2], plain[-1]
    assert (pad_length, next_header) == (
        v["trailer_parse"]["pad_length"],
        v["trailer_parse"]["next_header"],
    )
    payload = plain[: len(plain) - 2 - pad_length]
    assert out[20:] == payload
    assert out[9] == next_header
    assert int.from_bytes(out[2:4], "big") == 20 + len(payload)
    assert sa.curlft.packets == 1
    assert sa.stats.as_dict() == {name: 0 for name in sa.stats.as_dict()}


@pytest.mark.parametrize("v", ESP_VECTORS, ids=[v["id"] for v in ESP_VECTORS])
@pytest.mark.parametrize("bit", [0, 77, 127])
def test_flipped_icv_bit_is_dropped(v: dict[str, Any], bit: int) -> None:
    sa = _inbound_sa(v)
    esp = bytearray.fromhex(v["esp_packet"])
    icv_start = len(esp) - v["icv_len"]
    esp[icv_start + bit // 8] ^= 0x80 >> (bit % 8)
    assert sa.decap(_wrap(bytes(esp)), 1.0) is XfrmStat.IN_STATE_PROTO_ERROR
    assert sa.integrity_failed == 1
    assert sa.stats[XfrmStat.IN_STATE_PROTO_ERROR] == 1
    assert sa.curlft.packets == 0
    # The forged packet did not move the window: the genuine one still passes.
    assert isinstance(sa.decap(_wrap(bytes.fromhex(v["esp_packet"])), 1.0), bytes)
