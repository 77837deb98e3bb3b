"""The protobuf wire format's varint, for the code that writes messages by hand: the
server's packed PacketStream answers (server/packetwire.py) and the client's serialized
PacketStream requests (client/split.py) share it."""

from __future__ import annotations


def varint(value: int) -> bytes:
    """An unsigned integer (below 2**64) as a protobuf varint."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
