"""``ip xfrm state``: add/update into an XfrmUsersaInfo, get/delete/list/deleteall/flush into
a StateFilter (ip/xfrm_state.c), and the state usage text.
"""

from __future__ import annotations

from xfrm_offload.v1 import xfrm_pb2

from .clauses import (
    ID_WORDS,
    PROTOS_WITHOUT_SPI,
    IdClause,
    IfindexOf,
    SelectorClause,
    id_family,
    parse_flag_list,
    parse_id,
    parse_limits,
    parse_mark,
    parse_mode,
    parse_selector,
)
from .filters import StateFilter
from .lexer import (
    ALGO_KEYWORDS,
    MAX_KEY_BYTES,
    CommandTable,
    Cursor,
    expect_word,
    parse_addr,
    parse_key,
)

# include/uapi/linux/xfrm.h constants (values, not code).
XFRM_STATE_FLAGS: dict[str, int] = {
    "noecn": 1,
    "decap-dscp": 2,
    "nopmtudisc": 4,
    "wildrecv": 8,
    "icmp": 16,
    "af-unspec": 32,
    "align4": 64,
    "esn": 128,
}

XFRM_STATE_ESN = 128

XFRM_EXTRA_FLAGS: dict[str, int] = {"dont-encap-dscp": 1, "oseq-may-wrap": 2}

# Width of the legacy xfrm_replay_state bitmap: wider windows need replay_esn.
LEGACY_REPLAY_BITS = 32

ENCAP_TYPES: dict[str, xfrm_pb2.EncapType] = {
    "espinudp-nonike": xfrm_pb2.ENCAP_TYPE_ESPINUDP_NON_IKE,
    "espinudp": xfrm_pb2.ENCAP_TYPE_ESPINUDP,
    "espintcp": xfrm_pb2.ENCAP_TYPE_ESPINTCP,
}

STATE_COMMANDS: CommandTable = (
    (("add",), "add"),
    (("update",), "update"),
    (("allocspi",), "allocspi"),
    (("delete",), "delete"),
    (("deleteall", "delall"), "deleteall"),
    (("list", "show", "lst"), "list"),
    (("get",), "get"),
    (("flush",), "flush"),
    (("count",), "count"),
    (("help",), "help"),
)

_STATE_FLAG_WHAT = "a state flag"


def parse_state_add(cur: Cursor, ifindex_of: IfindexOf | None) -> xfrm_pb2.XfrmUsersaInfo:
    sa = xfrm_pb2.XfrmUsersaInfo()
    sa.lft.SetInParent()
    ident: IdClause | None = None
    algo_index: dict[str, int] = {}
    window: int | None = None
    esn_index: int | None = None
    replay: dict[str, int] = {}
    sel: SelectorClause | None = None
    while not cur.at_end():
        index = cur.pos
        word = cur.take()
        if word == "mode":
            sa.mode = parse_mode(cur)
        elif word == "mark":
            sa.mark.CopyFrom(parse_mark(cur))
        elif word == "reqid":
            sa.reqid = cur.uint("expected a reqid (32-bit number)")
        elif word == "seq":
            sa.seq = cur.uint("expected a sequence number (32-bit number)")
        elif word == "replay-window":
            # No ceiling here: the device's capability (max_replay_window) decides, and the
            # server names the field when a window is too wide for it.
            window = cur.uint("expected a replay window size (number of packets)")
        elif word in ("replay-seq", "replay-oseq", "replay-seq-hi", "replay-oseq-hi"):
            replay[word] = cur.uint(f'expected a number after "{word}" (32-bit)')
        elif word == "flag":
            flag_start = cur.pos
            sa.flags |= parse_flag_list(cur, XFRM_STATE_FLAGS, _STATE_FLAG_WHAT, 8)
            if sa.flags & XFRM_STATE_ESN and esn_index is None:
                esn_index = next(
                    (i for i in range(flag_start, cur.pos) if cur.argv[i] == "esn"), flag_start
                )
        elif word == "extra-flag":
            sa.extra_flags |= parse_flag_list(cur, XFRM_EXTRA_FLAGS, "an extra flag", 32)
        elif word == "sel":
            sel = parse_selector(cur, ifindex_of)
            sa.sel.CopyFrom(sel.sel)
        elif word == "limit":
            parse_limits(cur, sa.lft)
        elif word == "encap":
            _parse_encap(cur, sa.encap)
        elif word == "if_id":
            sa.if_id = cur.uint("expected an interface id (32-bit number)")
        elif word == "tfcpad":
            sa.tfcpad = cur.uint("expected a TFC padding length (32-bit number)")
        elif word == "dir":
            sa.dir = cur.choice({"in": xfrm_pb2.SA_DIR_IN, "out": xfrm_pb2.SA_DIR_OUT}, "a dir")
        elif word == "offload":
            _parse_state_offload(cur, sa.offload)
        elif word in ALGO_KEYWORDS:
            _parse_algo(cur, sa, word, index, algo_index)
        elif word in ID_WORDS:
            if ident is not None:
                raise cur.error(
                    "expected the ID (src, dst, proto, spi) as one group: it was given earlier",
                    index,
                )
            cur.pos = index
            ident = parse_id(cur, loose=False)
        else:
            raise cur.error(f"expected a state keyword, not {word!r}", index)
    if ident is None:
        raise cur.error("expected an ID: src ADDR dst ADDR proto esp spi SPI")
    if not algo_index:
        raise cur.error("expected an algorithm (aead, enc, auth or auth-trunc) with proto esp")
    if sa.flags & XFRM_STATE_ESN and not window:
        raise cur.error(
            "expected replay-window with flag esn", esn_index if esn_index is not None else 0
        )
    _apply_id(sa, ident)
    _apply_replay(sa, window or 0, replay)
    if sa.HasField("offload") and sa.family == xfrm_pb2.ADDRESS_FAMILY_INET6:
        sa.offload.flags |= xfrm_pb2.OFFLOAD_FLAG_IPV6
    return sa


