"""The async client a keymanager imports: one method per RPC, generated messages in and out.

    async with Client("unix:/run/xfrm-offload/xfrm-offloadd.sock") as nic:
        for dev in await nic.list_devices():
            print(dev.name, dev.profile)

Every refusal raises ``XfrmOffloadError`` with the status code, the message and
the field violations the server sent.
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from types import TracebackType
from typing import Any, TypeVar

from grpc import aio

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc
from xfrm_offload.v1 import xfrm_pb2 as xpb
from xfrm_offload.v1.endpoint import default_address, parse_endpoint
from xfrm_offload.v1.transport import CHANNEL_OPTIONS, PACKET_REQUEST_BYTES

from .errors import XfrmOffloadError
from .split import join_replies, split_requests, state_parts
from .tls import TlsOptions

T = TypeVar("T")
U = TypeVar("U")

_DATAPATH = pb.DESCRIPTOR.services_by_name["DatapathService"]
#: PacketStream's method path, for a call on serialized requests (``packet_batch_wire``).
_PACKET_STREAM = f"/{_DATAPATH.full_name}/{_DATAPATH.methods_by_name['PacketStream'].name}"
_response = pb.PacketStreamResponse.FromString


async def _mapped(items: AsyncIterable[T] | Iterable[T], fn: Callable[[T], U]) -> AsyncIterator[U]:
    """``fn`` of each item of a plain or async iterable, as an async iterator."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield fn(item)
    else:
        for item in items:
            yield fn(item)


def _same(item: T) -> T:
    return item


async def _call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except aio.AioRpcError as exc:
        raise XfrmOffloadError.from_rpc_error(exc) from None


