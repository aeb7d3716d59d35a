"""The whole procedure in interactive mode, as an engineer does it in JupyterLab, on the
sandbox: each notebook's cells in order; at each gate the engineer types the account id and
presses Confirm; at each console step the (sandbox) console actor does it; the halted cell is
re-run; the record is sealed and verifies. The widgets' own callbacks are driven (no browser:
tests/browser/test_lab.py proves the same controls work in Chromium)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook_demo import demo_parameters, sandbox_profiles
from runbook_lib import lease
from runbook_lib.errors import GateNotApproved
from runbook_lib.lab import close_lab_run, prepare_lab
from runbook_lib.procedure import bind, close_out, open_step, preflight, remove, sign_in
from runbook_lib.procedure import verify_removal as verify_step
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import verify
from runbook_sandbox import SandboxInfo
from tests import keys

Cell = Callable[[Any], Any]

# each notebook's code cells after open_step, as the notebooks call them
NOTEBOOKS: list[tuple[str, list[Cell]]] = [
    (
        "00-preflight",
        [
            preflight.identity,
            preflight.account,
            preflight.state,
            preflight.device,
            preflight.plan_check,
            preflight.acknowledge,
        ],
    ),
    ("01-remove-device", [remove.approve, remove.remove]),
    ("02-verify-removal", [verify_step.verify]),
    ("03-first-sign-in", [sign_in.sign_in]),
    ("04-rebind", [bind.decide, bind.rebind]),
    ("05-close-out", [close_out.close_out]),
]


def _boxes(value: Any) -> Iterator[Any]:
    yield value
    for child in getattr(value, "children", ()):
        yield from _boxes(child)


def _find(widgets: list[Any], css: str) -> Any:
    for root in widgets:
        for widget in _boxes(root):
            if css in getattr(widget, "_dom_classes", ()):
                return widget
    return None


@contextlib.contextmanager
def _captured_display(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    shown: list[Any] = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **_: shown.extend(objs))
    yield shown


def _operate(widgets: list[Any], account: str) -> str:
    """What the engineer does with the control on screen; returns what was done."""
    confirm = _find(widgets, "runbook-gate-confirm")
    if confirm is not None:
        typed = _find(widgets, "runbook-gate-typed")
        assert confirm.disabled, "Confirm must be disabled before the account id is typed"
        typed.value = account
        assert not confirm.disabled
        confirm.click()
        return "confirmed"
    actor = _find(widgets, "runbook-console-actor")
    assert actor is not None, "a halted console step must offer its control"
    actor.click()
    return "console step done"


@pytest.mark.parametrize(
    ("scenario", "method"), [("member", "assume-root"), ("standalone", "console")]
)
def test_engineer_does_the_whole_procedure_in_interactive_mode(
    sandbox_factory: Callable[[str], SandboxInfo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    method: str,
) -> None:
    info = sandbox_factory(scenario)
    acct = info.target_account_id
    before = {d["serial"] for d in info.control.state(acct)["devices"]}
    with sandbox_profiles(info) as profiles, _captured_display(monkeypatch) as shown:
        raw = keys.approved(
            {**demo_parameters(info, method, profiles), "mode": "interactive"},
            tmp_path / "approvals",
        )
        record = prepare_lab(raw, tmp_path / "runs")
        run_params = {**raw, "mode": "interactive", "run_dir": str(record.path)}
        done: list[str] = []
        for name, cells in NOTEBOOKS:
            step = open_step(name, **run_params)
            for cell in cells:
                for _ in range(3):  # run the cell; on a halt operate the control and re-run
                    shown.clear()
                    try:
                        result = cell(step)
                    except GateNotApproved:
                        done.append(_operate(shown, acct))
                        continue
                    if _find([result], "runbook-gate-confirm") is not None:
                        done.append(_operate([result], acct))  # a gate cell shows its control
                    break
                else:
                    pytest.fail(f"{name}: {cell.__name__} kept halting")
            step.finish()
        close_lab_run(record)
    after = {d["serial"] for d in info.control.state(acct)["devices"]}
    removed = RunRecord.open(record.path).load_run()["device"]
    assert removed in before and removed not in after and after - before
    assert "confirmed" in done and "console step done" in done
    report = verify(record.path)
    assert report.ok and report.final, report.problems
    types = [e["type"] for e in RunRecord.open(record.path).events()]
    assert types.index("gate.approved") < types.index("evidence.deactivation")
    modes = {
        e["data"].get("mode")
        for e in RunRecord.open(record.path).events()
        if e["type"] in ("gate.approved", "human.claimed")
    }
    assert modes == {"interactive"}
    verdicts = [
        e["type"] for e in RunRecord.open(record.path).events() if e["type"].startswith("human.")
    ]
    assert verdicts and "human.contradicted" not in verdicts
    assert lease.holder(acct) is None  # sealed final: the account is free again
