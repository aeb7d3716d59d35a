"""`runbook lab` without a browser: the prepared run, the widgets' callbacks, the CLI's
lifecycle (URL printed, account locked, stopped by SIGTERM, sealed so verify accepts it)."""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest

from runbook_lib import lease, widgets
from runbook_lib.creation import create_run
from runbook_lib.errors import GateNotApproved, RunbookError
from runbook_lib.lab import close_lab_run, prepare_lab
from runbook_lib.params import validate
from runbook_lib.plan import STEPS
from runbook_lib.procedure.context import Step, run_plan
from runbook_lib.procedure.facts import RunFacts
from runbook_lib.procedure.gates import ConsoleCheck
from runbook_lib.procedure.vocabulary import Event, Gate
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import verify
from tests import keys
from tests.runbook.helpers import kill_tree

ACCOUNT = "123456789012"
RAW = keys.with_keys({"account_id": ACCOUNT, "change_ticket": "CHG-1234", "dry_run": False})


def _step(tmp_path: Path, name: str = "01-remove-device", risk: bool = True) -> Step:
    """A Step of a fresh interactive run (leased, recorded), the risk already acknowledged."""
    params = validate(keys.approved({**RAW, "mode": "interactive"}, tmp_path / "approvals"))
    record = create_run(params, tmp_path / "runs")
    step = Step(name, params, record, run_plan(params, RunFacts(record.events())))
    if risk:
        step.gates.decide(Event.GATE_APPROVED, Gate.RISK, "interactive", ACCOUNT)
    return step


def _types(step: Step) -> list[str]:
    return [e["type"] for e in step.record.events()]


