from xfrm_offload.v1 import xfrm_pb2 as _xfrm_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LinkState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINK_STATE_UNSPECIFIED: _ClassVar[LinkState]
    LINK_STATE_UP: _ClassVar[LinkState]
    LINK_STATE_DOWN: _ClassVar[LinkState]

class Lifecycle(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIFECYCLE_UNSPECIFIED: _ClassVar[Lifecycle]
    LIFECYCLE_ACTIVE: _ClassVar[Lifecycle]
    LIFECYCLE_DELETED: _ClassVar[Lifecycle]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_EXPIRE: _ClassVar[EventKind]
    EVENT_KIND_ACQUIRE: _ClassVar[EventKind]
    EVENT_KIND_STATE_DELETED: _ClassVar[EventKind]
    EVENT_KIND_POLICY_DELETED: _ClassVar[EventKind]
    EVENT_KIND_LINK: _ClassVar[EventKind]
    EVENT_KIND_SEQ_OVERFLOW: _ClassVar[EventKind]
    EVENT_KIND_ESN_ADVANCED: _ClassVar[EventKind]
    EVENT_KIND_STATE_ADDED: _ClassVar[EventKind]
    EVENT_KIND_POLICY_ADDED: _ClassVar[EventKind]
    EVENT_KIND_LOST: _ClassVar[EventKind]
    EVENT_KIND_POLICY_EXPIRE: _ClassVar[EventKind]
    EVENT_KIND_MAPPING: _ClassVar[EventKind]
    EVENT_KIND_BOND_FAILOVER: _ClassVar[EventKind]

class PacketDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKET_DIRECTION_UNSPECIFIED: _ClassVar[PacketDirection]
    PACKET_DIRECTION_TX: _ClassVar[PacketDirection]
    PACKET_DIRECTION_RX: _ClassVar[PacketDirection]

class CryptoStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CRYPTO_STATUS_UNSPECIFIED: _ClassVar[CryptoStatus]
    CRYPTO_STATUS_SUCCESS: _ClassVar[CryptoStatus]
    CRYPTO_STATUS_GENERIC_ERROR: _ClassVar[CryptoStatus]
    CRYPTO_STATUS_TRANSPORT_AH_AUTH_FAILED: _ClassVar[CryptoStatus]
    CRYPTO_STATUS_TRANSPORT_ESP_AUTH_FAILED: _ClassVar[CryptoStatus]
    CRYPTO_STATUS_TUNNEL_AH_AUTH_FAILED: _ClassVar[CryptoStatus]
    CRYPTO_STATUS_TUNNEL_ESP_AUTH_FAILED: _ClassVar[CryptoStatus]
    CRYPTO_STATUS_INVALID_PACKET_SYNTAX: _ClassVar[CryptoStatus]
    CRYPTO_STATUS_INVALID_PROTOCOL: _ClassVar[CryptoStatus]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_PASS: _ClassVar[Verdict]
    VERDICT_DROP: _ClassVar[Verdict]
    VERDICT_CONSUMED: _ClassVar[Verdict]

class Port(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PORT_UNSPECIFIED: _ClassVar[Port]
    PORT_HOST: _ClassVar[Port]
    PORT_WIRE: _ClassVar[Port]
LINK_STATE_UNSPECIFIED: LinkState
LINK_STATE_UP: LinkState
LINK_STATE_DOWN: LinkState
LIFECYCLE_UNSPECIFIED: Lifecycle
LIFECYCLE_ACTIVE: Lifecycle
LIFECYCLE_DELETED: Lifecycle
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_EXPIRE: EventKind
EVENT_KIND_ACQUIRE: EventKind
EVENT_KIND_STATE_DELETED: EventKind
EVENT_KIND_POLICY_DELETED: EventKind
EVENT_KIND_LINK: EventKind
EVENT_KIND_SEQ_OVERFLOW: EventKind
EVENT_KIND_ESN_ADVANCED: EventKind
EVENT_KIND_STATE_ADDED: EventKind
EVENT_KIND_POLICY_ADDED: EventKind
EVENT_KIND_LOST: EventKind
EVENT_KIND_POLICY_EXPIRE: EventKind
EVENT_KIND_MAPPING: EventKind
EVENT_KIND_BOND_FAILOVER: EventKind
PACKET_DIRECTION_UNSPECIFIED: PacketDirection
PACKET_DIRECTION_TX: PacketDirection
PACKET_DIRECTION_RX: PacketDirection
CRYPTO_STATUS_UNSPECIFIED: CryptoStatus
CRYPTO_STATUS_SUCCESS: CryptoStatus
CRYPTO_STATUS_GENERIC_ERROR: CryptoStatus
CRYPTO_STATUS_TRANSPORT_AH_AUTH_FAILED: CryptoStatus
CRYPTO_STATUS_TRANSPORT_ESP_AUTH_FAILED: CryptoStatus
CRYPTO_STATUS_TUNNEL_AH_AUTH_FAILED: CryptoStatus
CRYPTO_STATUS_TUNNEL_ESP_AUTH_FAILED: CryptoStatus
CRYPTO_STATUS_INVALID_PACKET_SYNTAX: CryptoStatus
CRYPTO_STATUS_INVALID_PROTOCOL: CryptoStatus
VERDICT_UNSPECIFIED: Verdict
VERDICT_PASS: Verdict
VERDICT_DROP: Verdict
VERDICT_CONSUMED: Verdict
PORT_UNSPECIFIED: Port
PORT_HOST: Port
PORT_WIRE: Port

class StateRef(_message.Message):
    __slots__ = ("dev", "offload_handle")
    DEV_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    dev: str
    offload_handle: int
    def __init__(self, dev: _Optional[str] = ..., offload_handle: _Optional[int] = ...) -> None: ...

class PolicyRef(_message.Message):
    __slots__ = ("dev", "offload_handle")
    DEV_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    dev: str
    offload_handle: int
    def __init__(self, dev: _Optional[str] = ..., offload_handle: _Optional[int] = ...) -> None: ...

class StateAddRequest(_message.Message):
    __slots__ = ("sa",)
    SA_FIELD_NUMBER: _ClassVar[int]
    sa: _xfrm_pb2.XfrmUsersaInfo
    def __init__(self, sa: _Optional[_Union[_xfrm_pb2.XfrmUsersaInfo, _Mapping]] = ...) -> None: ...

class StateAddResponse(_message.Message):
    __slots__ = ("offloaded", "offload_handle", "not_offloaded_reason", "type", "dir")
    OFFLOADED_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    NOT_OFFLOADED_REASON_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    offloaded: bool
    offload_handle: int
    not_offloaded_reason: str
    type: _xfrm_pb2.OffloadType
    dir: _xfrm_pb2.OffloadDir
    def __init__(self, offloaded: _Optional[bool] = ..., offload_handle: _Optional[int] = ..., not_offloaded_reason: _Optional[str] = ..., type: _Optional[_Union[_xfrm_pb2.OffloadType, str]] = ..., dir: _Optional[_Union[_xfrm_pb2.OffloadDir, str]] = ...) -> None: ...

class StateAddBulkRequest(_message.Message):
    __slots__ = ("sas",)
    SAS_FIELD_NUMBER: _ClassVar[int]
    sas: _containers.RepeatedCompositeFieldContainer[_xfrm_pb2.XfrmUsersaInfo]
    def __init__(self, sas: _Optional[_Iterable[_Union[_xfrm_pb2.XfrmUsersaInfo, _Mapping]]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message", "field", "errno")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    ERRNO_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    field: str
    errno: int
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., field: _Optional[str] = ..., errno: _Optional[int] = ...) -> None: ...

class StateAddResult(_message.Message):
    __slots__ = ("position", "added", "error")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    position: int
    added: StateAddResponse
    error: ItemError
    def __init__(self, position: _Optional[int] = ..., added: _Optional[_Union[StateAddResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class StateAddBulkResponse(_message.Message):
    __slots__ = ("added", "failed", "results")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    added: int
    failed: int
    results: _containers.RepeatedCompositeFieldContainer[StateAddResult]
    def __init__(self, added: _Optional[int] = ..., failed: _Optional[int] = ..., results: _Optional[_Iterable[_Union[StateAddResult, _Mapping]]] = ...) -> None: ...

class StateDeleteRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: StateRef
    def __init__(self, ref: _Optional[_Union[StateRef, _Mapping]] = ...) -> None: ...

class StateDeleteResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StateFreeRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: StateRef
    def __init__(self, ref: _Optional[_Union[StateRef, _Mapping]] = ...) -> None: ...

class StateFreeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OffloadOkRequest(_message.Message):
    __slots__ = ("ref", "packet")
    REF_FIELD_NUMBER: _ClassVar[int]
    PACKET_FIELD_NUMBER: _ClassVar[int]
    ref: StateRef
    packet: bytes
    def __init__(self, ref: _Optional[_Union[StateRef, _Mapping]] = ..., packet: _Optional[bytes] = ...) -> None: ...

class OffloadOkResponse(_message.Message):
    __slots__ = ("ok", "reason")
    OK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    reason: str
    def __init__(self, ok: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class AdvanceEsnRequest(_message.Message):
    __slots__ = ("ref", "seq_hi", "seq")
    REF_FIELD_NUMBER: _ClassVar[int]
    SEQ_HI_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ref: StateRef
    seq_hi: int
    seq: int
    def __init__(self, ref: _Optional[_Union[StateRef, _Mapping]] = ..., seq_hi: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class AdvanceEsnResponse(_message.Message):
    __slots__ = ("replay",)
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    replay: _xfrm_pb2.XfrmReplayStateEsn
    def __init__(self, replay: _Optional[_Union[_xfrm_pb2.XfrmReplayStateEsn, _Mapping]] = ...) -> None: ...

class UpdateCurlftRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: StateRef
    def __init__(self, ref: _Optional[_Union[StateRef, _Mapping]] = ...) -> None: ...

class XfrmStatCounter(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: int
    def __init__(self, name: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...

class UpdateCurlftResponse(_message.Message):
    __slots__ = ("curlft", "stats", "replay", "drops")
    CURLFT_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    DROPS_FIELD_NUMBER: _ClassVar[int]
    curlft: _xfrm_pb2.XfrmLifetimeCur
    stats: _xfrm_pb2.XfrmStats
    replay: _xfrm_pb2.XfrmReplayStateEsn
    drops: _containers.RepeatedCompositeFieldContainer[XfrmStatCounter]
    def __init__(self, curlft: _Optional[_Union[_xfrm_pb2.XfrmLifetimeCur, _Mapping]] = ..., stats: _Optional[_Union[_xfrm_pb2.XfrmStats, _Mapping]] = ..., replay: _Optional[_Union[_xfrm_pb2.XfrmReplayStateEsn, _Mapping]] = ..., drops: _Optional[_Iterable[_Union[XfrmStatCounter, _Mapping]]] = ...) -> None: ...

class PolicyAddRequest(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: _xfrm_pb2.XfrmUserpolicyInfo
    def __init__(self, policy: _Optional[_Union[_xfrm_pb2.XfrmUserpolicyInfo, _Mapping]] = ...) -> None: ...

class PolicyAddResponse(_message.Message):
    __slots__ = ("offload_handle", "index")
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    offload_handle: int
    index: int
    def __init__(self, offload_handle: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class PolicyDeleteRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: PolicyRef
    def __init__(self, ref: _Optional[_Union[PolicyRef, _Mapping]] = ...) -> None: ...

class PolicyDeleteResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PolicyFreeRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: PolicyRef
    def __init__(self, ref: _Optional[_Union[PolicyRef, _Mapping]] = ...) -> None: ...

class PolicyFreeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AlgorithmCapability(_message.Message):
    __slots__ = ("name", "key_bits", "icv_bits", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_BITS_FIELD_NUMBER: _ClassVar[int]
    ICV_BITS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    key_bits: _containers.RepeatedScalarFieldContainer[int]
    icv_bits: _containers.RepeatedScalarFieldContainer[int]
    kind: str
    def __init__(self, name: _Optional[str] = ..., key_bits: _Optional[_Iterable[int]] = ..., icv_bits: _Optional[_Iterable[int]] = ..., kind: _Optional[str] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("algorithms", "offload_types", "modes", "esn", "max_states", "max_replay_window", "packet_in_replay_windows", "reqid_required", "soft_below_hard", "natt", "natt_offload_types", "natt_modes", "policy_offload", "policy_dirs", "max_policy_templates", "mtu")
    ALGORITHMS_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_TYPES_FIELD_NUMBER: _ClassVar[int]
    MODES_FIELD_NUMBER: _ClassVar[int]
    ESN_FIELD_NUMBER: _ClassVar[int]
    MAX_STATES_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLAY_WINDOW_FIELD_NUMBER: _ClassVar[int]
    PACKET_IN_REPLAY_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    REQID_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    SOFT_BELOW_HARD_FIELD_NUMBER: _ClassVar[int]
    NATT_FIELD_NUMBER: _ClassVar[int]
    NATT_OFFLOAD_TYPES_FIELD_NUMBER: _ClassVar[int]
    NATT_MODES_FIELD_NUMBER: _ClassVar[int]
    POLICY_OFFLOAD_FIELD_NUMBER: _ClassVar[int]
    POLICY_DIRS_FIELD_NUMBER: _ClassVar[int]
    MAX_POLICY_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    algorithms: _containers.RepeatedCompositeFieldContainer[AlgorithmCapability]
    offload_types: _containers.RepeatedScalarFieldContainer[_xfrm_pb2.OffloadType]
    modes: _containers.RepeatedScalarFieldContainer[_xfrm_pb2.XfrmMode]
    esn: bool
    max_states: int
    max_replay_window: int
    packet_in_replay_windows: _containers.RepeatedScalarFieldContainer[int]
    reqid_required: bool
    soft_below_hard: bool
    natt: bool
    natt_offload_types: _containers.RepeatedScalarFieldContainer[_xfrm_pb2.OffloadType]
    natt_modes: _containers.RepeatedScalarFieldContainer[_xfrm_pb2.XfrmMode]
    policy_offload: bool
    policy_dirs: _containers.RepeatedScalarFieldContainer[_xfrm_pb2.PolicyDir]
    max_policy_templates: int
    mtu: int
    def __init__(self, algorithms: _Optional[_Iterable[_Union[AlgorithmCapability, _Mapping]]] = ..., offload_types: _Optional[_Iterable[_Union[_xfrm_pb2.OffloadType, str]]] = ..., modes: _Optional[_Iterable[_Union[_xfrm_pb2.XfrmMode, str]]] = ..., esn: _Optional[bool] = ..., max_states: _Optional[int] = ..., max_replay_window: _Optional[int] = ..., packet_in_replay_windows: _Optional[_Iterable[int]] = ..., reqid_required: _Optional[bool] = ..., soft_below_hard: _Optional[bool] = ..., natt: _Optional[bool] = ..., natt_offload_types: _Optional[_Iterable[_Union[_xfrm_pb2.OffloadType, str]]] = ..., natt_modes: _Optional[_Iterable[_Union[_xfrm_pb2.XfrmMode, str]]] = ..., policy_offload: _Optional[bool] = ..., policy_dirs: _Optional[_Iterable[_Union[_xfrm_pb2.PolicyDir, str]]] = ..., max_policy_templates: _Optional[int] = ..., mtu: _Optional[int] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("name", "ifindex", "profile", "link", "features", "capabilities", "state_count", "policy_count", "cable_peer", "crypto_tx_packets", "debugfs", "bond", "engine", "interfaces")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IFINDEX_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    STATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    POLICY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CABLE_PEER_FIELD_NUMBER: _ClassVar[int]
    CRYPTO_TX_PACKETS_FIELD_NUMBER: _ClassVar[int]
    DEBUGFS_FIELD_NUMBER: _ClassVar[int]
    BOND_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    name: str
    ifindex: int
    profile: str
    link: LinkState
    features: _containers.RepeatedScalarFieldContainer[str]
    capabilities: Capabilities
    state_count: int
    policy_count: int
    cable_peer: str
    crypto_tx_packets: int
    debugfs: str
    bond: BondInfo
    engine: str
    interfaces: Interfaces
    def __init__(self, name: _Optional[str] = ..., ifindex: _Optional[int] = ..., profile: _Optional[str] = ..., link: _Optional[_Union[LinkState, str]] = ..., features: _Optional[_Iterable[str]] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ..., state_count: _Optional[int] = ..., policy_count: _Optional[int] = ..., cable_peer: _Optional[str] = ..., crypto_tx_packets: _Optional[int] = ..., debugfs: _Optional[str] = ..., bond: _Optional[_Union[BondInfo, _Mapping]] = ..., engine: _Optional[str] = ..., interfaces: _Optional[_Union[Interfaces, _Mapping]] = ...) -> None: ...

class BondInfo(_message.Message):
    __slots__ = ("mode", "members", "active")
    MODE_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    mode: str
    members: _containers.RepeatedScalarFieldContainer[str]
    active: str
    def __init__(self, mode: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., active: _Optional[str] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ...) -> None: ...

class GetDeviceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDeviceResponse(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class SetLinkStateRequest(_message.Message):
    __slots__ = ("name", "link")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    name: str
    link: LinkState
    def __init__(self, name: _Optional[str] = ..., link: _Optional[_Union[LinkState, str]] = ...) -> None: ...

class SetLinkStateResponse(_message.Message):
    __slots__ = ("device", "flushed_states", "flushed_policies")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    FLUSHED_STATES_FIELD_NUMBER: _ClassVar[int]
    FLUSHED_POLICIES_FIELD_NUMBER: _ClassVar[int]
    device: Device
    flushed_states: int
    flushed_policies: int
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ..., flushed_states: _Optional[int] = ..., flushed_policies: _Optional[int] = ...) -> None: ...

class State(_message.Message):
    __slots__ = ("sa", "offload_handle", "dev", "type", "dir", "lifecycle", "curlft", "stats", "replay", "expired")
    SA_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    DEV_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    CURLFT_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    sa: _xfrm_pb2.XfrmUsersaInfo
    offload_handle: int
    dev: str
    type: _xfrm_pb2.OffloadType
    dir: _xfrm_pb2.OffloadDir
    lifecycle: Lifecycle
    curlft: _xfrm_pb2.XfrmLifetimeCur
    stats: _xfrm_pb2.XfrmStats
    replay: _xfrm_pb2.XfrmReplayStateEsn
    expired: bool
    def __init__(self, sa: _Optional[_Union[_xfrm_pb2.XfrmUsersaInfo, _Mapping]] = ..., offload_handle: _Optional[int] = ..., dev: _Optional[str] = ..., type: _Optional[_Union[_xfrm_pb2.OffloadType, str]] = ..., dir: _Optional[_Union[_xfrm_pb2.OffloadDir, str]] = ..., lifecycle: _Optional[_Union[Lifecycle, str]] = ..., curlft: _Optional[_Union[_xfrm_pb2.XfrmLifetimeCur, _Mapping]] = ..., stats: _Optional[_Union[_xfrm_pb2.XfrmStats, _Mapping]] = ..., replay: _Optional[_Union[_xfrm_pb2.XfrmReplayStateEsn, _Mapping]] = ..., expired: _Optional[bool] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("policy", "offload_handle", "dev", "lifecycle", "curlft")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    DEV_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    CURLFT_FIELD_NUMBER: _ClassVar[int]
    policy: _xfrm_pb2.XfrmUserpolicyInfo
    offload_handle: int
    dev: str
    lifecycle: Lifecycle
    curlft: _xfrm_pb2.XfrmLifetimeCur
    def __init__(self, policy: _Optional[_Union[_xfrm_pb2.XfrmUserpolicyInfo, _Mapping]] = ..., offload_handle: _Optional[int] = ..., dev: _Optional[str] = ..., lifecycle: _Optional[_Union[Lifecycle, str]] = ..., curlft: _Optional[_Union[_xfrm_pb2.XfrmLifetimeCur, _Mapping]] = ...) -> None: ...

class ListStatesRequest(_message.Message):
    __slots__ = ("dev", "include_keys")
    DEV_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_KEYS_FIELD_NUMBER: _ClassVar[int]
    dev: str
    include_keys: bool
    def __init__(self, dev: _Optional[str] = ..., include_keys: _Optional[bool] = ...) -> None: ...

class ListStatesResponse(_message.Message):
    __slots__ = ("states",)
    STATES_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedCompositeFieldContainer[State]
    def __init__(self, states: _Optional[_Iterable[_Union[State, _Mapping]]] = ...) -> None: ...

class GetStateRequest(_message.Message):
    __slots__ = ("dev", "offload_handle", "id", "include_keys")
    DEV_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_KEYS_FIELD_NUMBER: _ClassVar[int]
    dev: str
    offload_handle: int
    id: _xfrm_pb2.XfrmId
    include_keys: bool
    def __init__(self, dev: _Optional[str] = ..., offload_handle: _Optional[int] = ..., id: _Optional[_Union[_xfrm_pb2.XfrmId, _Mapping]] = ..., include_keys: _Optional[bool] = ...) -> None: ...

class GetStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: State
    def __init__(self, state: _Optional[_Union[State, _Mapping]] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ("dev",)
    DEV_FIELD_NUMBER: _ClassVar[int]
    dev: str
    def __init__(self, dev: _Optional[str] = ...) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies",)
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[Policy]
    def __init__(self, policies: _Optional[_Iterable[_Union[Policy, _Mapping]]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("dev",)
    DEV_FIELD_NUMBER: _ClassVar[int]
    dev: str
    def __init__(self, dev: _Optional[str] = ...) -> None: ...

class DeviceStats(_message.Message):
    __slots__ = ("dev", "counters")
    DEV_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    dev: str
    counters: _containers.RepeatedCompositeFieldContainer[XfrmStatCounter]
    def __init__(self, dev: _Optional[str] = ..., counters: _Optional[_Iterable[_Union[XfrmStatCounter, _Mapping]]] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("devices", "total")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceStats]
    total: _containers.RepeatedCompositeFieldContainer[XfrmStatCounter]
    def __init__(self, devices: _Optional[_Iterable[_Union[DeviceStats, _Mapping]]] = ..., total: _Optional[_Iterable[_Union[XfrmStatCounter, _Mapping]]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("devs", "kinds")
    DEVS_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    devs: _containers.RepeatedScalarFieldContainer[str]
    kinds: _containers.RepeatedScalarFieldContainer[EventKind]
    def __init__(self, devs: _Optional[_Iterable[str]] = ..., kinds: _Optional[_Iterable[_Union[EventKind, str]]] = ...) -> None: ...

class ExpireEvent(_message.Message):
    __slots__ = ("ref", "id", "saddr", "hard", "limit")
    REF_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SADDR_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ref: StateRef
    id: _xfrm_pb2.XfrmId
    saddr: str
    hard: bool
    limit: str
    def __init__(self, ref: _Optional[_Union[StateRef, _Mapping]] = ..., id: _Optional[_Union[_xfrm_pb2.XfrmId, _Mapping]] = ..., saddr: _Optional[str] = ..., hard: _Optional[bool] = ..., limit: _Optional[str] = ...) -> None: ...

class AcquireEvent(_message.Message):
    __slots__ = ("policy", "policy_index", "sel", "tmpl")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    POLICY_INDEX_FIELD_NUMBER: _ClassVar[int]
    SEL_FIELD_NUMBER: _ClassVar[int]
    TMPL_FIELD_NUMBER: _ClassVar[int]
    policy: PolicyRef
    policy_index: int
    sel: _xfrm_pb2.XfrmSelector
    tmpl: _xfrm_pb2.XfrmUserTmpl
    def __init__(self, policy: _Optional[_Union[PolicyRef, _Mapping]] = ..., policy_index: _Optional[int] = ..., sel: _Optional[_Union[_xfrm_pb2.XfrmSelector, _Mapping]] = ..., tmpl: _Optional[_Union[_xfrm_pb2.XfrmUserTmpl, _Mapping]] = ...) -> None: ...

class ObjectEvent(_message.Message):
    __slots__ = ("state", "policy", "id", "reason")
    STATE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    state: StateRef
    policy: PolicyRef
    id: _xfrm_pb2.XfrmId
    reason: str
    def __init__(self, state: _Optional[_Union[StateRef, _Mapping]] = ..., policy: _Optional[_Union[PolicyRef, _Mapping]] = ..., id: _Optional[_Union[_xfrm_pb2.XfrmId, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class LinkEvent(_message.Message):
    __slots__ = ("link",)
    LINK_FIELD_NUMBER: _ClassVar[int]
    link: LinkState
    def __init__(self, link: _Optional[_Union[LinkState, str]] = ...) -> None: ...

class SeqOverflowEvent(_message.Message):
    __slots__ = ("ref", "id")
    REF_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ref: StateRef
    id: _xfrm_pb2.XfrmId
    def __init__(self, ref: _Optional[_Union[StateRef, _Mapping]] = ..., id: _Optional[_Union[_xfrm_pb2.XfrmId, _Mapping]] = ...) -> None: ...

class EsnAdvancedEvent(_message.Message):
    __slots__ = ("ref", "seq_hi")
    REF_FIELD_NUMBER: _ClassVar[int]
    SEQ_HI_FIELD_NUMBER: _ClassVar[int]
    ref: StateRef
    seq_hi: int
    def __init__(self, ref: _Optional[_Union[StateRef, _Mapping]] = ..., seq_hi: _Optional[int] = ...) -> None: ...

class PolicyExpireEvent(_message.Message):
    __slots__ = ("ref", "policy", "hard")
    REF_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    ref: PolicyRef
    policy: Policy
    hard: bool
    def __init__(self, ref: _Optional[_Union[PolicyRef, _Mapping]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., hard: _Optional[bool] = ...) -> None: ...

class MappingEvent(_message.Message):
    __slots__ = ("ref", "id", "reqid", "old_saddr", "old_sport", "new_saddr", "new_sport")
    REF_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REQID_FIELD_NUMBER: _ClassVar[int]
    OLD_SADDR_FIELD_NUMBER: _ClassVar[int]
    OLD_SPORT_FIELD_NUMBER: _ClassVar[int]
    NEW_SADDR_FIELD_NUMBER: _ClassVar[int]
    NEW_SPORT_FIELD_NUMBER: _ClassVar[int]
    ref: StateRef
    id: _xfrm_pb2.XfrmId
    reqid: int
    old_saddr: str
    old_sport: int
    new_saddr: str
    new_sport: int
    def __init__(self, ref: _Optional[_Union[StateRef, _Mapping]] = ..., id: _Optional[_Union[_xfrm_pb2.XfrmId, _Mapping]] = ..., reqid: _Optional[int] = ..., old_saddr: _Optional[str] = ..., old_sport: _Optional[int] = ..., new_saddr: _Optional[str] = ..., new_sport: _Optional[int] = ...) -> None: ...

class BondFailoverEvent(_message.Message):
    __slots__ = ("old_active", "new_active", "states", "policies", "failed")
    OLD_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    NEW_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    old_active: str
    new_active: str
    states: int
    policies: int
    failed: int
    def __init__(self, old_active: _Optional[str] = ..., new_active: _Optional[str] = ..., states: _Optional[int] = ..., policies: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class LostEvent(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ("seq", "time", "dev", "kind", "expire", "acquire", "object", "link", "seq_overflow", "esn_advanced", "lost", "policy_expire", "mapping", "bond_failover")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    DEV_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    SEQ_OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    ESN_ADVANCED_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    POLICY_EXPIRE_FIELD_NUMBER: _ClassVar[int]
    MAPPING_FIELD_NUMBER: _ClassVar[int]
    BOND_FAILOVER_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: float
    dev: str
    kind: EventKind
    expire: ExpireEvent
    acquire: AcquireEvent
    object: ObjectEvent
    link: LinkEvent
    seq_overflow: SeqOverflowEvent
    esn_advanced: EsnAdvancedEvent
    lost: LostEvent
    policy_expire: PolicyExpireEvent
    mapping: MappingEvent
    bond_failover: BondFailoverEvent
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[float] = ..., dev: _Optional[str] = ..., kind: _Optional[_Union[EventKind, str]] = ..., expire: _Optional[_Union[ExpireEvent, _Mapping]] = ..., acquire: _Optional[_Union[AcquireEvent, _Mapping]] = ..., object: _Optional[_Union[ObjectEvent, _Mapping]] = ..., link: _Optional[_Union[LinkEvent, _Mapping]] = ..., seq_overflow: _Optional[_Union[SeqOverflowEvent, _Mapping]] = ..., esn_advanced: _Optional[_Union[EsnAdvancedEvent, _Mapping]] = ..., lost: _Optional[_Union[LostEvent, _Mapping]] = ..., policy_expire: _Optional[_Union[PolicyExpireEvent, _Mapping]] = ..., mapping: _Optional[_Union[MappingEvent, _Mapping]] = ..., bond_failover: _Optional[_Union[BondFailoverEvent, _Mapping]] = ...) -> None: ...

class Packet(_message.Message):
    __slots__ = ("id", "data", "offload_handle", "seq")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    id: int
    data: bytes
    offload_handle: int
    seq: int
    def __init__(self, id: _Optional[int] = ..., data: _Optional[bytes] = ..., offload_handle: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class PacketResult(_message.Message):
    __slots__ = ("id", "verdict", "data", "drop_reason", "crypto_status", "offload_handle")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    CRYPTO_STATUS_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    id: int
    verdict: Verdict
    data: bytes
    drop_reason: str
    crypto_status: CryptoStatus
    offload_handle: int
    def __init__(self, id: _Optional[int] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., data: _Optional[bytes] = ..., drop_reason: _Optional[str] = ..., crypto_status: _Optional[_Union[CryptoStatus, str]] = ..., offload_handle: _Optional[int] = ...) -> None: ...

class PacketStreamRequest(_message.Message):
    __slots__ = ("dev", "direction", "packets", "batch")
    DEV_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    dev: str
    direction: PacketDirection
    packets: _containers.RepeatedCompositeFieldContainer[Packet]
    batch: PacketBatch
    def __init__(self, dev: _Optional[str] = ..., direction: _Optional[_Union[PacketDirection, str]] = ..., packets: _Optional[_Iterable[_Union[Packet, _Mapping]]] = ..., batch: _Optional[_Union[PacketBatch, _Mapping]] = ...) -> None: ...

class PacketStreamResponse(_message.Message):
    __slots__ = ("results", "batch")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PacketResult]
    batch: PacketBatchResult
    def __init__(self, results: _Optional[_Iterable[_Union[PacketResult, _Mapping]]] = ..., batch: _Optional[_Union[PacketBatchResult, _Mapping]] = ...) -> None: ...

class PacketBatch(_message.Message):
    __slots__ = ("data", "offload_handle", "seq")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedScalarFieldContainer[bytes]
    offload_handle: _containers.RepeatedScalarFieldContainer[int]
    seq: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, data: _Optional[_Iterable[bytes]] = ..., offload_handle: _Optional[_Iterable[int]] = ..., seq: _Optional[_Iterable[int]] = ...) -> None: ...

class PacketBatchResult(_message.Message):
    __slots__ = ("verdict", "data", "offload_handle", "drop_reason", "crypto_status")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_HANDLE_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    CRYPTO_STATUS_FIELD_NUMBER: _ClassVar[int]
    verdict: _containers.RepeatedScalarFieldContainer[Verdict]
    data: _containers.RepeatedScalarFieldContainer[bytes]
    offload_handle: _containers.RepeatedScalarFieldContainer[int]
    drop_reason: _containers.RepeatedScalarFieldContainer[str]
    crypto_status: _containers.RepeatedScalarFieldContainer[CryptoStatus]
    def __init__(self, verdict: _Optional[_Iterable[_Union[Verdict, str]]] = ..., data: _Optional[_Iterable[bytes]] = ..., offload_handle: _Optional[_Iterable[int]] = ..., drop_reason: _Optional[_Iterable[str]] = ..., crypto_status: _Optional[_Iterable[_Union[CryptoStatus, str]]] = ...) -> None: ...

class WatchPacketsRequest(_message.Message):
    __slots__ = ("dev", "port")
    DEV_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    dev: str
    port: Port
    def __init__(self, dev: _Optional[str] = ..., port: _Optional[_Union[Port, str]] = ...) -> None: ...

class WatchPacketsResponse(_message.Message):
    __slots__ = ("packets", "lost")
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    packets: _containers.RepeatedCompositeFieldContainer[PacketResult]
    lost: int
    def __init__(self, packets: _Optional[_Iterable[_Union[PacketResult, _Mapping]]] = ..., lost: _Optional[int] = ...) -> None: ...

class SetCableRequest(_message.Message):
    __slots__ = ("dev_a", "dev_b")
    DEV_A_FIELD_NUMBER: _ClassVar[int]
    DEV_B_FIELD_NUMBER: _ClassVar[int]
    dev_a: str
    dev_b: str
    def __init__(self, dev_a: _Optional[str] = ..., dev_b: _Optional[str] = ...) -> None: ...

class SetCableResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GilbertElliottLoss(_message.Message):
    __slots__ = ("p", "r", "bad_loss", "good_loss")
    P_FIELD_NUMBER: _ClassVar[int]
    R_FIELD_NUMBER: _ClassVar[int]
    BAD_LOSS_FIELD_NUMBER: _ClassVar[int]
    GOOD_LOSS_FIELD_NUMBER: _ClassVar[int]
    p: float
    r: float
    bad_loss: float
    good_loss: float
    def __init__(self, p: _Optional[float] = ..., r: _Optional[float] = ..., bad_loss: _Optional[float] = ..., good_loss: _Optional[float] = ...) -> None: ...

class Impairment(_message.Message):
    __slots__ = ("loss_percent", "loss_burst", "duplicate_percent", "corrupt_percent", "reorder_percent", "reorder_gap", "delay_us", "jitter_us", "rate_bps", "seed", "limit")
    LOSS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    LOSS_BURST_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    REORDER_PERCENT_FIELD_NUMBER: _ClassVar[int]
    REORDER_GAP_FIELD_NUMBER: _ClassVar[int]
    DELAY_US_FIELD_NUMBER: _ClassVar[int]
    JITTER_US_FIELD_NUMBER: _ClassVar[int]
    RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    loss_percent: float
    loss_burst: GilbertElliottLoss
    duplicate_percent: float
    corrupt_percent: float
    reorder_percent: float
    reorder_gap: int
    delay_us: int
    jitter_us: int
    rate_bps: int
    seed: int
    limit: int
    def __init__(self, loss_percent: _Optional[float] = ..., loss_burst: _Optional[_Union[GilbertElliottLoss, _Mapping]] = ..., duplicate_percent: _Optional[float] = ..., corrupt_percent: _Optional[float] = ..., reorder_percent: _Optional[float] = ..., reorder_gap: _Optional[int] = ..., delay_us: _Optional[int] = ..., jitter_us: _Optional[int] = ..., rate_bps: _Optional[int] = ..., seed: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ImpairmentCounters(_message.Message):
    __slots__ = ("packets", "dropped", "duplicated", "corrupted", "reordered", "sent", "waiting")
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATED_FIELD_NUMBER: _ClassVar[int]
    CORRUPTED_FIELD_NUMBER: _ClassVar[int]
    REORDERED_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    packets: int
    dropped: int
    duplicated: int
    corrupted: int
    reordered: int
    sent: int
    waiting: int
    def __init__(self, packets: _Optional[int] = ..., dropped: _Optional[int] = ..., duplicated: _Optional[int] = ..., corrupted: _Optional[int] = ..., reordered: _Optional[int] = ..., sent: _Optional[int] = ..., waiting: _Optional[int] = ...) -> None: ...

class SetImpairmentRequest(_message.Message):
    __slots__ = ("dev", "impairment")
    DEV_FIELD_NUMBER: _ClassVar[int]
    IMPAIRMENT_FIELD_NUMBER: _ClassVar[int]
    dev: str
    impairment: Impairment
    def __init__(self, dev: _Optional[str] = ..., impairment: _Optional[_Union[Impairment, _Mapping]] = ...) -> None: ...

class SetImpairmentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetImpairmentRequest(_message.Message):
    __slots__ = ("dev",)
    DEV_FIELD_NUMBER: _ClassVar[int]
    dev: str
    def __init__(self, dev: _Optional[str] = ...) -> None: ...

class GetImpairmentResponse(_message.Message):
    __slots__ = ("impairment", "counters")
    IMPAIRMENT_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    impairment: Impairment
    counters: ImpairmentCounters
    def __init__(self, impairment: _Optional[_Union[Impairment, _Mapping]] = ..., counters: _Optional[_Union[ImpairmentCounters, _Mapping]] = ...) -> None: ...

class AdvanceClockRequest(_message.Message):
    __slots__ = ("seconds",)
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    seconds: float
    def __init__(self, seconds: _Optional[float] = ...) -> None: ...

class AdvanceClockResponse(_message.Message):
    __slots__ = ("now",)
    NOW_FIELD_NUMBER: _ClassVar[int]
    now: float
    def __init__(self, now: _Optional[float] = ...) -> None: ...

class EchoRequest(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class EchoResponse(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class EchoStreamRequest(_message.Message):
    __slots__ = ("packets",)
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    packets: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, packets: _Optional[_Iterable[bytes]] = ...) -> None: ...

class EchoStreamResponse(_message.Message):
    __slots__ = ("packets",)
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    packets: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, packets: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Interfaces(_message.Message):
    __slots__ = ("host_tun", "wire_if", "host_mtu", "wire_mtu", "wire_running", "host_rx_packets", "host_tx_packets", "wire_rx_packets", "wire_tx_packets", "wire_rx_dropped", "wire_tx_dropped", "host_tx_dropped", "too_big", "fragmented", "wire_udp", "host_rx_dropped", "tun_offload", "host_rx_segmented", "host_tx_coalesced", "host_rx_errors")
    HOST_TUN_FIELD_NUMBER: _ClassVar[int]
    WIRE_IF_FIELD_NUMBER: _ClassVar[int]
    HOST_MTU_FIELD_NUMBER: _ClassVar[int]
    WIRE_MTU_FIELD_NUMBER: _ClassVar[int]
    WIRE_RUNNING_FIELD_NUMBER: _ClassVar[int]
    HOST_RX_PACKETS_FIELD_NUMBER: _ClassVar[int]
    HOST_TX_PACKETS_FIELD_NUMBER: _ClassVar[int]
    WIRE_RX_PACKETS_FIELD_NUMBER: _ClassVar[int]
    WIRE_TX_PACKETS_FIELD_NUMBER: _ClassVar[int]
    WIRE_RX_DROPPED_FIELD_NUMBER: _ClassVar[int]
    WIRE_TX_DROPPED_FIELD_NUMBER: _ClassVar[int]
    HOST_TX_DROPPED_FIELD_NUMBER: _ClassVar[int]
    TOO_BIG_FIELD_NUMBER: _ClassVar[int]
    FRAGMENTED_FIELD_NUMBER: _ClassVar[int]
    WIRE_UDP_FIELD_NUMBER: _ClassVar[int]
    HOST_RX_DROPPED_FIELD_NUMBER: _ClassVar[int]
    TUN_OFFLOAD_FIELD_NUMBER: _ClassVar[int]
    HOST_RX_SEGMENTED_FIELD_NUMBER: _ClassVar[int]
    HOST_TX_COALESCED_FIELD_NUMBER: _ClassVar[int]
    HOST_RX_ERRORS_FIELD_NUMBER: _ClassVar[int]
    host_tun: str
    wire_if: str
    host_mtu: int
    wire_mtu: int
    wire_running: bool
    host_rx_packets: int
    host_tx_packets: int
    wire_rx_packets: int
    wire_tx_packets: int
    wire_rx_dropped: int
    wire_tx_dropped: int
    host_tx_dropped: int
    too_big: int
    fragmented: int
    wire_udp: str
    host_rx_dropped: int
    tun_offload: bool
    host_rx_segmented: int
    host_tx_coalesced: int
    host_rx_errors: int
    def __init__(self, host_tun: _Optional[str] = ..., wire_if: _Optional[str] = ..., host_mtu: _Optional[int] = ..., wire_mtu: _Optional[int] = ..., wire_running: _Optional[bool] = ..., host_rx_packets: _Optional[int] = ..., host_tx_packets: _Optional[int] = ..., wire_rx_packets: _Optional[int] = ..., wire_tx_packets: _Optional[int] = ..., wire_rx_dropped: _Optional[int] = ..., wire_tx_dropped: _Optional[int] = ..., host_tx_dropped: _Optional[int] = ..., too_big: _Optional[int] = ..., fragmented: _Optional[int] = ..., wire_udp: _Optional[str] = ..., host_rx_dropped: _Optional[int] = ..., tun_offload: _Optional[bool] = ..., host_rx_segmented: _Optional[int] = ..., host_tx_coalesced: _Optional[int] = ..., host_rx_errors: _Optional[int] = ...) -> None: ...

class AttachInterfacesRequest(_message.Message):
    __slots__ = ("dev", "host_tun", "wire_if", "host_mtu", "wire_udp")
    DEV_FIELD_NUMBER: _ClassVar[int]
    HOST_TUN_FIELD_NUMBER: _ClassVar[int]
    WIRE_IF_FIELD_NUMBER: _ClassVar[int]
    HOST_MTU_FIELD_NUMBER: _ClassVar[int]
    WIRE_UDP_FIELD_NUMBER: _ClassVar[int]
    dev: str
    host_tun: str
    wire_if: str
    host_mtu: int
    wire_udp: str
    def __init__(self, dev: _Optional[str] = ..., host_tun: _Optional[str] = ..., wire_if: _Optional[str] = ..., host_mtu: _Optional[int] = ..., wire_udp: _Optional[str] = ...) -> None: ...

class AttachInterfacesResponse(_message.Message):
    __slots__ = ("interfaces",)
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    interfaces: Interfaces
    def __init__(self, interfaces: _Optional[_Union[Interfaces, _Mapping]] = ...) -> None: ...

class DetachInterfacesRequest(_message.Message):
    __slots__ = ("dev",)
    DEV_FIELD_NUMBER: _ClassVar[int]
    dev: str
    def __init__(self, dev: _Optional[str] = ...) -> None: ...

class DetachInterfacesResponse(_message.Message):
    __slots__ = ("interfaces",)
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    interfaces: Interfaces
    def __init__(self, interfaces: _Optional[_Union[Interfaces, _Mapping]] = ...) -> None: ...
