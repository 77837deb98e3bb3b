"""xdo_dev_state_* through the real gRPC server: validation, lifecycle, listings, bulk.

Every refusal is checked for its exact gRPC code, errno and request field path;
every success for its handle, type and direction. Devices: eth0 full, sim0
netdevsim, mlx0 mlx5, sw0 nooffload (see sa_builders.DEVICE_ARGS).
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from xfrm_offload.client import Client, XfrmOffloadError
from xfrm_offload.engine.stats import XFRM_STAT_NAMES
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..conftest import running_server
from .sa_builders import (
    DEVICE_ARGS,
    KEY_192,
    KEY_256,
    LOCAL,
    NSIM_IPSEC_VALID,
    PEER,
    SELFTEST_KEY,
    XFRM_OFFLOAD_INBOUND,
    XFRM_OFFLOAD_PACKET,
    XFRM_STATE_ESN,
    gcm_sa,
    selftest_pair,
    tweak,
)

Pair = tuple[OffloadServer, Client]
SAFactory = Callable[[], xpb.XfrmUsersaInfo]

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture
async def nic(sock_dir: Path) -> AsyncIterator[Pair]:
    async with running_server(sock_dir, *DEVICE_ARGS) as pair:
        yield pair


async def refused(call: Awaitable[Any]) -> XfrmOffloadError:
    with pytest.raises(XfrmOffloadError) as info:
        await call
    return info.value


# -- the netdevsim selftest ------------------------------------------------------------


async def test_netdevsim_selftest_flow(nic: Pair) -> None:
    """rtnetlink.sh kci_test_ipsec_offload without the ping: add out+in, list, flush."""
    _, client = nic
    out_sa, in_sa = selftest_pair("sim0")
    out = await client.state_add(out_sa)
    inb = await client.state_add(in_sa)
    assert (out.offloaded, out.offload_handle, out.type, out.dir) == (
        True,
        0 | NSIM_IPSEC_VALID,
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_OUT,
    )
    assert (inb.offloaded, inb.offload_handle, inb.type, inb.dir) == (
        True,
        1 | NSIM_IPSEC_VALID,
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_IN,
    )
    states = await client.list_states("sim0")
    # "crypto offload parameters: dev sim0 dir out|in" for both lines of ip x s list
    assert [
        (s.dev, s.dir, s.type, s.sa.offload.dev, s.sa.offload.flags, s.sa.id.spi, s.sa.reqid)
        for s in states
    ] == [
        ("sim0", xpb.OFFLOAD_DIR_OUT, xpb.OFFLOAD_TYPE_CRYPTO, "sim0", 0, 9, 42),
        ("sim0", xpb.OFFLOAD_DIR_IN, xpb.OFFLOAD_TYPE_CRYPTO, "sim0", XFRM_OFFLOAD_INBOUND, 9, 42),
    ]
    assert [(s.sa.saddr, s.sa.id.daddr) for s in states] == [(LOCAL, PEER), (PEER, LOCAL)]
    assert [s.lifecycle for s in states] == [pb.LIFECYCLE_ACTIVE] * 2
    assert (await client.get_device("sim0")).state_count == 2
    assert await client.list_states("eth0") == []
    # ip x s flush: delete then free each
    for s in states:
        await client.state_delete("sim0", s.offload_handle)
    deleted = await client.list_states("sim0")
    assert [s.lifecycle for s in deleted] == [pb.LIFECYCLE_DELETED] * 2
    for s in states:
        await client.state_free("sim0", s.offload_handle)
    assert await client.list_states("sim0") == []
    assert (await client.get_device("sim0")).state_count == 0
    # the freed slots are reused: lowest first
    again = await client.state_add(selftest_pair("sim0")[1])
    assert again.offload_handle == 0 | NSIM_IPSEC_VALID


async def test_netdevsim_table_full_then_a_freed_slot(nic: Pair) -> None:
    """Scenario 4: 33 SAs fit, the 34th is -ENOSPC, delete+free makes room in that slot."""
    _, client = nic
    handles = [(await client.state_add(gcm_sa("sim0", spi))).offload_handle for spi in range(1, 34)]
    assert handles == [slot | NSIM_IPSEC_VALID for slot in range(33)]
    err = await refused(client.state_add(gcm_sa("sim0", 34)))
    assert (err.code, err.errno, err.reason, err.field) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        errno.ENOSPC,
        "ENOSPC",
        None,
    )
    assert "No space for SA" in err.message
    await client.state_delete("sim0", handles[6])
    # deleted but not freed: the slot is still taken
    assert (await refused(client.state_add(gcm_sa("sim0", 34)))).code == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    await client.state_free("sim0", handles[6])
    added = await client.state_add(gcm_sa("sim0", 34))
    assert added.offload_handle == 6 | NSIM_IPSEC_VALID
    assert (await client.get_device("sim0")).state_count == 33


# -- validation, one row per rule ------------------------------------------------------


def _cbc_sha256(dev: str) -> xpb.XfrmUsersaInfo:
    sa = gcm_sa(dev)
    sa.ClearField("aead")
    sa.enc.CopyFrom(xpb.XfrmAlgo(alg_name="cbc(aes)", alg_key=bytes(16)))
    sa.auth.CopyFrom(
        xpb.XfrmAlgoAuth(alg_name="hmac(sha256)", alg_key=bytes(32), alg_trunc_len=128)
    )
    return sa


def _natt(sa: xpb.XfrmUsersaInfo) -> xpb.XfrmUsersaInfo:
    return tweak(
        sa,
        encap=xpb.XfrmEncapTmpl(
            encap_type=xpb.ENCAP_TYPE_ESPINUDP, encap_sport=4500, encap_dport=4500
        ),
    )


REFUSALS: list[tuple[str, SAFactory, grpc.StatusCode, str]] = [
    # kernel core (xfrm_dev_state_add), on the full profile
    (
        "unknown-offload-flag",
        lambda: tweak(gcm_sa("eth0"), offload__flags=8),
        INVALID,
        "sa.offload.flags",
    ),
    (
        "unknown-offload-flag-high-bit",
        lambda: tweak(gcm_sa("eth0", direction="in"), offload__flags=XFRM_OFFLOAD_INBOUND | 0x80),
        INVALID,
        "sa.offload.flags",
    ),
    (
        "sa-dir-out-offload-in",
        lambda: tweak(gcm_sa("eth0", direction="in"), dir=xpb.SA_DIR_OUT),
        INVALID,
        "sa.dir",
    ),
    (
        "sa-dir-in-offload-out",
        lambda: tweak(gcm_sa("eth0", direction="out"), dir=xpb.SA_DIR_IN),
        INVALID,
        "sa.dir",
    ),
    (
        "if-id-on-rx",
        lambda: tweak(gcm_sa("eth0", direction="in"), if_id=7),
        INVALID,
        "sa.if_id",
    ),
    ("tfcpad-crypto", lambda: tweak(gcm_sa("eth0"), tfcpad=1400), INVALID, "sa.tfcpad"),
    (
        "tfcpad-packet",
        lambda: tweak(gcm_sa("eth0", packet=True), tfcpad=1400),
        INVALID,
        "sa.tfcpad",
    ),
    (
        "esn-crypto-without-advance-esn",
        lambda: gcm_sa("sim0", direction="in", esn=True, replay_window=32),
        INVALID,
        "sa.flags",
    ),
    (
        "esn-window-0-dir-in",
        lambda: gcm_sa("mlx0", direction="in", esn=True, replay_window=0, sa_dir=True),
        INVALID,
        "sa.replay_window",
    ),
    (
        "no-offload",
        lambda: tweak(gcm_sa("eth0"), offload=xpb.XfrmUserOffload()),
        INVALID,  # a required field left empty
        "sa.offload.dev",
    ),
    ("unknown-device", lambda: gcm_sa("eth7"), NOT_FOUND, "sa.offload.dev"),
    ("nul-in-address", lambda: tweak(gcm_sa("eth0"), saddr="192.0.2.1\x00"), INVALID, "sa.saddr"),
    (
        "ifindex-of-no-device",
        lambda: tweak(gcm_sa(""), offload__ifindex=99),
        NOT_FOUND,
        "sa.offload.ifindex",
    ),
    (
        "ifindex-not-the-named-device",
        lambda: tweak(gcm_sa("eth0"), offload__ifindex=3),
        NOT_FOUND,
        "sa.offload.ifindex",
    ),
    ("bad-daddr", lambda: tweak(gcm_sa("eth0"), id__daddr="192.168.123"), INVALID, "sa.id.daddr"),
    ("missing-saddr", lambda: tweak(gcm_sa("eth0"), saddr=""), INVALID, "sa.saddr"),
    ("icv-100-anywhere", lambda: gcm_sa("eth0", icv_bits=100), INVALID, "sa.aead.alg_icv_len"),
    (
        "oseq-all-ones-without-esn",
        lambda: tweak(gcm_sa("eth0"), replay_esn=xpb.XfrmReplayStateEsn(oseq=0xFFFFFFFF)),
        INVALID,
        "sa.replay_esn.oseq",
    ),
    (
        "oseq-may-wrap-on-in",
        lambda: tweak(gcm_sa("eth0", direction="in", sa_dir=True), extra_flags=2),
        INVALID,
        "sa.extra_flags",
    ),
    # netdevsim (scenarios 2, 3 and its driver rules)
    ("nsim-icv-96", lambda: gcm_sa("sim0", icv_bits=96), INVALID, "sa.aead.alg_icv_len"),
    ("nsim-icv-64", lambda: gcm_sa("sim0", icv_bits=64), INVALID, "sa.aead.alg_icv_len"),
    ("nsim-key-112", lambda: gcm_sa("sim0", key=bytes(14)), INVALID, "sa.aead.alg_key"),
    ("nsim-key-256", lambda: gcm_sa("sim0", key=KEY_256), INVALID, "sa.aead.alg_key"),
    ("nsim-packet-mode", lambda: gcm_sa("sim0", packet=True), INVALID, "sa.offload.flags"),
    ("nsim-not-aead", lambda: _cbc_sha256("sim0"), INVALID, "sa.enc"),
    (
        "nsim-other-aead",
        lambda: tweak(
            gcm_sa("sim0"),
            aead=xpb.XfrmAlgoAead(
                alg_name="rfc7539esp(chacha20,poly1305)", alg_key=bytes(36), alg_icv_len=128
            ),
        ),
        INVALID,
        "sa.aead.alg_name",
    ),
    # mlx5 (scenarios 2, 3, 10, 11, 15)
    ("mlx5-icv-96", lambda: gcm_sa("mlx0", icv_bits=96), INVALID, "sa.aead.alg_icv_len"),
    ("mlx5-key-192", lambda: gcm_sa("mlx0", key=KEY_192), INVALID, "sa.aead.alg_key"),
    ("mlx5-not-aead", lambda: _cbc_sha256("mlx0"), INVALID, "sa.enc"),
    (
        "mlx5-packet-in-window-48",
        lambda: gcm_sa("mlx0", direction="in", packet=True, replay_window=48),
        INVALID,
        "sa.replay_window",
    ),
    (
        "mlx5-packet-in-esn-window-48",
        lambda: gcm_sa("mlx0", direction="in", packet=True, esn=True, replay_window=48),
        INVALID,
        "sa.replay_window",
    ),
    ("mlx5-packet-reqid-0", lambda: gcm_sa("mlx0", packet=True, reqid=0), INVALID, "sa.reqid"),
    (
        "mlx5-packet-soft-above-hard",
        lambda: tweak(
            gcm_sa("mlx0", packet=True),
            lft=xpb.XfrmLifetimeCfg(soft_packet_limit=20, hard_packet_limit=10),
        ),
        INVALID,
        "sa.lft.soft_packet_limit",
    ),
    (
        "mlx5-packet-soft-equals-hard-bytes",
        lambda: tweak(
            gcm_sa("mlx0", packet=True),
            lft=xpb.XfrmLifetimeCfg(soft_byte_limit=1000, hard_byte_limit=1000),
        ),
        INVALID,
        "sa.lft.soft_byte_limit",
    ),
    (
        "mlx5-packet-soft-zero",
        lambda: tweak(
            gcm_sa("mlx0", packet=True),
            lft=xpb.XfrmLifetimeCfg(soft_packet_limit=0, hard_packet_limit=10),
        ),
        INVALID,
        "sa.lft.soft_packet_limit",
    ),
    (
        "mlx5-packet-soft-zero-bytes-hard-inf",
        lambda: tweak(gcm_sa("mlx0", packet=True), lft=xpb.XfrmLifetimeCfg(soft_byte_limit=0)),
        INVALID,
        "sa.lft.soft_byte_limit",
    ),
    (
        "mlx5-selector-icmp",
        lambda: tweak(gcm_sa("mlx0"), sel__proto=1),
        INVALID,
        "sa.sel.proto",
    ),
    ("mlx5-natt-crypto", lambda: _natt(gcm_sa("mlx0")), INVALID, "sa.encap"),
    (
        "mlx5-natt-packet-tunnel",
        lambda: _natt(gcm_sa("mlx0", packet=True, mode=xpb.XFRM_MODE_TUNNEL)),
        INVALID,
        "sa.mode",
    ),
    (
        "mlx5-window-above-4096",
        lambda: gcm_sa("mlx0", direction="in", esn=True, replay_window=4128),
        INVALID,
        "sa.replay_window",
    ),
    # nooffload: packet offload to a device without xfrmdev_ops is an error
    ("nooffload-packet", lambda: gcm_sa("sw0", packet=True), INVALID, "sa.offload.dev"),
]


@pytest.mark.parametrize(
    ("factory", "code", "field"),
    [pytest.param(f, c, fld, id=name) for name, f, c, fld in REFUSALS],
)
async def test_state_add_refusals(
    nic: Pair, factory: SAFactory, code: grpc.StatusCode, field: str
) -> None:
    _, client = nic
    err = await refused(client.state_add(factory()))
    assert (err.code, err.field) == (code, field), err.message
    if code == INVALID:
        assert (err.errno, err.reason) == (errno.EINVAL, "EINVAL")
    # a refusal stores nothing
    assert sum(d.state_count for d in await client.list_devices()) == 0
    # key material never appears in the message
    assert SELFTEST_KEY.hex() not in err.message and "1234567890" not in err.message


ACCEPTED: list[tuple[str, SAFactory, int, int]] = [
    ("nsim-key-160", lambda: gcm_sa("sim0"), xpb.OFFLOAD_TYPE_CRYPTO, xpb.OFFLOAD_DIR_OUT),
    (
        "if-id-on-tx",
        lambda: tweak(gcm_sa("eth0"), if_id=7),
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_OUT,
    ),
    (
        "sa-dir-matches",
        lambda: gcm_sa("eth0", direction="in", sa_dir=True, replay_window=32),
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_IN,
    ),
    (
        "mlx5-key-256",
        lambda: gcm_sa("mlx0", key=KEY_256),
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_OUT,
    ),
    (
        "full-key-192",
        lambda: gcm_sa("eth0", key=KEY_192),
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_OUT,
    ),
    (
        "full-icv-96",
        lambda: gcm_sa("eth0", icv_bits=96),
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_OUT,
    ),
    (
        "mlx5-esn-crypto",
        lambda: gcm_sa("mlx0", direction="in", esn=True, replay_window=64),
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_IN,
    ),
    (
        "full-esn-crypto",
        lambda: gcm_sa("eth0", direction="in", esn=True, replay_window=128),
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_IN,
    ),
    (
        "esn-window-0-dir-out",
        lambda: gcm_sa("mlx0", direction="out", esn=True, replay_window=0, sa_dir=True),
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_OUT,
    ),
    (
        "mlx5-packet-in-window-64",
        lambda: gcm_sa("mlx0", direction="in", packet=True, esn=True, replay_window=64),
        xpb.OFFLOAD_TYPE_PACKET,
        xpb.OFFLOAD_DIR_IN,
    ),
    (
        # legacy form (<= 32, no ESN): mlx5 never looks at it
        "mlx5-packet-in-legacy-window-24",
        lambda: gcm_sa("mlx0", direction="in", packet=True, replay_window=24),
        xpb.OFFLOAD_TYPE_PACKET,
        xpb.OFFLOAD_DIR_IN,
    ),
    (
        "mlx5-packet-soft-below-hard",
        lambda: tweak(
            gcm_sa("mlx0", packet=True),
            lft=xpb.XfrmLifetimeCfg(
                soft_packet_limit=10,
                hard_packet_limit=20,
                soft_byte_limit=1000,
                hard_byte_limit=2000,
            ),
        ),
        xpb.OFFLOAD_TYPE_PACKET,
        xpb.OFFLOAD_DIR_OUT,
    ),
    (
        "mlx5-natt-packet-transport",
        lambda: _natt(gcm_sa("mlx0", packet=True)),
        xpb.OFFLOAD_TYPE_PACKET,
        xpb.OFFLOAD_DIR_OUT,
    ),
    (
        "full-packet-zero-limits",
        lambda: tweak(
            gcm_sa("eth0", packet=True),
            lft=xpb.XfrmLifetimeCfg(soft_packet_limit=20, hard_packet_limit=10),
        ),
        xpb.OFFLOAD_TYPE_PACKET,
        xpb.OFFLOAD_DIR_OUT,
    ),
    (
        "oseq-near-wrap",
        lambda: tweak(gcm_sa("eth0"), replay_esn=xpb.XfrmReplayStateEsn(oseq=0xFFFFFFFE)),
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_OUT,
    ),
    (
        "oseq-may-wrap-on-out",
        lambda: tweak(gcm_sa("eth0", sa_dir=True), extra_flags=2),
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_OUT,
    ),
    (
        "by-ifindex",
        lambda: tweak(gcm_sa(""), offload__ifindex=4),  # mlx0: the third --device
        xpb.OFFLOAD_TYPE_CRYPTO,
        xpb.OFFLOAD_DIR_OUT,
    ),
]


@pytest.mark.parametrize(
    ("factory", "otype", "odir"),
    [pytest.param(f, t, d, id=name) for name, f, t, d in ACCEPTED],
)
async def test_state_add_accepted(nic: Pair, factory: SAFactory, otype: int, odir: int) -> None:
    _, client = nic
    sa = factory()
    reply = await client.state_add(sa)
    assert (reply.offloaded, reply.type, reply.dir, reply.not_offloaded_reason) == (
        True,
        otype,
        odir,
        "",
    )
    assert reply.offload_handle != 0
    states = await client.list_states()
    assert [(s.offload_handle, s.type, s.dir) for s in states] == [
        (reply.offload_handle, otype, odir)
    ]
    assert states[0].sa.id.spi == sa.id.spi


async def test_handles_are_per_device_counters(nic: Pair) -> None:
    """Non-netdevsim handles: (ifindex << 32) | counter, never reused."""
    _, client = nic
    first = await client.state_add(gcm_sa("eth0", 1))
    second = await client.state_add(gcm_sa("eth0", 2))
    mlx = await client.state_add(gcm_sa("mlx0", 1))
    assert (first.offload_handle, second.offload_handle, mlx.offload_handle) == (
        (2 << 32) | 1,
        (2 << 32) | 2,
        (4 << 32) | 1,
    )
    await client.state_delete("eth0", first.offload_handle)
    await client.state_free("eth0", first.offload_handle)
    third = await client.state_add(gcm_sa("eth0", 1))
    assert third.offload_handle == (2 << 32) | 3


# -- crypto "not offloaded" is an answer, packet mode an error --------------------------


async def test_nooffload_crypto_is_declined_not_refused(nic: Pair) -> None:
    """Scenario 5: crypto add to a device without offload: success, SA stays in software."""
    _, client = nic
    reply = await client.state_add(gcm_sa("sw0"))
    assert (reply.offloaded, reply.offload_handle) == (False, 0)
    assert reply.not_offloaded_reason == "sw0 has no IPsec offload (NETIF_F_HW_ESP)"
    # nothing stored: no "crypto offload parameters" line in any listing
    assert await client.list_states() == []
    assert (await client.get_device("sw0")).state_count == 0
    err = await refused(client.state_add(gcm_sa("sw0", packet=True)))
    assert (err.code, err.field, err.errno) == (INVALID, "sa.offload.dev", errno.EINVAL)


async def test_declined_state_still_gets_core_checks(nic: Pair) -> None:
    """The core's checks run before the device is asked: tfcpad refuses even on sw0."""
    _, client = nic
    err = await refused(client.state_add(tweak(gcm_sa("sw0"), tfcpad=1400)))
    assert (err.code, err.field) == (INVALID, "sa.tfcpad")


