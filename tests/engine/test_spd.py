"""The policy database: identity, kernel-style indexes, best-policy lookup without a scan."""

from __future__ import annotations

import errno
import ipaddress

import pytest

from xfrm_offload.engine.errors import AlreadyExists, InvalidArgument, NoSpace, NotFound
from xfrm_offload.engine.selector import FlowKey, SelectorMatcher
from xfrm_offload.engine.spd import (
    Policy,
    PolicyAction,
    SPDatabase,
    Template,
    direction_of_index,
)
from xfrm_offload.engine.types import Direction, Family, Mode, Selector

ip = ipaddress.ip_address
IN, OUT, FWD = Direction.IN, Direction.OUT, Direction.FWD
V4, V6 = Family.INET, Family.INET6
ALLOW, BLOCK = PolicyAction.ALLOW, PolicyAction.BLOCK
TCP, UDP, ICMP = 6, 17, 1


def sel(
    dst: str | None = None,
    src: str | None = None,
    *,
    proto: int = 0,
    dport: int | None = None,
    sport: int | None = None,
    ifindex: int = 0,
) -> Selector:
    """Selector from "addr/plen" strings; a given port gets a full mask, as `ip xfrm` does."""

    def split(text: str | None) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address | None, int]:
        if text is None:
            return None, 0
        net = ipaddress.ip_network(text, strict=False)
        return net.network_address, net.prefixlen

    d, pd = split(dst)
    s, ps = split(src)
    family = V6 if (d or s) and (d or s).version == 6 else V4  # type: ignore[union-attr]
    return Selector(
        daddr=d,
        saddr=s,
        prefixlen_d=pd,
        prefixlen_s=ps,
        proto=proto,
        dport=dport or 0,
        dport_mask=0xFFFF if dport is not None else 0,
        sport=sport or 0,
        sport_mask=0xFFFF if sport is not None else 0,
        family=family,
        ifindex=ifindex,
    )


