"""Bounded fuzz of _tunoffload.c against its Python reference (tunoffload.py).

N inputs, in three kinds, from a fixed seed:

- TUN frames for ``from_host``: a virtio_net_hdr (a TSO one with a random gso_size, a
  NEEDS_CSUM one with random offsets, or random bytes) over a TCP (IPv4 / IPv6) or UDP
  packet, mutated (header bytes, truncation, extension, random bytes);
- super-packets for ``segment`` with any gso_size (0, negative, huge);
- batches of up to 48 packets for ``coalesce``: segments of two TCP streams (IPv4 and
  IPv6), pure ACKs and UDP, in any order with repeats, some mutated, half of those
  with their checksums redone so that the merge rules past the checksum check run.

Each input goes through the C; the result must be what the Python reference gives for
it (the same list of bytes / of (frame, count), or BadOffload from both). The reference
runs only where it is cheap (at most 64 segments out of a super-packet); beyond that
the C must still return or refuse without a crash. Bad types must be TypeErrors. Meant
to run under scripts/sanitize (ASan + UBSan), where any memory error aborts it.

    python scripts/fuzz_tunoffload.py [INPUTS]    (default 200,000)
"""

from __future__ import annotations

import random
import struct
import sys
from collections import Counter
from collections.abc import Callable

from xfrm_offload.engine.ipheader import fold_checksum, ipv4_checksum, ones_complement_sum
from xfrm_offload.server import tunoffload
from xfrm_offload.server.tunoffload import VNET_HDR, BadOffload

MSS = 1000
OPTIONS = b"\x01\x01\x08\x0a" + struct.pack("!II", 1000, 2000)
SRC6, DST6 = (
    bytes.fromhex("20010db8000a" + "00" * 9 + "01"),
    bytes.fromhex("20010db8000b" + "00" * 9 + "01"),
)
#: The most segments a super-packet may give for the Python reference to run too.
REFERENCE_SEGMENTS = 64


def ip_packet(v6: bool, proto: int, l4: bytes, ip_id: int = 100) -> bytes:
    if v6:
        return struct.pack("!IHBB", 6 << 28, len(l4), proto, 64) + SRC6 + DST6 + l4
    addresses = bytes((198, 51, 100, 1, 203, 0, 113, 1))
    fields = (0x45, 0, 20 + len(l4), ip_id, 0x4000, 64, proto, 0, addresses)
    header = bytearray(struct.pack("!BBHHHBBH8s", *fields))
    struct.pack_into("!H", header, 10, ipv4_checksum(header))
    return bytes(header) + l4


def resum(packet: bytes) -> bytes:
    """The IPv4 header and TCP checksums redone for these bytes, where they fit."""
    v6 = bool(packet) and packet[0] >> 4 == 6
    ihl = 40 if v6 else 20
    if len(packet) < ihl + 20:
        return packet
    out = bytearray(packet)
    if not v6:
        struct.pack_into("!H", out, 10, ipv4_checksum(out[:20]))
    out[ihl + 16 : ihl + 18] = b"\0\0"
    addresses = out[8:40] if v6 else out[12:20]
    total = ones_complement_sum(addresses) + 6 + len(out) - ihl + ones_complement_sum(out[ihl:])
    struct.pack_into("!H", out, ihl + 16, fold_checksum(total))
    return bytes(out)


def tcp_packet(v6: bool, payload: bytes, seq: int, flags: int = 0x10, ip_id: int = 100) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, 5201, seq, 77, 8 << 4, flags, 501, 0, 0) + OPTIONS
    return resum(ip_packet(v6, 6, tcp + payload, ip_id))


def stream(v6: bool, count: int) -> list[bytes]:
    blob = bytes(range(256)) * 8
    return [
        tcp_packet(
            v6, blob[i * 7 : i * 7 + MSS], 5000 + i * MSS, 0x18 if i == count - 1 else 0x10, 100 + i
        )
        for i in range(count)
    ]


def mutate(rng: random.Random, packet: bytes) -> bytes:
    b = bytearray(packet)
    how = rng.randrange(6)
    if how == 0 and b:  # a header byte (IP, TCP, options)
        b[rng.randrange(min(len(b), 80))] = rng.randrange(256)
    elif how == 1 and b:
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif how == 2:
        del b[rng.randrange(len(b) + 1) :]
    elif how == 3:
        b += rng.randbytes(rng.randrange(1, 40))
    elif how == 4 and len(b) > (offset := 52 if b and b[0] >> 4 == 6 else 32):
        b[offset] = rng.randrange(256)  # the TCP data offset
    else:
        b = bytearray(rng.randbytes(rng.randrange(0, 100)))
    return bytes(b)


def outcome(call: Callable[..., object], *args: object) -> object:
    """What ``call(*args)`` returned, or BadOffload (the class) if it refused."""
    try:
        return call(*args)
    except BadOffload:
        return BadOffload


