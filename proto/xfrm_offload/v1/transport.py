"""The gRPC channel settings client and server share.

- Messages up to 64 MiB. gRPC Python copies every request it receives into one bytes
  object on the server's event loop, holding the GIL, at about 2 ms per MiB (120 ms for
  64 MiB), so a large packet request holds up every control call for that long: the
  client library sends packet batches in requests of at most PACKET_REQUEST_BYTES and
  joins their answers (``xfrm_offload.client.split``); a server may refuse larger ones
  (``--max-packet-request``, off by default).
- HTTP/2 windows and frames stay gRPC's own (64 kB initial stream window grown by the
  BDP probe, 16 kB frames). bench/packet_shape.py measures the bare echo of 64 x 1400 B
  batches under larger frames (1 MiB, 16 MiB), fixed windows (2, 4, 8 MiB, with and
  without the BDP probe) and a larger write buffer, rounds interleaved, each round's
  rate against the default's: on this 2-core machine shared with other work no setting
  won every round (two sessions; in the second, three runs of 5-7 rounds: each setting's
  worst round at 0.16-0.65x of the default, its best at 1.0-1.9x), the echo's
  CPU per packet favoured none in every run (1 MiB frames 10 % under the default in one
  run, 29 % over in another), and turning the BDP probe off without a larger window lost
  nearly every round. 1 MiB frames with an 8 MiB window on both sides, tried on
  ``xfrmctl packet tx`` of 300k x 1400 B against the real server (8 interleaved rounds
  in two runs), ranked 0.71-1.73x. Set what the bench shows to win in every round where
  it runs quietly.
"""

from __future__ import annotations

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: The largest PacketStream request the client library sends (its serialized size).
PACKET_REQUEST_BYTES = 4 * 1024 * 1024

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)