# ------------------------------------------------------------------------------ prepare_lab
def test_prepare_lab_writes_parameterized_notebooks(tmp_path: Path) -> None:
    record = prepare_lab({**RAW, "mode": "batch", "run_dir": "ignored"}, tmp_path / "runs")
    run = record.load_run()
    assert run["parameters"]["mode"] == "interactive"
    assert record.path.is_absolute() and record.path.parent == (tmp_path / "runs").resolve()
    for name, _ in STEPS:
        path = record.path / "notebooks" / f"{name}.ipynb"
        assert path.stat().st_mode & 0o777 == 0o600
        nb = nbformat.read(path, as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1, name
        source = injected[0].source
        assert 'mode = "interactive"' in source
        assert f'run_dir = "{record.path}"' in source
        assert f'account_id = "{ACCOUNT}"' in source
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    types = [e["type"] for e in record.events()]
    assert types[:2] == ["run.created", "lease.acquired"] and types[-1] == "lab.prepared"
    assert types.count("file.recorded") == len(STEPS)  # the prepared notebooks are on the chain


def test_closing_removes_checkpoints_and_seals_final_after_close_out(tmp_path: Path) -> None:
    record = prepare_lab(RAW, tmp_path / "runs")
    stray = record.path / "notebooks" / ".ipynb_checkpoints"
    stray.mkdir()
    (stray / "00-preflight-checkpoint.ipynb").write_text("{}")
    result = close_lab_run(record)
    assert result["ok"] and not result["final"] and not stray.exists()
    assert lease.holder(ACCOUNT)["run_id"] == record.run_id  # an unfinished run keeps it
    for name, _ in STEPS:  # as if every step had run in the Lab
        record.append(Event.STEP_STARTED, step=name)
        record.append(Event.STEP_FINISHED, step=name)
    result = close_lab_run(record)
    assert result["ok"] and result["final"], result
    assert record.load_run()["status"] == "succeeded"
    assert verify(record.path).ok
    assert lease.holder(ACCOUNT) is None  # sealed final: the account is free


# ------------------------------------------------------------------------------ gate control
def test_confirm_is_enabled_only_by_the_exact_account_id(tmp_path: Path) -> None:
    step = _step(tmp_path)
    facts = {"account": ACCOUNT, "device": "arn:aws:iam::123456789012:mfa/x"}
    ctl = widgets.build_confirmation(step, "remove-device", "Remove", facts, ACCOUNT)
    assert ctl.confirm.disabled
    for wrong in ("", ACCOUNT[:-1], ACCOUNT + "9", "210987654321"):
        ctl.typed.value = wrong
        assert ctl.confirm.disabled, wrong
        ctl.confirm.click()  # a click on a disabled button records nothing
    assert not step.gates.approved("remove-device")
    ctl.typed.value = f" {ACCOUNT} "
    assert not ctl.confirm.disabled
    ctl.confirm.click()
    assert step.gates.approved("remove-device")
    event = [e for e in step.record.events() if e["type"] == "gate.approved"][-1]
    assert event["data"]["typed"] == ACCOUNT and event["data"]["mode"] == "interactive"
    assert event["data"]["facts"] == facts and event["data"]["who"]["os_user"]
    assert ctl.confirm.disabled and ctl.cancel.disabled and ctl.typed.disabled
    assert "Confirmed" in ctl.status.value
    step.gates.require("remove-device")  # passes now


def test_cancel_records_a_denial_and_require_halts(tmp_path: Path) -> None:
    step = _step(tmp_path)
    ctl = widgets.build_confirmation(step, "remove-device", "Remove", {"a": 1}, ACCOUNT)
    ctl.cancel.click()
    assert _types(step)[-1] == "gate.denied"
    assert "Cancelled" in ctl.status.value and ctl.confirm.disabled
    with pytest.raises(GateNotApproved, match="re-run this cell"):
        step.gates.require("remove-device")
    assert _types(step)[-1] == "gate.halted"


def test_require_halts_without_approval_and_a_denial_withdraws_one(tmp_path: Path) -> None:
    step = _step(tmp_path)
    with pytest.raises(GateNotApproved):
        step.gates.require("remove-device")
    first = widgets.build_confirmation(step, "remove-device", "Remove", {}, ACCOUNT)
    first.typed.value = ACCOUNT
    first.confirm.click()
    step.gates.require("remove-device")
    widgets.build_confirmation(step, "remove-device", "Remove", {}, ACCOUNT).cancel.click()
    with pytest.raises(GateNotApproved):
        step.gates.require("remove-device")


def test_a_gate_shows_its_facts_once_widget_or_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control's display data: the widget view, and as its text/plain the facts as text
    (what papermill, nbval and a console show); nothing printed beside it."""
    step = _step(tmp_path)
    facts = {"account": ACCOUNT, "device": "arn:aws:iam::123456789012:mfa/x", "method": "m"}
    box = widgets.confirmation(step, "remove-device", "Remove the device", facts, ACCOUNT)
    assert capsys.readouterr().out == ""
    bundle = box._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id
    text = bundle["text/plain"]
    assert text == str(box)  # what display() prints where there is no IPython
    assert text.count("GATE remove-device: Remove the device") == 1
    for key, value in facts.items():
        assert text.count(f"{key}: {value}") == 1
    assert f"type {ACCOUNT!r}" in text
    assert "runbook-gate" in box._dom_classes
    assert not step.gates.approved("remove-device")


# ------------------------------------------------------------------------------ console step
def test_console_step_shows_the_path_once_then_halts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    step = _step(tmp_path)
    step.gates.decide(Event.GATE_APPROVED, Gate.REMOVE, "interactive", ACCOUNT)
    with pytest.raises(GateNotApproved, match="console step"):
        step.gates.console_step(
            "device-removed-in-console",
            "1. Sign in as the root user.\n2. Remove it.",
            check=None,
        )
    # without IPython, display() prints the control: its text, the instructions once
    out = capsys.readouterr().out
    assert out.count("CONSOLE STEP device-removed-in-console") == 1
    assert out.count("Sign in as the root user") == 1
    assert _types(step)[-1] == "gate.halted"


def test_a_console_control_is_one_output_widget_or_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a kernel the instructions are not printed beside the control: one display, whose
    widget JupyterLab renders and whose text/plain the rest shows."""
    step = _step(tmp_path)
    step.gates.decide(Event.GATE_APPROVED, Gate.REMOVE, "interactive", ACCOUNT)
    shown: list[Any] = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **_: shown.extend(objs))
    with pytest.raises(GateNotApproved):
        step.gates.console_step("device-removed-in-console", "1. Sign in as root.", check=None)
    assert capsys.readouterr().out == ""
    (box,) = shown
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].count("1. Sign in as root.") == 1


