"""The gRPC channel settings client and server share.

- Answers (and a client's receive limit) up to 64 MiB.
- Requests: a server takes messages of at most ``--max-request`` (default
  DEFAULT_MAX_REQUEST_BYTES, 4 MiB, gRPC's own default), enforced by gRPC core itself
  (``grpc.max_receive_message_length``), which refuses a larger message
  RESOURCE_EXHAUSTED ("Received message larger than max") before it reaches Python.
  Why so low: gRPC Python copies every request it receives into one bytes object on the
  server's event loop, holding the GIL, at about 2 ms per MiB (120 ms for 64 MiB), so a
  large packet request holds up every control call for that long; refusing it in the
  servicer is too late (the copy is done), and a refused stream's client that keeps
  sending grew the server to 1.9 GiB in 12 s. With core's limit a flood of 64 MiB
  requests leaves the server's memory flat and its control calls at a p99 under 10 ms
  (bench/flood.py). It also keeps every answer under the 64 MiB send limit: ESP adds at
  most ~100 B to a packet of at least 20, so a 4 MiB request's answer is under 24 MiB.
  The client library sends packet batches in requests of at most PACKET_REQUEST_BYTES
  and joins their answers (``xfrm_offload.client.split``); control requests are far
  smaller (a StateAddBulk message carries what its caller batches: about 200 B a state).
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
#: A server's default --max-request: what the client library sends at most.
DEFAULT_MAX_REQUEST_BYTES = PACKET_REQUEST_BYTES

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)


def server_options(max_request: int) -> list[tuple[str, int]]:
    """A server's channel settings: answers as CHANNEL_OPTIONS allows, requests up to
    ``max_request`` bytes (gRPC core refuses a larger one before Python sees it)."""
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", max_request),
    ]
