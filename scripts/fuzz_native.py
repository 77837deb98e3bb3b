"""Bounded decap fuzz of the native engine: N mutated packets, batches of 256.

For each of a fixed set of SAs (every algorithm family, both modes and families, NAT-T,
ESN, windows from 0 to 4096), good packets are encapsulated, then mutated (bit flips,
truncations, extensions, random headers, random bytes) and fed to decap_batch on the
native engine. Every result must be bytes, None, a NonEsp or an XfrmStat; a quarter of
them also go through the crypto offload NIC's ``nic_open`` and an eighth, as TX frames,
through ``nic_seal``. The run is bounded by the count. Meant to run under
scripts/sanitize (ASan + UBSan), where any memory error aborts it.

    python scripts/fuzz_native.py [PACKETS]
"""

from __future__ import annotations

import dataclasses
import random
import sys

from tests.engine.differential import ADDRS, SALT, TRANSFORMS, inner_packets, mutate
from xfrm_offload.engine import native
from xfrm_offload.engine.esp import NonEsp
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import (
    EncapTemplate,
    Family,
    Mode,
    ReplayState,
    SAConfig,
    SAFlag,
)


def configs() -> list[SAConfig]:
    out = []
    for i, (aead, enc, auth) in enumerate(TRANSFORMS):
        family = Family.INET6 if i % 2 else Family.INET
        saddr, daddr = ADDRS[family]
        out.append(
            SAConfig(
                daddr=daddr,
                saddr=saddr,
                spi=0x1000 + i,
                family=family,
                mode=Mode.TUNNEL if i % 3 else Mode.TRANSPORT,
                flags=SAFlag.ESN if i % 4 == 1 else SAFlag.NONE,
                replay_window=(0, 32, 64, 4096)[i % 4] or (32 if i % 4 == 1 else 0),
                replay=ReplayState(oseq=(0, 2**32 - 50)[i % 2]),
                aead=aead,
                enc=enc,
                auth=auth,
                encap=EncapTemplate() if i % 5 == 2 else None,
                tfcpad=(0, 200)[i % 2] if i % 3 else 0,
            )
        )
    return out


def main() -> int:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    if native.engine() != "native":
        print("fuzz_native: the native engine is not available", file=sys.stderr)
        return 1
    rng = random.Random(20261201)
    allowed = (bytes, NonEsp, XfrmStat, type(None))
    cfgs = configs()
    done = 0
    kinds: dict[str, int] = {}
    crypto: dict[str, int] = {}
    while done < total:
        for cfg in cfgs:
            tx = SecurityAssociation(cfg, 0.0, iv_salt=SALT)
            rx_cfg = dataclasses.replace(cfg, replay=ReplayState(seq=cfg.replay.oseq))
            rx = SecurityAssociation(rx_cfg, 0.0, iv_salt=SALT)
            good = [p for p in tx.encap_batch(inner_packets(rng, 64), 1.0) if isinstance(p, bytes)]
            if not good:
                continue
            for _ in range(8):
                batch = [mutate(rng, rng.choice(good)) for _ in range(256)]
                for r in rx.decap_batch(batch, 2.0):
                    assert isinstance(r, allowed), r
                    name = type(r).__name__ if not isinstance(r, XfrmStat) else r.value
                    kinds[name] = kinds.get(name, 0) + 1
                # the crypto offload NIC halves on the same garbage, as RX packets and as
                # TX frames
                for p in batch[::4]:
                    status, frame = rx.batch.nic_open(p, rng.randrange(2**32))
                    assert isinstance(frame, bytes), frame
                    crypto[status.name] = crypto.get(status.name, 0) + 1
                for p in batch[1::8]:
                    sealed = tx.batch.nic_seal(p, rng.randrange(2**64))
                    assert sealed is None or isinstance(sealed, bytes), sealed
                    crypto["sealed" if sealed else "unsealed"] = (
                        crypto.get("sealed" if sealed else "unsealed", 0) + 1
                    )
                done += len(batch)
                if done >= total:
                    break
            if done >= total:
                break
    print(f"fuzz_native: {done} mutated packets, results {sorted(kinds.items())}")
    print(f"fuzz_native: crypto offload calls on them {sorted(crypto.items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