def test_every_text_of_the_controls_is_shown_whole(tmp_path: Path) -> None:
    """ipywidgets' defaults cut text: a Button is 148 px wide with an ellipsis, a Label never
    wraps. The controls' buttons size to their label, their status lines wrap, their text
    boxes fit the placeholder and the description. (test_lab.py measures it in Chromium.)"""
    import ipywidgets

    step = _step(tmp_path)
    gate = widgets.build_confirmation(step, "remove-device", "Remove", {"a": 1}, ACCOUNT)
    console = widgets.build_console_step(
        step, "device-removed-in-console", "path", actor=lambda: {}
    )
    actor = [c for c in console.box.children if "runbook-console-actor" in c._dom_classes]
    for button in [gate.confirm, gate.cancel, console.done, *actor]:
        assert button.layout.width == "auto", button.description
    for status in (gate.status, console.status):
        assert isinstance(status, ipywidgets.HTML) and not isinstance(status, ipywidgets.Label)
        assert status.layout.width == "auto" and status.layout.height == "auto"
    for typed in (gate.typed, console.typed):
        assert typed.style.description_width == "initial"
        assert typed.layout.min_width
    # a status message is shown whole and as text (escaped), never as markup
    long = "Not recorded: <the record> refused it & " + "x" * 300
    gate.typed.value = ACCOUNT
    monkeypatch_decide = step.gates.decide

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RunbookError(long.removeprefix("Not recorded: "))

    step.gates.decide = refuse  # type: ignore[method-assign]
    gate.confirm.click()
    step.gates.decide = monkeypatch_decide  # type: ignore[method-assign]
    assert gate.status.value == html.escape(long)


def test_console_done_records_then_verifies_with_an_indicator(tmp_path: Path) -> None:
    step = _step(tmp_path)
    step.gates.decide(Event.GATE_APPROVED, Gate.REMOVE, "interactive", ACCOUNT)
    seen: list[str] = []

    def verify_fn(indicator: Any) -> bool:
        indicator("checking ...")
        seen.append("called")
        return True

    ctl = widgets.build_console_step(step, "device-removed-in-console", "path", verify_fn)
    assert ctl.done.disabled
    ctl.typed.value = "not yet"
    assert ctl.done.disabled
    ctl.typed.value = "Done"
    assert not ctl.done.disabled
    ctl.done.click()
    # Done is a claim; the gate passes only on the API's verdict (verify_fn recorded none)
    assert seen == ["called"] and ctl.status.value == "checking ..."
    assert step.facts.claimed("device-removed-in-console")
    assert not step.gates.approved("device-removed-in-console")
    with pytest.raises(GateNotApproved, match="claimed but the AWS API has not confirmed it"):
        step.gates.require("device-removed-in-console")


def test_a_claim_passes_only_when_the_api_verifies_it(tmp_path: Path) -> None:
    step = _step(tmp_path)
    step.gates.decide(Event.GATE_APPROVED, Gate.REMOVE, "interactive", ACCOUNT)
    gone = ConsoleCheck("the device gone", "Look in the console.", 5.0, lambda: True, bool)
    ctl = widgets.build_console_step(step, "device-removed-in-console", "path", check=gone)
    ctl.typed.value = "done"
    ctl.done.click()
    assert [e["type"] for e in step.record.events()][-2:] == ["human.claimed", "human.verified"]
    assert step.gates.approved("device-removed-in-console")
    step.gates.require("device-removed-in-console")
    # a later false claim: contradicted, and the gate closes again
    still = ConsoleCheck("the device gone", "Look in the console.", 0.0, lambda: False, bool)
    ctl = widgets.build_console_step(step, "device-removed-in-console", "path", check=still)
    step.gates.decide(Event.HUMAN_CLAIMED, "device-removed-in-console", "interactive", "done")
    assert not widgets.verify_console_step(step, "device-removed-in-console", lambda m: None, still)
    assert [e["type"] for e in step.record.events()][-1] == "human.contradicted"
    assert not step.gates.approved("device-removed-in-console")


