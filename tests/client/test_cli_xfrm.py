"""xfrmctl state/policy/stats/link with ip xfrm's grammar, in-process against a real server."""

from __future__ import annotations

import io
import json
import shlex
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from xfrm_offload.client import Client
from xfrm_offload.client.cli import ExitStatus, run
from xfrm_offload.client.grammar import usage
from xfrm_offload.client.render import KEYS_HIDDEN
from xfrm_offload.engine.stats import XFRM_STAT_NAMES
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server

KEY = "0x44434241343332312423222114131211f4f3f2f1"

# Documentation/networking/xfrm/xfrm_device.rst, its three examples as printed there with
# "ip" replaced by "xfrmctl". The shell joins the backslash-continued lines; the policy's
# second line has no backslash in the document but is meant as part of the same command.
DOC_CRYPTO_STATE = f"""\
xfrmctl x s add proto esp dst 14.0.0.70 src 14.0.0.52 spi 0x07 mode transport \\
     reqid 0x07 replay-window 32 \\
     aead 'rfc4106(gcm(aes))' {KEY} 128 \\
     sel src 14.0.0.52/24 dst 14.0.0.70/24 proto tcp \\
     offload dev eth4 dir in"""
DOC_PACKET_STATE = f"""\
xfrmctl x s add proto esp dst 14.0.0.70 src 14.0.0.52 spi 0x07 mode transport \\
     reqid 0x07 replay-window 32 \\
     aead 'rfc4106(gcm(aes))' {KEY} 128 \\
     sel src 14.0.0.52/24 dst 14.0.0.70/24 proto tcp \\
     offload packet dev eth4 dir in"""
DOC_PACKET_POLICY = """xfrmctl x p add src 14.0.0.70 dst 14.0.0.52 offload packet dev eth4 dir in
  tmpl src 14.0.0.70 dst 14.0.0.52 proto esp reqid 10000 mode transport"""


def shell_words(command: str) -> list[str]:
    """What a shell passes to xfrmctl: continuation lines joined, quotes removed."""
    words = shlex.split(command.replace("\\\n", " ").replace("\n", " "))
    assert words[0] == "xfrmctl"
    return words[1:]


def sa_line(spi: int, *, dst: str = "10.0.0.2", extra: str = "", dev: str = "eth4") -> str:
    return (
        f"state add src 10.0.0.1 dst {dst} proto esp spi {spi:#x} reqid {spi}"
        f" aead rfc4106(gcm(aes)) {KEY} 128 {extra} offload packet dev {dev} dir out"
    )


# What ip xfrm state prints for the SAs sa_line() adds, written out as iproute2 lays it out
# (xfrm_state_info_print: the ID line, then tab-indented lines). "$" marks the trailing
# spaces iproute2 prints ("sel ... " and "replay-window 0 ").
SA_TEXT = """\
src 10.0.0.1 dst {dst}
\tproto esp spi 0x{spi:08x} reqid {spi} mode {mode}
\treplay-window 0$
\taead rfc4106(gcm(aes)) {key} 128
\tanti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
\tcrypto offload parameters: dev {dev} dir out mode packet
\tsel src {sel}$
""".replace("$", " ")
ESN_SA_TEXT = """\
src 10.0.0.1 dst 10.0.0.2
\tproto esp spi 0x00000004 reqid 4 mode transport
\treplay-window 64 flag esn
\taead rfc4106(gcm(aes)) <<Keys hidden>> 128
\tanti-replay esn context:
\t seq-hi 0x0, seq 0x0, oseq-hi 0x0, oseq 0x0
\t replay_window 64, bitmap-length 2
\t 00000000 00000000$
\tcrypto offload parameters: dev eth4 dir out mode packet
\tsel src 0.0.0.0/0 dst 0.0.0.0/0$
""".replace("$", " ")
# ip -s xfrm state: numbers also in the other base, flags as strxf_mask8's bits, lifetimes.
SA_STATS_TEXT = """\
src 10.0.0.1 dst 10.0.0.2
\tproto esp spi 0x{spi:08x}({spi}) reqid {spi}(0x{spi:08x}) mode transport
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\taead rfc4106(gcm(aes)) {key} 128
\tanti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
\tcrypto offload parameters: dev eth4 dir out mode packet
\tsel src 0.0.0.0/0 dst 0.0.0.0/0 uid 0
\tlifetime config:
\t  limit: soft (INF)(bytes), hard (INF)(bytes)
\t  limit: soft (INF)(packets), hard {hard}(packets)
\t  expire add: soft 0(sec), hard 0(sec)
\t  expire use: soft 0(sec), hard 0(sec)
\tlifetime current:
\t  0(bytes), 0(packets)
\t  add {added} use -
\tstats:
\t  replay-window 0 replay 0 failed 0
""".replace("$", " ")


