"""The security association database (SAD) of one device, generic over the SA object.

Two indexes, as in the kernel's state tables:

* by id: ``(daddr, spi, proto)`` -> SA, a dict, so an inbound packet finds its SA
  in O(1) from the bytes it carries (``get_packed``). The id is unique across the
  whole table (inbound and outbound SAs alike): a second SA with the same id is
  -EEXIST. (The kernel also lets marks tell two SAs with one id apart; a NIC
  receiving the packet has no mark to go by, so the emulator does not.)
* by destination: ``(reqid, daddr)`` -> SAs by id, newest last, for the outbound
  lookup that a policy template drives (the kernel's xfrm_state_find). Per the
  kernel, the SA must have exactly the template's reqid (0 pairs with 0), mode
  and protocol; the template's SPI 0 means any SPI; the SA's source must be the
  requested one, and an SA whose source is the unspecified address matches any
  source (the kernel's wildcard second pass). Among several candidates (a rekey
  in progress) the newest wins, like xfrm_state_look_at's preference for the
  latest added state; callers that must skip dying SAs pass ``usable``. Each
  bucket is a dict, not a list: every inbound SA of a host shares its (reqid,
  daddr), so a bucket can hold the whole table, and removing one SA must not scan it.

The stored object is whatever the device layer builds from an ``SAConfig``; the
database keeps the config beside it to index and match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import AlreadyExists, NoSpace, NotFound
from .types import IPPROTO_ESP, IPAddress, Mode, SAConfig

T = TypeVar("T")

SAKey = tuple[bytes, int, int]


@dataclass(slots=True, eq=False)
class _Entry(Generic[T]):
    config: SAConfig
    sa: T
    saddr: bytes
    wildcard_saddr: bool


def _describe(daddr: IPAddress, spi: int, proto: int) -> str:
    return f"dst {daddr} proto {proto} spi {spi:#010x}"


class SADatabase(Generic[T]):
    """SAs keyed by (daddr, spi, proto); outbound candidates keyed by (reqid, daddr)."""

    __slots__ = ("_by_dst", "_by_id", "max_entries")

    def __init__(self, max_entries: int | None = None) -> None:
        #: Table size; adding beyond it is -ENOSPC. None: unlimited.
        self.max_entries = max_entries
        self._by_id: dict[SAKey, _Entry[T]] = {}
        self._by_dst: dict[tuple[int, bytes], dict[SAKey, _Entry[T]]] = {}

    # -- changes -----------------------------------------------------------------

    def add(self, config: SAConfig, sa: T) -> None:
        """Store ``sa`` under ``config``'s id: AlreadyExists (field ``spi``) or NoSpace."""
        key = (config.daddr.packed, config.spi, config.proto)
        if key in self._by_id:
            raise AlreadyExists(
                f"an SA {_describe(config.daddr, config.spi, config.proto)} already exists",
                field="spi",
            )
        if self.max_entries is not None and len(self._by_id) >= self.max_entries:
            raise NoSpace(f"the SA table is full ({self.max_entries} entries)")
        entry = _Entry(config, sa, config.saddr.packed, not int(config.saddr))
        self._by_id[key] = entry
        self._by_dst.setdefault((config.reqid, key[0]), {})[key] = entry

    def remove(self, daddr: IPAddress, spi: int, proto: int = IPPROTO_ESP) -> T:
        """Take the SA out of the table and return it; NotFound if absent."""
        key = (daddr.packed, spi, proto)
        entry = self._by_id.pop(key, None)
        if entry is None:
            raise NotFound(f"no SA {_describe(daddr, spi, proto)}", field="spi")
        dst_key = (entry.config.reqid, key[0])
        bucket = self._by_dst[dst_key]
        del bucket[key]
        if not bucket:
            del self._by_dst[dst_key]
        return entry.sa

    def clear(self) -> list[T]:
        """Empty the table (link down, flush); return what was in it, oldest first."""
        removed = [entry.sa for entry in self._by_id.values()]
        self._by_id.clear()
        self._by_dst.clear()
        return removed

    # -- lookups -----------------------------------------------------------------

    def get(self, daddr: IPAddress, spi: int, proto: int = IPPROTO_ESP) -> T | None:
        entry = self._by_id.get((daddr.packed, spi, proto))
        return None if entry is None else entry.sa

    def get_packed(self, daddr: bytes, spi: int, proto: int = IPPROTO_ESP) -> T | None:
        """The inbound hot path: ``daddr`` as the 4 or 16 bytes the packet carries."""
        entry = self._by_id.get((daddr, spi, proto))
        return None if entry is None else entry.sa

    def config_of(self, daddr: IPAddress, spi: int, proto: int = IPPROTO_ESP) -> SAConfig | None:
        entry = self._by_id.get((daddr.packed, spi, proto))
        return None if entry is None else entry.config

    def find_outbound(
        self,
        *,
        daddr: IPAddress,
        saddr: IPAddress | None,
        reqid: int,
        proto: int = IPPROTO_ESP,
        mode: Mode = Mode.TRANSPORT,
        spi: int = 0,
        mark: int = 0,
        if_id: int = 0,
        usable: Callable[[T], bool] | None = None,
    ) -> T | None:
        """The SA a template resolved to (daddr, saddr) should use, or None (-> acquire).

        ``saddr`` None means the caller could not resolve a source (a tunnel
        template without one): any source matches. ``mark`` is the packet's mark,
        matched as the kernel does: ``mark & sa.mark_mask == sa.mark``.
        """
        bucket = self._by_dst.get((reqid, daddr.packed))
        if not bucket:
            return None
        want_saddr = None if saddr is None else saddr.packed
        wildcard: T | None = None
        for entry in reversed(bucket.values()):  # newest first
            cfg = entry.config
            if (
                cfg.proto != proto
                or cfg.mode != mode
                or (spi and cfg.spi != spi)
                or (mark & cfg.mark_mask) != cfg.mark
                or cfg.if_id != if_id
                or (usable is not None and not usable(entry.sa))
            ):
                continue
            if want_saddr is None or entry.saddr == want_saddr:
                return entry.sa
            if entry.wildcard_saddr and wildcard is None:
                wildcard = entry.sa
        return wildcard

    # -- the table as a whole ----------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[T]:
        """Every SA, oldest first."""
        return (entry.sa for entry in list(self._by_id.values()))

    def items(self) -> Iterator[tuple[SAConfig, T]]:
        """(config, SA) pairs, oldest first."""
        return ((entry.config, entry.sa) for entry in list(self._by_id.values()))

    def __contains__(self, key: object) -> bool:
        """``(daddr, spi, proto)`` in the table (daddr as an address object)."""
        if not isinstance(key, tuple) or len(key) != 3:
            return False
        daddr, spi, proto = key
        return (getattr(daddr, "packed", None), spi, proto) in self._by_id
