"""Small builders of the uAPI messages the server tests send (what `ip xfrm` would).

Defaults are the netdevsim selftest's (tools/testing/selftests/net/rtnetlink.sh,
kci_test_ipsec_offload): spi 9, reqid 42, rfc4106(gcm(aes)) with the key
0x3132...6261 (128-bit key + 32-bit salt), ICV 128, selector /24 on 192.168.123.0.
Tests mutate the returned messages for the one field a case is about.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal, TypeVar

from google.protobuf.message import Message

from xfrm_offload.v1 import xfrm_pb2 as xpb

#: The selftest's keymat: 16 key bytes "1234567890123456" then the salt "dcba".
SELFTEST_KEY = bytes.fromhex("3132333435363738393031323334353664636261")
#: A 256-bit AES key plus salt (mlx5 and full accept it).
KEY_256 = bytes(range(32)) + b"salt"
#: 192-bit AES key plus salt (mlx5 refuses it).
KEY_192 = bytes(range(24)) + b"salt"

#: xfrm_user_offload.flags bits.
XFRM_OFFLOAD_IPV6 = 1
XFRM_OFFLOAD_INBOUND = 2
XFRM_OFFLOAD_PACKET = 4
#: XFRM_STATE_ESN.
XFRM_STATE_ESN = 128
#: BIT(31): netdevsim's NSIM_IPSEC_VALID in every handle it returns.
NSIM_IPSEC_VALID = 1 << 31

LOCAL = "192.168.123.3"
PEER = "192.168.123.4"

Dir = Literal["in", "out"]
SA = TypeVar("SA", bound=Message)

#: Devices the multi-profile tests start the server with (name:profile).
DEVICE_ARGS = (
    "--device",
    "eth0:full",
    "--device",
    "sim0:netdevsim",
    "--device",
    "mlx0:mlx5",
    "--device",
    "sw0:nooffload",
)


def offload(
    dev: str, direction: Dir, *, packet: bool = False, ipv6: bool = False
) -> xpb.XfrmUserOffload:
    """XFRMA_OFFLOAD_DEV as `offload [packet] dev DEV dir DIR` builds it."""
    flags = XFRM_OFFLOAD_INBOUND if direction == "in" else 0
    if packet:
        flags |= XFRM_OFFLOAD_PACKET
    if ipv6:
        flags |= XFRM_OFFLOAD_IPV6
    return xpb.XfrmUserOffload(dev=dev, flags=flags)


def gcm_sa(
    dev: str,
    spi: int = 9,
    src: str = LOCAL,
    dst: str = PEER,
    direction: Dir = "out",
    *,
    packet: bool = False,
    key: bytes = SELFTEST_KEY,
    icv_bits: int = 128,
    reqid: int = 42,
    replay_window: int = 0,
    esn: bool = False,
    sa_dir: bool = False,
    mode: xpb.XfrmMode = xpb.XFRM_MODE_TRANSPORT,
) -> xpb.XfrmUsersaInfo:
    """An rfc4106(gcm(aes)) ESP state offloaded to ``dev``.

    ``direction`` is the offload dir (INBOUND flag); ``sa_dir`` also sets the SA's own
    XFRMA_SA_DIR to the same direction. ``esn`` sends replay_esn (the window moves there).
    """
    family = xpb.ADDRESS_FAMILY_INET6 if ":" in src else xpb.ADDRESS_FAMILY_INET
    plen = 24 if family == xpb.ADDRESS_FAMILY_INET else 64

    def net(addr: str) -> str:
        return str(ipaddress.ip_network(f"{addr}/{plen}", strict=False).network_address)

    sa = xpb.XfrmUsersaInfo(
        id=xpb.XfrmId(daddr=dst, spi=spi, proto=50),
        saddr=src,
        reqid=reqid,
        mode=mode,
        family=family,
        sel=xpb.XfrmSelector(
            saddr=net(src), daddr=net(dst), prefixlen_s=plen, prefixlen_d=plen, family=family
        ),
        aead=xpb.XfrmAlgoAead(alg_name="rfc4106(gcm(aes))", alg_key=key, alg_icv_len=icv_bits),
        offload=offload(dev, direction, packet=packet, ipv6=family == xpb.ADDRESS_FAMILY_INET6),
    )
    if esn:
        sa.flags |= XFRM_STATE_ESN
        sa.replay_esn.CopyFrom(
            xpb.XfrmReplayStateEsn(replay_window=replay_window, bmp_len=(replay_window + 31) // 32)
        )
    else:
        sa.replay_window = replay_window
    if sa_dir:
        sa.dir = xpb.SA_DIR_IN if direction == "in" else xpb.SA_DIR_OUT
    return sa


def selftest_pair(dev: str) -> tuple[xpb.XfrmUsersaInfo, xpb.XfrmUsersaInfo]:
    """kci_test_ipsec_offload's two states: out (LOCAL -> PEER) and in (PEER -> LOCAL)."""
    return (
        gcm_sa(dev, 9, LOCAL, PEER, "out"),
        gcm_sa(dev, 9, PEER, LOCAL, "in"),
    )


def packet_policy(
    dev: str,
    direction: xpb.PolicyDir = xpb.POLICY_DIR_OUT,
    *,
    reqid: int = 42,
    templates: int = 1,
    src: str = LOCAL,
    dst: str = PEER,
    sel_proto: int = 0,
    priority: int = 0,
    flags: int = XFRM_OFFLOAD_PACKET,
) -> xpb.XfrmUserpolicyInfo:
    """`ip xfrm policy add src .. dst .. dir DIR offload packet dev DEV tmpl ... reqid R`."""
    tmpl = [
        xpb.XfrmUserTmpl(
            id=xpb.XfrmId(daddr=dst, proto=50),
            saddr=src,
            reqid=reqid,
            mode=xpb.XFRM_MODE_TRANSPORT,
            family=xpb.ADDRESS_FAMILY_INET,
        )
        for _ in range(templates)
    ]
    return xpb.XfrmUserpolicyInfo(
        sel=xpb.XfrmSelector(
            saddr=src,
            daddr=dst,
            prefixlen_s=32,
            prefixlen_d=32,
            family=xpb.ADDRESS_FAMILY_INET,
            proto=sel_proto,
        ),
        dir=direction,
        priority=priority,
        tmpl=tmpl,
        offload=xpb.XfrmUserOffload(dev=dev, flags=flags),
    )


def spi_range_sas(dev: str, first_spi: int, count: int) -> list[xpb.XfrmUsersaInfo]:
    """``count`` outbound states with consecutive SPIs (bulk and table-size tests)."""
    return [gcm_sa(dev, spi) for spi in range(first_spi, first_spi + count)]


def tweak(message: SA, **fields: object) -> SA:
    """Set fields on a message in place and return it; ``a__b=v`` sets ``message.a.b``.

    Message values are copied in (``CopyFrom``), lists replace repeated fields, others
    are assigned.
    """
    for path, value in fields.items():
        *parents, leaf = path.split("__")
        target: Any = message
        for name in parents:
            target = getattr(target, name)
        if isinstance(value, Message):
            getattr(target, leaf).CopyFrom(value)
        elif isinstance(value, list):  # repeated fields are replaced, not assigned
            target.ClearField(leaf)
            getattr(target, leaf).extend(value)
        else:
            setattr(target, leaf, value)
    return message
