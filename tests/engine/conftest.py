"""Every engine test runs on both ESP engines: the Python reference and the native one.

The ``esp_engine`` fixture (autouse, module scope so hypothesis accepts it) makes new
SecurityAssociations use the engine of the current parameter; tests that compare the two
engines directly create their SAs with ``engine=`` and do not depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xfrm_offload.engine import native

ENGINES = ["python", "native"] if native.available() else ["python"]


@pytest.fixture(autouse=True, scope="module", params=ENGINES)
def esp_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = native.engine()
    native.set_engine(request.param)
    try:
        yield str(request.param)
    finally:
        native.set_engine(previous)
