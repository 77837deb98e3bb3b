"""The two ends of a TCP transfer through the tunnel, run as `python transfer.py ...`
inside the namespaces: a sender of seeded pseudo-random bytes and a receiver, both
printing the byte count and sha256 of what they handled.

    transfer.py receive ADDR PORT MARK   # prints "ready", "mark" after MARK bytes, then "N HEX"
    transfer.py send ADDR PORT MBYTES PAUSE  # PAUSE seconds after every MiB
"""

from __future__ import annotations

import hashlib
import random
import socket
import sys
import time

MIB = 1 << 20


def receive(addr: str, port: int, mark: int) -> None:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((addr, port))
        listener.listen(1)
        listener.settimeout(60)
        print("ready", flush=True)
        conn, _ = listener.accept()
    with conn:
        conn.settimeout(60)
        digest, count = hashlib.sha256(), 0
        while chunk := conn.recv(MIB):
            digest.update(chunk)
            count += len(chunk)
            if mark and count >= mark:
                print("mark", flush=True)
                mark = 0
    print(count, digest.hexdigest(), flush=True)


def send(addr: str, port: int, mbytes: int, pause: float) -> None:
    rng = random.Random(16)
    digest, count = hashlib.sha256(), 0
    with socket.create_connection((addr, port), timeout=60) as conn:
        for _ in range(mbytes):
            chunk = rng.randbytes(MIB)
            conn.sendall(chunk)
            digest.update(chunk)
            count += len(chunk)
            if pause:
                time.sleep(pause)
    print(count, digest.hexdigest(), flush=True)


if __name__ == "__main__":
    role, addr, port, arg = sys.argv[1:5]
    if role == "receive":
        receive(addr, int(port), int(arg))
    else:
        send(addr, int(port), int(arg), float(sys.argv[5]))
