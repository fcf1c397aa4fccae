"""The answered sheet the tests of this folder share, built once a session (`sheet_build.build`)."""

from __future__ import annotations

import pytest

from sheet_build import Built, build


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("sheet"))