def _apply_id(sa: xfrm_pb2.XfrmUsersaInfo, ident: IdClause) -> None:
    if ident.saddr:
        sa.saddr = ident.saddr.text
    if ident.daddr:
        sa.id.daddr = ident.daddr.text
    sa.id.proto = ident.proto or 0
    sa.id.spi = ident.spi or 0
    family = id_family(ident)
    # iproute2 sends AF_INET when nothing gave a family.
    sa.family = family or xfrm_pb2.ADDRESS_FAMILY_INET


def _apply_replay(sa: xfrm_pb2.XfrmUsersaInfo, window: int, replay: dict[str, int]) -> None:
    """ESN, a window wider than the legacy bitmap, or initial sequence numbers -> replay_esn.

    iproute2 sends seq/oseq for a small non-ESN window in XFRMA_REPLAY_VAL; the proto has no
    such field, so they go in replay_esn too (the kernel accepts replay_esn without ESN).
    """
    uses_esn = bool(sa.flags & XFRM_STATE_ESN) or window > LEGACY_REPLAY_BITS
    if not uses_esn and not (replay.get("replay-seq") or replay.get("replay-oseq")):
        sa.replay_window = window
        return
    esn = sa.replay_esn
    esn.SetInParent()
    esn.replay_window = window
    esn.bmp_len = (window + 31) // 32
    esn.seq = replay.get("replay-seq", 0)
    esn.oseq = replay.get("replay-oseq", 0)
    if uses_esn:
        esn.seq_hi = replay.get("replay-seq-hi", 0)
        esn.oseq_hi = replay.get("replay-oseq-hi", 0)
    sa.replay_window = 0


def _parse_encap(cur: Cursor, encap: xfrm_pb2.XfrmEncapTmpl) -> None:
    encap.encap_type = cur.choice(dict(ENCAP_TYPES), "an encapsulation type")
    encap.encap_sport = cur.uint("expected the encap source port (0-65535)", 16)
    encap.encap_dport = cur.uint("expected the encap destination port (0-65535)", 16)
    text, index = cur.value("expected the original address (OADDR)")
    addr = parse_addr(text)
    if addr is None or "/" in text:
        raise cur.error("expected the original address (OADDR)", index)
    encap.encap_oa = addr.text


def _parse_state_offload(cur: Cursor, offload: xfrm_pb2.XfrmUserOffload) -> None:
    """offload [ crypto | packet ] dev DEV dir in|out (no type means crypto)."""
    offload.SetInParent()
    flags = 0
    mode = cur.peek()
    if mode in ("crypto", "packet"):
        cur.take()
        flags |= xfrm_pb2.OFFLOAD_FLAG_PACKET if mode == "packet" else 0
    expect_word(cur, "dev", 'expected "dev DEV" after offload')
    offload.dev, _ = cur.value("expected a device name")
    expect_word(cur, "dir", 'expected "dir in|out" after offload dev DEV')
    if cur.choice({"in": 1, "out": 0}, "an offload dir") == 1:
        flags |= xfrm_pb2.OFFLOAD_FLAG_INBOUND
    offload.flags = flags