class Client:
    """A connection to one xfrm-offloadd.

    ``address``: ``unix:PATH`` or ``HOST:PORT``; default ``$XFRM_OFFLOAD_SERVER``, else
    the server's default socket. ``timeout``: per unary call, seconds (None = no limit).
    ``tls``: CA, client certificate and key for a TCP address (default: from
    ``$XFRM_OFFLOAD_TLS_CA``, ``$XFRM_OFFLOAD_TLS_CERT``, ``$XFRM_OFFLOAD_TLS_KEY``; see
    ``xfrm_offload.client.tls``); a Unix socket never uses TLS.
    """

    #: The largest PacketStream or StateAddBulk request sent (at most a server's
    #: --max-request): a larger batch goes as several requests, answered as one
    #: (split.py).
    packet_request_limit: int = PACKET_REQUEST_BYTES

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = 30.0,
        tls: TlsOptions | None = None,
    ) -> None:
        self.address = address or default_address()
        endpoint = parse_endpoint(self.address)
        self.timeout = timeout
        options = list(CHANNEL_OPTIONS)
        tls = tls or TlsOptions.resolve()
        if tls is not None and endpoint.unix_path is None:
            self.channel = aio.secure_channel(
                endpoint.grpc_target, tls.credentials(), options=options + tls.channel_options()
            )
        else:
            self.channel = aio.insecure_channel(endpoint.grpc_target, options=options)
        self.xfrmdev = offload_pb2_grpc.XfrmDevServiceStub(self.channel)
        self.device = offload_pb2_grpc.DeviceServiceStub(self.channel)
        self.datapath = offload_pb2_grpc.DatapathServiceStub(self.channel)
        self.diag = offload_pb2_grpc.DiagServiceStub(self.channel)
        self.interfaces = offload_pb2_grpc.InterfaceServiceStub(self.channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close(None)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the channel connects (raises TimeoutError)."""
        import asyncio

        await asyncio.wait_for(self.channel.channel_ready(), timeout)

    # -- xfrmdev_ops ---------------------------------------------------------------

    async def state_add(self, sa: xpb.XfrmUsersaInfo) -> pb.StateAddResponse:
        """xdo_dev_state_add. ``offloaded`` False = use software IPsec (crypto mode)."""
        return await _call(self.xfrmdev.StateAdd(pb.StateAddRequest(sa=sa), timeout=self.timeout))

    async def state_add_bulk(
        self, batches: Iterable[Iterable[xpb.XfrmUsersaInfo]]
    ) -> pb.StateAddBulkResponse:
        """Many StateAdds in one client stream; one request message per batch (a batch
        over ``packet_request_limit`` bytes goes as several, in order)."""

        async def requests() -> AsyncIterator[pb.StateAddBulkRequest]:
            for batch in batches:
                for part in state_parts(list(batch), self.packet_request_limit):
                    yield part

        return await _call(self.xfrmdev.StateAddBulk(requests()))

    async def state_delete(self, dev: str, handle: int) -> None:
        """xdo_dev_state_delete: the state stops; its handle stays until state_free."""
        await _call(
            self.xfrmdev.StateDelete(
                pb.StateDeleteRequest(ref=pb.StateRef(dev=dev, offload_handle=handle)),
                timeout=self.timeout,
            )
        )

    async def state_free(self, dev: str, handle: int) -> None:
        """xdo_dev_state_free, after state_delete."""
        await _call(
            self.xfrmdev.StateFree(
                pb.StateFreeRequest(ref=pb.StateRef(dev=dev, offload_handle=handle)),
                timeout=self.timeout,
            )
        )

    async def offload_ok(self, dev: str, handle: int, packet: bytes) -> pb.OffloadOkResponse:
        """xdo_dev_offload_ok for one outbound packet."""
        return await _call(
            self.xfrmdev.OffloadOk(
                pb.OffloadOkRequest(ref=pb.StateRef(dev=dev, offload_handle=handle), packet=packet),
                timeout=self.timeout,
            )
        )

    async def advance_esn(
        self, dev: str, handle: int, seq_hi: int, seq: int
    ) -> pb.AdvanceEsnResponse:
        """xdo_dev_state_advance_esn."""
        return await _call(
            self.xfrmdev.AdvanceEsn(
                pb.AdvanceEsnRequest(
                    ref=pb.StateRef(dev=dev, offload_handle=handle), seq_hi=seq_hi, seq=seq
                ),
                timeout=self.timeout,
            )
        )

    async def update_curlft(self, dev: str, handle: int) -> pb.UpdateCurlftResponse:
        """xdo_dev_state_update_stats: current lifetime, counters, replay state."""
        return await _call(
            self.xfrmdev.UpdateCurlft(
                pb.UpdateCurlftRequest(ref=pb.StateRef(dev=dev, offload_handle=handle)),
                timeout=self.timeout,
            )
        )

    async def policy_add(self, policy: xpb.XfrmUserpolicyInfo) -> pb.PolicyAddResponse:
        """xdo_dev_policy_add (packet offload)."""
        return await _call(
            self.xfrmdev.PolicyAdd(pb.PolicyAddRequest(policy=policy), timeout=self.timeout)
        )

    async def policy_delete(self, dev: str, handle: int) -> None:
        """xdo_dev_policy_delete."""
        await _call(
            self.xfrmdev.PolicyDelete(
                pb.PolicyDeleteRequest(ref=pb.PolicyRef(dev=dev, offload_handle=handle)),
                timeout=self.timeout,
            )
        )

    async def policy_free(self, dev: str, handle: int) -> None:
        """xdo_dev_policy_free, after policy_delete."""
        await _call(
            self.xfrmdev.PolicyFree(
                pb.PolicyFreeRequest(ref=pb.PolicyRef(dev=dev, offload_handle=handle)),
                timeout=self.timeout,
            )
        )

    # -- devices, listings, counters, events ----------------------------------------

    async def list_devices(self) -> list[pb.Device]:
        reply = await _call(self.device.ListDevices(pb.ListDevicesRequest(), timeout=self.timeout))
        return list(reply.devices)

    async def get_device(self, name: str) -> pb.Device:
        reply = await _call(
            self.device.GetDevice(pb.GetDeviceRequest(name=name), timeout=self.timeout)
        )
        return reply.device

    async def attach_interfaces(
        self, dev: str, host_tun: str, wire_if: str = "", host_mtu: int = 0, wire_udp: str = ""
    ) -> pb.Interfaces:
        """Put ``dev`` between a TUN and a link, each ``IFNAME[@NETNS]``, or a UDP cable
        (``wire_udp``: ``LOCAL:PORT,PEER:PORT[@NETNS]``) instead of the link."""
        request = pb.AttachInterfacesRequest(
            dev=dev, host_tun=host_tun, wire_if=wire_if, host_mtu=host_mtu, wire_udp=wire_udp
        )
        reply = await _call(self.interfaces.AttachInterfaces(request, timeout=self.timeout))
        return reply.interfaces

    async def detach_interfaces(self, dev: str) -> pb.Interfaces:
        """Take ``dev``'s interfaces off; returns them with their final counters."""
        request = pb.DetachInterfacesRequest(dev=dev)
        reply = await _call(self.interfaces.DetachInterfaces(request, timeout=self.timeout))
        return reply.interfaces

    async def set_link(self, name: str, up: bool) -> pb.SetLinkStateResponse:
        """Link up/down; down flushes every offloaded state and policy of the device."""
        link = pb.LINK_STATE_UP if up else pb.LINK_STATE_DOWN
        return await _call(
            self.device.SetLinkState(
                pb.SetLinkStateRequest(name=name, link=link), timeout=self.timeout
            )
        )

    async def list_states(self, dev: str = "", *, include_keys: bool = False) -> list[pb.State]:
        """Offloaded states (keys only with include_keys)."""
        reply = await _call(
            self.device.ListStates(
                pb.ListStatesRequest(dev=dev, include_keys=include_keys), timeout=self.timeout
            )
        )
        return list(reply.states)

    async def get_state(
        self,
        dev: str,
        *,
        handle: int | None = None,
        id: xpb.XfrmId | None = None,
        include_keys: bool = False,
    ) -> pb.State:
        """One state, by handle or by (daddr, spi, proto)."""
        request = pb.GetStateRequest(dev=dev, include_keys=include_keys)
        if handle is not None:
            request.offload_handle = handle
        elif id is not None:
            request.id.CopyFrom(id)
        reply = await _call(self.device.GetState(request, timeout=self.timeout))
        return reply.state

    async def list_policies(self, dev: str = "") -> list[pb.Policy]:
        reply = await _call(
            self.device.ListPolicies(pb.ListPoliciesRequest(dev=dev), timeout=self.timeout)
        )
        return list(reply.policies)

    async def get_stats(self, dev: str = "") -> pb.GetStatsResponse:
        """The xfrm_stat counters per device and in total."""
        return await _call(self.device.GetStats(pb.GetStatsRequest(dev=dev), timeout=self.timeout))

    async def watch_events(
        self, devs: Iterable[str] = (), kinds: Iterable[pb.EventKind] = ()
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        """Events as they happen, until the server ends the stream or the caller stops."""
        call = self.device.WatchEvents(pb.WatchEventsRequest(devs=list(devs), kinds=list(kinds)))
        try:
            async for event in call:
                yield event
        except aio.AioRpcError as exc:
            raise XfrmOffloadError.from_rpc_error(exc) from None
        finally:
            call.cancel()

    # -- packets -------------------------------------------------------------------

    async def packet_stream(
        self,
        dev: str,
        direction: pb.PacketDirection,
        batches: AsyncIterable[list[pb.Packet]] | Iterable[list[pb.Packet]],
    ) -> AsyncIterator[pb.PacketStreamResponse]:
        """Push batches of packets through a device; one response per batch, in order."""

        def request(batch: list[pb.Packet]) -> pb.PacketStreamRequest:
            return pb.PacketStreamRequest(dev=dev, direction=direction, packets=batch)

        async for reply in self._packet_stream(_mapped(batches, request)):
            yield reply

    async def packet_batches(
        self,
        dev: str,
        direction: pb.PacketDirection,
        batches: AsyncIterable[pb.PacketBatch] | Iterable[pb.PacketBatch],
    ) -> AsyncIterator[pb.PacketBatchResult]:
        """``packet_stream`` in the packed form (PacketBatch in, PacketBatchResult out):
        the same results at a third of the per-packet cost of ``Packet`` messages."""

        def request(batch: pb.PacketBatch) -> pb.PacketStreamRequest:
            return pb.PacketStreamRequest(dev=dev, direction=direction, batch=batch)

        async for result in self.packet_batch_requests(_mapped(batches, request)):
            yield result

    async def packet_batch_requests(
        self,
        requests: AsyncIterable[pb.PacketStreamRequest] | Iterable[pb.PacketStreamRequest],
    ) -> AsyncIterator[pb.PacketBatchResult]:
        """``packet_batches`` of requests the caller built whole, each with dev, direction
        and its batch: a PacketBatch given to a request's constructor is copied into it
        (about 0.2 us per 1400 B packet), a request built with its batch is not."""
        async for reply in self._packet_stream(_mapped(requests, _same)):
            yield reply.batch

    async def packet_batch_wire(
        self, batches: AsyncIterable[Sequence[bytes]]
    ) -> AsyncIterator[pb.PacketBatchResult]:
        """``packet_batch_requests`` of requests the caller serialized: each item is one
        batch's requests, each of at most ``packet_request_limit`` bytes (what
        ``split.BatchRequests(dev, direction, client.packet_request_limit).parts`` makes);
        one result per item, its requests' answers joined. The bytes go as they are, with
        no message built or serialized on the way."""

        async def requests() -> AsyncIterator[bytes]:
            async for parts in batches:
                counts.append(len(parts))
                for part in parts:
                    yield part

        counts: list[int] = []
        call = self.channel.stream_stream(
            _PACKET_STREAM, request_serializer=None, response_deserializer=_response
        )(requests())
        async for reply in self._joined(call, counts):
            yield reply.batch

    async def _packet_stream(
        self, requests: AsyncIterator[pb.PacketStreamRequest]
    ) -> AsyncIterator[pb.PacketStreamResponse]:
        # A batch over the server's request limit goes as several requests; their
        # answers come in order and are joined into the batch's one answer (split.py).
        counts: list[int] = []
        call = self.datapath.PacketStream(
            split_requests(requests, self.packet_request_limit, counts)
        )
        async for reply in self._joined(call, counts):
            yield reply

    @staticmethod
    async def _joined(
        call: aio.StreamStreamCall[Any, pb.PacketStreamResponse], counts: list[int]
    ) -> AsyncIterator[pb.PacketStreamResponse]:
        """The answers of a PacketStream call, those of each batch's ``counts[i]``
        requests joined into one."""
        try:
            replies: list[pb.PacketStreamResponse] = []
            async for reply in call:
                replies.append(reply)
                if len(replies) == counts[0]:
                    del counts[0]
                    yield join_replies(replies)
                    replies = []
        except aio.AioRpcError as exc:
            raise XfrmOffloadError.from_rpc_error(exc) from None
        finally:
            call.cancel()  # a caller that stops early ends the stream, not just its reading

    async def set_cable(self, dev_a: str, dev_b: str = "") -> None:
        """Cable two devices' wires together (dev_b empty: unplug dev_a)."""
        await _call(
            self.datapath.SetCable(
                pb.SetCableRequest(dev_a=dev_a, dev_b=dev_b), timeout=self.timeout
            )
        )

    async def set_impairment(self, dev: str, impairment: pb.Impairment | None = None) -> None:
        """Impair what ``dev`` puts on its wire (None or all zero: no impairment)."""
        request = pb.SetImpairmentRequest(dev=dev)
        if impairment is not None:
            request.impairment.CopyFrom(impairment)
        await _call(self.datapath.SetImpairment(request, timeout=self.timeout))

    async def get_impairment(self, dev: str) -> pb.GetImpairmentResponse:
        """``dev``'s wire impairment and its counters."""
        return await _call(
            self.datapath.GetImpairment(pb.GetImpairmentRequest(dev=dev), timeout=self.timeout)
        )

    # -- diagnostics ---------------------------------------------------------------

    async def advance_clock(self, seconds: float) -> float:
        """Move a --virtual-clock server's clock forward; returns the new time."""
        reply = await _call(
            self.diag.AdvanceClock(pb.AdvanceClockRequest(seconds=seconds), timeout=self.timeout)
        )
        return reply.now

    async def echo(self, payload: bytes) -> bytes:
        reply = await _call(self.diag.Echo(pb.EchoRequest(payload=payload), timeout=self.timeout))
        return reply.payload