def test_sandbox_actor_button_does_the_step_records_it_and_verifies(tmp_path: Path) -> None:
    step = _step(tmp_path)
    calls: list[str] = []

    def actor() -> dict[str, Any]:
        calls.append("actor")
        return {"removed": "arn:aws:iam::123456789012:mfa/x"}

    def verify_fn(indicator: Any) -> bool:
        calls.append("verify")
        return True

    ctl = widgets.build_console_step(step, "device-removed-in-console", "path", verify_fn, actor)
    (button,) = [c for c in ctl.box.children if "runbook-console-actor" in c._dom_classes]
    assert not step.gates.approved("device-removed-in-console")
    button.click()
    assert calls == ["actor", "verify"]
    claimed = [e for e in step.record.events() if e["type"] == "human.claimed"]
    assert claimed[-1]["data"]["performed_by"] == "sandbox console actor"
    assert not step.gates.approved("device-removed-in-console")  # verify_fn gave no verdict
    # without an actor (a real account) there is no such button
    plain = widgets.build_console_step(step, "device-removed-in-console", "path", verify_fn)
    assert not [c for c in plain.box.children if "runbook-console-actor" in c._dom_classes]


def test_console_verification_polls_and_times_out_with_what_to_check(tmp_path: Path) -> None:
    step = _step(tmp_path)
    polls = iter([False, False, True])
    check = ConsoleCheck("the thing", "Look at X.", 30.0, lambda: next(polls), bool)
    messages: list[str] = []
    assert widgets.verify_console_step(step, "g", messages.append, check, sleep=lambda s: None)
    assert any("Checking through the AWS API for the thing" in m for m in messages)
    assert "Verified" in messages[-1]
    never = ConsoleCheck("the other thing", "Look at Y.", 0.0, lambda: False, bool)
    messages.clear()
    assert not widgets.verify_console_step(step, "g", messages.append, never, sleep=lambda s: 0)
    assert "did not show the other thing" in messages[-1] and "Look at Y." in messages[-1]
    outcomes = [e["type"] for e in step.record.events() if e["type"].startswith("human.")]
    assert outcomes == ["human.verified", "human.contradicted"]


