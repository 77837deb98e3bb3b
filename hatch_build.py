"""Hatchling build hook: compile the native ESP engine (engine/_esp.c) against libcrypto.

Why hatchling (the project's backend already) and not meson-python or setuptools: one C
file and one library need no build system of their own; a hook keeps the three-root
namespace package (proto/, server/, client/) and the editable install exactly as they are.

The system compiler (``$CC`` or ``cc``) builds ``_esp`` with ``-Wall -Wextra -Werror``
against this interpreter's headers (sysconfig) and the system OpenSSL 3 (``-lcrypto``).
Wheel: the shared object goes into the wheel (force-included) and the wheel is tagged for
this interpreter and platform. Editable install: it is built next to the source, where the
editable path finds it. No compiler, no headers, or ``XFRM_OFFLOAD_NATIVE=0``: the build
still succeeds, pure-Python, and the server runs (and says it runs) the Python reference.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("server/xfrm_offload/engine/_esp.c")
TARGET = "xfrm_offload/engine/_esp"
CFLAGS = ("-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror")
#: The real interfaces' helpers (source, module path): TUN offloads' per-byte work and
#: recvmmsg/sendmmsg for wire frames; system and Python headers only, no library. Each is
#: built like _esp, on its own: without one, realif.py runs its Python equivalent.
REALIF_HELPERS = (
    (Path("server/xfrm_offload/server/_tunoffload.c"), "xfrm_offload/server/_tunoffload"),
    (Path("server/xfrm_offload/server/_wireio.c"), "xfrm_offload/server/_wireio"),
)


def compile_native(
    root: Path,
    out: Path,
    extra: tuple[str, ...] = (),
    source: Path = SOURCE,
    libs: tuple[str, ...] = ("-lcrypto",),
) -> str | None:
    """Compile the extension to ``out``; None on success, else why it was skipped."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        return "no C compiler"
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        return f"no Python headers in {include}"
    cmd = [cc, *CFLAGS, *extra, f"-I{include}", str(root / source), "-o", str(out), *libs]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"compiler failed: {done.stderr.strip()[-2000:]}"
    return None


class NativeBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        if os.environ.get("XFRM_OFFLOAD_NATIVE", "1") == "0":
            self._skip("XFRM_OFFLOAD_NATIVE=0")
            return
        root = Path(self.root)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        for source, target in REALIF_HELPERS:
            self._build_helper(version, build_data, root, suffix, source, target)
        if version == "editable":
            out = root / "server" / (TARGET + suffix)
            out.unlink(missing_ok=True)  # a failed build must not leave a stale one behind
            why = compile_native(root, out)
        else:
            self._tmp = tempfile.mkdtemp(prefix="xfrm-native-")
            out = Path(self._tmp) / ("_esp" + suffix)
            why = compile_native(root, out)
            if why is None:
                build_data["force_include"][str(out)] = TARGET + suffix
        if why is not None:
            self._skip(why)
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def _build_helper(
        self,
        version: str,
        build_data: dict[str, Any],
        root: Path,
        suffix: str,
        source: Path,
        target: str,
    ) -> None:
        name = target.rsplit("/", 1)[1]
        if version == "editable":
            out = root / "server" / (target + suffix)
            out.unlink(missing_ok=True)
            why = compile_native(root, out, source=source, libs=())
        else:
            if getattr(self, "_helpers_tmp", None) is None:
                self._helpers_tmp = tempfile.mkdtemp(prefix="xfrm-realif-")
            out = Path(self._helpers_tmp) / (name + suffix)
            why = compile_native(root, out, source=source, libs=())
            if why is None:
                build_data["force_include"][str(out)] = target + suffix
        if why is not None:
            print(f"xfrm-offload: {name} not built ({why}); Python does its work", file=sys.stderr)
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        for name in ("_tmp", "_helpers_tmp"):
            tmp = getattr(self, name, None)
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def _skip(self, why: str) -> None:
        print(
            f"xfrm-offload: native ESP engine not built ({why}); the Python reference runs",
            file=sys.stderr,
        )
