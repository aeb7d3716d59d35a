"""Fixtures for the runbook library's tests: AwsContexts for sandbox principals.

Every test reaches the sandbox over HTTP through ``AwsContext`` exactly as the runbook reaches
AWS. Sandboxes come from ``tests/conftest.py`` (one child process per scenario, reset per test).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import botocore.session
import pytest

from runbook_lib.aws.session import shared_loader
from runbook_sandbox import SandboxInfo
from tests.conftest import isolate_aws_env

from .helpers import ContextFactory, make_context


@pytest.fixture(scope="module", autouse=True)
def _parse_service_models_once() -> Iterator[None]:
    """Speed only: AwsContexts share the process's loader already (aws.session.new_session);
    the tests' own boto3 sessions (SandboxInfo.client) share it too while tests run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", lambda data_path=None: shared_loader())
        yield


@pytest.fixture(autouse=True)
def _isolated_aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's AWS profiles and credentials must not leak into the tests."""
    isolate_aws_env(tmp_path, monkeypatch)
    yield


@pytest.fixture
def aws_for() -> ContextFactory:
    """``aws_for(info, "org-admin", max_attempts=2)`` -> AwsContext for that principal."""
    return make_context


@pytest.fixture
def since() -> dt.datetime:
    """A start time for CloudTrail lookups, taken before the test acts."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)


@pytest.fixture
def sandbox_factory(
    sandbox_factory: Callable[[str], SandboxInfo],
) -> Callable[[str], SandboxInfo]:
    """The library's finders look CloudTrail up once (the procedure polls them): these tests
    pin what they find, so their sandboxes deliver events at once (delay 0). The runbook's
    end-to-end tests run with the sandbox's default delay and poll."""

    def get(scenario: str) -> SandboxInfo:
        info = sandbox_factory(scenario)
        info.control.set_cloudtrail_delay(0)
        return info

    return get