def check(
    what: str, args: tuple[object, ...], c: Callable[..., object],
    reference: Callable[..., object] | None, outcomes: Counter[str],
) -> None:  # fmt: skip
    """``c(*args)`` must not crash, and give what ``reference(*args)`` gives (if run)."""
    got = outcome(c, *args)
    if reference is None:
        outcomes[f"{what} C only"] += 1
        return
    expected = outcome(reference, *args)
    if got != expected:
        raise AssertionError(f"{what}: C {got!r:.200} != Python {expected!r:.200} on {args!r:.300}")
    outcomes[f"{what} {'refused' if expected is BadOffload else 'equal'}"] += 1


def cheap(packet: bytes, gso_size: int) -> bool:
    """The reference's segmentation is cheap here: few segments (or a refusal)."""
    return gso_size == 0 or len(packet) // gso_size < REFERENCE_SEGMENTS


def main() -> int:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    native = tunoffload._native
    if native is None:
        print("fuzz_tunoffload: _tunoffload.c is not built", file=sys.stderr)
        return 1
    rng = random.Random(20261202)
    blob = bytes(range(256)) * 40
    supers = [
        tcp_packet(v6, blob[: rng.randrange(0, 9000)], 1 << 31)
        for v6 in (False, True)
        for _ in range(4)
    ]
    udp = [
        ip_packet(v6, 17, struct.pack("!HHHH", 1, 2, 8 + 300, 0) + blob[:300])
        for v6 in (False, True)
    ]
    pool = (
        stream(False, 24)
        + stream(True, 16)
        + udp
        + [
            tcp_packet(False, b"", 5000 + 3 * MSS, ip_id=103),  # pure ACK
            tcp_packet(True, b"", 5000, flags=0x12),  # SYN-ACK
        ]
    )
    outcomes: Counter[str] = Counter()
    for i in range(total):
        kind = i % 3
        if kind == 0:  # a TUN frame
            packet = rng.choice([*supers, *udp])
            if rng.randrange(3):
                packet = mutate(rng, packet)
            choice = rng.randrange(4)
            gso = rng.choice([0, 1, 7, 536, MSS, 1448, 65535, rng.randrange(65536)])
            if choice == 0:
                vnet = VNET_HDR.pack(1, rng.choice([1, 3, 4, 0x81, 0x84, 5]), 0, gso, 20, 16)
            elif choice == 1:
                vnet = VNET_HDR.pack(1, 0, 0, 0, rng.randrange(80), rng.randrange(40))
            elif choice == 2:
                vnet = bytes(VNET_HDR.size)
            else:
                vnet = rng.randbytes(rng.randrange(0, 12))
            frame = vnet + packet
            tso = len(frame) >= VNET_HDR.size and frame[1] & 0x7F
            size = struct.unpack_from("<H", frame, 4)[0] if tso else 0
            reference = tunoffload.from_host_reference if cheap(packet, size) else None
            check("from_host", (frame,), native.from_host, reference, outcomes)
        elif kind == 1:  # a super-packet straight to segment, any gso_size
            packet = rng.choice(supers)
            if rng.randrange(2):
                packet = mutate(rng, packet)
            gso = rng.choice([0, 1, 100, MSS, 1460, 1 << 40, rng.randrange(70000)])
            segment = tunoffload.segment_reference if cheap(packet, gso) else None
            check("segment", (packet, gso), native.segment, segment, outcomes)
            if rng.randrange(16) == 0:  # only the C takes a negative one (Python: from a u16)
                if outcome(native.segment, packet, -rng.randrange(1, 1 << 40)) is not BadOffload:
                    raise AssertionError("segment took a negative gso_size")
                outcomes["segment negative refused"] += 1
        else:  # a batch for coalesce
            batch = [rng.choice(pool) for _ in range(rng.randrange(0, 49))]
            if rng.randrange(4) == 0:  # in order, as a device mostly sees them
                start = rng.randrange(20)
                batch = pool[start : start + rng.randrange(1, 25)]
            for _ in range(rng.randrange(0, 4)):
                if batch:
                    at = rng.randrange(len(batch))
                    batch[at] = mutate(rng, batch[at])
                    if rng.randrange(2):
                        batch[at] = resum(batch[at])
            check("coalesce", (batch,), native.coalesce, tunoffload.to_host_reference, outcomes)
            if any(count > 1 for _, count in native.coalesce(batch)):  # the rules got past
                outcomes["coalesce merged some"] += 1
    # bad types: TypeErrors, not crashes
    for call, arg in ((native.from_host, (bytearray(20),)), (native.coalesce, ((b"x",),)),
                      (native.coalesce, ([b"x", 1],)), (native.segment, ("x", 1))):  # fmt: skip
        try:
            call(*arg)
        except TypeError:
            outcomes["bad type refused"] += 1
        else:
            raise AssertionError(f"{call.__name__}{arg!r} accepted")
    print(f"fuzz_tunoffload: {total} inputs, {sorted(outcomes.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
