"""Device capability profiles are data: what each one reports (kernel-anchors §3, §4)."""

from __future__ import annotations

import pytest

from xfrm_offload.engine.algorithms import ALGORITHMS
from xfrm_offload.engine.profiles import (
    NETIF_F_GSO_ESP,
    NETIF_F_HW_ESP,
    NETIF_F_HW_ESP_TX_CSUM,
    PROFILES,
    AlgorithmCapability,
)
from xfrm_offload.engine.replay import MAX_REPLAY_WINDOW
from xfrm_offload.engine.types import Direction, EncapType, Mode, OffloadType

CRYPTO, PACKET = OffloadType.CRYPTO, OffloadType.PACKET
TRANSPORT, TUNNEL = Mode.TRANSPORT, Mode.TUNNEL
GCM = "rfc4106(gcm(aes))"


def test_builtin_profile_names() -> None:
    assert set(PROFILES) == {"full", "netdevsim", "mlx5", "nooffload"}
    for name, profile in PROFILES.items():
        assert profile.name == name


@pytest.mark.parametrize(
    ("name", "features", "has_offload"),
    [
        ("full", (NETIF_F_HW_ESP, NETIF_F_HW_ESP_TX_CSUM, NETIF_F_GSO_ESP), True),
        ("netdevsim", (NETIF_F_HW_ESP, NETIF_F_HW_ESP_TX_CSUM, NETIF_F_GSO_ESP), True),
        ("mlx5", (NETIF_F_HW_ESP, NETIF_F_HW_ESP_TX_CSUM, NETIF_F_GSO_ESP), True),
        ("nooffload", (), False),
    ],
)
def test_features(name: str, features: tuple[str, ...], has_offload: bool) -> None:
    profile = PROFILES[name]
    assert profile.features == features
    assert profile.has_offload is has_offload
    assert profile.mtu == 1500
    assert profile.capabilities.mtu == 1500


def test_full_lists_every_engine_algorithm() -> None:
    caps = PROFILES["full"].capabilities
    assert [a.name for a in caps.algorithms] == list(ALGORITHMS)
    by_name = {a.name: a for a in caps.algorithms}
    assert by_name[GCM] == AlgorithmCapability(
        name=GCM, kind="aead", key_bits=(160, 224, 288), icv_bits=(64, 96, 128)
    )
    assert by_name["rfc7539esp(chacha20,poly1305)"].key_bits == (288,)
    assert by_name["cbc(aes)"] == AlgorithmCapability(
        name="cbc(aes)", kind="cipher", key_bits=(128, 192, 256), icv_bits=()
    )
    assert by_name["hmac(sha256)"].kind == "auth"
    assert by_name["hmac(sha256)"].key_bits == ()  # any HMAC key length
    assert 128 in by_name["hmac(sha256)"].icv_bits


# Each row: the profile and its whole capabilities view except the algorithms.
CAPS = {
    "full": dict(
        offload_types=(CRYPTO, PACKET),
        modes=(TRANSPORT, TUNNEL),
        esn=True,
        max_states=0,
        max_replay_window=MAX_REPLAY_WINDOW,
        packet_in_replay_windows=(),
        reqid_required=False,
        soft_below_hard=False,
        natt=True,
        natt_offload_types=(CRYPTO, PACKET),
        natt_modes=(TRANSPORT, TUNNEL),
        policy_offload=True,
        policy_dirs=(Direction.IN, Direction.OUT, Direction.FWD),
        max_policy_templates=0,
    ),
    "netdevsim": dict(
        offload_types=(CRYPTO,),
        modes=(TRANSPORT, TUNNEL),
        esn=False,
        max_states=33,
        max_replay_window=MAX_REPLAY_WINDOW,
        packet_in_replay_windows=(),
        reqid_required=False,
        soft_below_hard=False,
        natt=False,
        natt_offload_types=(),
        natt_modes=(),
        policy_offload=False,
        policy_dirs=(),
        max_policy_templates=0,
    ),
    "mlx5": dict(
        offload_types=(CRYPTO, PACKET),
        modes=(TRANSPORT, TUNNEL),
        esn=True,
        max_states=0,
        max_replay_window=4096,
        packet_in_replay_windows=(32, 64, 128, 256),
        reqid_required=True,
        soft_below_hard=True,
        natt=True,
        natt_offload_types=(PACKET,),
        natt_modes=(TRANSPORT,),
        policy_offload=True,
        policy_dirs=(Direction.IN, Direction.OUT),
        max_policy_templates=1,
    ),
    "nooffload": dict(
        offload_types=(),
        modes=(),
        esn=False,
        max_states=0,
        max_replay_window=0,
        packet_in_replay_windows=(),
        reqid_required=False,
        soft_below_hard=False,
        natt=False,
        natt_offload_types=(),
        natt_modes=(),
        policy_offload=False,
        policy_dirs=(),
        max_policy_templates=0,
    ),
}


@pytest.mark.parametrize("name", sorted(CAPS))
def test_capabilities(name: str) -> None:
    caps = PROFILES[name].capabilities
    for field, expected in CAPS[name].items():
        assert getattr(caps, field) == expected, field


@pytest.mark.parametrize(
    ("name", "algorithms"),
    [
        ("netdevsim", (AlgorithmCapability(GCM, "aead", (160,), (128,)),)),
        ("mlx5", (AlgorithmCapability(GCM, "aead", (160, 288), (128,)),)),
        ("nooffload", ()),
    ],
)
def test_narrow_algorithm_lists(name: str, algorithms: tuple[AlgorithmCapability, ...]) -> None:
    assert PROFILES[name].capabilities.algorithms == algorithms


def test_mlx5_natt_is_espinudp_only() -> None:
    assert PROFILES["mlx5"].natt_encap_types == (EncapType.ESPINUDP,)


def test_profiles_are_frozen() -> None:
    with pytest.raises(AttributeError):
        PROFILES["mlx5"].max_states = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        PROFILES["x"] = PROFILES["full"]  # type: ignore[index]