# (name, policies as (selector, priority, action, mark, mark_mask, if_id), flow, lookup kwargs,
#  expected position in the policy list or None)
Row = tuple[Selector, int, PolicyAction]
LOOKUP_CASES: list[tuple[str, list[Row], FlowKey, int | None]] = [
    ("no policy", [], FlowKey.of("10.0.0.1", "10.0.0.2"), None),
    ("catch-all", [(sel(), 0, ALLOW)], FlowKey.of("10.0.0.1", "10.0.0.2"), 0),
    (
        "lower priority value wins",
        [(sel("10.0.0.0/8"), 200, ALLOW), (sel("10.0.0.2/32"), 100, BLOCK)],
        FlowKey.of("1.1.1.1", "10.0.0.2"),
        1,
    ),
    (
        "priority beats prefix length",
        [(sel("10.0.0.2/32"), 100, ALLOW), (sel("10.0.0.0/24"), 50, BLOCK)],
        FlowKey.of("1.1.1.1", "10.0.0.2"),
        1,
    ),
    (
        "tie goes to the first inserted",
        [(sel("10.0.0.0/24"), 7, ALLOW), (sel("10.0.0.2/32"), 7, BLOCK)],
        FlowKey.of("1.1.1.1", "10.0.0.2"),
        0,
    ),
    (
        "tie first inserted, same bucket",
        [(sel("10.0.0.0/24", proto=TCP), 7, ALLOW), (sel("10.0.0.0/24"), 7, BLOCK)],
        FlowKey.of("1.1.1.1", "10.0.0.2", TCP),
        0,
    ),
    (
        "more specific but not matching falls through",
        [(sel("10.0.0.2/32", proto=UDP), 1, BLOCK), (sel("10.0.0.0/8"), 9, ALLOW)],
        FlowKey.of("1.1.1.1", "10.0.0.2", TCP),
        1,
    ),
    (
        "source prefix",
        [(sel(src="192.168.0.0/16"), 0, ALLOW)],
        FlowKey.of("192.168.44.1", "10.0.0.2"),
        0,
    ),
    (
        "source prefix miss",
        [(sel(src="192.168.0.0/16"), 0, ALLOW)],
        FlowKey.of("192.169.0.1", "10.0.0.2"),
        None,
    ),
    (
        "dport",
        [(sel(proto=TCP, dport=22), 0, BLOCK), (sel(proto=TCP), 5, ALLOW)],
        FlowKey.of("1.1.1.1", "2.2.2.2", TCP, 5000, 22),
        0,
    ),
    (
        "dport other",
        [(sel(proto=TCP, dport=22), 0, BLOCK), (sel(proto=TCP), 5, ALLOW)],
        FlowKey.of("1.1.1.1", "2.2.2.2", TCP, 5000, 23),
        1,
    ),
    (
        "sport",
        [(sel(proto=UDP, sport=500), 0, ALLOW)],
        FlowKey.of("1.1.1.1", "2.2.2.2", UDP, 500, 500),
        0,
    ),
    (
        "icmp type/code",
        [(sel(proto=ICMP, sport=8, dport=0), 0, ALLOW), (sel(proto=ICMP), 1, BLOCK)],
        FlowKey.of("1.1.1.1", "2.2.2.2", ICMP, 8, 0),
        0,
    ),
    (
        "icmp other type",
        [(sel(proto=ICMP, sport=8, dport=0), 0, ALLOW), (sel(proto=ICMP), 1, BLOCK)],
        FlowKey.of("1.1.1.1", "2.2.2.2", ICMP, 0, 0),
        1,
    ),
    (
        "protocol any",
        [(sel("2.2.2.2/32"), 0, ALLOW)],
        FlowKey.of("1.1.1.1", "2.2.2.2", 132, 1, 2),
        0,
    ),
    (
        "protocol mismatch",
        [(sel(proto=UDP), 0, ALLOW)],
        FlowKey.of("1.1.1.1", "2.2.2.2", TCP),
        None,
    ),
    (
        "ifindex",
        [(sel(ifindex=4), 0, BLOCK), (sel(), 1, ALLOW)],
        FlowKey.of("1.1.1.1", "2.2.2.2", ifindex=4),
        0,
    ),
    (
        "ifindex other",
        [(sel(ifindex=4), 0, BLOCK), (sel(), 1, ALLOW)],
        FlowKey.of("1.1.1.1", "2.2.2.2", ifindex=5),
        1,
    ),
    (
        "v6 flow ignores v4 policies",
        [(sel(), 0, BLOCK), (sel("2001:db8::/32"), 5, ALLOW)],
        FlowKey.of("2001:db8::1", "2001:db8::2"),
        1,
    ),
    (
        "v6 prefixes",
        [(sel("2001:db8::/32"), 5, ALLOW), (sel("2001:db8:0:1::/64"), 3, BLOCK)],
        FlowKey.of("::1", "2001:db8:0:1::9"),
        1,
    ),
    (
        "v6 prefix miss",
        [(sel("2001:db8::/32"), 5, ALLOW)],
        FlowKey.of("::1", "2001:db9::9"),
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "rows", "flow", "expected"), LOOKUP_CASES, ids=[c[0] for c in LOOKUP_CASES]
)
def test_lookup(name: str, rows: list[Row], flow: FlowKey, expected: int | None) -> None:
    db = SPDatabase()
    stored = [db.add(Policy(s, OUT, priority=prio, action=action)) for s, prio, action in rows]
    db.add(Policy(sel(), IN, priority=0, action=BLOCK))  # other directions never interfere
    found = db.lookup(OUT, flow)
    assert found == (None if expected is None else stored[expected])


def test_mark_and_if_id() -> None:
    db = SPDatabase()
    marked = db.add(Policy(sel(), OUT, priority=0, mark=0x10, mark_mask=0xF0))
    with_if_id = db.add(Policy(sel(), OUT, priority=1, if_id=9))
    plain = db.add(Policy(sel(), OUT, priority=2))
    flow = FlowKey.of("1.1.1.1", "2.2.2.2")
    assert db.lookup(OUT, flow, mark=0x1F) == marked
    assert db.lookup(OUT, flow, mark=0x20) == plain
    assert db.lookup(OUT, flow, if_id=9) == with_if_id
    assert db.lookup(OUT, flow, mark=0x10, if_id=9) == with_if_id  # marked has if_id 0
    assert db.lookup(OUT, flow, mark=0x20, if_id=7) is None


