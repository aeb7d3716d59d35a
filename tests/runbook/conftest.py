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

from runbook_lib.demo import sandbox_profiles
from runbook_lib.sandbox import SandboxInfo

from .helpers import Env

_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_RETRY_MODE",
    "AWS_MAX_ATTEMPTS",
    "RUNBOOK_NOTEBOOKS",
)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's AWS configuration must not reach the runs (nor their kernels)."""
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
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
