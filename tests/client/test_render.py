"""iproute2's ip xfrm output: exact strings, derived from ip/ipxfrm.c's format strings."""

from __future__ import annotations

import datetime
import shlex

import pytest

from xfrm_offload.client.grammar import parse
from xfrm_offload.client.render import (
    KEYS_HIDDEN,
    format_device,
    format_event,
    format_policy,
    format_selector,
    format_state,
    format_time,
    format_xfrm_stat,
)
from xfrm_offload.v1 import offload_pb2, xfrm_pb2

UTC = datetime.UTC
KEY = "0x44434241343332312423222114131211f4f3f2f1"
ADD_TIME = 1735732800  # 2025-01-01 12:00:00 UTC
DOC_STATE = (
    "x s add proto esp dst 14.0.0.70 src 14.0.0.52 spi 0x07 mode transport reqid 0x07"
    f" replay-window 32 aead 'rfc4106(gcm(aes))' {KEY} 128"
    " sel src 14.0.0.52/24 dst 14.0.0.70/24 proto tcp offload dev eth4 dir in"
)
DOC_POLICY = (
    "x p add src 14.0.0.70 dst 14.0.0.52 offload packet dev eth4 dir in"
    " tmpl src 14.0.0.70 dst 14.0.0.52 proto esp reqid 10000 mode transport"
)


def sa(line: str) -> xfrm_pb2.XfrmUsersaInfo:
    parsed = parse(shlex.split(line)).sa
    assert parsed is not None
    return parsed


def doc_state(**kwargs: object) -> offload_pb2.State:
    fields: dict[str, object] = {
        "sa": sa(DOC_STATE),
        "dev": "eth4",
        "type": xfrm_pb2.OFFLOAD_TYPE_CRYPTO,
        "dir": xfrm_pb2.OFFLOAD_DIR_IN,
        "curlft": xfrm_pb2.XfrmLifetimeCur(add_time=ADD_TIME),
        "replay": xfrm_pb2.XfrmReplayStateEsn(replay_window=32, bmp_len=1, bmp=[0]),
    }
    return offload_pb2.State(**(fields | kwargs))  # type: ignore[arg-type]


def test_state_plain_with_keys() -> None:
    assert format_state(doc_state(), show_keys=True) == (
        "src 14.0.0.52 dst 14.0.0.70\n"
        "\tproto esp spi 0x00000007 reqid 7 mode transport\n"
        "\treplay-window 32 \n"
        f"\taead rfc4106(gcm(aes)) {KEY} 128\n"
        "\tanti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000\n"
        "\tcrypto offload parameters: dev eth4 dir in mode crypto\n"
        "\tsel src 14.0.0.52/24 dst 14.0.0.70/24 proto tcp \n"
    )


def test_state_keys_hidden_by_default() -> None:
    text = format_state(doc_state())
    assert f"\taead rfc4106(gcm(aes)) {KEYS_HIDDEN} 128\n" in text
    assert KEY[2:] not in text


def test_state_with_stats() -> None:
    state = doc_state(
        curlft=xfrm_pb2.XfrmLifetimeCur(
            bytes=1400, packets=1, add_time=ADD_TIME, use_time=ADD_TIME + 61
        ),
        stats=xfrm_pb2.XfrmStats(replay_window=1, replay=2, integrity_failed=3),
    )
    state.sa.lft.soft_byte_limit = 0
    state.sa.lft.hard_packet_limit = 1000
    state.sa.lft.hard_add_expires_seconds = 3600
    state.sa.lft.soft_use_expires_seconds = 60
    state.replay.seq = 0x1F
    state.replay.bmp[0] = 0x80000001
    assert format_state(state, stats=True, show_keys=True, tz=UTC) == (
        "src 14.0.0.52 dst 14.0.0.70\n"
        "\tproto esp spi 0x00000007(7) reqid 7(0x00000007) mode transport\n"
        "\treplay-window 32 seq 0x00000000 flag  (0x00000000)\n"
        f"\taead rfc4106(gcm(aes)) {KEY} (160 bits) 128\n"
        "\tanti-replay context: seq 0x1f, oseq 0x0, bitmap 0x80000001\n"
        "\tcrypto offload parameters: dev eth4 dir in mode crypto\n"
        "\tsel src 14.0.0.52/24 dst 14.0.0.70/24 proto tcp uid 0\n"
        "\tlifetime config:\n"
        "\t  limit: soft 0(bytes), hard (INF)(bytes)\n"
        "\t  limit: soft (INF)(packets), hard 1000(packets)\n"
        "\t  expire add: soft 0(sec), hard 3600(sec)\n"
        "\t  expire use: soft 60(sec), hard 0(sec)\n"
        "\tlifetime current:\n"
        "\t  1400(bytes), 1(packets)\n"
        "\t  add 2025-01-01 12:00:00 use 2025-01-01 12:01:01\n"
        "\tstats:\n"
        "\t  replay-window 1 replay 2 failed 3\n"
    )


