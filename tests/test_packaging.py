"""The built wheel carries every part of the namespace package and works on its own."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

IMPORTS = (
    "xfrm_offload.v1.offload_pb2_grpc",
    "xfrm_offload.v1.endpoint",
    "xfrm_offload.engine.datapath",
    "xfrm_offload.server.app",
    "xfrm_offload.client.cli",
    "xfrm_offload.client.demo",
)


def test_wheel_imports_every_subpackage_from_itself(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("xfrm_offload-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for part in ("v1/offload_pb2.py", "v1/offload_pb2.pyi", "v1/offload.proto", "client/py.typed"):
        assert f"xfrm_offload/{part}" in names
    assert not any(n.startswith("xfrm_offload/__init__") for n in names)  # a namespace package
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    )
    for script in (b"xfrm-offloadd", b"xfrmctl", b"xfrm-offload-demo"):
        assert script in entry_points
    # Installed = unpacked (what pip does with a pure wheel). Without site processing
    # the editable install's paths are gone: the unpacked wheel and the dependencies
    # (site-packages, put on the path by hand) are all there is.
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    probe = "; ".join(
        [f"import {m}" for m in IMPORTS]
        + [f"assert {m}.__file__.startswith({str(installed)!r}), {m}.__file__" for m in IMPORTS]
    )
    site_packages = sysconfig.get_paths()["purelib"]
    subprocess.run(
        [sys.executable, "-S", "-c", probe],
        env={"PYTHONPATH": f"{installed}:{site_packages}", "PATH": "/usr/bin:/bin"},
        check=True,
        timeout=60,
    )