def sa_text(
    spi: int,
    *,
    dst: str = "10.0.0.2",
    mode: str = "transport",
    sel: str = "0.0.0.0/0 dst 0.0.0.0/0",
    dev: str = "eth4",
    key: str = KEYS_HIDDEN,
) -> str:
    return SA_TEXT.format(spi=spi, dst=dst, mode=mode, sel=sel, dev=dev, key=key)


def sa_stats_text(state: pb.State, *, key: str = KEYS_HIDDEN, hard: str = "(INF)") -> str:
    """ip -s: the add time as strftime("%Y-%m-%d %T") of the local time, as iproute2."""
    added = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.curlft.add_time))
    return SA_STATS_TEXT.format(spi=state.sa.id.spi, key=key, hard=hard, added=added)


def policy_text(sel: str, direction: str, priority: int = 0, dev: str = "eth4") -> str:
    """ip xfrm policy: selector line (trailing space), dir line, the offload line."""
    return (
        f"{sel} \n\tdir {direction} priority {priority} ptype main \n"
        f"\tcrypto offload parameters: dev {dev} mode packet\n"
    )


class Ctl:
    """xfrmctl bound to one server."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = await run(["--server", self.client.address, *argv], out, err)
        return code, out.getvalue(), err.getvalue()

    async def ok(self, line: str, *options: str) -> str:
        code, out, err = await self(*options, *shlex.split(line))
        assert (code, err) == (ExitStatus.OK, ""), (line, err)
        return out


@pytest.fixture
async def nic(sock_dir: Path) -> AsyncIterator[tuple[OffloadServer, Ctl]]:
    async with running_server(sock_dir, "--device", "eth4", "--device", "eth5") as (server, c):
        yield server, Ctl(c)


# --------------------------------------------------------------------------- the doc


async def test_xfrm_device_rst_examples_verbatim(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--device", "eth4:full") as (_, client):
        ctl = Ctl(client)
        assert await ctl(*shell_words(DOC_CRYPTO_STATE)) == (ExitStatus.OK, "", "")
        [state] = await client.list_states()
        assert (state.type, state.dir) == (1, 1)  # crypto, in
        listed = await ctl.ok("x s l")
        assert listed == (
            "src 14.0.0.52 dst 14.0.0.70\n"
            "\tproto esp spi 0x00000007 reqid 7 mode transport\n"
            "\treplay-window 32 \n"
            "\taead rfc4106(gcm(aes)) <<Keys hidden>> 128\n"
            "\tanti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000\n"
            "\tcrypto offload parameters: dev eth4 dir in mode crypto\n"
            "\tsel src 14.0.0.52/24 dst 14.0.0.70/24 proto tcp \n"
        )
        # The packet-offload example installs the same SA ID: the crypto one goes first.
        await ctl.ok("x s flush")
        assert await ctl(*shell_words(DOC_PACKET_STATE)) == (ExitStatus.OK, "", "")
        assert await ctl(*shell_words(DOC_PACKET_POLICY)) == (ExitStatus.OK, "", "")
        listed = await ctl.ok("x s l")
        assert "\tcrypto offload parameters: dev eth4 dir in mode packet\n" in listed
        assert await ctl.ok("x p l") == (
            "src 14.0.0.70/32 dst 14.0.0.52/32 \n"
            "\tdir in priority 0 ptype main \n"
            "\ttmpl src 14.0.0.70 dst 14.0.0.52\n"
            "\t\tproto esp reqid 10000 mode transport\n"
            "\tcrypto offload parameters: dev eth4 mode packet\n"
        )


# --------------------------------------------------------------------------- spellings


@pytest.mark.parametrize(
    "line",
    ["state list", "state", "s", "x s", "x s l", "xfrm state show", "xf sa lst", "x s sh"],
)
async def test_state_list_spellings(nic: tuple[OffloadServer, Ctl], line: str) -> None:
    _, ctl = nic
    await ctl.ok(sa_line(0x100))
    assert await ctl.ok(line) == sa_text(0x100)


@pytest.mark.parametrize("line", ["policy list", "x p l", "xfrm po sh", "p", "x p lst"])
async def test_policy_list_spellings(nic: tuple[OffloadServer, Ctl], line: str) -> None:
    _, ctl = nic
    await ctl.ok("x p a src 10.0.0.0/24 dst 10.0.1.0/24 dir out offload packet dev eth4")
    assert await ctl.ok(line) == policy_text("src 10.0.0.0/24 dst 10.0.1.0/24", "out")


async def test_get_and_delete_by_id_with_abbreviations(nic: tuple[OffloadServer, Ctl]) -> None:
    _, ctl = nic
    await ctl.ok("x s a " + sa_line(0x100).removeprefix("state add "))
    await ctl.ok(sa_line(0x200))
    assert await ctl.ok("x s g dst 10.0.0.2 proto esp spi 0x200") == sa_text(0x200)
    assert await ctl.ok("state get spi 512 proto esp dst 10.0.0.2") == sa_text(0x200)
    assert await ctl.ok("x s d dst 10.0.0.2 proto esp spi 0x100") == ""
    assert [s.sa.id.spi for s in await ctl.client.list_states()] == [0x200]
    code, out, err = await ctl("x", "s", "g", "dst", "10.0.0.2", "proto", "esp", "spi", "0x100")
    assert (code, out) == (ExitStatus.SERVER_ERROR, "")
    assert err == (
        "xfrmctl: NOT_FOUND: no state with dst 10.0.0.2 proto esp spi 0x00000100 on any device"
        " (ip xfrm: RTNETLINK answers: No such process)\n"
    )


# --------------------------------------------------------------------------- output options


async def test_keys_only_with_the_flag(nic: tuple[OffloadServer, Ctl]) -> None:
    _, ctl = nic
    await ctl.ok(sa_line(0x100))
    get = "state get dst 10.0.0.2 proto esp spi 0x100"
    hidden = [
        await ctl.ok("state list"),
        await ctl.ok("state list", "-s"),
        await ctl.ok(get),
        await ctl.ok("state list", "--json"),
        await ctl.ok(get, "--json"),
        await ctl.ok("state list nokeys", "--keys"),
    ]
    for text in hidden:
        assert KEY[2:] not in text and "REDCQTQzMjEkIyIhFBMSEfTz8vE" not in text
    assert f"aead rfc4106(gcm(aes)) {KEYS_HIDDEN} 128" in hidden[0]
    [state] = await ctl.client.list_states()
    assert await ctl.ok("state list", "--keys") == sa_text(0x100, key=KEY)
    # ip -s prints the key's length in bits after it.
    assert await ctl.ok(get, "--keys", "-s") == sa_stats_text(state, key=f"{KEY} (160 bits)")
    [data] = json.loads(await ctl.ok("state list", "--json", "--keys"))
    assert (
        bytes.fromhex(KEY[2:]).hex()
        == __import__("base64").b64decode(data["sa"]["aead"]["alg_key"]).hex()
    )


async def test_stats_flag_and_json(nic: tuple[OffloadServer, Ctl]) -> None:
    _, ctl = nic
    await ctl.ok(sa_line(0x100, extra="limit packet-hard 1000"))
    await ctl.ok("x p a src 10.0.0.1 dst 10.0.0.2 dir out offload packet dev eth4")
    [state] = await ctl.client.list_states()
    [policy] = await ctl.client.list_policies()
    assert await ctl.ok("x s l", "-s") == sa_stats_text(state, hard="1000")
    # ip -s: the policy's add time as strftime("%Y-%m-%d %T") of the local time.
    policy_added = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(policy.curlft.add_time))
    assert await ctl.ok("x p l", "--stats") == (
        "src 10.0.0.1/32 dst 10.0.0.2/32 uid 0\n"
        f"\tdir out action allow index {policy.policy.index} priority 0 ptype main share any"
        " flag  (0x00000000)\n"
        "\tlifetime config:\n"
        "\t  limit: soft (INF)(bytes), hard (INF)(bytes)\n"
        "\t  limit: soft (INF)(packets), hard (INF)(packets)\n"
        "\t  expire add: soft 0(sec), hard 0(sec)\n"
        "\t  expire use: soft 0(sec), hard 0(sec)\n"
        "\tlifetime current:\n"
        "\t  0(bytes), 0(packets)\n"
        f"\t  add {policy_added} use -\n"
        "\tcrypto offload parameters: dev eth4 mode packet\n"
    )
    [data] = json.loads(await ctl.ok("x s l", "--json"))
    assert (data["dev"], data["sa"]["id"]["spi"], data["type"]) == (
        "eth4",
        0x100,
        "OFFLOAD_TYPE_PACKET",
    )
    assert data["sa"]["lft"]["hard_packet_limit"] == "1000"  # preserving field names
    [pdata] = json.loads(await ctl.ok("x p l", "--json"))
    assert pdata["policy"]["offload"]["dev"] == "eth4"
    assert json.loads(await ctl.ok("x s count", "--json")) == {"count": 1}
    assert json.loads(await ctl.ok("x p count", "--json")) == {"in": 0, "out": 1, "fwd": 0}


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("filters", "spis"),
    [
        ("", [1, 2, 3, 4]),
        ("spi 2", [2]),
        ("dst 10.0.0.3", [3]),
        ("src 10.0.0.1 dst 10.0.0.0/24", [1, 2, 3, 4]),
        ("src 10.0.0.0/8 dst 10.0.0.2", [1, 2, 4]),
        ("proto esp", [1, 2, 3, 4]),
        ("proto ah", []),
        ("reqid 4", [4]),
        ("mode tunnel", [2]),
        ("mode transport", [1, 3, 4]),
        ("flag esn", [4]),
        ("dst 10.0.0.2 reqid 1 nokeys", [1]),
    ],
)
async def test_state_list_filters(
    nic: tuple[OffloadServer, Ctl], filters: str, spis: list[int]
) -> None:
    _, ctl = nic
    await ctl.ok(sa_line(1))
    await ctl.ok(sa_line(2, extra="mode tunnel sel src 10.1.0.0/16 dst 10.2.0.0/16"))
    await ctl.ok(sa_line(3, dst="10.0.0.3", dev="eth5"))
    await ctl.ok(sa_line(4, extra="flag esn replay-window 64"))
    texts = {
        1: sa_text(1),
        2: sa_text(2, mode="tunnel", sel="10.1.0.0/16 dst 10.2.0.0/16"),
        3: sa_text(3, dst="10.0.0.3", dev="eth5"),
        4: ESN_SA_TEXT,
    }
    listed = [spi for spi in (1, 2, 4, 3) if spi in spis]  # device by device: eth5's last
    assert await ctl.ok(f"state list {filters}") == "".join(texts[spi] for spi in listed)
    assert len(json.loads(await ctl.ok(f"state list {filters}", "--json"))) == len(spis)


async def test_deleteall_flush_count_and_dev_option(nic: tuple[OffloadServer, Ctl]) -> None:
    _, ctl = nic
    for spi in (1, 2, 3):
        await ctl.ok(sa_line(spi, extra=f"reqid {spi % 2}"))
    await ctl.ok(sa_line(4, dev="eth5"))
    assert await ctl.ok("state count") == "\t SAD count 4\n"
    assert await ctl.ok("state count", "--dev", "eth5") == "\t SAD count 1\n"
    assert (await ctl.ok("state list", "--dev", "eth5")).startswith("src 10.0.0.1 dst 10.0.0.2\n")
    assert await ctl.ok("x s deleteall reqid 1") == ""
    assert sorted(s.sa.id.spi for s in await ctl.client.list_states()) == [2, 4]
    assert await ctl.ok("state flush proto esp", "--dev", "eth4") == ""
    assert [s.dev for s in await ctl.client.list_states()] == ["eth5"]
    assert await ctl.ok("x s f") == ""
    assert await ctl.ok("x s count") == "\t SAD count 0\n"
    assert [d.state_count for d in await ctl.client.list_devices()] == [0, 0]  # freed too


async def test_policy_get_delete_deleteall_flush_count(nic: tuple[OffloadServer, Ctl]) -> None:
    _, ctl = nic
    await ctl.ok("x p a src 10.0.0.0/24 dst 10.0.1.0/24 dir out priority 5 offload packet dev eth4")
    await ctl.ok(
        "x p a src 10.0.0.0/24 dst 10.0.1.0/24 proto tcp dport 443 dir out offload packet dev eth4"
    )
    await ctl.ok("x p a src 10.0.1.0/24 dst 10.0.0.0/24 dir in offload packet dev eth4")
    await ctl.ok("x p a src 10.0.2.0/24 dst 10.0.0.0/24 dir in offload packet dev eth5")
    assert await ctl.ok("p count") == "\t SPD IN  2 OUT 2 FWD 0\n\n"
    assert await ctl.ok("p count", "-s") == "\t SPD IN  2 OUT 2 FWD 0 (Sock: IN 0 OUT 0 FWD 0)\n\n"
    policies = await ctl.client.list_policies()
    first = policy_text("src 10.0.0.0/24 dst 10.0.1.0/24", "out", 5)
    https = policy_text("src 10.0.0.0/24 dst 10.0.1.0/24 proto tcp dport 443", "out")
    inbound = policy_text("src 10.0.1.0/24 dst 10.0.0.0/24", "in") + policy_text(
        "src 10.0.2.0/24 dst 10.0.0.0/24", "in", dev="eth5"
    )
    # get by SELECTOR names the exact selector: the tcp/443 one is another policy.
    assert await ctl.ok("x p get src 10.0.0.0/24 dst 10.0.1.0/24 dir out") == first
    assert await ctl.ok(f"x p get index {policies[1].policy.index} dir out") == https
    assert await ctl.ok("x p l dir in") == inbound
    assert await ctl.ok("x p l priority 5") == first
    assert await ctl.ok("x p d src 10.0.0.0/24 dst 10.0.1.0/24 proto tcp dport 443 dir out") == ""
    code, _, err = await ctl("x", "p", "get", "index", "999", "dir", "out")
    assert (code, err) == (
        ExitStatus.SERVER_ERROR,
        "xfrmctl: NOT_FOUND: no such policy (ip xfrm: RTNETLINK answers: No such file or"
        " directory)\n",
    )
    assert await ctl.ok("x p deleteall dir in") == ""
    assert await ctl.ok("p count") == "\t SPD IN  0 OUT 1 FWD 0\n\n"
    assert await ctl.ok("x p flush") == ""
    assert await ctl.client.list_policies() == []


async def test_selector_dev_resolves_to_the_ifindex(nic: tuple[OffloadServer, Ctl]) -> None:
    _, ctl = nic
    await ctl.ok("x p a src 10.0.0.0/24 dst 10.0.1.0/24 dev eth5 dir out offload packet dev eth4")
    [policy] = await ctl.client.list_policies()
    eth5 = await ctl.client.get_device("eth5")
    assert policy.policy.sel.ifindex == eth5.ifindex
    assert (await ctl.ok("x p l")).startswith("src 10.0.0.0/24 dst 10.0.1.0/24 dev eth5 \n")
    assert await ctl.ok("x p l dev eth4") == ""
    code, _, err = await ctl(*shlex.split("x p l dev eth9"))
    assert code == ExitStatus.USAGE
    assert err == (
        "xfrmctl x p l dev eth9\n                  ^~~~\nerror: expected a known device name\n"
    )


# --------------------------------------------------------------------------- stats and link


async def test_stats_every_counter(nic: tuple[OffloadServer, Ctl]) -> None:
    _, ctl = nic
    out = await ctl.ok("stats")
    blocks = out.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["eth4:", "eth5:", "total:"]
    for block in blocks:
        names = [line.split("\t")[0].rstrip() for line in block.splitlines()[1:]]
        assert names == list(XFRM_STAT_NAMES)
    # /proc/net/xfrm_stat's layout: seq_printf("%-24s\t%lu\n"), every counter 0 here.
    zeros = "".join(f"{name:<24}\t0\n" for name in XFRM_STAT_NAMES)
    assert await ctl.ok("stats eth5") == zeros
    assert await ctl.ok("stats", "--dev", "eth5") == zeros
    assert out.splitlines()[1] == "XfrmInError             \t0"
    data = json.loads(await ctl.ok("stats", "--json"))
    assert [d["dev"] for d in data["devices"]] == ["eth4", "eth5"]
    assert [c["name"] for c in data["total"]] == list(XFRM_STAT_NAMES)


async def test_link_down_flushes(nic: tuple[OffloadServer, Ctl]) -> None:
    _, ctl = nic
    await ctl.ok(sa_line(1))
    await ctl.ok(sa_line(2))
    await ctl.ok("x p a src 10.0.0.1 dst 10.0.0.2 dir out offload packet dev eth4")
    out = await ctl.ok("link set dev eth4 down")
    assert out == "eth4: link down, flushed 2 states and 1 policies\n"
    assert await ctl.ok("x s count") == "\t SAD count 0\n"
    assert (await ctl.ok("device list")).splitlines()[0].endswith("link down")
    assert await ctl.ok("link set eth4 up") == "eth4: link up\n"
    data = json.loads(await ctl.ok("link s dev eth4 down", "--json"))
    assert data["device"]["link"] == "LINK_STATE_DOWN"


# --------------------------------------------------------------------------- errors and help


BAD_KEY_LINE = (
    "x s add src 10.0.0.1 dst 10.0.0.2 proto esp spi 7"
    f" aead rfc4106(gcm(aes)) {KEY} 128 replay-window lots offload dev eth4 dir in"
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            BAD_KEY_LINE,
            "xfrmctl x s add src 10.0.0.1 dst 10.0.0.2 proto esp spi 7 aead 'rfc4106(gcm(aes))'"
            " <key> 128 replay-window lots offload dev eth4 dir in\n"
            + " " * 107
            + "^~~~\nerror: expected a replay window size (number of packets)\n",
        ),
        (
            "x s add src 10.0.0.1 dst 10.0.0.2 proto esp spi 7 aead rfc4106(gcm(aes)) 0x01 128",
            "xfrmctl x s add src 10.0.0.1 dst 10.0.0.2 proto esp spi 7 aead 'rfc4106(gcm(aes))'"
            " <key> 128\n"
            + " "
            * 93
            + "^\nerror: expected offload [crypto|packet] dev DEV dir in|out: this NIC holds"
            " offloaded states only (ip xfrm would install a software one)\n",
        ),
        (
            "x p add src 10.0.0.1 dst 10.0.0.2 dir out",
            "xfrmctl x p add src 10.0.0.1 dst 10.0.0.2 dir out\n"
            + " " * 50
            + "^\nerror: expected offload packet dev DEV: this NIC holds offloaded policies only"
            " (ip xfrm would install a software one)\n",
        ),
        (
            "route list",
            "xfrmctl route list\n        ^~~~~\nerror: expected an object"
            " (state|policy|monitor, or stats|link|device|help)\n",
        ),
        (
            "x s frob",
            "xfrmctl x s frob\n            ^~~~\nerror: expected a command"
            " (add|update|allocspi|delete|deleteall|list|get|flush|count|help)\n",
        ),
        (
            "link set eth4 sideways",
            "xfrmctl link set eth4 sideways\n                      ^~~~~~~~\n"
            "error: expected up|down|impair\n",
        ),
        (
            "stats eth4 eth5",
            "xfrmctl stats eth4 eth5\n                   ^~~~\n"
            "error: expected at most one device name\n",
        ),
    ],
)
async def test_syntax_errors_exit_2_without_a_server(
    sock_dir: Path, line: str, expected: str
) -> None:
    out, err = io.StringIO(), io.StringIO()
    # No server listens there: syntax is checked before any call.
    code = await run(["--server", f"unix:{sock_dir}/none.sock", *shlex.split(line)], out, err)
    assert (code, out.getvalue(), err.getvalue()) == (ExitStatus.USAGE, "", expected)


async def test_refusals_exit_1(nic: tuple[OffloadServer, Ctl]) -> None:
    _, ctl = nic
    code, out, err = await ctl(*shlex.split(sa_line(1, dev="eth9")))
    assert (code, out) == (ExitStatus.SERVER_ERROR, "")
    assert err.startswith("xfrmctl: NOT_FOUND: no device 'eth9'")
    code, _, err = await ctl(*shlex.split(sa_line(1).replace(KEY, "0x0102")))
    assert code == ExitStatus.SERVER_ERROR
    assert err.startswith("xfrmctl: INVALID_ARGUMENT: ") and "(field sa.aead" in err
    assert "0102" not in err
    await ctl.ok(sa_line(1))
    code, _, err = await ctl(*shlex.split(sa_line(1)))
    assert code == ExitStatus.SERVER_ERROR and err.startswith("xfrmctl: ALREADY_EXISTS: ")
    code, _, err = await ctl(*shlex.split(sa_line(1).replace("state add", "state update")))
    assert code == ExitStatus.SERVER_ERROR
    assert err.startswith("xfrmctl: state update: xfrmdev_ops has no update callback")
    code, _, err = await ctl("x", "p", "upd", "src", "10.0.0.1", "dir", "out")
    assert code == ExitStatus.SERVER_ERROR and "policy update" in err


async def test_unreachable_exits_3(sock_dir: Path) -> None:
    for line in ("x s l", "x p count", "stats", "link set eth0 down", "monitor --count 1"):
        out, err = io.StringIO(), io.StringIO()
        argv = ["--server", f"unix:{sock_dir}/none.sock", "--timeout", "1", *line.split()]
        assert await run(argv, out, err) == ExitStatus.UNREACHABLE, line
        assert "cannot reach the server" in err.getvalue()


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("state help", usage("state")),
        ("x s --help", usage("state")),
        ("xfrm policy help", usage("policy")),
        ("x p -h", usage("policy")),
    ],
)
async def test_help_prints_the_grammar(line: str, text: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert await run(line.split(), out, err) == ExitStatus.OK
    assert (out.getvalue(), err.getvalue()) == (text, "")


async def test_top_level_help() -> None:
    for argv in (["help"], ["--help"], ["x", "help"]):
        out = io.StringIO()
        assert await run(argv, out, io.StringIO()) == ExitStatus.OK
        assert "where  XFRM-OBJECT := state | policy\n" in out.getvalue()
        assert "xfrmctl [ OPTIONS ] link set [ dev ] DEV { up | down }\n" in out.getvalue()
    err = io.StringIO()
    assert await run([], io.StringIO(), err) == ExitStatus.USAGE
    assert err.getvalue().startswith("Usage: xfrmctl [ OPTIONS ] [ xfrm ] XFRM-OBJECT")


async def test_add_json_and_a_profile_refusal(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--device", "eth4", "--device", "sim0:netdevsim") as (
        _,
        client,
    ):
        ctl = Ctl(client)
        data = json.loads(await ctl.ok(sa_line(1), "--json"))
        assert (data["offloaded"], data["type"], data["dir"]) == (
            True,
            "OFFLOAD_TYPE_PACKET",
            "OFFLOAD_DIR_OUT",
        )
        # A crypto-mode refusal the profile makes (netdevsim: ICV 128 only) is an error.
        line = sa_line(2, dev="sim0").replace("offload packet", "offload").replace(" 128 ", " 64 ")
        code, out, err = await ctl(*shlex.split(line))
        assert (code, out) == (ExitStatus.SERVER_ERROR, "")
        assert err == (
            "xfrmctl: INVALID_ARGUMENT: Cannot offload xfrm states with AEAD ICV length other"
            " than 128 bit (allowed: 128) (field sa.aead.alg_icv_len)\n"
        )
        assert await ctl.ok("state count", "--dev", "sim0") == "\t SAD count 0\n"