def test_kernel_style_indexes() -> None:
    db = SPDatabase()
    assert db.add(Policy(sel("10.0.0.1/32"), OUT)).index == 1
    assert db.add(Policy(sel("10.0.0.1/32"), IN)).index == 8
    assert db.add(Policy(sel("10.0.0.1/32"), FWD)).index == 18
    assert db.add(Policy(sel("10.0.0.2/32"), OUT)).index == 25
    assert db.add(Policy(sel("10.0.0.3/32"), OUT, index=0x401)).index == 0x401
    # A requested index already in use is quietly replaced by a generated one.
    assert db.add(Policy(sel("10.0.0.4/32"), OUT, index=0x401)).index == 33
    assert [direction_of_index(p.index) for p in db] == [OUT, IN, FWD, OUT, OUT, OUT]
    with pytest.raises(InvalidArgument) as exc:
        db.add(Policy(sel("10.0.0.5/32"), IN, index=0x401))  # low bits say OUT
    assert exc.value.field == "index"


def test_duplicates_update_delete() -> None:
    db = SPDatabase()
    s = sel("10.0.0.0/24", proto=TCP)
    first = db.add(Policy(s, OUT, priority=10))
    with pytest.raises(AlreadyExists) as exc:
        db.add(Policy(s, OUT, priority=99))  # priority is not part of the identity
    assert (exc.value.errno, exc.value.field) == (errno.EEXIST, "sel")
    # Same selector, other dir / mark / if_id: different policies.
    db.add(Policy(s, IN))
    db.add(Policy(s, OUT, mark=1, mark_mask=0xFF))
    db.add(Policy(s, OUT, if_id=3))
    assert len(db) == 4
    updated = db.add(Policy(s, OUT, priority=99, action=BLOCK), update=True)
    assert (updated.index, updated.priority, updated.action) == (first.index, 99, BLOCK)
    assert db.get(first.index) == updated
    assert db.lookup(OUT, FlowKey.of("9.9.9.9", "10.0.0.7", TCP)) == updated
    assert db.get_by_selector(OUT, s) == updated
    assert db.delete_by_selector(OUT, s) == updated
    assert db.lookup(OUT, FlowKey.of("9.9.9.9", "10.0.0.7", TCP)) is None
    with pytest.raises(NotFound):
        db.delete_by_selector(OUT, s)
    marked = db.get_by_selector(OUT, s, mark=1, mark_mask=0xFF)
    assert marked is not None
    assert db.delete(marked.index) == marked
    with pytest.raises(NotFound) as nf:
        db.delete(marked.index)
    assert nf.value.field == "index"
    assert len(db) == 2
    assert [p.dir for p in db.clear()] == [IN, OUT]
    assert len(db) == 0
    assert db.lookup(IN, FlowKey.of("9.9.9.9", "10.0.0.7", TCP)) is None


def test_table_full() -> None:
    db = SPDatabase(max_entries=2)
    db.add(Policy(sel("10.0.0.1/32"), OUT))
    db.add(Policy(sel("10.0.0.2/32"), OUT))
    with pytest.raises(NoSpace):
        db.add(Policy(sel("10.0.0.3/32"), OUT))
    db.add(Policy(sel("10.0.0.2/32"), OUT, priority=4), update=True)  # replacing needs no room


def test_bad_selector_rejected() -> None:
    db = SPDatabase()
    with pytest.raises(InvalidArgument) as exc:
        db.add(Policy(Selector(prefixlen_d=40, daddr=ip("10.0.0.0")), OUT))
    assert exc.value.field == "sel.prefixlen_d"


