"""The native engine's own guarantees: caller buffers untouched, no key in any text,
bad parameters refused, the engine choice."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from xfrm_offload.engine import native
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import Algorithm, Mode, SAConfig

pytestmark = pytest.mark.skipif(not native.available(), reason="native engine not built")


@pytest.fixture(autouse=True, scope="module")
def esp_engine() -> str:
    """Overrides conftest's: these SAs name their engine."""
    return "native"


KEY = bytes(range(0xA0, 0xB4))
CFG = SAConfig(
    daddr=ipaddress.IPv4Address("192.0.2.2"),
    saddr=ipaddress.IPv4Address("192.0.2.1"),
    spi=0x1001,
    mode=Mode.TUNNEL,
    replay_window=64,
    aead=Algorithm("rfc4106(gcm(aes))", KEY, 128),
)
INNER = bytes.fromhex("4500002000004000401100000a0000010a000002") + bytes(12)


def test_caller_buffers_are_never_written() -> None:
    tx = SecurityAssociation(CFG, 0.0, engine="native")
    rx = SecurityAssociation(CFG, 0.0, engine="native")
    inner = bytearray(INNER)
    sealed, second = tx.encap_batch([inner, inner], 1.0)  # type: ignore[list-item]
    assert inner == INNER
    assert isinstance(sealed, bytes)
    wire = bytearray(sealed)
    assert rx.decap_batch([wire], 1.0) == [INNER]  # type: ignore[list-item]
    assert wire == sealed  # decrypted elsewhere, not in place
    assert isinstance(second, bytes)
    forged = bytearray(second)
    forged[-1] ^= 1
    kept = bytes(forged)
    assert rx.decap_batch([forged], 1.0) == [XfrmStat.IN_STATE_PROTO_ERROR]  # type: ignore[list-item]
    assert forged == kept


def test_no_key_in_repr_or_errors() -> None:
    s = SecurityAssociation(CFG, 0.0, engine="native")
    batch = s.batch
    assert isinstance(batch, native.NativeEsp)
    text = repr(batch._sa)
    assert KEY.hex() not in text and "a0a1" not in text
    with pytest.raises(TypeError) as info:
        s.encap_batch(["not bytes"], 1.0)  # type: ignore[list-item]
    assert KEY.hex() not in str(info.value)


def test_packets_that_are_not_buffers_are_refused_without_losing_state() -> None:
    s = SecurityAssociation(CFG, 0.0, engine="native")
    assert isinstance(s.encap_batch([INNER], 1.0)[0], bytes)
    with pytest.raises(TypeError):
        s.encap_batch([INNER, 7], 1.0)  # type: ignore[list-item]
    # the failed call used no sequence number the next packet would reuse
    out = s.encap_batch([INNER], 1.0)[0]
    assert isinstance(out, bytes)
    assert int.from_bytes(out[24:28], "big") == s.oseq.last == 2


def test_sa_object_refuses_a_second_init_and_bad_parameters() -> None:
    s = SecurityAssociation(CFG, 0.0, engine="native")
    batch = s.batch
    assert isinstance(batch, native.NativeEsp)
    with pytest.raises(TypeError, match="initialised once"):
        batch._sa.__init__()
    sa_type: Any = type(batch._sa)
    with pytest.raises(ValueError) as info:  # a tos map of the wrong size
        sa_type(
            kind=0, chacha=False, key=KEY[:16], salt=KEY[16:], digest="", auth_key=b"",
            icv_len=16, iv_salt=bytes(16), spi=1, esn=False, tunnel=True, outer_v6=False,
            natt=False, sport=0, dport=0, tfc_padto=0, saddr=bytes(4), daddr=bytes(4),
            nopmtudisc=False, decap_ecn=True, decap_dscp=False, tos_map=bytes(255),
            window=32, results=native._RESULTS,
        )  # fmt: skip
    assert KEY[:16].hex() not in str(info.value)
    # and an uninitialised object refuses to work instead of crashing
    empty = sa_type.__new__(sa_type)
    with pytest.raises(TypeError, match="not initialised"):
        empty.encap([INNER], 0, 0, 2**32 - 1, False, 0)
