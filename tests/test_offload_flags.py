"""The proto's OffloadFlag names the kernel's XFRM_OFFLOAD_* bits of xfrm_user_offload.flags.

The expected numbers are include/uapi/linux/xfrm.h's, written out here; the engine (which
imports no protobuf) keeps its own copy of them, so both are held to the kernel's values.
"""

from __future__ import annotations

import pytest

from xfrm_offload.engine import offload_rules
from xfrm_offload.v1 import xfrm_pb2 as xpb

# include/uapi/linux/xfrm.h: #define XFRM_OFFLOAD_IPV6 1, _INBOUND 2, _PACKET 4
KERNEL_BITS = [("IPV6", 1), ("INBOUND", 2), ("PACKET", 4)]


@pytest.mark.parametrize(("bit", "value"), KERNEL_BITS)
def test_proto_enum_value_is_the_kernel_bit(bit: str, value: int) -> None:
    assert xpb.OffloadFlag.Value(f"OFFLOAD_FLAG_{bit}") == value


@pytest.mark.parametrize(("bit", "value"), KERNEL_BITS)
def test_engine_constant_is_the_kernel_bit(bit: str, value: int) -> None:
    assert getattr(offload_rules, f"XFRM_OFFLOAD_{bit}") == value


def test_enum_names_every_bit_and_nothing_else() -> None:
    named = {name: number for name, number in xpb.OffloadFlag.items()}
    assert named == {
        "OFFLOAD_FLAG_UNSPECIFIED": 0,
        **{f"OFFLOAD_FLAG_{bit}": value for bit, value in KERNEL_BITS},
    }


def test_flags_field_takes_the_ored_bits() -> None:
    """The uint32 field keeps working: the enum values OR into it and survive the wire."""
    flags = xpb.OFFLOAD_FLAG_PACKET | xpb.OFFLOAD_FLAG_INBOUND
    offload = xpb.XfrmUserOffload(dev="eth0", flags=flags)
    assert xpb.XfrmUserOffload.FromString(offload.SerializeToString()).flags == 6
