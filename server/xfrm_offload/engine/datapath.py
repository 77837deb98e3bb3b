"""The packet path of one device, sans-I/O: batches of packets in, one outcome per packet out.

Four paths, as Documentation/networking/xfrm_device.rst splits them:

- **packet offload TX** (a plaintext packet from the host): outbound policy lookup ->
  no policy: out as is; block: XfrmOutPolBlock; each template resolved to this device's
  packet-offload state (none: XfrmOutNoStates and one ACQUIRE per policy and template
  until a state appears) -> ESP with the state's sequence numbers and lifetimes.
- **packet offload RX** (a packet from the wire): ESP or ESP-in-UDP -> state by
  (daddr, spi) (none: XfrmInNoStates; an outbound state: XfrmInStateDirError) -> replay,
  ICV, decapsulation in the state -> inbound policy check of the cleartext (block:
  XfrmInPolBlock; a template the state does not satisfy, or tunnel traffic with no
  policy: XfrmInTmplMismatch / XfrmInNoPols) -> to the host. Packets that are not ESP
  are checked against the inbound policies too (a required template: XfrmInTmplMismatch).
- **crypto offload TX**: the host's frame already carries ESP framing; the packet names
  the state (``handle``) and the 64-bit sequence number: the NIC only seals it.
- **crypto offload RX**: an ESP packet for a crypto-offload inbound state is verified
  and decrypted in place and handed up with the kernel's per-packet status
  (CRYPTO_SUCCESS, CRYPTO_TUNNEL_ESP_AUTH_FAILED, ...); replay, lifetimes and
  decapsulation stay with the host.

A batch's outcome is one ``Results``: parallel arrays (verdict, output bytes, state
handle, crypto status per packet, and the reason of each drop), filled in place by the
path and read as they are by the server's wire format; no object per packet besides the
output bytes. Lookups go through a flow cache keyed
by the header bytes that decide them, valid while ``Device.generation`` stays the same
(any state, policy or link change clears it). A batch is first cut into runs of
consecutive packets with equal key bytes (``key_runs``; in C with the native engine), and
a run found in the cache is decided with one dict probe, so a steady stream costs a
probe per run instead of a selector walk, or even a key, per packet; anything else (no
key, a cache miss, crypto offload frames) is decided packet by packet. Consecutive
packets that resolve to the same states are handed to the SA's batch calls together.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from ipaddress import ip_address
from typing import Any

from . import ipheader as ip
from . import native
from .device import Device, OffloadedState
from .errors import InvalidArgument, NotFound
from .esp import CryptoStatus, NonEsp
from .events import Acquire
from .native import KEY_ESP4, KEY_FLOW
from .selector import FlowKey, flow_from_packet
from .spd import Policy, PolicyAction, Template, TemplateLevel
from .stats import XfrmStat
from .types import IPPROTO_ESP, IPPROTO_UDP, Direction, Family, Mode, OffloadType, Selector


class Verdict(enum.IntEnum):
    """What happened to a packet (values as the proto's Verdict)."""

    PASS = 1
    DROP = 2
    CONSUMED = 3


PASS = Verdict.PASS
DROP = Verdict.DROP
CONSUMED = Verdict.CONSUMED

#: One packet's outcome as a tuple (verdict, output packet or drop reason, state handle or
#: 0, crypto status or 0): what the slow paths return, and ``Results.outcomes()``.
Outcome = tuple[Verdict, "bytes | XfrmStat", int, int]


class Results:
    """The outcome of a batch of ``n`` packets, index i for packet i.

    ``verdict`` holds Verdict values; ``data`` the output packet of a PASS (b"" for the
    others); ``handle`` the state that processed the packet (0: none); ``crypto`` the
    crypto-offload RX status, or None when no packet of the batch has one; ``drops`` the
    XfrmStat of each DROP by index. Plain containers: they pickle to a worker and back.
    """

    __slots__ = ("crypto", "data", "drops", "handle", "verdict")

    def __init__(self, n: int) -> None:
        self.verdict = bytearray([PASS]) * n
        self.data: list[bytes] = [b""] * n
        self.handle: list[int] = [0] * n
        self.crypto: list[int] | None = None
        self.drops: dict[int, XfrmStat] = {}

    def __len__(self) -> int:
        return len(self.verdict)

    def put(self, i: int, outcome: Outcome) -> None:
        """Packet i's outcome from a tuple (the paths that are not a batch run)."""
        verdict, data, handle, crypto = outcome
        self.verdict[i] = verdict
        self.handle[i] = handle
        if verdict == DROP:
            self.drops[i] = data  # type: ignore[assignment]  # a drop's data is its reason
        else:
            self.data[i] = data  # type: ignore[assignment]
        if crypto:
            if self.crypto is None:
                self.crypto = [0] * len(self.verdict)
            self.crypto[i] = crypto

    def outcomes(self) -> list[Outcome]:
        """The same as one tuple per packet (for tests and callers that want them)."""
        crypto = self.crypto or [0] * len(self.verdict)
        return [
            (Verdict(v), self.drops[i] if v == DROP else self.data[i], self.handle[i], crypto[i])
            for i, v in enumerate(self.verdict)
        ]

    def passed(self) -> list[int]:
        """Indices of the packets that came out (PASS)."""
        verdict = self.verdict
        if PASS_ONLY.issuperset(verdict):
            return list(range(len(verdict)))
        return [i for i, v in enumerate(verdict) if v == PASS]


PASS_ONLY = frozenset({int(PASS)})

#: How long one ACQUIRE covers a (policy, template) pair: the kernel's xfrm_acq_expires.
ACQUIRE_SECONDS = 30.0
#: Flow cache entries per device before it starts over (bounds memory on scans).
FLOW_CACHE_LIMIT = 65536

#: The default NAT-T port (RFC 3948); SAs may name others.
NAT_T_PORT = 4500
#: Flow cache marker for a decision that needs no state (no policy: out as is).
_BYPASS = "bypass"
#: "No verdict cached yet" (None is a cached verdict: pass).
_UNCHECKED = object()


class _Route:
    """The states a flow's packets go through, innermost first, and the policy that
    chose them (one object per distinct (policy, states), so runs of packets bound the
    same way are recognised by identity)."""

    __slots__ = ("policy_index", "states")

    def __init__(self, states: tuple[OffloadedState, ...], policy_index: int) -> None:
        self.states = states
        self.policy_index = policy_index


class _Blocked:
    """A cached block verdict, and the block policy it came from (whose use it is)."""

    __slots__ = ("policy_index",)

    def __init__(self, policy_index: int) -> None:
        self.policy_index = policy_index


#: Protocols whose selector fields lie deeper than the 4 bytes a cache key holds (GRE
#: keeps its key in the "ports", after flags and protocol): looked up every time.
_UNKEYED_PROTOS = frozenset({47})
#: IPv6 next headers that put the upper layer further back: looked up every time.
_IPV6_INDIRECT = frozenset({0, 43, 44, 50, 51, 60})


def _flow_cache_key(packet: bytes) -> bytes | None:
    """The bytes that decide a policy lookup: protocol, addresses and the first 4 bytes
    of the upper layer (ports, or ICMP type and code). None when the packet is not
    simple enough to key on."""
    if len(packet) >= 24 and packet[0] == 0x45:  # IPv4 without options
        if packet[6] & 0x3F or packet[7] or packet[9] in _UNKEYED_PROTOS:
            return None  # a fragment (ports not where we look), or GRE
        return packet[9:10] + packet[12:24]
    if len(packet) >= 44 and packet[0] >> 4 == 6:
        nh = packet[6]
        if nh in _IPV6_INDIRECT or nh in _UNKEYED_PROTOS:
            return None
        return packet[6:7] + packet[8:44]
    return None


def _esp_state_key(packet: bytes) -> bytes | None:
    """The bytes that find the inbound state of an ESP packet in option-less IPv4: its
    destination address and SPI. None for any other packet (looked up the long way)."""
    if len(packet) >= 28 and packet[0] == 0x45 and packet[9] == IPPROTO_ESP:
        return packet[16:24]
    return None


_KEYS = {KEY_FLOW: _flow_cache_key, KEY_ESP4: _esp_state_key}
KeyRuns = list[tuple[bytes | None, int]]


def key_runs(items: list[Any], kind: int) -> KeyRuns:
    """Consecutive items with the same cache key (``_flow_cache_key`` for KEY_FLOW,
    ``_esp_state_key`` for KEY_ESP4) as runs ``(key, end)``, the run ending before index
    ``end``. Items that are not bytes, or have no key, have None (consecutive ones share
    a run too). The paths look a key up once per run; the C ``key_runs`` (_esp.c) is
    this function restated, one bytes object per run instead of one per packet."""
    key_of = _KEYS[kind]
    runs: KeyRuns = []
    for i, item in enumerate(items):
        key = key_of(item) if item.__class__ is bytes else None
        if runs and runs[-1][0] == key:
            runs[-1] = (key, i + 1)
        else:
            runs.append((key, i + 1))
    return runs


class DevicePath:
    """The packet path of one ``Device``."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self._generation = -1
        self._tx_cache: dict[bytes, Any] = {}
        #: Inbound policy check verdicts by state handle, then flow key.
        self._rx_cache: dict[int, dict[bytes, Any]] = {}
        #: Inbound states by the 8 bytes (IPv4 daddr, SPI) of an option-less ESP packet.
        self._esp_cache: dict[bytes, OffloadedState] = {}
        self._policy_handles: dict[int, int] = {}
        #: (policy index, template) -> when its ACQUIRE stops covering new packets.
        self._acquires: dict[tuple[int, Template], float] = {}
        #: One _Route per distinct (policy index, state handles...).
        self._routes: dict[tuple[int, ...], _Route] = {}
        #: UDP destination ports that carry ESP-in-UDP to this device.
        self._natt_ports: frozenset[int] = frozenset({NAT_T_PORT})
        #: ``key_runs`` in C with the native engine, the reference otherwise.
        self._key_runs = (native.key_runs_native() if native.engine() == "native" else None) or (
            key_runs
        )

    def _sync(self) -> None:
        """Drop every cached lookup if the device's tables changed."""
        device = self.device
        if device.generation != self._generation:
            self._generation = device.generation
            self._tx_cache.clear()
            self._rx_cache.clear()
            self._esp_cache.clear()
            self._routes.clear()
            self._policy_handles = {e.index: e.handle for e in device.policies() if e.active}
            self._acquires = {
                k: until for k, until in self._acquires.items() if k[0] in self._policy_handles
            }
            self._natt_ports = frozenset(
                {NAT_T_PORT}
                | {
                    e.config.encap.dport
                    for e in device.states()
                    if e.active and e.dir == Direction.IN and e.config.encap is not None
                }
            )

    # -- TX -------------------------------------------------------------------------------

    def tx(
        self,
        packets: Sequence[bytes],
        now: float,
        handles: Sequence[int] = (),
        seqs: Sequence[int] = (),
    ) -> Results:
        """Host -> wire. ``handles`` and ``seqs`` (crypto offload TX: the state and 64-bit
        sequence number of each packet, handle 0 = packet offload) are empty or one per
        packet."""
        self._sync()
        device = self.device
        out = Results(len(packets))
        if not device.up:
            for i in range(len(packets)):
                out.put(i, self._tx_drop(XfrmStat.OUT_ERROR))
            return out
        # Runs of consecutive packets bound for the same states go through together.
        run: list[int] = []
        run_route: _Route | None = None
        touched: dict[int, OffloadedState] = {}
        #: Indexes of the policies this batch's lookups selected (curlft.use_time).
        used: set[int] = set()

        def join(route: _Route, first: int, stop: int) -> None:
            nonlocal run, run_route
            if route is not run_route:
                if run and run_route is not None:
                    self._encap_run(packets, run, run_route.states, out, now, touched)
                run, run_route = [], route
                used.add(route.policy_index)
            run.extend(range(first, stop))

        cache_get = self._tx_cache.get
        out_data = out.data
        batch = packets if packets.__class__ is list else list(packets)
        start = 0
        # The common case first: a run of packets of one cached flow, looked up once.
        for key, end in self._key_runs(batch, KEY_FLOW):
            if key is not None and not (handles and any(handles[start:end])):
                cached = cache_get(key)
                if cached.__class__ is _Route:
                    join(cached, start, end)
                    start = end
                elif cached is _BYPASS:  # no policy: out as they are
                    out_data[start:end] = batch[start:end]
                    start = end
            for i in range(start, end):  # one by one: unkeyed, crypto offload, not cached
                packet = batch[i]
                if handles and handles[i]:
                    out.put(i, self._crypto_tx(packet, handles[i], seqs[i] if seqs else 0))
                    continue
                resolved = self._tx_resolve(packet, now, used)
                if resolved.__class__ is _Route:
                    join(resolved, i, i + 1)
                else:
                    out.put(i, resolved)
            start = end
        if run and run_route is not None:
            self._encap_run(packets, run, run_route.states, out, now, touched)
        for entry in touched.values():
            device.collect_state_events(entry)
        for index in used:
            device.policy_used(index, now)
        return out

    def _tx_drop(self, reason: XfrmStat, handle: int = 0) -> Outcome:
        self.device.stats.inc(reason)
        return (DROP, reason, handle, 0)

    def _tx_resolve(self, packet: bytes, now: float, used: set[int]) -> Any:
        """The route a packet takes (a _Route), or its final Outcome. The policy the
        lookup selects goes into ``used``."""
        key = _flow_cache_key(packet)
        if key is not None:
            cached = self._tx_cache.get(key)
            if cached is not None:
                if cached.__class__ is _Route:
                    return cached
                if cached is _BYPASS:
                    return (PASS, packet, 0, 0)
                used.add(cached.policy_index)
                return self._tx_drop(XfrmStat.OUT_POL_BLOCK)
        flow = flow_from_packet(packet, self.device.ifindex)
        if flow is None:
            return self._tx_drop(XfrmStat.OUT_ERROR)
        policy = self.device.spd.lookup(Direction.OUT, flow)
        if policy is not None:
            used.add(policy.index)  # xfrm_lookup stamps use_time before acting on it
        if policy is None:
            result: Any = (PASS, packet, 0, 0)
            cacheable: Any = _BYPASS
        elif policy.action == PolicyAction.BLOCK:
            result = self._tx_drop(XfrmStat.OUT_POL_BLOCK)
            cacheable = _Blocked(policy.index)
        else:
            route = self._tx_states(policy, flow, now)
            if isinstance(route, _Route):
                result = cacheable = route
            else:
                result, cacheable = self._tx_drop(route), None
        if key is not None and cacheable is not None:
            if len(self._tx_cache) >= FLOW_CACHE_LIMIT:
                self._tx_cache.clear()
            self._tx_cache[key] = cacheable
        return result

    def _tx_states(self, policy: Policy, flow: FlowKey, now: float) -> _Route | XfrmStat:
        """Resolve a policy's templates to this device's states, or the drop's reason
        (XfrmOutNoStates, with an acquire, when a required one has none)."""
        states: list[OffloadedState] = []
        for tmpl in policy.templates:
            try:
                daddr, saddr = tmpl.endpoints(flow)
            except InvalidArgument:  # a template PolicyAdd would refuse: no bundle to build
                return XfrmStat.OUT_BUNDLE_GEN_ERROR
            entry = self.device.lookup_outbound(tmpl, daddr, saddr, mark=0, if_id=policy.if_id)
            if entry is not None:
                states.append(entry)
                continue
            if tmpl.level == TemplateLevel.USE:
                continue
            self._acquire(policy, tmpl, flow, daddr, saddr, now)
            return XfrmStat.OUT_NO_STATES
        key = (policy.index, *(e.handle for e in states))
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = _Route(tuple(states), policy.index)
        return route

    def _acquire(
        self, policy: Policy, tmpl: Template, flow: FlowKey, daddr: Any, saddr: Any, now: float
    ) -> None:
        key = (policy.index, tmpl)
        if self._acquires.get(key, 0.0) > now:
            return
        self._acquires[key] = now + ACQUIRE_SECONDS
        self.device.emit(
            Acquire(
                dev=self.device.name,
                policy_handle=self._policy_handles.get(policy.index, 0),
                policy_index=policy.index,
                sel=_flow_selector(flow),
                daddr=daddr,
                saddr=saddr,
                reqid=tmpl.reqid,
                proto=tmpl.proto,
                mode=tmpl.mode,
            )
        )

    def _encap_run(
        self,
        packets: Sequence[bytes],
        run: list[int],
        states: tuple[OffloadedState, ...],
        out: Results,
        now: float,
        touched: dict[int, OffloadedState],
    ) -> None:
        whole = len(run) == len(packets)  # the common case: one run is the batch
        data: list[Any] = list(packets) if whole else [packets[i] for i in run]
        handle = 0
        clean = True  # every item of data is a packet (no drop yet)
        for entry in states:  # innermost template first, as the kernel applies them
            touched[entry.handle] = entry
            handle = entry.handle
            sa = entry.sa
            if clean:
                data = sa.encap_batch(data, now)
                clean = sa.batch_packets == len(data)
            else:
                live = [j for j, d in enumerate(data) if d.__class__ is bytes]
                results = sa.encap_batch([data[j] for j in live], now)
                for j, r in zip(live, results, strict=True):
                    data[j] = r
        if whole and clean:
            out.data = data
            out.handle = [handle] * len(data)
            return
        out_data, out_handle = out.data, out.handle
        for i, d in zip(run, data, strict=True):
            out_handle[i] = handle
            if d.__class__ is bytes:
                out_data[i] = d
            else:
                out.verdict[i] = DROP
                out.drops[i] = d

    def _crypto_tx(self, frame: bytes, handle: int, seq: int) -> Outcome:
        device = self.device
        try:
            entry = device.get_state(handle)
        except NotFound:
            return self._tx_drop(XfrmStat.OUT_NO_STATES)
        if not entry.active:
            return self._tx_drop(XfrmStat.OUT_STATE_INVALID, handle)
        if entry.type != OffloadType.CRYPTO or entry.dir != Direction.OUT:
            reason = (
                XfrmStat.OUT_STATE_DIR_ERROR
                if entry.dir != Direction.OUT
                else XfrmStat.OUT_STATE_INVALID
            )
            return self._tx_drop(reason, handle)
        sealed = entry.sa.batch.nic_seal(frame, seq)
        if sealed is None:  # a frame the host built wrong: the driver's ESP xmit error
            return self._tx_drop(XfrmStat.OUT_STATE_PROTO_ERROR, handle)
        device.offload_tx_packets += 1
        return (PASS, sealed, handle, 0)

    # -- RX -------------------------------------------------------------------------------

    def rx(self, packets: Sequence[bytes], now: float) -> Results:
        """Wire -> host."""
        self._sync()
        device = self.device
        out = Results(len(packets))
        if not device.up:
            for i in range(len(packets)):
                out.put(i, self._rx_drop(XfrmStat.IN_ERROR))
            return out
        run: list[int] = []
        run_entry: OffloadedState | None = None
        touched: dict[int, OffloadedState] = {}
        used: set[int] = set()  # policies the inbound checks selected (curlft.use_time)

        def join(entry: OffloadedState, first: int, stop: int) -> None:
            nonlocal run, run_entry
            if entry is not run_entry:
                if run and run_entry is not None:
                    self._decap_run(packets, run, run_entry, out, now, touched, used)
                run, run_entry = [], entry
            run.extend(range(first, stop))

        esp_get = self._esp_cache.get
        batch = packets if packets.__class__ is list else list(packets)
        start = 0
        # The common case first: a run of ESP packets in option-less IPv4 for one state,
        # found by its (daddr, SPI) bytes once.
        for key, end in self._key_runs(batch, KEY_ESP4):
            if key is not None:
                found: Any = esp_get(key)
                if found is not None and found.type != OffloadType.CRYPTO:
                    join(found, start, end)
                    start = end
            for i in range(start, end):  # one by one
                packet = batch[i]
                key = _esp_state_key(packet)
                found = None if key is None else esp_get(key)
                if found is None:
                    found = self._rx_state(packet)
                if found.__class__ is OffloadedState:
                    if found.type == OffloadType.CRYPTO:
                        out.put(i, self._crypto_rx(packet, found))
                    else:
                        join(found, i, i + 1)
                elif found is None:
                    out.put(i, self._rx_policy(packet, None, 0, used))
                else:
                    out.put(i, found)
            start = end
        if run and run_entry is not None:
            self._decap_run(packets, run, run_entry, out, now, touched, used)
        for entry in touched.values():
            device.collect_state_events(entry)
        for index in used:
            device.policy_used(index, now)
        return out

    def _rx_drop(self, reason: XfrmStat, handle: int = 0) -> Outcome:
        self.device.stats.inc(reason)
        return (DROP, reason, handle, 0)

    def _rx_state(self, packet: bytes) -> Any:
        """The inbound state an ESP packet is for; None if not ESP; an Outcome to drop."""
        n = len(packet)
        if n < 20:
            return self._rx_drop(XfrmStat.IN_HDR_ERROR)
        version = packet[0] >> 4
        if version == 4:
            off = (packet[0] & 0x0F) * 4
            proto = packet[9]
            daddr = packet[16:20]
        elif version == 6 and n >= 40:
            off = 40
            proto = packet[6]
            daddr = packet[24:40]
            if proto not in (IPPROTO_ESP, IPPROTO_UDP):
                # Transport-mode ESP sits after hop-by-hop, routing and fragment headers.
                found = ip.ipv6_find_header(packet, n, IPPROTO_ESP) or ip.ipv6_find_header(
                    packet, n, IPPROTO_UDP
                )
                if found is None:
                    return None
                off = found[0]
                proto = IPPROTO_ESP if packet[found[1]] == IPPROTO_ESP else IPPROTO_UDP
        else:
            return self._rx_drop(XfrmStat.IN_HDR_ERROR)
        if proto == IPPROTO_UDP:
            if n < off + 8:
                return None
            if int.from_bytes(packet[off + 2 : off + 4], "big") not in self._natt_ports:
                return None
            off += 8
            if n - off < 8:  # a NAT-T keepalive, or IKE with its non-ESP marker: not ours
                return None
            if packet[off : off + 4] == b"\x00\x00\x00\x00":
                return None
        elif proto != IPPROTO_ESP:
            return None
        if n < off + 8:
            return self._rx_drop(XfrmStat.IN_HDR_ERROR)
        spi = int.from_bytes(packet[off : off + 4], "big")
        entry = self.device.sad.get_packed(daddr, spi, IPPROTO_ESP)
        if entry is None:
            return self._rx_drop(XfrmStat.IN_NO_STATES)
        if entry.dir != Direction.IN:
            return self._rx_drop(XfrmStat.IN_STATE_DIR_ERROR, entry.handle)
        key = _esp_state_key(packet)
        if key is not None:
            self._esp_cache[key] = entry  # the key rx() probes first
        return entry

    def _decap_run(
        self,
        packets: Sequence[bytes],
        run: list[int],
        entry: OffloadedState,
        out: Results,
        now: float,
        touched: dict[int, OffloadedState],
        used: set[int],
    ) -> None:
        touched[entry.handle] = entry
        whole = len(run) == len(packets)
        results = entry.sa.decap_batch(list(packets) if whole else [packets[i] for i in run], now)
        handle = entry.handle
        checked = self._rx_cache.setdefault(handle, {})
        if entry.config.encap is not None:
            for i, r in zip(run, results, strict=True):
                if r.__class__ is bytes:  # verified ESP-in-UDP: esp_input_done2's NAT check
                    self._check_mapping(entry, packets[i], now)
        out_data, out_handle, out_verdict = out.data, out.handle, out.verdict
        start = 0
        for key, end in self._key_runs(results, KEY_FLOW):
            # A cached verdict of the inbound policy check for this flow and state, once
            # per run: None passes with no policy, an int passes through that policy.
            cached = _UNCHECKED if key is None else checked.get(key, _UNCHECKED)
            if cached is None or cached.__class__ is int:
                if cached is not None:
                    used.add(cached)
                if whole and end - start == len(results):  # the whole batch, one flow
                    out.data = results  # type: ignore[assignment]  # all bytes: keyed
                    out.handle = [handle] * len(results)
                    return
                for j in range(start, end):
                    i = run[j]
                    out_handle[i] = handle
                    out_data[i] = results[j]  # type: ignore[assignment]  # keyed: bytes
                start = end
                continue
            for j in range(start, end):  # one by one: unkeyed, not cached, not bytes
                i, r = run[j], results[j]
                out_handle[i] = handle
                if r.__class__ is bytes:
                    out.put(i, self._rx_policy(r, entry, handle, used))
                elif r is None:
                    out_verdict[i] = CONSUMED  # a dummy packet (next header 59)
                elif isinstance(r, NonEsp):
                    out.put(i, (PASS, packets[i], 0, 0))  # IKE or keepalive: the host's
                else:
                    out_verdict[i] = DROP
                    out.drops[i] = r  # type: ignore[assignment]
            start = end

    def _rx_policy(
        self, packet: bytes, entry: OffloadedState | None, handle: int, used: set[int]
    ) -> Outcome:
        """The inbound policy check (__xfrm_policy_check) of a cleartext packet.

        Cached per (state, flow) as None (pass, no policy), the policy's index (pass)
        or (drop reason, policy index or 0); the selected policy goes into ``used``.
        """
        key = _flow_cache_key(packet)
        checked = self._rx_cache.setdefault(handle, {})
        verdict: Any = _UNCHECKED if key is None else checked.get(key, _UNCHECKED)
        if verdict is _UNCHECKED:
            reason, index = self._rx_policy_reason(packet, entry)
            verdict = (index or None) if reason is None else (reason, index)
            if key is not None:
                if len(checked) >= FLOW_CACHE_LIMIT:
                    checked.clear()
                checked[key] = verdict
        if verdict is None:
            return (PASS, packet, handle, 0)
        if verdict.__class__ is int:
            used.add(verdict)
            return (PASS, packet, handle, 0)
        reason, index = verdict
        if index:
            used.add(index)
        return self._rx_drop(reason, handle)

    def _rx_policy_reason(
        self, packet: bytes, entry: OffloadedState | None
    ) -> tuple[XfrmStat | None, int]:
        """(drop reason or None, index of the policy selected or 0)."""
        flow = flow_from_packet(packet, self.device.ifindex)
        if flow is None:
            return (XfrmStat.IN_HDR_ERROR if entry is None else None), 0
        policy = self.device.spd.lookup(Direction.IN, flow)
        tunnel = entry is not None and entry.config.mode == Mode.TUNNEL
        if policy is None:
            return (XfrmStat.IN_NO_POLS if tunnel else None), 0
        # __xfrm_policy_check stamps use_time as soon as a policy is found.
        index = policy.index
        if policy.action == PolicyAction.BLOCK:
            return XfrmStat.IN_POL_BLOCK, index
        required = [t for t in policy.templates if t.level == TemplateLevel.REQUIRED]
        if entry is None:
            return (XfrmStat.IN_TMPL_MISMATCH if required else None), index
        matched = [t for t in policy.templates if _template_matches(t, entry)]
        if len(required) > 1 or (required and required[0] not in matched):
            return XfrmStat.IN_TMPL_MISMATCH, index
        if tunnel and not matched:
            return XfrmStat.IN_TMPL_MISMATCH, index
        return None, index

    def _check_mapping(self, entry: OffloadedState, packet: bytes, now: float) -> None:
        """The outer source address and UDP source port of a verified ESP-in-UDP packet,
        handed to the device's mapping check (esp_input_done2 / esp6_input_done2)."""
        if packet[0] >> 4 == 4:
            off = (packet[0] & 0x0F) * 4
            saddr = packet[12:16]
        else:
            off = 40
            if packet[6] != IPPROTO_UDP:
                found = ip.ipv6_find_header(packet, len(packet), IPPROTO_UDP)
                if found is None:
                    return
                off = found[0]
            saddr = packet[8:24]
        sport = int.from_bytes(packet[off : off + 2], "big")
        c = entry.config
        assert c.encap is not None
        if sport != c.encap.sport or saddr != c.saddr.packed:  # the common case: the same
            self.device.new_mapping(entry, ip_address(saddr), sport, now)

    def _crypto_rx(self, packet: bytes, entry: OffloadedState) -> Outcome:
        seq_hi = 0
        if entry.config.esn:
            try:
                start, _end, _ = entry.sa.esp.locate(packet)
                seq_lo = int.from_bytes(packet[start + 4 : start + 8], "big")
                seq_hi = entry.sa.replay.infer_seq_hi(seq_lo)
            except Exception:  # nic_rx_crypto reports the syntax error below
                seq_hi = entry.sa.replay.seq_hi
        status, data = entry.sa.batch.nic_open(packet, seq_hi)
        if status in (
            CryptoStatus.CRYPTO_TUNNEL_ESP_AUTH_FAILED,
            CryptoStatus.CRYPTO_TRANSPORT_ESP_AUTH_FAILED,
        ):
            entry.sa.count_drop(XfrmStat.IN_STATE_PROTO_ERROR)
        elif status != CryptoStatus.CRYPTO_SUCCESS:
            entry.sa.count_drop(XfrmStat.IN_HDR_ERROR)
        return (PASS, data, entry.handle, int(status))


def _flow_selector(flow: FlowKey) -> Selector:
    """The selector an ACQUIRE carries: the triggering packet's own addresses and ports."""
    bits = 32 if flow.family == Family.INET else 128
    return Selector(
        daddr=flow.daddr_ip,
        saddr=flow.saddr_ip,
        prefixlen_d=bits,
        prefixlen_s=bits,
        dport=flow.dport,
        dport_mask=0xFFFF if flow.dport else 0,
        sport=flow.sport,
        sport_mask=0xFFFF if flow.sport else 0,
        family=flow.family,
        proto=flow.proto,
    )


def _template_matches(tmpl: Template, entry: OffloadedState) -> bool:
    """xfrm_state_ok: does the state used satisfy this template?"""
    c = entry.config
    if tmpl.proto != c.proto or tmpl.mode != c.mode:
        return False
    if tmpl.spi and tmpl.spi != c.spi:
        return False
    if tmpl.reqid and tmpl.reqid != c.reqid:
        return False
    if c.mode == Mode.TUNNEL:
        if tmpl.daddr is not None and tmpl.daddr != c.daddr:
            return False
        if tmpl.saddr is not None and int(tmpl.saddr) and tmpl.saddr != c.saddr:
            return False
    return True
