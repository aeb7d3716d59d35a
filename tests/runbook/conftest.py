"""Fixtures for the runbook's end-to-end tests: sandboxes with AWS profiles, run helpers.

Runs execute the real step notebooks with papermill (``runbook_lib.runner``) against the local
sandbox, reached over HTTP through ordinary AWS profiles, exactly as ``runbook demo`` does.
Sandboxes come from ``tests/conftest.py`` (one child process per scenario, reset per test).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runbook_demo import sandbox_profiles
from runbook_sandbox import SandboxInfo
from tests.conftest import isolate_aws_env

from .helpers import Env


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's AWS configuration must not reach the runs (nor their kernels)."""
    isolate_aws_env(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def env_for(
    sandbox_factory: Callable[[str], SandboxInfo], tmp_path: Path, _isolated_env: None
) -> Iterator[Callable[[str], Env]]:
    """``env_for(scenario)`` -> Env: a freshly reset sandbox, its principals as AWS profiles
    (``sandbox-admin``, ``sandbox-org-admin``...) for the rest of the test, a runs directory."""
    with contextlib.ExitStack() as stack:

        def get(scenario: str) -> Env:
            info = sandbox_factory(scenario)
            profiles = stack.enter_context(sandbox_profiles(info))
            return Env(info, profiles, tmp_path / "runs")

        yield get