def test_state_esn_packet_offload_with_everything() -> None:
    parsed = sa(
        "state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0xc88b7652 reqid 1 mode tunnel"
        " flag af-unspec esn replay-window 288 mark 0x10 mask 0xff if_id 0x2a tfcpad 0"
        " extra-flag dont-encap-dscp oseq-may-wrap dir out"
        " auth-trunc hmac(sha256) 0x0102 128 enc cbc(aes) 0x0304"
        " encap espinudp 4500 4501 10.0.0.1 offload packet dev eth2 dir out"
    )
    bmp = list(range(1, 10))
    state = offload_pb2.State(
        sa=parsed,
        dev="eth2",
        type=xfrm_pb2.OFFLOAD_TYPE_PACKET,
        dir=xfrm_pb2.OFFLOAD_DIR_OUT,
        replay=xfrm_pb2.XfrmReplayStateEsn(
            replay_window=288, bmp_len=9, bmp=bmp, seq=5, seq_hi=1, oseq=0x20, oseq_hi=0
        ),
    )
    assert format_state(state, show_keys=True) == (
        "src 192.0.2.1 dst 192.0.2.2\n"
        "\tproto esp spi 0xc88b7652 reqid 1 mode tunnel\n"
        "\treplay-window 0 flag af-unspec esn\n"
        "\textra_flag dont-encap-dscp oseq-may-wrap\n"
        "\tmark 0x10/0xff\n"
        "\tauth-trunc hmac(sha256) 0x0102 128\n"
        "\tenc cbc(aes) 0x0304\n"
        "\tencap type espinudp sport 4500 dport 4501 addr 10.0.0.1\n"
        "\tanti-replay esn context:\n"
        "\t seq-hi 0x1, seq 0x5, oseq-hi 0x0, oseq 0x20\n"
        "\t replay_window 288, bitmap-length 9\n"
        "\t 00000009 00000008 00000007 00000006 00000005 00000004 00000003 00000002 \n"
        "\t 00000001 \n"
        "\tcrypto offload parameters: dev eth2 dir out mode packet\n"
        "\tif_id 0x2a\n"
        "\tdir out\n"
    )


def test_state_ipv6_default_auth_trunc_and_unknown_flags() -> None:
    parsed = sa(
        "state add src 2001:db8::1 dst 2001:db8::2 proto esp spi 1 flag 0x81"
        " replay-window 64 auth hmac(sha1) 0x01 enc ecb(cipher_null) ''"
    )
    state = offload_pb2.State(sa=parsed)
    text = format_state(state, show_keys=True)
    assert text.splitlines()[:6] == [
        "src 2001:db8::1 dst 2001:db8::2",
        "\tproto esp spi 0x00000001 reqid 0 mode transport",
        "\treplay-window 0 flag noecn esn",
        "\tauth-trunc hmac(sha1) 0x01 96",
        "\tenc ecb(cipher_null) ",
        "\tanti-replay esn context:",
    ]
    # The kernel fills the selector family, so a non-af-unspec state prints its zero selector.
    assert text.endswith("\tsel src ::/0 dst ::/0 \n")
    # Bits without a name print in hex after the names (XFRM_FLAG_PRINT).
    state.sa.flags = 0x40
    state.sa.extra_flags = 0x5
    text = format_state(state)
    assert "\treplay-window 0 flag align4\n\textra_flag dont-encap-dscp 4\n" in text


def test_selector_variants() -> None:
    def sel(**kw: object) -> str:
        return format_selector(xfrm_pb2.XfrmSelector(**kw))  # type: ignore[arg-type]

    assert sel(proto=1, sport=8, sport_mask=0xFFFF, dport_mask=0xFFFF) == (
        "src 0.0.0.0/0 dst 0.0.0.0/0 proto icmp type 8 code 0 \n"
    )
    assert sel(proto=17, sport=53, sport_mask=0xFFFF, dport=1, dport_mask=0xFFFF) == (
        "src 0.0.0.0/0 dst 0.0.0.0/0 proto udp sport 53 dport 1 \n"
    )
    assert sel(proto=47, sport=1, dport=2, sport_mask=0xFFFF, dport_mask=0xFFFF) == (
        "src 0.0.0.0/0 dst 0.0.0.0/0 proto gre key 65538 \n"
    )
    assert sel(proto=99, ifindex=3) == "src 0.0.0.0/0 dst 0.0.0.0/0 proto 99 dev if3 \n"
    assert format_selector(
        xfrm_pb2.XfrmSelector(ifindex=3), stats=True, ifname_of={3: "eth3"}.__getitem__
    ) == ("src 0.0.0.0/0 dst 0.0.0.0/0 dev eth3 uid 0\n")


