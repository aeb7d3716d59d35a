"""Fixtures for the fleet audit's tests: a fleet-N sandbox reached through AWS profiles, and
the FLEET.yml parameters that audit it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runbook_demo import sandbox_profiles
from runbook_sandbox import SandboxInfo
from tests import keys
from tests.conftest import isolate_aws_env


@dataclass
class Fleet:
    info: SandboxInfo
    profiles: dict[str, str]
    runs: Path

    def raw(self, **more: Any) -> dict[str, Any]:
        """FLEET.yml's values for this sandbox (the management account's admin, the test
        operator's key)."""
        return keys.with_keys(
            {
                "management_profile": self.profiles["org-admin"],
                "endpoint_url": self.info.endpoint,
                **more,
            }
        )


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_aws_env(tmp_path, monkeypatch)


@pytest.fixture
def fleet_for(
    sandbox_factory: Callable[[str], SandboxInfo], tmp_path: Path
) -> Iterator[Callable[[str], Fleet]]:
    """``fleet_for("fleet-14")`` -> a freshly reset fleet sandbox with AWS profiles."""
    with contextlib.ExitStack() as stack:

        def get(scenario: str) -> Fleet:
            info = sandbox_factory(scenario)
            profiles = stack.enter_context(sandbox_profiles(info))
            return Fleet(info, profiles, tmp_path / "runs")

        yield get
