"""With --workers, a control call takes the worker's pipe before the packet chunks still
waiting for it: it is answered after at most the chunks already handed over."""

from __future__ import annotations

import asyncio

from xfrm_offload.server import ops
from xfrm_offload.server.clock import SystemClock
from xfrm_offload.server.config import parse_args
from xfrm_offload.server.nic import Nic
from xfrm_offload.server.workers import WorkerPool

from .builders import Tunnel, packets, policy, sa, udp4

CHUNKS = 40


async def test_a_control_call_passes_packet_chunks_waiting_for_the_pipe() -> None:
    nic = Nic(parse_args(["--workers", "1"]), SystemClock())
    await nic.start()
    try:
        assert isinstance(nic.host, WorkerPool)
        now = nic.clock.now()
        t = Tunnel()
        await nic.call("eth0", ops.state_add, sa(t, "eth0", False), now)
        await nic.call("eth0", ops.policy_add, policy(t, "eth0", False), now)
        data = packets(udp4, "198.51.100.10", "203.0.113.20", 256, 1400)
        done: list[str] = []

        async def call(name: str, fn: object, *args: object) -> None:
            await nic.call("eth0", fn, *args)  # type: ignore[arg-type]
            done.append(name)

        chunks = [
            asyncio.ensure_future(call(f"chunk {k}", ops.packets, 1, data, [], [], now))
            for k in range(CHUNKS)
        ]
        await asyncio.sleep(0)  # every chunk is waiting for the pipe, or on it
        control = asyncio.ensure_future(call("control", ops.describe))
        await asyncio.gather(control, *chunks)
        # Chunks keep their order, and the control call overtook nearly all of them: only
        # those already on the pipe (being sent or processed) went first.
        assert [n for n in done if n != "control"] == [f"chunk {k}" for k in range(CHUNKS)]
        assert done.index("control") <= 3, done
        # And every chunk was processed in full: 40 x 256 packets through the SA.
        states = await nic.call("eth0", ops.list_states, False)
        assert states[0].curlft.packets == CHUNKS * 256
    finally:
        await nic.close()
        await nic.stop_workers()
