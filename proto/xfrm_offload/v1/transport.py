"""The gRPC channel settings client and server share (measured in bench/packet_shape.py).

- Messages up to 64 MiB: large packet batches must fit in one message.
- A fixed 4 MiB HTTP/2 stream window with the BDP probe off, and frames up to 1 MiB: a
  64 x 1400 B batch (90 kB) then crosses in a few frames within one window, instead of
  waiting on window updates while the probe grows a 64 kB window; the bare echo of such
  batches ran about 1.1x faster so. The window also bounds what one stream can have in
  flight unread on a connection (the server's packet budget counts what it took in).
"""

from __future__ import annotations

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
STREAM_WINDOW_BYTES = 4 * 1024 * 1024
MAX_FRAME_BYTES = 1024 * 1024

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.max_frame_size", MAX_FRAME_BYTES),
)
