"""Hatchling build hook: compile the native ESP engine (engine/_esp.c) against libcrypto,
the Unix relay's splice pump (server/_relay.c) and the real interfaces' helpers
(server/_tunoffload.c: TUN offloads' per-byte work; server/_wireio.c: recvmmsg/sendmmsg)
and PacketStream's packed batch codec (server/_packetwire.c), which need no library.

Why hatchling (the project's backend already) and not meson-python or setuptools: one C
file and one library need no build system of their own; a hook keeps the three-root
namespace package (proto/, server/, client/) and the editable install exactly as they are.

The system compiler (``$CC`` or ``cc``) builds ``_esp`` with ``-Wall -Wextra -Werror``
against this interpreter's headers (sysconfig) and the system OpenSSL 3 (``-lcrypto``).
Wheel: the shared object goes into the wheel (force-included) and the wheel is tagged for
this interpreter and platform. Editable install: it is built next to the source, where the
editable path finds it. No compiler, no headers, or ``XFRM_OFFLOAD_NATIVE=0``: the build
still succeeds, pure-Python, and the server runs (and says it runs) the Python reference
(the relay its os.splice loop, the real interfaces their Python equivalents). Each
extension is built on its own: one that fails leaves the others.
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
#: Every extension: its source, its module path (no suffix), the libraries it links, and
#: what runs without it.
EXTENSIONS = (
    (SOURCE, TARGET, ("-lcrypto",), "the Python reference ESP engine runs"),
    (
        Path("server/xfrm_offload/server/_relay.c"),
        "xfrm_offload/server/_relay",
        (),
        "the Unix relay runs its os.splice loop",
    ),
    (
        Path("server/xfrm_offload/server/_tunoffload.c"),
        "xfrm_offload/server/_tunoffload",
        (),
        "TUN offloads run in Python",
    ),
    (
        Path("server/xfrm_offload/server/_wireio.c"),
        "xfrm_offload/server/_wireio",
        (),
        "wire frames move one system call each",
    ),
    (
        Path("server/xfrm_offload/server/_packetwire.c"),
        "xfrm_offload/server/_packetwire",
        (),
        "PacketStream's batch form is read and answered in Python",
    ),
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
            for source, _, _, instead in EXTENSIONS:
                self._skip(source, "XFRM_OFFLOAD_NATIVE=0", instead)
            return
        root = Path(self.root)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        built = False
        for source, target, libs, instead in EXTENSIONS:
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
                self._skip(source, why, instead)
            built = built or why is None
        if built:
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def _skip(self, source: Path, why: str, instead: str) -> None:
        print(f"xfrm-offload: {source.name} not built ({why}); {instead}", file=sys.stderr)