def _parse_algo(
    cur: Cursor,
    sa: xfrm_pb2.XfrmUsersaInfo,
    kind: str,
    index: int,
    seen: dict[str, int],
) -> None:
    """ALGO := { enc | auth } NAME KEY | auth-trunc NAME KEY TRUNC | aead NAME KEY ICV."""
    slot = {"aead": "aead", "enc": "enc", "auth": "auth", "auth-trunc": "auth"}[kind]
    clashes = {"aead": ("aead", "enc", "auth"), "enc": ("aead", "enc"), "auth": ("aead", "auth")}
    if any(other in seen for other in clashes[slot]):
        raise cur.error(
            "expected one cipher: aead excludes enc/auth, and each is given once", index
        )
    seen[slot] = index
    name, _ = cur.value("expected an algorithm name, e.g. 'rfc4106(gcm(aes))'")
    key_text, key_index = cur.value("expected a key: 0x followed by hex digits, or a string")
    key = parse_key(key_text)
    if key is None:
        raise cur.error(
            f"expected a key: 0x followed by hex digits (at most {MAX_KEY_BYTES} bytes)",
            key_index,
        )
    if kind == "aead":
        icv = cur.uint("expected the ICV length in bits (e.g. 128)")
        sa.aead.CopyFrom(xfrm_pb2.XfrmAlgoAead(alg_name=name, alg_key=key, alg_icv_len=icv))
    elif kind == "enc":
        sa.enc.CopyFrom(xfrm_pb2.XfrmAlgo(alg_name=name, alg_key=key))
    elif kind == "auth":
        sa.auth.CopyFrom(xfrm_pb2.XfrmAlgoAuth(alg_name=name, alg_key=key))
    else:
        trunc = cur.uint("expected the truncation length in bits (e.g. 128)")
        sa.auth.CopyFrom(xfrm_pb2.XfrmAlgoAuth(alg_name=name, alg_key=key, alg_trunc_len=trunc))


def _state_filter_from_id(ident: IdClause, **extra: object) -> StateFilter:
    return StateFilter(
        saddr=ident.saddr.text if ident.saddr else None,
        saddr_plen=ident.saddr.plen if ident.saddr else 0,
        daddr=ident.daddr.text if ident.daddr else None,
        daddr_plen=ident.daddr.plen if ident.daddr else 0,
        proto=ident.proto,
        spi=ident.spi,
        **extra,  # type: ignore[arg-type]
    )


def parse_state_get(cur: Cursor) -> StateFilter:
    """{ delete | get } ID [ mark MARK [ mask MASK ] ]."""
    ident: IdClause | None = None
    mark: xfrm_pb2.XfrmMark | None = None
    while not cur.at_end():
        index = cur.pos
        word = cur.argv[index]
        if word == "mark":
            cur.take()
            mark = parse_mark(cur)
        elif word in ID_WORDS and ident is None:
            ident = parse_id(cur, loose=False)
        else:
            raise cur.error("expected ID keywords (src, dst, proto, spi) or mark", index)
    if ident is None:
        raise cur.error("expected an ID: dst ADDR proto esp spi SPI")
    _require_whole_id(cur, ident)
    return _state_filter_from_id(ident, mark=mark)


def _require_whole_id(cur: Cursor, ident: IdClause) -> None:
    """get/delete name one state, by the kernel's key (daddr, spi, proto): all three given.

    ip xfrm sends what it was given and the kernel finds nothing for a partial key; here a
    partial key would match several states, so it is refused before anything is touched
    (deleteall takes filters).
    """
    missing = [
        word
        for word, given in (
            ("dst ADDR", ident.daddr is not None),
            ("proto XFRM-PROTO", ident.proto is not None),
            ("spi SPI", ident.spi is not None or ident.proto in PROTOS_WITHOUT_SPI),
        )
        if not given
    ]
    if missing:
        raise cur.error(
            f"expected the whole ID, {' '.join(missing)} missing: get and delete name one "
            "state by dst, proto and spi (deleteall takes filters)"
        )