def doc_policy() -> offload_pb2.Policy:
    policy = parse(shlex.split(DOC_POLICY)).policy
    return offload_pb2.Policy(
        policy=policy, dev="eth4", curlft=xfrm_pb2.XfrmLifetimeCur(add_time=ADD_TIME)
    )


def test_policy_plain() -> None:
    assert format_policy(doc_policy()) == (
        "src 14.0.0.70/32 dst 14.0.0.52/32 \n"
        "\tdir in priority 0 ptype main \n"
        "\ttmpl src 14.0.0.70 dst 14.0.0.52\n"
        "\t\tproto esp reqid 10000 mode transport\n"
        "\tcrypto offload parameters: dev eth4 mode packet\n"
    )


def test_policy_with_stats() -> None:
    assert format_policy(doc_policy(), stats=True, tz=UTC) == (
        "src 14.0.0.70/32 dst 14.0.0.52/32 uid 0\n"
        "\tdir in action allow index 0 priority 0 ptype main share any flag  (0x00000000)\n"
        "\tlifetime config:\n"
        "\t  limit: soft (INF)(bytes), hard (INF)(bytes)\n"
        "\t  limit: soft (INF)(packets), hard (INF)(packets)\n"
        "\t  expire add: soft 0(sec), hard 0(sec)\n"
        "\t  expire use: soft 0(sec), hard 0(sec)\n"
        "\tlifetime current:\n"
        "\t  0(bytes), 0(packets)\n"
        "\t  add 2025-01-01 12:00:00 use -\n"
        "\ttmpl src 14.0.0.70 dst 14.0.0.52\n"
        "\t\tproto esp spi 0x00000000(0) reqid 10000(0x00002710) mode transport\n"
        "\t\tlevel required share any \n"
        "\t\tenc-mask ffffffff auth-mask ffffffff comp-mask ffffffff\n"
        "\tcrypto offload parameters: dev eth4 mode packet\n"
    )


def test_policy_block_flags_mark_optional_template() -> None:
    policy = parse(
        shlex.split(
            "policy add src 2001:db8::/64 dst ::/0 dir out action block priority 5"
            " flag localok icmp mark 1 if_id 7"
            " tmpl src 2001:db8::1 dst 2001:db8::2 proto esp spi 0x10 mode tunnel level use"
        )
    ).policy
    assert format_policy(offload_pb2.Policy(policy=policy)) == (
        "src 2001:db8::/64 dst ::/0 \n"
        "\tdir out action block priority 5 ptype main flag localok icmp\n"
        "\tmark 0x1/0xffffffff\n"
        "\ttmpl src 2001:db8::1 dst 2001:db8::2\n"
        "\t\tproto esp spi 0x00000010 reqid 0 mode tunnel\n"
        "\t\tlevel use \n"
        "\tif_id 0x7\n"
    )


def test_xfrm_stat_lines() -> None:
    counters = [
        offload_pb2.XfrmStatCounter(name="XfrmInError", value=0),
        offload_pb2.XfrmStatCounter(name="XfrmInStateSeqError", value=17),
        offload_pb2.XfrmStatCounter(name="XfrmOutStateDirError", value=2**40),
    ]
    assert format_xfrm_stat(counters) == (
        "XfrmInError             \t0\n"
        "XfrmInStateSeqError     \t17\n"
        "XfrmOutStateDirError    \t1099511627776\n"
    )


def test_time_format() -> None:
    assert format_time(0) == "-"
    assert format_time(ADD_TIME, UTC) == "2025-01-01 12:00:00"
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    assert format_time(ADD_TIME, plus_two) == "2025-01-01 14:00:00"


def event(**kwargs: object) -> offload_pb2.WatchEventsResponse:
    return offload_pb2.WatchEventsResponse(dev="eth4", **kwargs)  # type: ignore[arg-type]


SA_ID = xfrm_pb2.XfrmId(daddr="14.0.0.70", spi=7, proto=50)


def test_expire_event() -> None:
    expire = offload_pb2.ExpireEvent(id=SA_ID, saddr="14.0.0.52", hard=True, limit="bytes")
    message = event(kind=offload_pb2.EVENT_KIND_EXPIRE, expire=expire)
    assert format_event(message) == (
        "Expired src 14.0.0.52 dst 14.0.0.70\n\tproto esp spi 0x00000007\n\t hard 1\n"
    )
    full = format_event(message, state=doc_state())
    assert full.startswith("Expired src 14.0.0.52 dst 14.0.0.70\n\tproto esp spi 0x00000007 ")
    assert full.endswith("proto tcp \n\t hard 1\n")