async def test_ah_on_netdevsim_is_declined_in_crypto_mode(nic: Pair) -> None:
    """AH is not implemented by the engine: crypto offload declines (software IPsec)."""
    _, client = nic
    reply = await client.state_add(tweak(gcm_sa("sim0"), id__proto=51))
    assert (reply.offloaded, reply.offload_handle) == (False, 0)
    assert reply.not_offloaded_reason == "only ESP is implemented"


# -- lifecycle -------------------------------------------------------------------------


async def test_lifecycle_errors(nic: Pair) -> None:
    _, client = nic
    handle = (await client.state_add(gcm_sa("eth0"))).offload_handle
    cases: list[tuple[Callable[[], Awaitable[None]], grpc.StatusCode, str, int]] = [
        (
            lambda: client.state_free("eth0", handle),
            PRECONDITION,
            "ref.offload_handle",
            errno.EBUSY,
        ),
        (lambda: client.state_delete("eth0", 12345), NOT_FOUND, "ref.offload_handle", errno.ENOENT),
        (lambda: client.state_delete("eth7", handle), NOT_FOUND, "ref.dev", errno.ENOENT),
        (lambda: client.state_free("eth7", handle), NOT_FOUND, "ref.dev", errno.ENOENT),
        # the handle belongs to eth0, not mlx0
        (
            lambda: client.state_delete("mlx0", handle),
            NOT_FOUND,
            "ref.offload_handle",
            errno.ENOENT,
        ),
    ]
    for call, code, field, eno in cases:
        err = await refused(call())
        assert (err.code, err.field, err.errno) == (code, field, eno), err.message
    await client.state_delete("eth0", handle)
    err = await refused(client.state_delete("eth0", handle))  # delete twice
    assert (err.code, err.field, err.errno) == (PRECONDITION, "ref.offload_handle", errno.EBUSY)
    assert "already deleted" in err.message
    await client.state_free("eth0", handle)
    err = await refused(client.state_free("eth0", handle))  # second free
    assert (err.code, err.field, err.errno) == (NOT_FOUND, "ref.offload_handle", errno.ENOENT)
    err = await refused(client.update_curlft("eth0", handle))
    assert (err.code, err.field) == (NOT_FOUND, "ref.offload_handle")


