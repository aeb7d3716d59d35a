"""Keys for the approval tests: made once per session with the real ssh-keygen."""

from __future__ import annotations

import pytest

from .helpers import Keys, make_keys


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))
