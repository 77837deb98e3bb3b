"""The ip xfrm grammar: every keyword, abbreviations, orderings, errors and their markers."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from xfrm_offload.client.grammar import (
    Command,
    PolicyFilter,
    StateFilter,
    XfrmSyntaxError,
    c_uint,
    parse,
    parse_key,
    usage,
)
from xfrm_offload.v1 import xfrm_pb2

AEAD = "aead rfc4106(gcm(aes)) 0x44434241343332312423222114131211f4f3f2f1 128"
AEAD_KEY = bytes.fromhex("44434241343332312423222114131211f4f3f2f1")
ID = "src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100"

# The three commands of Documentation/networking/xfrm_device.rst, "ip" removed.
DOC_CRYPTO = (
    "x s add proto esp dst 14.0.0.70 src 14.0.0.52 spi 0x07 mode transport"
    " reqid 0x07 replay-window 32"
    " aead 'rfc4106(gcm(aes))' 0x44434241343332312423222114131211f4f3f2f1 128"
    " sel src 14.0.0.52/24 dst 14.0.0.70/24 proto tcp"
    " offload dev eth4 dir in"
)
DOC_PACKET = DOC_CRYPTO.replace("offload dev", "offload packet dev")
DOC_POLICY = (
    "x p add src 14.0.0.70 dst 14.0.0.52 offload packet dev eth4 dir in"
    " tmpl src 14.0.0.70 dst 14.0.0.52 proto esp reqid 10000 mode transport"
)


def p(line: str, **kwargs: Any) -> Command:
    return parse(shlex.split(line), **kwargs)


def sa_of(line: str, **kwargs: Any) -> xfrm_pb2.XfrmUsersaInfo:
    command = p(f"state add {ID} {AEAD} {line}", **kwargs)
    assert command.sa is not None
    return command.sa


# --------------------------------------------------------------------------- documentation


def test_doc_crypto_offload_state() -> None:
    command = p(DOC_CRYPTO)
    assert (command.obj, command.action) == ("state", "add")
    sa = command.sa
    assert sa is not None
    assert (sa.saddr, sa.id.daddr, sa.id.spi, sa.id.proto) == ("14.0.0.52", "14.0.0.70", 7, 50)
    assert sa.family == xfrm_pb2.ADDRESS_FAMILY_INET
    assert (sa.mode, sa.reqid, sa.replay_window) == (xfrm_pb2.XFRM_MODE_TRANSPORT, 7, 32)
    assert not sa.HasField("replay_esn")
    assert sa.aead == xfrm_pb2.XfrmAlgoAead(
        alg_name="rfc4106(gcm(aes))", alg_key=AEAD_KEY, alg_icv_len=128
    )
    assert sa.sel == xfrm_pb2.XfrmSelector(
        saddr="14.0.0.52",
        daddr="14.0.0.70",
        prefixlen_s=24,
        prefixlen_d=24,
        proto=6,
        family=xfrm_pb2.ADDRESS_FAMILY_INET,
    )
    assert sa.offload == xfrm_pb2.XfrmUserOffload(dev="eth4", flags=2)
    # Byte and packet limits stay unset: XFRM_INF.
    assert sa.HasField("lft")
    assert not sa.lft.HasField("soft_byte_limit")
    assert not sa.lft.HasField("hard_packet_limit")


def test_doc_packet_offload_state() -> None:
    sa = p(DOC_PACKET).sa
    assert sa is not None
    assert sa.offload == xfrm_pb2.XfrmUserOffload(dev="eth4", flags=2 | 4)


def test_doc_packet_offload_policy() -> None:
    command = p(DOC_POLICY)
    assert (command.obj, command.action) == ("policy", "add")
    policy = command.policy
    assert policy is not None
    assert policy.sel == xfrm_pb2.XfrmSelector(
        saddr="14.0.0.70",
        daddr="14.0.0.52",
        prefixlen_s=32,
        prefixlen_d=32,
        family=xfrm_pb2.ADDRESS_FAMILY_INET,
    )
    assert policy.dir == xfrm_pb2.POLICY_DIR_IN
    assert policy.offload == xfrm_pb2.XfrmUserOffload(dev="eth4", flags=4)
    assert list(policy.tmpl) == [
        xfrm_pb2.XfrmUserTmpl(
            id=xfrm_pb2.XfrmId(daddr="14.0.0.52", proto=50),
            saddr="14.0.0.70",
            family=xfrm_pb2.ADDRESS_FAMILY_INET,
            reqid=10000,
            mode=xfrm_pb2.XFRM_MODE_TRANSPORT,
            aalgos=0xFFFFFFFF,
            ealgos=0xFFFFFFFF,
            calgos=0xFFFFFFFF,
        )
    ]


# --------------------------------------------------------------------------- abbreviations

OBJECT_ACTIONS = [
    ("state list", "state", "list"),
    ("xfrm state list", "state", "list"),
    ("x s", "state", "list"),
    ("xf st l", "state", "list"),
    ("sa show", "state", "list"),
    ("s sh", "state", "list"),
    ("s lst", "state", "list"),
    ("s c", "state", "count"),
    ("s count", "state", "count"),
    ("s f", "state", "flush"),
    ("s g " + ID, "state", "get"),
    ("s d " + ID, "state", "delete"),  # d tests delete before deleteall
    ("s del " + ID, "state", "delete"),
    ("s deleteall", "state", "deleteall"),
    ("s delall", "state", "deleteall"),
    ("s h", "state", "help"),
    ("s a " + ID + " " + AEAD, "state", "add"),
    ("s u " + ID + " " + AEAD, "state", "update"),
    ("s upd " + ID + " " + AEAD, "state", "update"),
    ("p", "policy", "list"),
    ("pol l", "policy", "list"),
    ("policy show", "policy", "list"),
    ("p a src 10.0.0.0/8 dir out", "policy", "add"),
    ("p u src 10.0.0.0/8 dir out", "policy", "update"),
    ("p g index 8 dir out", "policy", "get"),
    ("p d index 8 dir out", "policy", "delete"),
    ("p deleteall dir in", "policy", "deleteall"),
    ("p f", "policy", "flush"),
    ("p c", "policy", "count"),
    ("m", "monitor", "monitor"),
]


@pytest.mark.parametrize(("line", "obj", "action"), OBJECT_ACTIONS)
def test_object_and_action_abbreviations(line: str, obj: str, action: str) -> None:
    command = p(line)
    assert (command.obj, command.action) == (obj, action)


# --------------------------------------------------------------------------- state keywords

STATE_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("mode tunnel", {"mode": xfrm_pb2.XFRM_MODE_TUNNEL}),
    ("mode tu", {"mode": xfrm_pb2.XFRM_MODE_TUNNEL}),
    ("mode t", {"mode": xfrm_pb2.XFRM_MODE_TRANSPORT}),
    ("reqid 42", {"reqid": 42}),
    ("reqid 0x2a", {"reqid": 42}),
    ("reqid 052", {"reqid": 42}),  # strtoul base 0: leading zero is octal
    ("seq 9", {"seq": 9}),
    ("flag noecn decap-dscp", {"flags": 3}),
    ("flag nopmtudisc wildrecv icmp", {"flags": 4 | 8 | 16}),
    ("flag af-unspec align4", {"flags": 32 | 64}),
    ("flag 0x21", {"flags": 0x21}),
    ("flag noecn flag icmp", {"flags": 17}),
    ("extra-flag dont-encap-dscp oseq-may-wrap", {"extra_flags": 3}),
    ("extra-flag 0x2", {"extra_flags": 2}),
    ("if_id 0x29", {"if_id": 0x29}),
    ("tfcpad 1500", {"tfcpad": 1500}),
    ("dir in", {"dir": xfrm_pb2.SA_DIR_IN}),
    ("dir out", {"dir": xfrm_pb2.SA_DIR_OUT}),
    ("replay-window 32", {"replay_window": 32}),
]


@pytest.mark.parametrize(("words", "fields"), STATE_FIELDS)
def test_state_scalar_keywords(words: str, fields: dict[str, Any]) -> None:
    sa = sa_of(words)
    for name, value in fields.items():
        assert getattr(sa, name) == value, name


def test_state_mark() -> None:
    assert sa_of("mark 7").mark == xfrm_pb2.XfrmMark(v=7, m=0xFFFFFFFF)
    assert sa_of("mark 7 mask 0xff").mark == xfrm_pb2.XfrmMark(v=7, m=0xFF)


def test_state_id_numeric_proto_and_decimal_spi() -> None:
    sa = p(f"state add src 192.0.2.1 dst 192.0.2.2 proto 50 spi 4096 {AEAD}").sa
    assert sa is not None
    assert (sa.id.proto, sa.id.spi) == (50, 4096)


def test_state_ipv6_family_and_offload_flag() -> None:
    sa = p(
        f"state add src 2001:db8::1 dst 2001:db8::2 proto esp spi 1 {AEAD}"
        " offload crypto dev eth0 dir out"
    ).sa
    assert sa is not None
    assert sa.family == xfrm_pb2.ADDRESS_FAMILY_INET6
    assert sa.offload == xfrm_pb2.XfrmUserOffload(dev="eth0", flags=1)


def test_state_enc_auth_and_auth_trunc() -> None:
    sa = sa_of_no_aead("enc cbc(aes) 0x0102 auth-trunc hmac(sha256) secret 128")
    assert sa.enc == xfrm_pb2.XfrmAlgo(alg_name="cbc(aes)", alg_key=b"\x01\x02")
    assert sa.auth == xfrm_pb2.XfrmAlgoAuth(
        alg_name="hmac(sha256)", alg_key=b"secret", alg_trunc_len=128
    )
    sa = sa_of_no_aead("auth hmac(sha1) 0xabc enc cbc(aes) 0x00")
    assert sa.auth == xfrm_pb2.XfrmAlgoAuth(alg_name="hmac(sha1)", alg_key=b"\x0a\xbc")


def sa_of_no_aead(words: str) -> xfrm_pb2.XfrmUsersaInfo:
    sa = p(f"state add {ID} {words}").sa
    assert sa is not None
    return sa


KEYS = [
    ("0x0102", b"\x01\x02"),
    ("0x102", b"\x01\x02"),  # odd length: a zero on the left
    ("0xA", b"\x0a"),
    ("0x", b"0x"),  # too short to be hex: a two-byte string, as iproute2
    ("abc", b"abc"),
    ("0xzz", None),
    ("0x" + "00" * 513, None),
]


@pytest.mark.parametrize(("text", "key"), KEYS)
def test_key_parsing(text: str, key: bytes | None) -> None:
    assert parse_key(text) == key


NUMBERS = [
    ("0", 0),
    ("10", 10),
    ("0x10", 16),
    ("0X10", 16),
    ("010", 8),
    ("4294967295", 0xFFFFFFFF),
    ("4294967296", None),
    ("-1", None),
    ("+1", None),
    ("0x", None),
    ("08", None),
    ("", None),
    ("1k", None),
]


@pytest.mark.parametrize(("text", "value"), NUMBERS)
def test_c_uint(text: str, value: int | None) -> None:
    assert c_uint(text, 32) == value


def test_encap() -> None:
    sa = sa_of("encap espinudp 4500 4500 0.0.0.0")
    assert sa.encap == xfrm_pb2.XfrmEncapTmpl(
        encap_type=xfrm_pb2.ENCAP_TYPE_ESPINUDP,
        encap_sport=4500,
        encap_dport=4500,
        encap_oa="0.0.0.0",
    )
    assert sa_of("encap espinudp-nonike 1 2 10.0.0.1").encap.encap_type == (
        xfrm_pb2.ENCAP_TYPE_ESPINUDP_NON_IKE
    )
    assert sa_of("encap espintcp 1 2 10.0.0.1").encap.encap_type == xfrm_pb2.ENCAP_TYPE_ESPINTCP


def test_limits_several_words_and_several_pairs() -> None:
    sa = sa_of(
        "limit time-soft 10 time-hard 20 limit time-use-soft 30 limit time-use-hard 40"
        " limit byte-soft 100 byte-hard 0x200 packet-soft 3 packet-hard 4"
    )
    assert sa.lft == xfrm_pb2.XfrmLifetimeCfg(
        soft_add_expires_seconds=10,
        hard_add_expires_seconds=20,
        soft_use_expires_seconds=30,
        hard_use_expires_seconds=40,
        soft_byte_limit=100,
        hard_byte_limit=0x200,
        soft_packet_limit=3,
        hard_packet_limit=4,
    )
    assert sa_of("limit byte-soft 0").lft.HasField("soft_byte_limit")


REPLAY = [
    # window, extra words, replay_window field, replay_esn or None
    ("replay-window 32", 32, None),
    ("replay-window 64", 0, dict(replay_window=64, bmp_len=2)),
    ("replay-window 33", 0, dict(replay_window=33, bmp_len=2)),
    ("replay-window 4096", 0, dict(replay_window=4096, bmp_len=128)),
    # Wider than iproute2's XFRMA_REPLAY_ESN_MAX: the device's capability decides, not the CLI.
    ("replay-window 65536", 0, dict(replay_window=65536, bmp_len=2048)),
    ("replay-window 1 flag esn", 0, dict(replay_window=1, bmp_len=1)),
    (
        "flag esn replay-window 128 replay-seq 5 replay-oseq 6 replay-seq-hi 7 replay-oseq-hi 8",
        0,
        dict(replay_window=128, bmp_len=4, seq=5, oseq=6, seq_hi=7, oseq_hi=8),
    ),
    # A small non-ESN window with initial sequence numbers: replay_esn without the hi words.
    (
        "replay-window 16 replay-seq 5 replay-oseq-hi 9",
        0,
        dict(replay_window=16, bmp_len=1, seq=5),
    ),
]


@pytest.mark.parametrize(("words", "legacy", "esn"), REPLAY)
def test_replay_window_and_esn(words: str, legacy: int, esn: dict[str, int] | None) -> None:
    sa = sa_of(words)
    assert sa.replay_window == legacy
    if esn is None:
        assert not sa.HasField("replay_esn")
    else:
        assert sa.replay_esn == xfrm_pb2.XfrmReplayStateEsn(**esn)  # type: ignore[arg-type]


SELECTORS: list[tuple[str, dict[str, Any]]] = [
    ("sel src 10.0.0.0/8", dict(saddr="10.0.0.0", prefixlen_s=8, family=1)),
    ("sel dst 2001:db8::/32", dict(daddr="2001:db8::", prefixlen_d=32, family=2)),
    ("sel proto udp sport 53 dport 0", dict(proto=17, sport=53, sport_mask=0xFFFF)),
    ("sel dport 80 proto tcp", dict(proto=6, dport=80, dport_mask=0xFFFF)),
    ("sel proto sctp", dict(proto=132)),
    ("sel proto dccp dport 1", dict(proto=33, dport=1, dport_mask=0xFFFF)),
    ("sel proto icmp type 8 code 0", dict(proto=1, sport=8, sport_mask=0xFFFF, dport_mask=0xFFFF)),
    ("sel proto ipv6-icmp type 135", dict(proto=58, sport=135, sport_mask=0xFFFF)),
    ("sel proto 99", dict(proto=99)),
    ("sel proto any", {}),
    (
        "sel proto gre key 0.1.0.2",
        dict(proto=47, sport=1, dport=2, sport_mask=0xFFFF, dport_mask=0xFFFF),
    ),
    ("sel dev eth4", dict(ifindex=4)),
    ("sel dev none src 1.2.3.4", dict(saddr="1.2.3.4", prefixlen_s=32, family=1)),
]


@pytest.mark.parametrize(("words", "fields"), SELECTORS)
def test_selector(words: str, fields: dict[str, Any]) -> None:
    sa = sa_of(words, ifindex_of={"eth4": 4}.__getitem__)
    assert sa.sel == xfrm_pb2.XfrmSelector(**fields)


def test_keywords_in_any_order_give_the_same_state() -> None:
    forward = p(f"state add {ID} mode tunnel reqid 5 {AEAD} offload dev eth0 dir out").sa
    backward = p(f"state add offload dev eth0 dir out {AEAD} reqid 5 mode tunnel {ID}").sa
    assert forward == backward


# --------------------------------------------------------------------------- state filters


def test_state_get_and_delete_filters() -> None:
    command = p("state get dst 192.0.2.2 proto esp spi 0x100 mark 1 mask 3")
    assert command.state_filter == StateFilter(
        daddr="192.0.2.2",
        daddr_plen=32,
        proto=50,
        spi=0x100,
        mark=xfrm_pb2.XfrmMark(v=1, m=3),
    )
    assert p("state delete " + ID).state_filter == StateFilter(
        saddr="192.0.2.1", saddr_plen=32, daddr="192.0.2.2", daddr_plen=32, proto=50, spi=0x100
    )


def test_state_list_filters() -> None:
    command = p("state list src 10.0.0.0/8 nokeys mode tunnel reqid 3 flag esn")
    assert command.state_filter == StateFilter(
        saddr="10.0.0.0",
        saddr_plen=8,
        mode=xfrm_pb2.XFRM_MODE_TUNNEL,
        reqid=3,
        flags=128,
        nokeys=True,
    )
    assert p("state flush proto esp").state_filter == StateFilter(proto=50)
    assert p("state flush").state_filter == StateFilter()


def test_state_filter_matches() -> None:
    sa = sa_of("reqid 3 mode tunnel")
    assert StateFilter(saddr="192.0.2.0", saddr_plen=24, reqid=3).matches(sa)
    assert StateFilter(mode=xfrm_pb2.XFRM_MODE_TUNNEL, proto=50, spi=0x100).matches(sa)
    assert not StateFilter(saddr="198.51.100.0", saddr_plen=24).matches(sa)
    assert not StateFilter(reqid=4).matches(sa)
    assert not StateFilter(mode=xfrm_pb2.XFRM_MODE_TRANSPORT).matches(sa)


# --------------------------------------------------------------------------- policy


def test_policy_every_keyword() -> None:
    command = p(
        "policy update src 10.0.0.0/8 dst 10.1.0.0/16 proto tcp dport 443 dir fwd"
        " mark 5 index 0x10 ptype main action block priority 7 flag localok icmp"
        " if_id 9 limit time-hard 60 byte-hard 1000"
        " tmpl src 1.1.1.1 dst 2.2.2.2 proto esp spi 0x10 mode tunnel reqid 3 level use"
        " tmpl dst 3.3.3.3 proto esp"
    )
    policy = command.policy
    assert policy is not None and command.ptype == "main"
    assert policy.sel == xfrm_pb2.XfrmSelector(
        saddr="10.0.0.0",
        prefixlen_s=8,
        daddr="10.1.0.0",
        prefixlen_d=16,
        proto=6,
        dport=443,
        dport_mask=0xFFFF,
        family=xfrm_pb2.ADDRESS_FAMILY_INET,
    )
    assert (policy.dir, policy.index, policy.priority, policy.action, policy.flags) == (
        xfrm_pb2.POLICY_DIR_FWD,
        16,
        7,
        xfrm_pb2.POLICY_ACTION_BLOCK,
        3,
    )
    assert policy.mark == xfrm_pb2.XfrmMark(v=5, m=0xFFFFFFFF)
    assert policy.if_id == 9
    assert policy.lft == xfrm_pb2.XfrmLifetimeCfg(hard_add_expires_seconds=60, hard_byte_limit=1000)
    first, second = policy.tmpl
    assert (first.saddr, first.id.daddr, first.id.spi, first.reqid, first.optional) == (
        "1.1.1.1",
        "2.2.2.2",
        16,
        3,
        True,
    )
    assert first.mode == xfrm_pb2.XFRM_MODE_TUNNEL
    assert (second.saddr, second.id.daddr, second.family) == ("", "3.3.3.3", 1)


def test_policy_family_from_template_when_no_selector_address() -> None:
    policy = p("policy add dir out tmpl src 2001:db8::1 dst 2001:db8::2 proto esp").policy
    assert policy is not None
    assert policy.sel.family == xfrm_pb2.ADDRESS_FAMILY_INET6


def test_policy_filters() -> None:
    command = p("policy get src 10.0.0.0/8 dir out mark 1 ptype sub if_id 4")
    assert command.policy_filter == PolicyFilter(
        saddr="10.0.0.0",
        prefixlen_s=8,
        dir=xfrm_pb2.POLICY_DIR_OUT,
        mark=xfrm_pb2.XfrmMark(v=1, m=0xFFFFFFFF),
        ptype="sub",
        if_id=4,
    )
    command = p("policy list nosock dir in index 3 action allow priority 2 flag icmp")
    assert command.policy_filter == PolicyFilter(
        dir=xfrm_pb2.POLICY_DIR_IN,
        index=3,
        action=xfrm_pb2.POLICY_ACTION_ALLOW,
        priority=2,
        flags=2,
        nosock=True,
    )
    assert p("policy flush ptype main").policy_filter == PolicyFilter(ptype="main")


def test_policy_filter_matches() -> None:
    policy = p("policy add src 10.0.0.0/8 dst 10.1.0.0/16 dir out priority 4").policy
    assert policy is not None
    assert PolicyFilter(saddr="10.0.0.0", prefixlen_s=8, dir=2).matches(policy)
    assert not PolicyFilter(saddr="10.0.0.0", prefixlen_s=16).matches(policy)
    assert not PolicyFilter(dir=xfrm_pb2.POLICY_DIR_IN).matches(policy)
    assert PolicyFilter(action=xfrm_pb2.POLICY_ACTION_ALLOW, priority=4).matches(policy)


def test_monitor_groups() -> None:
    assert p("monitor acq exp SA pol").monitor_groups == ("acquire", "expire", "SA", "policy")
    assert p("monitor all").monitor_groups == ()


def test_usage_has_the_bnf() -> None:
    assert "offload [ crypto | packet ] dev DEV dir DIR" in usage("state")
    assert "TMPL := ID [ mode MODE ] [ reqid REQID ] [ level LEVEL ]" in usage("policy")
    assert "XFRM-OBJECT := state | policy | monitor" in usage(None)


# --------------------------------------------------------------------------- errors

BASE = f"state add {ID} {AEAD}"

ERRORS = [
    # command, index of the bad token (len = at the end), expected
    ("", 0, "expected an object (state|policy|monitor)"),
    ("frob", 0, "expected an object (state|policy|monitor)"),
    (
        "state frob",
        1,
        "expected a command (add|update|allocspi|delete|deleteall|list|get|flush|count|help)",
    ),
    ("state allocspi", 1, "expected a command xfrmctl supports: allocspi is not offloadable"),
    ("state add src 192.0.2.1 dst nonsense proto esp", 5, "expected an IP address"),
    (
        "state add src 192.0.2.1 dst 2001:db8::1",
        5,
        'the same address family is required between "src" and "dst"',
    ),
    ("state add src 192.0.2.1 dst", 5, "expected an IP address"),
    (
        "state add src 192.0.2.1 proto frob",
        5,
        "expected an IPsec protocol (esp|ah|comp|route2|hao or a number)",
    ),
    ("state add src 192.0.2.1 spi -1", 5, "expected an SPI (a 32-bit number, e.g. 0x1000)"),
    (
        "state add src 192.0.2.1 spi 1 " + AEAD,
        6,
        "expected proto XFRM-PROTO in the ID (e.g. proto esp)",
    ),
    ("state add " + AEAD, 6, "expected an ID: src ADDR dst ADDR proto esp spi SPI"),
    ("state add " + ID, 10, "expected an algorithm (aead, enc, auth or auth-trunc) with proto esp"),
    (
        BASE + " src 192.0.2.9",
        14,
        "expected the ID (src, dst, proto, spi) as one group: it was given earlier",
    ),
    (BASE + " frob", 14, "expected a state keyword, not 'frob'"),
    (BASE + " mode beet", 15, "expected a mode (transport|tunnel)"),
    (BASE + " reqid x", 15, "expected a reqid (32-bit number)"),
    (BASE + " reqid", 15, "expected a reqid (32-bit number)"),
    (
        BASE + " flag bogus",
        15,
        "expected a state flag (noecn|decap-dscp|nopmtudisc|wildrecv|icmp|af-unspec|align4|esn"
        " or a 0x number)",
    ),
    (
        BASE + " flag 0x100",
        15,
        "expected a state flag (noecn|decap-dscp|nopmtudisc|wildrecv|icmp|af-unspec|align4|esn"
        " or a 0x number)",
    ),
    (BASE + " flag esn", 15, "expected replay-window with flag esn"),
    (BASE + " " + AEAD, 14, "expected one cipher: aead excludes enc/auth, and each is given once"),
    (
        f"state add {ID} enc cbc(aes) 0x00 enc cbc(aes) 0x00",
        13,
        "expected one cipher: aead excludes enc/auth, and each is given once",
    ),
    (
        f"state add {ID} aead rfc4106(gcm(aes)) 0xqq 128",
        12,
        "expected a key: 0x followed by hex digits (at most 512 bytes)",
    ),
    (
        f"state add {ID} aead rfc4106(gcm(aes)) 0x00",
        13,
        "expected the ICV length in bits (e.g. 128)",
    ),
    (
        f"state add {ID} auth-trunc hmac(sha1) 0x00 big",
        13,
        "expected the truncation length in bits (e.g. 128)",
    ),
    (BASE + " sel", 15, "expected a selector (src, dst, dev or proto)"),
    (BASE + " sel src 10.0.0.0/33", 16, "expected an address prefix (ADDR[/PLEN])"),
    (
        BASE + " sel src 10.0.0.0/8 dst ::/0",
        18,
        'the same address family is required between "src" and "dst"',
    ),
    (BASE + " sel proto icmp sport 1", 17, 'expected proto tcp|udp|sctp|dccp with "sport"/"dport"'),
    (
        BASE + " sel proto tcp type 1",
        17,
        'expected proto icmp|ipv6-icmp|mobility-header with "type"/"code"',
    ),
    (BASE + " sel proto tcp key 1", 17, 'expected proto gre with "key"'),
    (BASE + " sel proto icmp type 256", 18, "expected an ICMP type (0-255)"),
    (BASE + " sel proto tcp dport 65536", 18, "expected a port number (0-65535)"),
    (
        BASE + " sel proto nope",
        16,
        "expected an upper-layer protocol (tcp|udp|sctp|dccp|icmp|... or a number)",
    ),
    (BASE + " sel dev eth9", 16, "expected a known device name"),
    (
        BASE + " limit",
        15,
        "expected a limit (time-soft|time-hard|time-use-soft|time-use-hard|byte-soft|byte-hard|"
        "packet-soft|packet-hard)",
    ),
    (BASE + " limit byte-soft lots", 16, 'expected a number after "byte-soft" (64-bit)'),
    (
        BASE + " encap udp 1 2 0.0.0.0",
        15,
        "expected an encapsulation type (espinudp-nonike|espinudp|espintcp)",
    ),
    (BASE + " encap espinudp 1 2 0.0.0.0/8", 18, "expected the original address (OADDR)"),
    (BASE + " offload eth0", 15, 'expected "dev DEV" after offload'),
    (BASE + " offload dev eth0", 17, 'expected "dir in|out" after offload dev DEV'),
    (BASE + " offload dev eth0 dir fwd", 18, "expected an offload dir (in|out)"),
    (BASE + " dir fwd", 15, "expected a dir (in|out)"),
    (BASE + " mark 1 mask", 17, "expected a mark mask (32-bit number)"),
    (
        "state get src 192.0.2.1 dst 192.0.2.2 spi 1",
        8,
        "expected proto XFRM-PROTO in the ID (e.g. proto esp)",
    ),
    ("state get", 2, "expected an ID: dst ADDR proto esp spi SPI"),
    (
        "state delete dst 192.0.2.9 proto esp",
        6,
        "expected the whole ID, spi SPI missing: get and delete name one state by dst, proto"
        " and spi (deleteall takes filters)",
    ),
    (
        "state get proto esp spi 1",
        6,
        "expected the whole ID, dst ADDR missing: get and delete name one state by dst, proto"
        " and spi (deleteall takes filters)",
    ),
    ("state delete dst 192.0.2.9", 4, "expected proto XFRM-PROTO in the ID (e.g. proto esp)"),
    ("state list bogus", 2, "expected a filter (src, dst, proto, spi, nokeys, mode, reqid, flag)"),
    ("state flush spi 1", 2, "expected proto XFRM-PROTO or nothing"),
    ("state count now", 2, "expected nothing more"),
    ("policy add src 10.0.0.0/8", 4, "expected dir in|out|fwd: a policy needs a direction"),
    ("policy add src 10.0.0.0/8 dir up", 5, "expected a policy dir (in|out|fwd)"),
    (
        "policy add src 10.0.0.0/8 dir in src 10.0.0.0/8",
        6,
        "expected the SELECTOR as one group: it was given earlier",
    ),
    ("policy add dir in action deny", 5, "expected a policy action (allow|block)"),
    ("policy add dir in ptype other", 5, "expected a policy type (main|sub)"),
    ("policy add dir in flag bogus", 5, "expected a policy flag (localok|icmp or a 0x number)"),
    ("policy add dir in offload dev eth0", 5, 'expected "packet" after offload (policies)'),
    (
        "policy add dir in tmpl mode tunnel",
        5,
        "expected the template's ID: src ADDR dst ADDR proto esp",
    ),
    (
        "policy add dir in tmpl src 1.1.1.1 proto esp level maybe",
        10,
        "expected a level (required|use)",
    ),
    (
        "policy add dir in tmpl dst 1.1.1.1",
        7,
        "expected proto XFRM-PROTO in the ID (e.g. proto esp)",
    ),
    ("policy add dir in" + " tmpl proto esp" * 7, 22, "expected at most 6 templates"),
    ("policy add dir in bogus", 4, "expected a policy keyword, not 'bogus'"),
    ("policy get src 10.0.0.0/8", 4, "expected dir in|out|fwd"),
    ("policy get dir in", 4, "expected a SELECTOR or index INDEX"),
    ("policy list action", 3, "expected a policy action (allow|block)"),
    (
        "policy list mark 1",
        2,
        "expected a filter (SELECTOR, dir, index, ptype, action, priority, flag, nosock)",
    ),
    (
        "policy get dir in index 1 nosock",
        6,
        "expected a filter (SELECTOR, index, dir, mark, ptype, if_id)",
    ),
    ("policy setdefault", 1, "expected a command xfrmctl supports: setdefault is not offloadable"),
    ("monitor frob", 1, "expected an event group (acquire|expire|SA|aevent|policy|report or all)"),
]


@pytest.mark.parametrize(("line", "index", "expected"), ERRORS)
def test_errors_point_at_the_bad_token(line: str, index: int, expected: str) -> None:
    with pytest.raises(XfrmSyntaxError) as info:
        p(line, ifindex_of={"eth4": 4}.__getitem__)
    assert (info.value.index, info.value.expected) == (index, expected)


def test_selector_dev_without_resolver_is_an_error() -> None:
    with pytest.raises(XfrmSyntaxError) as info:
        p(BASE + " sel dev eth4")
    assert info.value.index == 16
    assert "cannot be resolved" in info.value.expected


def test_render_underlines_the_bad_token() -> None:
    with pytest.raises(XfrmSyntaxError) as info:
        p("state add src 192.0.2.1 dst nonsense proto esp spi 1")
    assert info.value.render() == (
        "xfrmctl state add src 192.0.2.1 dst nonsense proto esp spi 1\n"
        "                                    ^~~~~~~~\n"
        "error: expected an IP address"
    )


def test_render_marks_the_end_when_something_is_missing() -> None:
    with pytest.raises(XfrmSyntaxError) as info:
        p("state add src 192.0.2.1 dst")
    assert info.value.render() == (
        "xfrmctl state add src 192.0.2.1 dst\n"
        "                                    ^\n"
        "error: expected an IP address"
    )


def test_render_quotes_tokens_and_never_shows_keys() -> None:
    secret = "0x44434241343332312423222114131211f4f3f2f1"
    with pytest.raises(XfrmSyntaxError) as info:
        p(f"state add {ID} aead rfc4106(gcm(aes)) {secret} many")
    error = info.value
    rendered = error.render()
    assert secret not in rendered and secret not in repr(error) and secret not in str(error)
    assert secret not in error.tokens
    line = (
        "xfrmctl state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 aead"
        " 'rfc4106(gcm(aes))' <key> many"
    )
    assert rendered.splitlines() == [
        line,
        " " * line.index("many") + "^~~~",
        "error: expected the ICV length in bits (e.g. 128)",
    ]
    with pytest.raises(XfrmSyntaxError) as info:
        p(f"state add {ID} enc cbc(aes) 0xzz")
    command, marker, _ = info.value.render().splitlines()
    assert marker == " " * command.index("<key>") + "^~~~~"