async def test_deleted_state_frees_its_id_but_keeps_its_handle(nic: Pair) -> None:
    _, client = nic
    handle = (await client.state_add(gcm_sa("eth0"))).offload_handle
    err = await refused(client.state_add(gcm_sa("eth0")))
    assert (err.code, err.field, err.errno) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "sa.id.spi",
        errno.EEXIST,
    )
    await client.state_delete("eth0", handle)
    # the handle still answers (deleted, waiting for free) ...
    state = await client.get_state("eth0", handle=handle)
    assert state.lifecycle == pb.LIFECYCLE_DELETED
    # ... but the SA id is free for a new state
    again = await client.state_add(gcm_sa("eth0"))
    assert again.offload_handle != handle
    # the same SPI to a different daddr, or on another device, is a different SA
    await client.state_add(gcm_sa("eth0", dst="192.168.123.5"))
    await client.state_add(gcm_sa("mlx0"))


async def test_missing_sa_is_invalid(nic: Pair) -> None:
    _, client = nic
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.xfrmdev.StateAdd(pb.StateAddRequest())
    err = XfrmOffloadError.from_rpc_error(info.value)
    assert (err.code, err.field, err.errno) == (INVALID, "sa", errno.EINVAL)


async def test_missing_offload_is_invalid(nic: Pair) -> None:
    _, client = nic
    sa = gcm_sa("eth0")
    sa.ClearField("offload")
    err = await refused(client.state_add(sa))
    assert (err.code, err.field, err.errno) == (INVALID, "sa.offload", errno.EINVAL)


