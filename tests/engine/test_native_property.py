"""The native engine against the Python reference, on random SAs and random traffic.

Each example draws an SA (every algorithm, mode, family, NAT-T, ESN, flags, windows,
counters near their wrap, lifetimes, TFC padding), a device MTU and a seed for ~250
packets of traffic: encap batches, then decap batches of good, mutated, forged (valid
ICV, chosen plaintext), replayed and NAT-T control packets. Both engines must give the
same bytes, verdicts, drop reasons, counters, replay state, lifetimes and events after
every batch (see differential.py). 400 examples: over 100k packets compared;
scripts/differential runs more. The NIC's halves of crypto offload (``nic_seal`` /
``nic_open``) are compared the same way on their own random SAs and frames.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xfrm_offload.engine import native
from xfrm_offload.engine.types import SAConfig

from .differential import MTUS, configs, run_case, run_crypto_offload_case

pytestmark = pytest.mark.skipif(not native.available(), reason="native engine not built")

EXAMPLES = 400
PACKETS = 200  # inner packets per example; the decap side sees about twice as many
CRYPTO_EXAMPLES = 60  # x ~80 crypto offload calls


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(configs(), st.integers(0, 2**32 - 1), MTUS)
def test_native_matches_reference(config: SAConfig, seed: int, mtu: int) -> None:
    assert run_case(config, seed, PACKETS, mtu) >= PACKETS


@settings(
    max_examples=CRYPTO_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(configs(), st.integers(0, 2**32 - 1))
def test_native_crypto_offload_matches_reference(config: SAConfig, seed: int) -> None:
    """The NIC's halves of crypto offload (nic_seal, nic_open): same bytes, same status."""
    assert run_crypto_offload_case(config, seed, 40) >= 40


@pytest.fixture(autouse=True, scope="module")
def esp_engine() -> str:
    """Overrides conftest's: these SAs name their engines, one run is enough."""
    return "both"