def parse_state_list(cur: Cursor) -> StateFilter:
    """{ deleteall | list } [ ID ] [ nokeys ] [ mode MODE ] [ reqid REQID ] [ flag FLAG-LIST ]."""
    ident = IdClause()
    extra: dict[str, object] = {}
    id_seen = False
    while not cur.at_end():
        index = cur.pos
        word = cur.argv[index]
        if word in ID_WORDS and not id_seen:
            ident = parse_id(cur, loose=True)
            id_seen = True
            continue
        cur.take()
        if word == "nokeys":
            extra["nokeys"] = True
        elif word == "mode":
            extra["mode"] = parse_mode(cur)
        elif word == "reqid":
            extra["reqid"] = cur.uint("expected a reqid (32-bit number)")
        elif word == "flag":
            extra["flags"] = parse_flag_list(cur, XFRM_STATE_FLAGS, _STATE_FLAG_WHAT, 8)
        else:
            raise cur.error(
                "expected a filter (src, dst, proto, spi, nokeys, mode, reqid, flag)", index
            )
    return _state_filter_from_id(ident, **extra)


def parse_state_flush(cur: Cursor) -> StateFilter:
    """flush [ proto XFRM-PROTO ]."""
    if cur.at_end():
        return StateFilter()
    if cur.peek() != "proto":
        raise cur.error("expected proto XFRM-PROTO or nothing")
    ident = parse_id(cur, loose=True)
    if not cur.at_end():
        raise cur.error("expected nothing after proto XFRM-PROTO")
    return StateFilter(proto=ident.proto)


STATE_USAGE = """\
Usage: xfrmctl [xfrm] state { add | update } ID [ ALGO-LIST ] [ mode MODE ]
        [ mark MARK [ mask MASK ] ] [ reqid REQID ] [ seq SEQ ]
        [ replay-window SIZE ] [ replay-seq SEQ ] [ replay-oseq SEQ ]
        [ replay-seq-hi SEQ ] [ replay-oseq-hi SEQ ]
        [ flag FLAG-LIST ] [ sel SELECTOR ] [ LIMIT-LIST ] [ encap ENCAP ]
        [ extra-flag EXTRA-FLAG-LIST ] [ if_id IF_ID ] [ tfcpad LENGTH ]
        [ offload [ crypto | packet ] dev DEV dir DIR ] [ dir DIR ]
       xfrmctl state { delete | get } ID [ mark MARK [ mask MASK ] ]
       xfrmctl state { deleteall | list } [ ID ] [ nokeys ] [ mode MODE ]
        [ reqid REQID ] [ flag FLAG-LIST ]
       xfrmctl state flush [ proto XFRM-PROTO ]
       xfrmctl state count
ID := [ src ADDR ] [ dst ADDR ] [ proto XFRM-PROTO ] [ spi SPI ]
XFRM-PROTO := esp | NUMBER
ALGO-LIST := [ ALGO-LIST ] ALGO
ALGO := { enc | auth } ALGO-NAME ALGO-KEYMAT |
        auth-trunc ALGO-NAME ALGO-KEYMAT ALGO-TRUNC-LEN |
        aead ALGO-NAME ALGO-KEYMAT ALGO-ICV-LEN
ALGO-KEYMAT := 0xHEXDIGITS | STRING
MODE := transport | tunnel
FLAG-LIST := [ FLAG-LIST ] FLAG
FLAG := noecn | decap-dscp | nopmtudisc | wildrecv | icmp | af-unspec | align4 | esn
EXTRA-FLAG-LIST := [ EXTRA-FLAG-LIST ] EXTRA-FLAG
EXTRA-FLAG := dont-encap-dscp | oseq-may-wrap
SELECTOR := [ src ADDR[/PLEN] ] [ dst ADDR[/PLEN] ] [ dev DEV ] [ UPSPEC ]
UPSPEC := proto { { tcp | udp | sctp | dccp } [ sport PORT ] [ dport PORT ] |
                  { icmp | ipv6-icmp | mobility-header } [ type NUMBER ] [ code NUMBER ] |
                  gre [ key { DOTTED-QUAD | NUMBER } ] | PROTO }
LIMIT-LIST := [ LIMIT-LIST ] limit LIMIT
LIMIT := { time-soft | time-hard | time-use-soft | time-use-hard } SECONDS |
         { byte-soft | byte-hard } SIZE | { packet-soft | packet-hard } COUNT
ENCAP := { espinudp | espinudp-nonike | espintcp } SPORT DPORT OADDR
DIR := in | out
"""
