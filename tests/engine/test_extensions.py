"""engine/extensions.py: the one loader of the C extensions and its override,
XFRM_OFFLOAD_NATIVE_DIR (what scripts/sanitize uses to load its ASan builds)."""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

from xfrm_offload.engine import native
from xfrm_offload.engine.extensions import DIR_ENV, load_extension

SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
NAME = "xfrm_offload.engine._esp"

needs_esp = pytest.mark.skipif(native._esp is None, reason="_esp not built here")


@needs_esp
def test_without_the_variable_the_installed_build_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DIR_ENV, raising=False)
    assert load_extension("xfrm_offload.engine", "_esp") is native._esp


def test_an_extension_that_was_not_built_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DIR_ENV, raising=False)
    assert load_extension("xfrm_offload.engine", "_not_built") is None


@needs_esp
def test_the_directory_build_replaces_the_installed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert native._esp is not None and native._esp.__file__ is not None
    shutil.copy(native._esp.__file__, tmp_path / f"_esp{SUFFIX}")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.setitem(sys.modules, NAME, native._esp)  # put back after the test
    module = load_extension("xfrm_offload.engine", "_esp")
    assert module is not None and module is not native._esp
    assert module.__file__ == str(tmp_path / f"_esp{SUFFIX}")
    assert sys.modules[NAME] is module  # a later import gets the same build
    assert module.OPENSSL_VERSION == native._esp.OPENSSL_VERSION


@pytest.mark.parametrize("content", [None, b"not an ELF file"], ids=["missing", "broken"])
def test_a_directory_without_a_good_build_is_an_error_not_a_fallback(
    content: bytes | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if content is not None:
        (tmp_path / f"_esp{SUFFIX}").write_bytes(content)
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.setitem(sys.modules, NAME, native._esp)
    with pytest.raises(ImportError, match="_esp"):
        load_extension("xfrm_offload.engine", "_esp")
