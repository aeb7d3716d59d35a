"""Shared fixtures: sandboxes run as child processes, reached over HTTP like AWS.

One sandbox process per scenario is started on first use and kept for the session; every test
that asks for one gets it freshly reset (moto and the sandbox's own state rebuilt), so tests do
not see each other's changes. All processes are stopped when the session ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from runbook_lib.sandbox import SandboxInfo, sandbox_process


@pytest.fixture(scope="session")
def _sandbox_pool() -> Iterator[dict[str, SandboxInfo]]:
    with contextlib.ExitStack() as stack:
        pool: dict[str, SandboxInfo] = {}
        pool["__stack__"] = stack  # type: ignore[assignment]
        yield pool


@pytest.fixture
def sandbox_factory(_sandbox_pool: dict[str, SandboxInfo]) -> Callable[[str], SandboxInfo]:
    """``sandbox_factory(scenario)`` -> a freshly reset sandbox of that scenario."""
    stack: contextlib.ExitStack = _sandbox_pool["__stack__"]  # type: ignore[assignment]

    def get(scenario: str) -> SandboxInfo:
        if scenario not in _sandbox_pool:
            _sandbox_pool[scenario] = stack.enter_context(sandbox_process(scenario))
            return _sandbox_pool[scenario]
        fresh = SandboxInfo.from_json(_sandbox_pool[scenario].control.reset())
        _sandbox_pool[scenario] = fresh
        return fresh

    return get


@pytest.fixture
def standalone(sandbox_factory: Callable[[str], SandboxInfo]) -> SandboxInfo:
    return sandbox_factory("standalone")


@pytest.fixture
def member(sandbox_factory: Callable[[str], SandboxInfo]) -> SandboxInfo:
    return sandbox_factory("member")


@pytest.fixture
def management(sandbox_factory: Callable[[str], SandboxInfo]) -> SandboxInfo:
    return sandbox_factory("management")