def test_acquire_event() -> None:
    acquire = offload_pb2.AcquireEvent(
        policy_index=8,
        sel=xfrm_pb2.XfrmSelector(
            saddr="10.0.0.1",
            daddr="10.0.0.2",
            prefixlen_s=32,
            prefixlen_d=32,
            family=xfrm_pb2.ADDRESS_FAMILY_INET,
        ),
        tmpl=xfrm_pb2.XfrmUserTmpl(id=xfrm_pb2.XfrmId(proto=50)),
    )
    message = event(kind=offload_pb2.EVENT_KIND_ACQUIRE, acquire=acquire)
    assert format_event(message) == (
        "acquire proto esp \n  sel src 10.0.0.1/32 dst 10.0.0.2/32 \n  policy index 8 dev eth4\n"
    )


def test_object_link_and_other_events() -> None:
    deleted = event(
        kind=offload_pb2.EVENT_KIND_STATE_DELETED, object=offload_pb2.ObjectEvent(id=SA_ID)
    )
    assert format_event(deleted) == "Deleted dst 14.0.0.70\n\tproto esp spi 0x00000007\n"
    assert format_event(deleted, state=doc_state()).startswith("Deleted src 14.0.0.52 ")
    added = event(kind=offload_pb2.EVENT_KIND_STATE_ADDED, object=offload_pb2.ObjectEvent(id=SA_ID))
    assert format_event(added, state=doc_state()) == format_state(doc_state())
    policy_gone = event(
        kind=offload_pb2.EVENT_KIND_POLICY_DELETED,
        object=offload_pb2.ObjectEvent(policy=offload_pb2.PolicyRef(dev="eth4", offload_handle=9)),
    )
    assert format_event(policy_gone) == "Deleted policy dev eth4 handle 0x9\n"
    assert format_event(policy_gone, policy=doc_policy()) == "Deleted " + format_policy(
        doc_policy()
    )
    down = event(
        kind=offload_pb2.EVENT_KIND_LINK,
        link=offload_pb2.LinkEvent(link=offload_pb2.LINK_STATE_DOWN),
    )
    assert format_event(down) == "dev eth4 link down\n"
    lost = offload_pb2.WatchEventsResponse(
        kind=offload_pb2.EVENT_KIND_LOST, lost=offload_pb2.LostEvent(count=5)
    )
    assert format_event(lost) == "Lost 5 events\n"
    overflow = event(
        kind=offload_pb2.EVENT_KIND_SEQ_OVERFLOW,
        seq_overflow=offload_pb2.SeqOverflowEvent(id=SA_ID),
    )
    assert format_event(overflow) == (
        "Sequence overflow dst 14.0.0.70\n\tproto esp spi 0x00000007\n"
    )
    esn = event(
        kind=offload_pb2.EVENT_KIND_ESN_ADVANCED,
        esn_advanced=offload_pb2.EsnAdvancedEvent(
            ref=offload_pb2.StateRef(dev="eth4", offload_handle=0x80000001), seq_hi=2
        ),
    )
    assert format_event(esn) == (
        "Async event (esn advanced) dev eth4 handle 0x80000001 seq-hi 0x2\n"
    )


@pytest.mark.parametrize(
    ("offload", "line"),
    [
        (True, "    host tun-offload on rx-segmented 1994 tx-coalesced 2010 rx-errors 3"),
        (False, "    host tun-offload off rx-segmented 0 tx-coalesced 0 rx-errors 0"),
    ],
    ids=["offload", "no-offload"],
)
def test_device_interfaces_with_every_counter(offload: bool, line: str) -> None:
    """``device show`` text: the interface counters, the TUN offloads' (proto fields
    17-20) included, each under its name, as in ``--json``."""
    ifs = offload_pb2.Interfaces(
        host_tun="tun0@ns-a", wire_if="veth0@ns-a", host_mtu=1420, wire_mtu=1500,
        wire_running=True, host_rx_packets=81300, host_tx_packets=80000, wire_rx_packets=7,
        wire_tx_packets=8, wire_rx_dropped=9, wire_tx_dropped=10, host_tx_dropped=11,
        too_big=12, fragmented=13, host_rx_dropped=14, tun_offload=offload,
    )  # fmt: skip
    if offload:
        ifs.host_rx_segmented, ifs.host_tx_coalesced, ifs.host_rx_errors = 1994, 2010, 3
    device = offload_pb2.Device(name="eth0", ifindex=2, profile="basic", interfaces=ifs)
    assert format_device(device, details=False).splitlines()[3:] == [
        "    host tun tun0@ns-a mtu 1420 wire veth0@ns-a mtu 1500 running",
        "    host rx 81300 tx 80000 rx-dropped 14 tx-dropped 11  wire rx 7 tx 8 rx-dropped 9"
        " tx-dropped 10  too-big 12 fragmented 13",
        line,
    ]
