from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AddressFamily(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADDRESS_FAMILY_UNSPECIFIED: _ClassVar[AddressFamily]
    ADDRESS_FAMILY_INET: _ClassVar[AddressFamily]
    ADDRESS_FAMILY_INET6: _ClassVar[AddressFamily]

class XfrmMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    XFRM_MODE_UNSPECIFIED: _ClassVar[XfrmMode]
    XFRM_MODE_TRANSPORT: _ClassVar[XfrmMode]
    XFRM_MODE_TUNNEL: _ClassVar[XfrmMode]

class SaDir(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SA_DIR_UNSPECIFIED: _ClassVar[SaDir]
    SA_DIR_IN: _ClassVar[SaDir]
    SA_DIR_OUT: _ClassVar[SaDir]

class PolicyDir(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_DIR_UNSPECIFIED: _ClassVar[PolicyDir]
    POLICY_DIR_IN: _ClassVar[PolicyDir]
    POLICY_DIR_OUT: _ClassVar[PolicyDir]
    POLICY_DIR_FWD: _ClassVar[PolicyDir]

class PolicyAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLICY_ACTION_UNSPECIFIED: _ClassVar[PolicyAction]
    POLICY_ACTION_ALLOW: _ClassVar[PolicyAction]
    POLICY_ACTION_BLOCK: _ClassVar[PolicyAction]

class EncapType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCAP_TYPE_UNSPECIFIED: _ClassVar[EncapType]
    ENCAP_TYPE_ESPINUDP: _ClassVar[EncapType]
    ENCAP_TYPE_ESPINUDP_NON_IKE: _ClassVar[EncapType]
    ENCAP_TYPE_ESPINTCP: _ClassVar[EncapType]

class OffloadType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFFLOAD_TYPE_UNSPECIFIED: _ClassVar[OffloadType]
    OFFLOAD_TYPE_CRYPTO: _ClassVar[OffloadType]
    OFFLOAD_TYPE_PACKET: _ClassVar[OffloadType]

class OffloadDir(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFFLOAD_DIR_UNSPECIFIED: _ClassVar[OffloadDir]
    OFFLOAD_DIR_IN: _ClassVar[OffloadDir]
    OFFLOAD_DIR_OUT: _ClassVar[OffloadDir]
    OFFLOAD_DIR_FWD: _ClassVar[OffloadDir]

class OffloadFlag(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFFLOAD_FLAG_UNSPECIFIED: _ClassVar[OffloadFlag]
    OFFLOAD_FLAG_IPV6: _ClassVar[OffloadFlag]
    OFFLOAD_FLAG_INBOUND: _ClassVar[OffloadFlag]
    OFFLOAD_FLAG_PACKET: _ClassVar[OffloadFlag]
ADDRESS_FAMILY_UNSPECIFIED: AddressFamily
ADDRESS_FAMILY_INET: AddressFamily
ADDRESS_FAMILY_INET6: AddressFamily
XFRM_MODE_UNSPECIFIED: XfrmMode
XFRM_MODE_TRANSPORT: XfrmMode
XFRM_MODE_TUNNEL: XfrmMode
SA_DIR_UNSPECIFIED: SaDir
SA_DIR_IN: SaDir
SA_DIR_OUT: SaDir
POLICY_DIR_UNSPECIFIED: PolicyDir
POLICY_DIR_IN: PolicyDir
POLICY_DIR_OUT: PolicyDir
POLICY_DIR_FWD: PolicyDir
POLICY_ACTION_UNSPECIFIED: PolicyAction
POLICY_ACTION_ALLOW: PolicyAction
POLICY_ACTION_BLOCK: PolicyAction
ENCAP_TYPE_UNSPECIFIED: EncapType
ENCAP_TYPE_ESPINUDP: EncapType
ENCAP_TYPE_ESPINUDP_NON_IKE: EncapType
ENCAP_TYPE_ESPINTCP: EncapType
OFFLOAD_TYPE_UNSPECIFIED: OffloadType
OFFLOAD_TYPE_CRYPTO: OffloadType
OFFLOAD_TYPE_PACKET: OffloadType
OFFLOAD_DIR_UNSPECIFIED: OffloadDir
OFFLOAD_DIR_IN: OffloadDir
OFFLOAD_DIR_OUT: OffloadDir
OFFLOAD_DIR_FWD: OffloadDir
OFFLOAD_FLAG_UNSPECIFIED: OffloadFlag
OFFLOAD_FLAG_IPV6: OffloadFlag
OFFLOAD_FLAG_INBOUND: OffloadFlag
OFFLOAD_FLAG_PACKET: OffloadFlag

class XfrmSelector(_message.Message):
    __slots__ = ("daddr", "saddr", "dport", "dport_mask", "sport", "sport_mask", "family", "prefixlen_d", "prefixlen_s", "proto", "ifindex", "user")
    DADDR_FIELD_NUMBER: _ClassVar[int]
    SADDR_FIELD_NUMBER: _ClassVar[int]
    DPORT_FIELD_NUMBER: _ClassVar[int]
    DPORT_MASK_FIELD_NUMBER: _ClassVar[int]
    SPORT_FIELD_NUMBER: _ClassVar[int]
    SPORT_MASK_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    PREFIXLEN_D_FIELD_NUMBER: _ClassVar[int]
    PREFIXLEN_S_FIELD_NUMBER: _ClassVar[int]
    PROTO_FIELD_NUMBER: _ClassVar[int]
    IFINDEX_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    daddr: str
    saddr: str
    dport: int
    dport_mask: int
    sport: int
    sport_mask: int
    family: AddressFamily
    prefixlen_d: int
    prefixlen_s: int
    proto: int
    ifindex: int
    user: int
    def __init__(self, daddr: _Optional[str] = ..., saddr: _Optional[str] = ..., dport: _Optional[int] = ..., dport_mask: _Optional[int] = ..., sport: _Optional[int] = ..., sport_mask: _Optional[int] = ..., family: _Optional[_Union[AddressFamily, str]] = ..., prefixlen_d: _Optional[int] = ..., prefixlen_s: _Optional[int] = ..., proto: _Optional[int] = ..., ifindex: _Optional[int] = ..., user: _Optional[int] = ...) -> None: ...

class XfrmId(_message.Message):
    __slots__ = ("daddr", "spi", "proto")
    DADDR_FIELD_NUMBER: _ClassVar[int]
    SPI_FIELD_NUMBER: _ClassVar[int]
    PROTO_FIELD_NUMBER: _ClassVar[int]
    daddr: str
    spi: int
    proto: int
    def __init__(self, daddr: _Optional[str] = ..., spi: _Optional[int] = ..., proto: _Optional[int] = ...) -> None: ...

class XfrmMark(_message.Message):
    __slots__ = ("v", "m")
    V_FIELD_NUMBER: _ClassVar[int]
    M_FIELD_NUMBER: _ClassVar[int]
    v: int
    m: int
    def __init__(self, v: _Optional[int] = ..., m: _Optional[int] = ...) -> None: ...

class XfrmLifetimeCfg(_message.Message):
    __slots__ = ("soft_byte_limit", "hard_byte_limit", "soft_packet_limit", "hard_packet_limit", "soft_add_expires_seconds", "hard_add_expires_seconds", "soft_use_expires_seconds", "hard_use_expires_seconds")
    SOFT_BYTE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HARD_BYTE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    SOFT_PACKET_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HARD_PACKET_LIMIT_FIELD_NUMBER: _ClassVar[int]
    SOFT_ADD_EXPIRES_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HARD_ADD_EXPIRES_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SOFT_USE_EXPIRES_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HARD_USE_EXPIRES_SECONDS_FIELD_NUMBER: _ClassVar[int]
    soft_byte_limit: int
    hard_byte_limit: int
    soft_packet_limit: int
    hard_packet_limit: int
    soft_add_expires_seconds: int
    hard_add_expires_seconds: int
    soft_use_expires_seconds: int
    hard_use_expires_seconds: int
    def __init__(self, soft_byte_limit: _Optional[int] = ..., hard_byte_limit: _Optional[int] = ..., soft_packet_limit: _Optional[int] = ..., hard_packet_limit: _Optional[int] = ..., soft_add_expires_seconds: _Optional[int] = ..., hard_add_expires_seconds: _Optional[int] = ..., soft_use_expires_seconds: _Optional[int] = ..., hard_use_expires_seconds: _Optional[int] = ...) -> None: ...

class XfrmLifetimeCur(_message.Message):
    __slots__ = ("bytes", "packets", "add_time", "use_time")
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    ADD_TIME_FIELD_NUMBER: _ClassVar[int]
    USE_TIME_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    packets: int
    add_time: int
    use_time: int
    def __init__(self, bytes: _Optional[int] = ..., packets: _Optional[int] = ..., add_time: _Optional[int] = ..., use_time: _Optional[int] = ...) -> None: ...

class XfrmStats(_message.Message):
    __slots__ = ("replay_window", "replay", "integrity_failed")
    REPLAY_WINDOW_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FAILED_FIELD_NUMBER: _ClassVar[int]
    replay_window: int
    replay: int
    integrity_failed: int
    def __init__(self, replay_window: _Optional[int] = ..., replay: _Optional[int] = ..., integrity_failed: _Optional[int] = ...) -> None: ...

class XfrmReplayStateEsn(_message.Message):
    __slots__ = ("bmp_len", "oseq", "seq", "oseq_hi", "seq_hi", "replay_window", "bmp")
    BMP_LEN_FIELD_NUMBER: _ClassVar[int]
    OSEQ_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OSEQ_HI_FIELD_NUMBER: _ClassVar[int]
    SEQ_HI_FIELD_NUMBER: _ClassVar[int]
    REPLAY_WINDOW_FIELD_NUMBER: _ClassVar[int]
    BMP_FIELD_NUMBER: _ClassVar[int]
    bmp_len: int
    oseq: int
    seq: int
    oseq_hi: int
    seq_hi: int
    replay_window: int
    bmp: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, bmp_len: _Optional[int] = ..., oseq: _Optional[int] = ..., seq: _Optional[int] = ..., oseq_hi: _Optional[int] = ..., seq_hi: _Optional[int] = ..., replay_window: _Optional[int] = ..., bmp: _Optional[_Iterable[int]] = ...) -> None: ...

class XfrmAlgo(_message.Message):
    __slots__ = ("alg_name", "alg_key", "alg_key_len")
    ALG_NAME_FIELD_NUMBER: _ClassVar[int]
    ALG_KEY_FIELD_NUMBER: _ClassVar[int]
    ALG_KEY_LEN_FIELD_NUMBER: _ClassVar[int]
    alg_name: str
    alg_key: bytes
    alg_key_len: int
    def __init__(self, alg_name: _Optional[str] = ..., alg_key: _Optional[bytes] = ..., alg_key_len: _Optional[int] = ...) -> None: ...

class XfrmAlgoAuth(_message.Message):
    __slots__ = ("alg_name", "alg_key", "alg_trunc_len", "alg_key_len")
    ALG_NAME_FIELD_NUMBER: _ClassVar[int]
    ALG_KEY_FIELD_NUMBER: _ClassVar[int]
    ALG_TRUNC_LEN_FIELD_NUMBER: _ClassVar[int]
    ALG_KEY_LEN_FIELD_NUMBER: _ClassVar[int]
    alg_name: str
    alg_key: bytes
    alg_trunc_len: int
    alg_key_len: int
    def __init__(self, alg_name: _Optional[str] = ..., alg_key: _Optional[bytes] = ..., alg_trunc_len: _Optional[int] = ..., alg_key_len: _Optional[int] = ...) -> None: ...

class XfrmAlgoAead(_message.Message):
    __slots__ = ("alg_name", "alg_key", "alg_icv_len", "alg_key_len")
    ALG_NAME_FIELD_NUMBER: _ClassVar[int]
    ALG_KEY_FIELD_NUMBER: _ClassVar[int]
    ALG_ICV_LEN_FIELD_NUMBER: _ClassVar[int]
    ALG_KEY_LEN_FIELD_NUMBER: _ClassVar[int]
    alg_name: str
    alg_key: bytes
    alg_icv_len: int
    alg_key_len: int
    def __init__(self, alg_name: _Optional[str] = ..., alg_key: _Optional[bytes] = ..., alg_icv_len: _Optional[int] = ..., alg_key_len: _Optional[int] = ...) -> None: ...

class XfrmEncapTmpl(_message.Message):
    __slots__ = ("encap_type", "encap_sport", "encap_dport", "encap_oa")
    ENCAP_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENCAP_SPORT_FIELD_NUMBER: _ClassVar[int]
    ENCAP_DPORT_FIELD_NUMBER: _ClassVar[int]
    ENCAP_OA_FIELD_NUMBER: _ClassVar[int]
    encap_type: EncapType
    encap_sport: int
    encap_dport: int
    encap_oa: str
    def __init__(self, encap_type: _Optional[_Union[EncapType, str]] = ..., encap_sport: _Optional[int] = ..., encap_dport: _Optional[int] = ..., encap_oa: _Optional[str] = ...) -> None: ...

class XfrmUserOffload(_message.Message):
    __slots__ = ("dev", "ifindex", "flags")
    DEV_FIELD_NUMBER: _ClassVar[int]
    IFINDEX_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    dev: str
    ifindex: int
    flags: int
    def __init__(self, dev: _Optional[str] = ..., ifindex: _Optional[int] = ..., flags: _Optional[int] = ...) -> None: ...

class XfrmUsersaInfo(_message.Message):
    __slots__ = ("sel", "id", "saddr", "lft", "seq", "reqid", "family", "mode", "replay_window", "flags", "aead", "enc", "auth", "encap", "replay_esn", "mark", "if_id", "tfcpad", "extra_flags", "dir", "offload", "mapping_maxage")
    SEL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SADDR_FIELD_NUMBER: _ClassVar[int]
    LFT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REQID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REPLAY_WINDOW_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    AEAD_FIELD_NUMBER: _ClassVar[int]
    ENC_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    ENCAP_FIELD_NUMBER: _ClassVar[int]
    REPLAY_ESN_FIELD_NUMBER: _ClassVar[int]
    MARK_FIELD_NUMBER: _ClassVar[int]
    IF_ID_FIELD_NUMBER: _ClassVar[int]
    TFCPAD_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FLAGS_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_FIELD_NUMBER: _ClassVar[int]
    MAPPING_MAXAGE_FIELD_NUMBER: _ClassVar[int]
    sel: XfrmSelector
    id: XfrmId
    saddr: str
    lft: XfrmLifetimeCfg
    seq: int
    reqid: int
    family: AddressFamily
    mode: XfrmMode
    replay_window: int
    flags: int
    aead: XfrmAlgoAead
    enc: XfrmAlgo
    auth: XfrmAlgoAuth
    encap: XfrmEncapTmpl
    replay_esn: XfrmReplayStateEsn
    mark: XfrmMark
    if_id: int
    tfcpad: int
    extra_flags: int
    dir: SaDir
    offload: XfrmUserOffload
    mapping_maxage: int
    def __init__(self, sel: _Optional[_Union[XfrmSelector, _Mapping]] = ..., id: _Optional[_Union[XfrmId, _Mapping]] = ..., saddr: _Optional[str] = ..., lft: _Optional[_Union[XfrmLifetimeCfg, _Mapping]] = ..., seq: _Optional[int] = ..., reqid: _Optional[int] = ..., family: _Optional[_Union[AddressFamily, str]] = ..., mode: _Optional[_Union[XfrmMode, str]] = ..., replay_window: _Optional[int] = ..., flags: _Optional[int] = ..., aead: _Optional[_Union[XfrmAlgoAead, _Mapping]] = ..., enc: _Optional[_Union[XfrmAlgo, _Mapping]] = ..., auth: _Optional[_Union[XfrmAlgoAuth, _Mapping]] = ..., encap: _Optional[_Union[XfrmEncapTmpl, _Mapping]] = ..., replay_esn: _Optional[_Union[XfrmReplayStateEsn, _Mapping]] = ..., mark: _Optional[_Union[XfrmMark, _Mapping]] = ..., if_id: _Optional[int] = ..., tfcpad: _Optional[int] = ..., extra_flags: _Optional[int] = ..., dir: _Optional[_Union[SaDir, str]] = ..., offload: _Optional[_Union[XfrmUserOffload, _Mapping]] = ..., mapping_maxage: _Optional[int] = ...) -> None: ...

class XfrmUserTmpl(_message.Message):
    __slots__ = ("id", "family", "saddr", "reqid", "mode", "share", "optional", "aalgos", "ealgos", "calgos")
    ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    SADDR_FIELD_NUMBER: _ClassVar[int]
    REQID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    OPTIONAL_FIELD_NUMBER: _ClassVar[int]
    AALGOS_FIELD_NUMBER: _ClassVar[int]
    EALGOS_FIELD_NUMBER: _ClassVar[int]
    CALGOS_FIELD_NUMBER: _ClassVar[int]
    id: XfrmId
    family: AddressFamily
    saddr: str
    reqid: int
    mode: XfrmMode
    share: int
    optional: bool
    aalgos: int
    ealgos: int
    calgos: int
    def __init__(self, id: _Optional[_Union[XfrmId, _Mapping]] = ..., family: _Optional[_Union[AddressFamily, str]] = ..., saddr: _Optional[str] = ..., reqid: _Optional[int] = ..., mode: _Optional[_Union[XfrmMode, str]] = ..., share: _Optional[int] = ..., optional: _Optional[bool] = ..., aalgos: _Optional[int] = ..., ealgos: _Optional[int] = ..., calgos: _Optional[int] = ...) -> None: ...

class XfrmUserpolicyInfo(_message.Message):
    __slots__ = ("sel", "lft", "priority", "index", "dir", "action", "flags", "share", "tmpl", "mark", "if_id", "offload")
    SEL_FIELD_NUMBER: _ClassVar[int]
    LFT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    TMPL_FIELD_NUMBER: _ClassVar[int]
    MARK_FIELD_NUMBER: _ClassVar[int]
    IF_ID_FIELD_NUMBER: _ClassVar[int]
    OFFLOAD_FIELD_NUMBER: _ClassVar[int]
    sel: XfrmSelector
    lft: XfrmLifetimeCfg
    priority: int
    index: int
    dir: PolicyDir
    action: PolicyAction
    flags: int
    share: int
    tmpl: _containers.RepeatedCompositeFieldContainer[XfrmUserTmpl]
    mark: XfrmMark
    if_id: int
    offload: XfrmUserOffload
    def __init__(self, sel: _Optional[_Union[XfrmSelector, _Mapping]] = ..., lft: _Optional[_Union[XfrmLifetimeCfg, _Mapping]] = ..., priority: _Optional[int] = ..., index: _Optional[int] = ..., dir: _Optional[_Union[PolicyDir, str]] = ..., action: _Optional[_Union[PolicyAction, str]] = ..., flags: _Optional[int] = ..., share: _Optional[int] = ..., tmpl: _Optional[_Iterable[_Union[XfrmUserTmpl, _Mapping]]] = ..., mark: _Optional[_Union[XfrmMark, _Mapping]] = ..., if_id: _Optional[int] = ..., offload: _Optional[_Union[XfrmUserOffload, _Mapping]] = ...) -> None: ...
