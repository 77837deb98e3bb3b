"""The SA database: O(1) inbound id lookup, outbound template lookup, duplicates, removal."""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass

import pytest

from xfrm_offload.engine.errors import AlreadyExists, NoSpace, NotFound
from xfrm_offload.engine.sad import SADatabase
from xfrm_offload.engine.types import Family, Mode, SAConfig

ip = ipaddress.ip_address
AH = 51


@dataclass
class FakeSA:
    """Stands in for the device layer's SA object: the database is generic over it."""

    name: str
    dying: bool = False


def cfg(
    spi: int,
    dst: str = "192.0.2.2",
    src: str = "192.0.2.1",
    *,
    reqid: int = 0,
    proto: int = 50,
    mode: Mode = Mode.TRANSPORT,
    mark: int = 0,
    mark_mask: int = 0,
    if_id: int = 0,
) -> SAConfig:
    family = Family.INET if ip(dst).version == 4 else Family.INET6
    return SAConfig(
        daddr=ip(dst),
        saddr=ip(src),
        spi=spi,
        proto=proto,
        family=family,
        mode=mode,
        reqid=reqid,
        mark=mark,
        mark_mask=mark_mask,
        if_id=if_id,
    )


def test_inbound_lookup_by_id() -> None:
    db: SADatabase[FakeSA] = SADatabase()
    a, b, c = FakeSA("a"), FakeSA("b"), FakeSA("c")
    db.add(cfg(0x100), a)
    db.add(cfg(0x100, dst="2001:db8::2", src="2001:db8::1"), b)
    db.add(cfg(0x100, proto=AH), c)
    assert len(db) == 3
    assert db.get(ip("192.0.2.2"), 0x100) is a
    assert db.get_packed(ip("192.0.2.2").packed, 0x100, 50) is a
    assert db.get(ip("2001:db8::2"), 0x100) is b
    assert db.get(ip("192.0.2.2"), 0x100, AH) is c
    assert db.get(ip("192.0.2.2"), 0x101) is None
    assert db.get(ip("192.0.2.3"), 0x100) is None
    assert db.get_packed(b"\xc0\x00\x02\x02\x00", 0x100, 50) is None
    assert (ip("192.0.2.2"), 0x100, 50) in db
    assert (ip("192.0.2.2"), 0x999, 50) not in db
    assert "junk" not in db
    config = db.config_of(ip("192.0.2.2"), 0x100)
    assert config is not None and config.spi == 0x100


def test_duplicate_id_is_eexist() -> None:
    db: SADatabase[FakeSA] = SADatabase()
    db.add(cfg(7, src="192.0.2.1", reqid=1), FakeSA("first"))
    with pytest.raises(AlreadyExists) as exc:
        db.add(cfg(7, src="198.51.100.1", reqid=2), FakeSA("second"))  # same (daddr, spi, proto)
    assert exc.value.errno == errno.EEXIST
    assert exc.value.field == "spi"
    assert "0x00000007" in str(exc.value)
    assert len(db) == 1


def test_remove_and_iteration() -> None:
    db: SADatabase[FakeSA] = SADatabase()
    sas = [FakeSA(str(i)) for i in range(5)]
    for i, sa in enumerate(sas):
        db.add(cfg(i + 1, reqid=9), sa)
    assert list(db) == sas
    assert [c.spi for c, _ in db.items()] == [1, 2, 3, 4, 5]
    assert db.remove(ip("192.0.2.2"), 3) is sas[2]
    assert list(db) == [sas[0], sas[1], sas[3], sas[4]]
    assert db.get(ip("192.0.2.2"), 3) is None
    with pytest.raises(NotFound) as exc:
        db.remove(ip("192.0.2.2"), 3)
    assert exc.value.errno == errno.ENOENT
    # Outbound index follows removals too.
    found = db.find_outbound(daddr=ip("192.0.2.2"), saddr=ip("192.0.2.1"), reqid=9)
    assert found is sas[4]
    assert db.remove(ip("192.0.2.2"), 5) is sas[4]  # the newest goes: the next newest wins
    assert db.find_outbound(daddr=ip("192.0.2.2"), saddr=ip("192.0.2.1"), reqid=9) is sas[3]
    db.add(cfg(3, reqid=9), sas[2])  # the id is free again
    assert db.clear() == [sas[0], sas[1], sas[3], sas[2]]
    assert len(db) == 0
    assert db.find_outbound(daddr=ip("192.0.2.2"), saddr=ip("192.0.2.1"), reqid=9) is None


def test_table_full_is_enospc() -> None:
    db: SADatabase[FakeSA] = SADatabase(max_entries=33)
    for spi in range(1, 34):
        db.add(cfg(spi), FakeSA(str(spi)))
    with pytest.raises(NoSpace) as exc:
        db.add(cfg(34), FakeSA("34"))
    assert exc.value.errno == errno.ENOSPC
    db.remove(ip("192.0.2.2"), 1)
    db.add(cfg(34), FakeSA("34"))
    assert len(db) == 33


