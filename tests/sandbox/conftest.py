"""Sandbox contract tests look CloudTrail up right after the calls they make: they pin the
events' shape, not their timing, so their sandboxes deliver events at once (delay 0). The
timing contract (tests/sandbox/test_cloudtrail_timing.py) asks for ``default_delivery`` and gets
the sandbox's default delay (0.3 s), as the runbook's end-to-end tests do.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runbook_sandbox import SandboxInfo


@pytest.fixture
def default_delivery() -> None:
    """Ask for it to keep the sandbox's default CloudTrail delivery delay."""


@pytest.fixture
def sandbox_factory(
    sandbox_factory: Callable[[str], SandboxInfo], request: pytest.FixtureRequest
) -> Callable[[str], SandboxInfo]:
    if "default_delivery" in request.fixturenames:
        return sandbox_factory

    def get(scenario: str) -> SandboxInfo:
        info = sandbox_factory(scenario)
        info.control.set_cloudtrail_delay(0)
        return info

    return get
