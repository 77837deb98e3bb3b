"""Hatchling build hook: compile the native ESP engine (engine/_esp.c) against libcrypto,
and the Unix relay's splice pump (server/_relay.c, no library).

Why hatchling (the project's backend already) and not meson-python or setuptools: one C
file and one library need no build system of their own; a hook keeps the three-root
namespace package (proto/, server/, client/) and the editable install exactly as they are.

The system compiler (``$CC`` or ``cc``) builds ``_esp`` with ``-Wall -Wextra -Werror``
against this interpreter's headers (sysconfig) and the system OpenSSL 3 (``-lcrypto``).
Wheel: the shared object goes into the wheel (force-included) and the wheel is tagged for
this interpreter and platform. Editable install: it is built next to the source, where the
editable path finds it. No compiler, no headers, or ``XFRM_OFFLOAD_NATIVE=0``: the build
still succeeds, pure-Python, and the server runs (and says it runs) the Python reference
(and the relay its os.splice loop).
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
#: Every extension: its source, its module path (no suffix), the libraries it links.
EXTENSIONS = (
    (SOURCE, TARGET, ("-lcrypto",)),
    (Path("server/xfrm_offload/server/_relay.c"), "xfrm_offload/server/_relay", ()),
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
            for source, _, _ in EXTENSIONS:
                self._skip(source, "XFRM_OFFLOAD_NATIVE=0")
            return
        root = Path(self.root)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        built = False
        for source, target, libs in EXTENSIONS:
            if version == "editable":
                out = root / "server" / (target + suffix)
                out.unlink(missing_ok=True)  # a failed build must not leave a stale one behind
                why = compile_native(root, out, source=source, libs=libs)
            else:
                if getattr(self, "_tmp", None) is None:
                    self._tmp = tempfile.mkdtemp(prefix="xfrm-native-")
                out = Path(self._tmp) / (Path(target).name + suffix)
                why = compile_native(root, out, source=source, libs=libs)
                if why is None:
                    build_data["force_include"][str(out)] = target + suffix
            if why is not None:
                self._skip(source, why)
            built = built or why is None
        if built:
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def _skip(self, source: Path, why: str) -> None:
        what = (
            "native ESP engine not built ({}); the Python reference runs"
            if source == SOURCE
            else "Unix relay pump not built ({}); the relay runs its os.splice loop"
        )
        print(f"xfrm-offload: {what.format(why)}", file=sys.stderr)
