"""The runbook's one plug-in point (runbook_lib/plugins.py): the sandbox's pieces arrive by
entry point, and their refusals become the runbook's own errors."""

from __future__ import annotations

import subprocess
import sys
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


@pytest.mark.parametrize("missing", ["moto", "werkzeug", "pyotp"])
def test_without_the_extra_no_sandbox_plugin_loads(missing: str) -> None:
    """What an install without the ``[sandbox]`` extra sees: each plug-in that needs the
    sandbox names the missing module and the extra, whichever of its modules is absent (the
    sandbox checks for them when imported, not by the accident of an import chain)."""
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from runbook_lib import plugins\n"
        "for name in ('demo', 'sandbox', 'console-actor'):\n"
        "    try:\n"
        "        plugins.load(name, name)\n"
        "    except plugins.PluginMissing as err:\n"
        "        print(err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout + done.stderr
    for line in lines:
        assert f"dependencies are missing ({missing})" in line, line
        assert "pip install 'root-mfa-runbook[sandbox]'" in line, line
