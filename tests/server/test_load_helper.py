"""ifaces.load_helper: the real interfaces' C helpers through the one loader
(engine/extensions.py), XFRM_OFFLOAD_REALIF_HELPERS=0 still choosing the Python paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from xfrm_offload.engine.extensions import DIR_ENV
from xfrm_offload.server import ifaces, realif


def test_helpers_off_wins_over_a_build_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DIR_ENV, str(tmp_path))  # empty: loading from it would raise
    monkeypatch.setenv("XFRM_OFFLOAD_REALIF_HELPERS", "0")
    assert ifaces.load_helper("_wireio") is None
    assert ifaces.load_helper("_tunoffload") is None


@pytest.mark.skipif(realif._wireio is None, reason="_wireio.c not built")
def test_a_build_directory_without_the_helper_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.delenv("XFRM_OFFLOAD_REALIF_HELPERS", raising=False)
    with pytest.raises(ImportError, match="_wireio"):
        ifaces.load_helper("_wireio")


def test_without_the_variables_the_installed_helper_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DIR_ENV, raising=False)
    monkeypatch.delenv("XFRM_OFFLOAD_REALIF_HELPERS", raising=False)
    assert ifaces.load_helper("_wireio") is realif._wireio