def test_many_host_policies_touch_few(monkeypatch: pytest.MonkeyPatch) -> None:
    db = SPDatabase()
    policies = [
        db.add(Policy(sel(f"10.{i >> 8}.{i & 0xFF}.1/32"), OUT, priority=i % 7))
        for i in range(10_000)
    ]
    catch_all = db.add(Policy(sel("10.0.0.0/8"), OUT, priority=1000, action=BLOCK))
    calls = 0
    real_matches = SelectorMatcher.matches_beyond_addresses  # what lookup asks a candidate

    def counting(self: SelectorMatcher, flow: FlowKey) -> bool:
        nonlocal calls
        calls += 1
        return real_matches(self, flow)

    monkeypatch.setattr(SelectorMatcher, "matches_beyond_addresses", counting)
    for i in (0, 1, 4242, 9999):
        flow = FlowKey.of("192.0.2.1", f"10.{i >> 8}.{i & 0xFF}.1", TCP, 1, 2)
        assert db.lookup(OUT, flow) == policies[i]
    assert db.lookup(OUT, FlowKey.of("192.0.2.1", "10.200.0.2")) == catch_all
    assert db.lookup(OUT, FlowKey.of("192.0.2.1", "11.0.0.1")) is None
    assert 0 < calls <= 12  # a couple of candidates per lookup, not 10,001


def test_one_address_pair_many_policies() -> None:
    """Policies that differ only beyond their addresses share one index slot: the best
    (lowest priority, then oldest) that matches wins, through adds and deletes."""
    db = SPDatabase()
    by_port: dict[int | None, Policy] = {
        port: db.add(Policy(sel("10.0.0.1/32", proto=TCP, dport=port), OUT, priority=prio))
        for port, prio in ((None, 9), (80, 5), (443, 5), (22, 1))  # None: any port
    }
    any_port = by_port[None]
    cases = {80: by_port[80], 443: by_port[443], 22: by_port[22], 8080: any_port}
    for port, expected in cases.items():
        assert db.lookup(OUT, FlowKey.of("192.0.2.1", "10.0.0.1", TCP, 1, port)) == expected
    later = db.add(Policy(sel("10.0.0.1/32", proto=TCP, dport=80, sport=1), OUT, priority=5))
    assert db.lookup(OUT, FlowKey.of("192.0.2.1", "10.0.0.1", TCP, 1, 80)) == by_port[80]
    db.delete(by_port[80].index)
    assert db.lookup(OUT, FlowKey.of("192.0.2.1", "10.0.0.1", TCP, 1, 80)) == later
    assert db.lookup(OUT, FlowKey.of("192.0.2.1", "10.0.0.1", TCP, 2, 80)) == any_port
    db.delete(any_port.index)
    assert db.lookup(OUT, FlowKey.of("192.0.2.1", "10.0.0.1", TCP, 2, 80)) is None
    assert db.lookup(OUT, FlowKey.of("192.0.2.1", "10.0.0.1", TCP, 1, 22)) == by_port[22]


def test_template_endpoints() -> None:
    flow = FlowKey.of("10.0.0.1", "10.0.0.2")
    assert Template(reqid=1).endpoints(flow) == (ip("10.0.0.2"), ip("10.0.0.1"))
    tunnel = Template(daddr=ip("203.0.113.2"), saddr=ip("203.0.113.1"), mode=Mode.TUNNEL)
    assert tunnel.endpoints(flow) == (ip("203.0.113.2"), ip("203.0.113.1"))
    no_src = Template(daddr=ip("203.0.113.2"), saddr=ip("0.0.0.0"), mode=Mode.TUNNEL)
    assert no_src.endpoints(flow) == (ip("203.0.113.2"), None)
    with pytest.raises(InvalidArgument) as exc:
        Template(mode=Mode.TUNNEL).endpoints(flow)
    assert exc.value.field == "templates.daddr"


def test_policy_keeps_templates_and_is_frozen() -> None:
    tmpl = Template(daddr=ip("192.0.2.2"), saddr=ip("192.0.2.1"), reqid=42, mode=Mode.TUNNEL)
    pol = SPDatabase().add(Policy(sel(), OUT, templates=(tmpl,)))
    assert pol.templates == (tmpl,)
    with pytest.raises(AttributeError):
        pol.priority = 3  # type: ignore[misc]