# Outbound: (name, query keyword arguments, expected SA name or None).
OUT_SAS = [
    ("transport-42", cfg(0x10, reqid=42)),
    ("tunnel-42", cfg(0x11, dst="203.0.113.2", src="203.0.113.1", reqid=42, mode=Mode.TUNNEL)),
    ("any-src-7", cfg(0x12, dst="203.0.113.9", src="0.0.0.0", reqid=7, mode=Mode.TUNNEL)),
    ("exact-src-7", cfg(0x13, dst="203.0.113.9", src="203.0.113.1", reqid=7, mode=Mode.TUNNEL)),
    ("reqid-0", cfg(0x14, dst="192.0.2.50", reqid=0)),
    ("ah-42", cfg(0x15, reqid=42, proto=AH)),
    ("marked", cfg(0x16, dst="192.0.2.60", reqid=5, mark=0x10, mark_mask=0xF0)),
    ("if-id-3", cfg(0x17, dst="192.0.2.70", reqid=5, if_id=3)),
    ("v6", cfg(0x18, dst="2001:db8::2", src="2001:db8::1", reqid=42)),
]

D, S = "192.0.2.2", "192.0.2.1"
OUT_CASES = [
    ("transport by reqid+addrs", {"daddr": D, "saddr": S, "reqid": 42}, "transport-42"),
    ("wrong reqid", {"daddr": D, "saddr": S, "reqid": 43}, None),
    ("reqid 0 only pairs with reqid 0", {"daddr": D, "saddr": S, "reqid": 0}, None),
    ("reqid 0 SA", {"daddr": "192.0.2.50", "saddr": S, "reqid": 0}, "reqid-0"),
    ("other saddr", {"daddr": D, "saddr": "192.0.2.99", "reqid": 42}, None),
    ("mode must match", {"daddr": D, "saddr": S, "reqid": 42, "mode": Mode.TUNNEL}, None),
    (
        "tunnel",
        {"daddr": "203.0.113.2", "saddr": "203.0.113.1", "reqid": 42, "mode": Mode.TUNNEL},
        "tunnel-42",
    ),
    ("proto ah", {"daddr": D, "saddr": S, "reqid": 42, "proto": AH}, "ah-42"),
    ("spi pinned", {"daddr": D, "saddr": S, "reqid": 42, "spi": 0x10}, "transport-42"),
    ("spi pinned other", {"daddr": D, "saddr": S, "reqid": 42, "spi": 0x99}, None),
    (
        "exact source beats wildcard source",
        {"daddr": "203.0.113.9", "saddr": "203.0.113.1", "reqid": 7, "mode": Mode.TUNNEL},
        "exact-src-7",
    ),
    (
        "wildcard-source SA serves any source",
        {"daddr": "203.0.113.9", "saddr": "203.0.113.77", "reqid": 7, "mode": Mode.TUNNEL},
        "any-src-7",
    ),
    (
        "unresolved source takes newest",
        {"daddr": "203.0.113.9", "saddr": None, "reqid": 7, "mode": Mode.TUNNEL},
        "exact-src-7",
    ),
    ("mark matches", {"daddr": "192.0.2.60", "saddr": S, "reqid": 5, "mark": 0x1F}, "marked"),
    ("mark misses", {"daddr": "192.0.2.60", "saddr": S, "reqid": 5, "mark": 0x20}, None),
    ("if_id matches", {"daddr": "192.0.2.70", "saddr": S, "reqid": 5, "if_id": 3}, "if-id-3"),
    ("if_id misses", {"daddr": "192.0.2.70", "saddr": S, "reqid": 5}, None),
    ("v6", {"daddr": "2001:db8::2", "saddr": "2001:db8::1", "reqid": 42}, "v6"),
]


@pytest.mark.parametrize(("name", "query", "expected"), OUT_CASES, ids=[c[0] for c in OUT_CASES])
def test_find_outbound(name: str, query: dict[str, object], expected: str | None) -> None:
    db: SADatabase[FakeSA] = SADatabase()
    for sa_name, config in OUT_SAS:
        db.add(config, FakeSA(sa_name))
    kwargs = dict(query)
    kwargs["daddr"] = ip(str(query["daddr"]))
    kwargs["saddr"] = None if query["saddr"] is None else ip(str(query["saddr"]))
    found = db.find_outbound(**kwargs)  # type: ignore[arg-type]
    assert (found.name if found else None) == expected


def test_find_outbound_prefers_newest_usable() -> None:
    db: SADatabase[FakeSA] = SADatabase()
    old, new = FakeSA("old"), FakeSA("new")
    db.add(cfg(0x20, reqid=1), old)
    db.add(cfg(0x21, reqid=1), new)  # rekeyed
    query = {"daddr": ip(D), "saddr": ip(S), "reqid": 1}
    assert db.find_outbound(**query) is new  # type: ignore[arg-type]
    new.dying = True
    assert db.find_outbound(**query, usable=lambda sa: not sa.dying) is old  # type: ignore[arg-type]
    db.remove(ip(D), 0x20)
    assert db.find_outbound(**query, usable=lambda sa: not sa.dying) is None  # type: ignore[arg-type]
