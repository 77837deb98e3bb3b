"""Loading the project's C extensions, one way for all five (``_esp`` here; ``_relay``,
``_tunoffload``, ``_wireio`` and ``_packetwire`` in the server package).

Each extension is optional: a build without a compiler has none of them, and its caller
runs the Python equivalent. ``XFRM_OFFLOAD_NATIVE_DIR`` points every one at another
build: if set, ``<name><EXT_SUFFIX>`` is loaded from that directory instead of the
package (scripts/sanitize points it at its ASan + UBSan builds). There a missing or
broken file is an error, not a fallback: a run meant to test those builds must not test
the installed ones, or the Python reference, without saying so.

Here in the engine package because the engine may import nothing of the server's.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

#: A directory of builds to load instead of the installed extensions.
DIR_ENV = "XFRM_OFFLOAD_NATIVE_DIR"


def load_extension(package: str, name: str) -> ModuleType | None:
    """The extension ``package.name``: from ``$XFRM_OFFLOAD_NATIVE_DIR`` when set (an
    ImportError if it is not there), else the installed one, or None if not built."""
    directory = os.environ.get(DIR_ENV)
    if not directory:
        try:
            return importlib.import_module(f".{name}", package)
        except ImportError:  # not built (no compiler or headers at install time)
            return None
    path = Path(directory) / (name + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    if not path.is_file():
        raise ImportError(f"{DIR_ENV}={directory}: no {path.name} there")
    full = f"{package}.{name}"
    spec = importlib.util.spec_from_file_location(full, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{DIR_ENV}: {path} is not an extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[full] = module  # a later plain import gets this build, not the package's
    return module