# ------------------------------------------------------------------------------ CLI lifecycle
@pytest.mark.slow
def test_cli_lab_prints_the_url_locks_the_account_and_seals_on_sigterm(tmp_path: Path) -> None:
    params = tmp_path / "params.yml"
    params.write_text(json.dumps(RAW))
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "runbook_lib.cli", "lab", "-f", str(params)]
    proc = subprocess.Popen(
        [*cmd, "--runs-dir", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "/lab/tree/00-preflight.ipynb?token=" in url
        assert "Open 00-preflight.ipynb" in proc.stdout.readline()  # where the run stands
        base, token = url.split("/lab/tree/00-preflight.ipynb?token=")
        request = urllib.request.Request(
            f"{base}/api/contents", headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            names = sorted(item["name"] for item in json.load(response)["content"])
        assert names == [f"{name}.ipynb" for name, _ in STEPS]
        # the one kernel Lab offers is this interpreter's (no kernelspec directory is read)
        request = urllib.request.Request(
            f"{base}/api/kernelspecs", headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            specs = json.load(response)["kernelspecs"]
        assert list(specs) == ["python3"]
        assert specs["python3"]["spec"]["argv"][:3] == [sys.executable, "-m", "ipykernel_launcher"]
        with pytest.raises(urllib.error.HTTPError):  # the token is required
            urllib.request.urlopen(f"{base}/api/contents", timeout=10)  # noqa: S310
        # no local user can read the token from a command line (ps): it is in Lab's environment
        assert not _processes_naming(token), "the Lab token is on a process's command line"
        assert _processes_naming(str(runs)), "JupyterLab is running for the run"
        holder = lease.holder(ACCOUNT)
        assert holder is not None, "the account is leased to the run"
        assert lease.is_executing(holder["run_id"]), "the run is busy while Lab serves it"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        kill_tree(proc)  # a failed assertion above: JupyterLab must not outlive it
    assert proc.returncode == 0, err
    assert "checkpoint-sealed" in out and "stopped before 00-preflight" in out, out
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert f"runbook lab --reopen {run_dir}" in out and f"runbook abandon {run_dir}" in out
    assert not lease.is_executing(run_dir.name)
    assert lease.holder(ACCOUNT)["run_id"] == run_dir.name  # unfinished: still leased
    report = verify(run_dir)
    assert report.ok and not report.final, report.problems
    types = [e["type"] for e in RunRecord.open(run_dir).events()]
    assert types.index("lab.started") < types.index("lab.stopped")
    assert types[-1] == "file.written"  # the report, sealed with the checkpoint
    cli = [sys.executable, "-m", "runbook_lib.cli"]
    sealed = subprocess.run(
        [*cli, "seal", str(run_dir)], capture_output=True, text=True, timeout=60
    )
    assert sealed.returncode == 1 and "has not finished" in sealed.stderr
    assert "runbook abandon" in sealed.stderr
    ended = subprocess.run(
        [*cli, "abandon", str(run_dir), "--reason", "tried the lab"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ended.returncode == 0, ended.stderr
    final = verify(run_dir)
    assert final.ok and final.final
    assert lease.holder(ACCOUNT) is None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _processes_naming(run_dir):
        time.sleep(0.2)
    assert not _processes_naming(run_dir), "JupyterLab must be gone"


def _processes_naming(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


# ------------------------------------------------------------------------------ stops in a kernel
def _run_in_kernel(client: Any, code: str) -> tuple[str, list[dict[str, Any]]]:
    """Execute ``code`` as a cell; the reply's status and the outputs a frontend would show."""
    outputs: list[dict[str, Any]] = []

    def collect(msg: dict[str, Any]) -> None:
        if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
            outputs.append({"type": msg["msg_type"], **msg["content"]})

    reply = client.execute_interactive(code, output_hook=collect, timeout=60)
    return str(reply["content"]["status"]), outputs


def _shown(outputs: list[dict[str, Any]]) -> str:
    return "\n".join(
        str(o.get("text", ""))
        + str(o.get("data", {}).get("text/plain", ""))
        + "\n".join(o.get("traceback", []))
        for o in outputs
    )


def test_the_kernel_shows_a_halt_as_a_notice_and_a_refusal_as_its_message(tmp_path: Path) -> None:
    """What JupyterLab shows (the kernel's messages): a halt is a notice, no error output, no
    traceback; another runbook error is its message alone; anything else keeps its traceback.
    Every one still ends the cell in error, so Run All stops there."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    km.start_kernel()
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        status, out = _run_in_kernel(
            client,
            "from runbook_lib.procedure.context import show_stops\n"
            "from runbook_lib.errors import GateNotApproved\n"
            "from runbook_lib.procedure.lifecycle import StepRefused\n"
            "show_stops()",
        )
        assert status == "ok" and out == []
        status, out = _run_in_kernel(
            client, "raise GateNotApproved('remove-device', 'confirm it, then re-run this cell')"
        )
        assert status == "error"  # Run All stops at the halt
        assert [o["type"] for o in out] == ["display_data"]
        assert "HALTED at gate remove-device: confirm it, then re-run this cell." in _shown(out)
        assert "text/html" in out[0]["data"]
        assert "Traceback" not in _shown(out) and "File " not in _shown(out)
        status, out = _run_in_kernel(
            client, "raise StepRefused('01-remove-device cannot start: 00 has not finished')"
        )
        assert status == "error"
        assert [o["type"] for o in out] == ["error"] and out[0]["ename"] == "StepRefused"
        assert "00 has not finished" in _shown(out)
        assert "Traceback" not in _shown(out) and "File " not in _shown(out)
        assert len(out[0]["traceback"]) == 1
        status, out = _run_in_kernel(client, "def f():\n    return {}['x']\nf()")
        assert status == "error" and [o["type"] for o in out] == ["error"]
        assert out[0]["ename"] == "KeyError" and len(out[0]["traceback"]) > 1  # a bug: in full
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
