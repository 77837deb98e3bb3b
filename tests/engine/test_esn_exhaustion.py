"""ESN exhaustion on the device's packet path, as xfrm_replay_overflow_esn and
xfrm_output_one count it: the last number an ESN SA sends is 2^64 - 1; the packet after
it is refused (-EOVERFLOW), counted as XfrmOutStateSeqError on the device, the counter
stays at its last value, and one SEQ_OVERFLOW event tells the keymanager to rekey."""

from __future__ import annotations

from dataclasses import replace

from xfrm_offload.engine.datapath import DevicePath, Verdict
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.events import (
    SeqOverflow,
    StateEvent,
)
from xfrm_offload.engine.offload_rules import (
    XFRM_OFFLOAD_PACKET,
)
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.spd import Policy
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import Direction, ReplayState, SAFlag

from ..datapath.builders import udp4
from .test_datapath import SEL, sa, tmpl

INNER = udp4("198.51.100.7", "203.0.113.9", b"e" * 40)


def test_the_64_bit_space_ends_at_2_64_minus_1() -> None:
    path = DevicePath(Device("eth0", 2, PROFILES["full"]))
    config = replace(
        sa(0x100),
        flags=SAFlag.ESN,
        sa_dir=Direction.OUT,
        replay_window=0,
        replay=ReplayState(oseq=0xFFFFFFFD, oseq_hi=0xFFFFFFFF),
    )
    handle = path.device.state_add(config, XFRM_OFFLOAD_PACKET, 0.0).handle
    path.device.policy_add(
        Policy(sel=SEL, dir=Direction.OUT, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET
    )
    path.device.pop_events()
    out = path.tx([INNER] * 4, 1.0).outcomes()
    assert [o[0] for o in out] == [Verdict.PASS, Verdict.PASS, Verdict.DROP, Verdict.DROP]
    assert [o[1] for o in out[2:]] == [XfrmStat.OUT_STATE_SEQ_ERROR] * 2
    # the low half on the wire: ...fffe, ...ffff (the high half is in the ICV only)
    wire = [o[1] for o in out[:2] if isinstance(o[1], bytes)]
    assert [int.from_bytes(w[24:28], "big") for w in wire] == [0xFFFFFFFE, 0xFFFFFFFF]
    assert path.device.stats.as_dict()["XfrmOutStateSeqError"] == 2
    replay = path.device.update_curlft(handle).replay_state
    assert (replay.oseq_hi, replay.oseq) == (0xFFFFFFFF, 0xFFFFFFFF)
    events = [e.event for e in path.device.pop_events() if isinstance(e, StateEvent)]
    assert [type(e) for e in events] == [SeqOverflow]
    assert path.tx([INNER], 2.0).outcomes()[0][1] == XfrmStat.OUT_STATE_SEQ_ERROR
    assert not [e for e in path.device.pop_events() if isinstance(e, StateEvent)]  # once
