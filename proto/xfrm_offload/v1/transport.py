"""The gRPC channel settings client and server share.

- Messages up to 64 MiB. gRPC Python copies every request it receives into one bytes
  object on the server's event loop, holding the GIL, at about 2 ms per MiB (120 ms for
  64 MiB), so a large packet request holds up every control call for that long: the
  client library sends packet batches in requests of at most PACKET_REQUEST_BYTES and
  joins their answers (``xfrm_offload.client.split``); a server may refuse larger ones
  (``--max-packet-request``, off by default).
- HTTP/2 windows and frames stay gRPC's own (64 kB initial stream window grown by the
  BDP probe, 16 kB frames). bench/packet_shape.py measures the bare echo of 64 x 1400 B
  batches under larger frames (1 MiB, 16 MiB), fixed windows (4, 8, 16 MiB, with and
  without the BDP probe) and a larger write buffer: on this 2-core machine shared with
  other work no setting won beyond the noise across runs (each ranked from 0.6x to 1.5x of
  the default in different runs), and turning the BDP probe off without a larger window
  lost in every run. Set what the bench shows to win where it runs quietly.
"""

from __future__ import annotations

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: The largest PacketStream request the client library sends (its serialized size).
PACKET_REQUEST_BYTES = 4 * 1024 * 1024

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)
