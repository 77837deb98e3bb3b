"""The built wheel carries every part of the namespace package and works on its own."""

from __future__ import annotations

import os
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


def build_wheel(out: Path, **env: str) -> Path:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, **env},
    )
    (wheel,) = out.glob("xfrm_offload-*.whl")
    return wheel


def run_installed(installed: Path, code: str) -> str:
    """Run ``code`` with only the unpacked wheel and the dependencies on the path."""
    site_packages = sysconfig.get_paths()["purelib"]
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": f"{installed}:{site_packages}", "PATH": "/usr/bin:/bin"},
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    return done.stdout


def test_wheel_imports_every_subpackage_from_itself(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    # the native engine is compiled into the wheel, which is then platform-specific
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    assert f"xfrm_offload/engine/_esp{suffix}" in names
    assert not wheel.name.endswith("-none-any.whl"), wheel.name
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
    probe += "; from xfrm_offload.engine import native; print(native.describe())"
    assert run_installed(installed, probe).startswith("native (C, OpenSSL 3")


def test_wheel_without_the_native_engine_runs_the_reference(tmp_path: Path) -> None:
    """What a machine without a compiler gets (the hook told to skip): a pure wheel
    that installs, imports and says it runs the Python reference."""
    wheel = build_wheel(tmp_path, XFRM_OFFLOAD_NATIVE="0")
    assert wheel.name.endswith("-none-any.whl"), wheel.name
    assert not any(n.endswith(".so") for n in zipfile.ZipFile(wheel).namelist())
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    out = run_installed(
        installed,
        "from xfrm_offload.engine import native; import xfrm_offload.engine.sa; "
        "print(native.available(), native.engine(), native.describe())",
    )
    assert out.split("\n")[0] == "False python python (reference, native extension not built)"
