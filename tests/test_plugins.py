"""The runbook's one plug-in point (runbook_lib/plugins.py): the sandbox's pieces arrive by
entry point, and their refusals become the runbook's own errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runbook_lib import plugins
from runbook_lib.errors import ParameterError, RunbookError
from runbook_lib.procedure.common import console_actor


def test_each_plugin_name_resolves_to_the_sandbox_or_the_demo() -> None:
    import runbook_demo
    import runbook_sandbox.actor
    import runbook_sandbox.cli

    assert plugins.load("console-actor", "x") is runbook_sandbox.actor.ConsoleActor
    assert plugins.load("sandbox", "x") is runbook_sandbox.cli.main
    assert plugins.load("demo", "x") is runbook_demo.run_demo


def test_an_unknown_plugin_names_the_extra_to_install() -> None:
    with pytest.raises(plugins.PluginMissing, match=r"root-mfa-runbook\[sandbox\]") as caught:
        plugins.load("no-such-plugin", "`runbook frobnicate`")
    assert isinstance(caught.value, RunbookError)
    assert "`runbook frobnicate` needs the local AWS sandbox" in str(caught.value)


def test_a_plugin_whose_dependencies_are_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Point:
        def load(self) -> object:
            raise ModuleNotFoundError("No module named 'moto'", name="moto")

    monkeypatch.setattr(plugins, "entry_points", lambda group, name: [Point()])
    with pytest.raises(plugins.PluginMissing, match=r"dependencies are missing \(moto\)"):
        plugins.load("demo", "`runbook demo`")


def test_the_actor_refusing_an_endpoint_is_a_parameter_problem() -> None:
    step = SimpleNamespace(params=SimpleNamespace(endpoint_url=None, profile=None))
    with pytest.raises(ParameterError, match="sandbox_actor=true needs endpoint_url"):
        console_actor(step)  # type: ignore[arg-type]
