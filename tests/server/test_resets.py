"""The ledger of what a worker's devices hold, kept from the table changes its replies carry:
what a restart reports deleted."""

from __future__ import annotations

import pickle

from xfrm_offload.engine.events import (
    DeleteReason,
    LinkChanged,
    PolicyDeleted,
    StateDeleted,
)
from xfrm_offload.engine.spd import Policy, Template
from xfrm_offload.engine.types import Direction, Selector
from xfrm_offload.server.resets import Ledger, table_changes

from ..engine.test_device import F_PKT, PEER, device, sa

LINK_DOWN = DeleteReason.LINK_DOWN


def test_reset_deletes_what_is_held_and_nothing_else() -> None:
    dev = device("full")
    ledger = Ledger()
    kept = dev.state_add(sa(spi=1), F_PKT, 0.0).handle
    gone = dev.state_add(sa(spi=2), F_PKT, 0.0).handle
    policy = Policy(sel=Selector(), dir=Direction.OUT, templates=(Template(reqid=42),))
    pol = dev.policy_add(policy, F_PKT).handle
    dev.state_delete(gone)
    # as they cross the pipe
    ledger.apply(pickle.loads(pickle.dumps(table_changes(dev.pop_events()))))
    sa_id = dev.get_state(kept).sa.sa_id
    assert ledger.reset("eth0") == [
        LinkChanged("eth0", False),
        StateDeleted("eth0", kept, sa_id, LINK_DOWN),
        PolicyDeleted("eth0", pol, dev.get_policy(pol).index, Direction.OUT, LINK_DOWN),
    ]
    assert ledger.reset("eth0") == []  # said once
    assert ledger.back("eth0") == [LinkChanged("eth0", True)]


def test_a_device_already_down_is_not_said_down_again() -> None:
    dev = device("full")
    ledger = Ledger()
    dev.state_add(sa(daddr=PEER), F_PKT, 0.0)
    dev.set_link(False, 1.0)  # flushed: its deletions were reported by the call itself
    ledger.apply(table_changes(dev.pop_events()))
    assert ledger.reset("eth0") == []