# -- AdvanceEsn, UpdateCurlft ----------------------------------------------------------


async def test_advance_esn_moves_the_window(nic: Pair) -> None:
    """Scenario 10 (config half): ESN crypto on mlx5 accepted; AdvanceEsn moves seq_hi."""
    _, client = nic
    handle = (
        await client.state_add(gcm_sa("mlx0", direction="in", esn=True, replay_window=64))
    ).offload_handle
    before = await client.update_curlft("mlx0", handle)
    assert (before.replay.seq_hi, before.replay.seq, before.replay.replay_window) == (0, 0, 64)
    assert before.replay.bmp_len == 2
    moved = await client.advance_esn("mlx0", handle, seq_hi=1, seq=5)
    assert (moved.replay.seq_hi, moved.replay.seq, moved.replay.replay_window) == (1, 5, 64)
    after = await client.update_curlft("mlx0", handle)
    assert (after.replay.seq_hi, after.replay.seq) == (1, 5)
    state = await client.get_state("mlx0", handle=handle)
    assert (state.replay.seq_hi, state.replay.seq) == (1, 5)
    # never backwards
    err = await refused(client.advance_esn("mlx0", handle, seq_hi=0, seq=7))
    assert (err.code, err.field) == (INVALID, "seq_hi")
    err = await refused(client.advance_esn("mlx0", handle, seq_hi=1, seq=4))
    assert (err.code, err.field) == (INVALID, "seq")


