"""The committed generated code is exactly what scripts/gen_proto.py produces now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "proto" / "xfrm_offload" / "v1"


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
        check=True,
        timeout=120,
    )
    fresh = sorted((tmp_path / "xfrm_offload" / "v1").glob("*_pb2*"))
    committed = sorted(GENERATED.glob("*_pb2*"))
    assert [p.name for p in fresh] == [p.name for p in committed]
    stale = [
        p.name for p, q in zip(fresh, committed, strict=True) if p.read_bytes() != q.read_bytes()
    ]
    assert stale == [], f"regenerate with: python scripts/gen_proto.py ({stale} differ)"
