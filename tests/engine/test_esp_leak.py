"""Malformed ESP must not grow memory: 20k XfrmInHdrError drops through decap_batch.

Before the fix one module-level PacketDrop was raised again for every malformed packet;
each raise appended to its traceback, which kept every frame (and the packet it held)
alive: about 1.4 KiB per packet, without bound.
"""

from __future__ import annotations

import gc
import ipaddress
import tracemalloc

from xfrm_offload.engine.ipheader import IPv4Template
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import Algorithm, Mode, SAConfig

SRC = ipaddress.IPv4Address("192.0.2.1")
DST = ipaddress.IPv4Address("192.0.2.2")
CFG = SAConfig(
    daddr=DST,
    saddr=SRC,
    spi=0x1001,
    mode=Mode.TUNNEL,
    replay_window=64,
    aead=Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128),
)


def _malformed(n: int) -> list[bytes]:
    """ESP packets too short for IV and ICV (each a distinct object, as from a wire)."""
    head = IPv4Template(SRC.packed, DST.packed, 50).build(20 + 12)
    return [
        head + (0x1001).to_bytes(4, "big") + (i + 1).to_bytes(4, "big") + bytes(4) for i in range(n)
    ]


def test_malformed_flood_keeps_memory_flat() -> None:
    sa = SecurityAssociation(CFG, 0.0)
    warm = sa.decap_batch(_malformed(256), 1.0)
    assert warm == [XfrmStat.IN_HDR_ERROR] * 256
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(80):  # 80 x 256 = 20,480 malformed packets
            batch = _malformed(256)
            assert sa.decap_batch(batch, 1.0) == [XfrmStat.IN_HDR_ERROR] * 256
            del batch
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert sa.drops[XfrmStat.IN_HDR_ERROR] == 256 + 80 * 256
    # The old code kept ~1.4 KiB per packet (~28 MiB here); allow a little noise.
    assert grown < 64 * 1024, grown