async def test_advance_esn_refusals(nic: Pair) -> None:
    _, client = nic
    out_esn = (
        await client.state_add(gcm_sa("mlx0", 1, esn=True, replay_window=0, sa_dir=True))
    ).offload_handle
    in_plain = (
        await client.state_add(gcm_sa("mlx0", 2, direction="in", replay_window=32))
    ).offload_handle
    in_packet = (
        await client.state_add(
            gcm_sa("mlx0", 3, direction="in", packet=True, esn=True, replay_window=64)
        )
    ).offload_handle
    for handle in (out_esn, in_plain, in_packet):
        err = await refused(client.advance_esn("mlx0", handle, seq_hi=1, seq=0))
        assert (err.code, err.field, err.errno) == (
            PRECONDITION,
            "ref.offload_handle",
            errno.EBUSY,
        ), err.message
    err = await refused(client.advance_esn("mlx0", 999, seq_hi=1, seq=0))
    assert (err.code, err.field) == (NOT_FOUND, "ref.offload_handle")
    err = await refused(client.advance_esn("nope", 999, seq_hi=1, seq=0))
    assert (err.code, err.field) == (NOT_FOUND, "ref.dev")


async def test_update_curlft_of_a_fresh_state(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--virtual-clock") as (server, client):
        sa = tweak(gcm_sa("eth0"), replay_esn=xpb.XfrmReplayStateEsn(oseq=0xFFFFFFFE))
        handle = (await client.state_add(sa)).offload_handle
        cur = await client.update_curlft("eth0", handle)
        assert (cur.curlft.bytes, cur.curlft.packets, cur.curlft.use_time) == (0, 0, 0)
        assert cur.curlft.add_time == int(server.clock.now())
        assert (cur.stats.replay_window, cur.stats.replay, cur.stats.integrity_failed) == (0, 0, 0)
        assert (cur.replay.oseq, cur.replay.oseq_hi) == (0xFFFFFFFE, 0)
        assert list(cur.drops) == []


# -- listings --------------------------------------------------------------------------


async def test_listings_withhold_keys_unless_asked(nic: Pair) -> None:
    _, client = nic
    handle = (await client.state_add(gcm_sa("sim0"))).offload_handle
    (state,) = await client.list_states()
    assert (state.sa.aead.alg_name, state.sa.aead.alg_key, state.sa.aead.alg_key_len) == (
        "rfc4106(gcm(aes))",
        b"",
        160,
    )
    assert state.sa.aead.alg_icv_len == 128
    (keyed,) = await client.list_states(include_keys=True)
    assert keyed.sa.aead.alg_key == SELFTEST_KEY
    assert keyed.sa.aead.alg_key[16:] == b"dcba"  # netdevsim's salt 0x61626364
    got = await client.get_state("sim0", handle=handle)
    assert (got.offload_handle, got.sa.aead.alg_key, got.sa.aead.alg_key_len) == (handle, b"", 160)
    got = await client.get_state("sim0", handle=handle, include_keys=True)
    assert got.sa.aead.alg_key == SELFTEST_KEY


async def test_listing_round_trips_the_configuration(nic: Pair) -> None:
    _, client = nic
    sa = tweak(
        gcm_sa("mlx0", packet=True, reqid=7),
        lft=xpb.XfrmLifetimeCfg(
            soft_packet_limit=10,
            hard_packet_limit=20,
            soft_add_expires_seconds=30,
            hard_add_expires_seconds=60,
        ),
        mark=xpb.XfrmMark(v=5, m=0xFF),
        if_id=3,
    )
    await client.state_add(sa)
    (state,) = await client.list_states("mlx0", include_keys=True)
    got = state.sa
    assert (got.lft.soft_packet_limit, got.lft.hard_packet_limit) == (10, 20)
    assert not got.lft.HasField("soft_byte_limit")  # XFRM_INF stays unset
    assert (got.lft.soft_add_expires_seconds, got.lft.hard_add_expires_seconds) == (30, 60)
    assert (got.mark.v, got.mark.m, got.if_id, got.reqid) == (5, 0xFF, 3, 7)
    assert (got.sel.saddr, got.sel.daddr, got.sel.prefixlen_s, got.sel.prefixlen_d) == (
        "192.168.123.0",
        "192.168.123.0",
        24,
        24,
    )
    assert (got.offload.dev, got.offload.ifindex, got.offload.flags) == (
        "mlx0",
        4,
        XFRM_OFFLOAD_PACKET,
    )
    assert got.aead.alg_key == SELFTEST_KEY


async def test_get_state_by_id(nic: Pair) -> None:
    _, client = nic
    out, inb = selftest_pair("sim0")
    await client.state_add(out)
    h_in = (await client.state_add(inb)).offload_handle
    got = await client.get_state("sim0", id=xpb.XfrmId(daddr=LOCAL, spi=9, proto=50))
    assert (got.offload_handle, got.dir) == (h_in, xpb.OFFLOAD_DIR_IN)
    got = await client.get_state("sim0", id=xpb.XfrmId(daddr=LOCAL, spi=9))  # proto 0 = ESP
    assert got.offload_handle == h_in
    err = await refused(client.get_state("sim0", id=xpb.XfrmId(daddr=LOCAL, spi=10)))
    assert (err.code, err.field) == (NOT_FOUND, "id")
    err = await refused(client.get_state("sim0", id=xpb.XfrmId(daddr="bogus", spi=9)))
    assert (err.code, err.field) == (INVALID, "id.daddr")
    err = await refused(client.get_state("sim0", handle=5))
    assert (err.code, err.field) == (NOT_FOUND, "ref.offload_handle")
    err = await refused(client.get_state("nope", handle=5))
    assert (err.code, err.field) == (NOT_FOUND, "dev")
    err = await refused(client.list_states("nope"))
    assert (err.code, err.field) == (NOT_FOUND, "dev")


async def test_get_stats_every_counter_in_kernel_order(nic: Pair) -> None:
    _, client = nic
    await client.state_add(gcm_sa("eth0"))
    stats = await client.get_stats()
    assert [d.dev for d in stats.devices] == ["eth0", "sim0", "mlx0", "sw0"]
    for device in stats.devices:
        assert [(c.name, c.value) for c in device.counters] == [(n, 0) for n in XFRM_STAT_NAMES]
    assert [(c.name, c.value) for c in stats.total] == [(n, 0) for n in XFRM_STAT_NAMES]
    assert len(XFRM_STAT_NAMES) == 30
    assert XFRM_STAT_NAMES[:2] == ("XfrmInError", "XfrmInBufferError")
    one = await client.get_stats("mlx0")
    assert [d.dev for d in one.devices] == ["mlx0"]
    assert [c.name for c in one.total] == list(XFRM_STAT_NAMES)
    err = await refused(client.get_stats("nope"))
    assert (err.code, err.field) == (NOT_FOUND, "dev")


# -- StateAddBulk ----------------------------------------------------------------------


async def test_state_add_bulk_reports_bad_items_in_place(nic: Pair) -> None:
    _, client = nic
    batches = [[gcm_sa("eth0", spi) for spi in range(b * 100 + 1, b * 100 + 101)] for b in range(3)]
    batches[1][50] = gcm_sa("eth0", 151, icv_bits=100)  # position 150
    batches[2][9] = gcm_sa("eth0", 5)  # position 209: spi 5 already added at position 4
    batches[2][10] = gcm_sa("sw0", 211)  # position 210: declined, not refused
    batches[2][11] = gcm_sa("nope", 212)  # position 211: no such device
    reply = await client.state_add_bulk(batches)
    assert (reply.added, reply.failed) == (296, 4)
    got = [(r.position, "error" if r.HasField("error") else "added") for r in reply.results]
    assert got == [(150, "error"), (209, "error"), (210, "added"), (211, "error")]
    icv, dup, declined, nodev = reply.results
    assert (icv.error.code, icv.error.field, icv.error.errno) == (
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        "aead.alg_icv_len",
        errno.EINVAL,
    )
    assert (dup.error.code, dup.error.field, dup.error.errno) == (
        grpc.StatusCode.ALREADY_EXISTS.value[0],
        "id.spi",
        errno.EEXIST,
    )
    assert (declined.added.offloaded, declined.added.not_offloaded_reason) == (
        False,
        "sw0 has no IPsec offload (NETIF_F_HW_ESP)",
    )
    assert (nodev.error.code, nodev.error.field) == (
        grpc.StatusCode.NOT_FOUND.value[0],
        "offload.dev",
    )
    states = await client.list_states("eth0")
    assert len(states) == 296
    spis = {s.sa.id.spi for s in states}
    assert spis == set(range(1, 301)) - {151, 210, 211, 212}


async def test_state_add_bulk_fills_netdevsim_then_exhausts(nic: Pair) -> None:
    _, client = nic
    reply = await client.state_add_bulk([[gcm_sa("sim0", spi) for spi in range(1, 36)]])
    assert (reply.added, reply.failed) == (33, 2)
    assert [(r.position, r.error.code, r.error.errno) for r in reply.results] == [
        (33, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], errno.ENOSPC),
        (34, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], errno.ENOSPC),
    ]


async def test_state_add_bulk_empty_stream(nic: Pair) -> None:
    _, client = nic
    reply = await client.state_add_bulk([])
    assert (reply.added, reply.failed, list(reply.results)) == (0, 0, [])


async def test_esn_flag_bit_is_the_kernels(nic: Pair) -> None:
    _, client = nic
    await client.state_add(gcm_sa("eth0", direction="in", esn=True, replay_window=64))
    (state,) = await client.list_states()
    assert state.sa.flags & XFRM_STATE_ESN
    assert state.sa.replay_esn.replay_window == 64
