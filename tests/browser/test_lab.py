"""`runbook lab` in a real browser: Debian's chromium driven by Playwright.

The member sandbox, method assume-root (the removal is an API action, so "the AWS state changed
only after the click" is checked through the sandbox's state). JupyterLab runs 00-preflight
and 01-remove-device; the confirmations are typed and clicked like an operator would.
Screenshots go to test-artifacts/ (the README's docs/lab-gate.png is copied from there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook_demo import demo_parameters, sandbox_profiles
from runbook_lib.lab import LabServer, lab_server, prepare_lab
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import verify
from runbook_lib.runner import abandon
from runbook_sandbox import SandboxInfo
from tests import keys

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; "
        "`make test` installs it); in CI this test always runs",
    ),
]


def _wait(what: str, ok: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = ok()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _events(run_dir: Path, type: str, gate: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in RunRecord.open(run_dir).events()
        if e["type"] == type and (gate is None or e["data"].get("gate") == gate)
    ]


def _serials(info: SandboxInfo) -> set[str]:
    return {d["serial"] for d in info.control.state(info.target_account_id)["devices"]}


def _kernel_pids(private_dir: Path) -> list[int]:
    """Processes whose command line names a file in the Lab's private directory (kernels)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(private_dir) in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS, timeout=30_000
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def _open(page: Any, lab: LabServer, name: str, in_lab: bool = False) -> Any:
    """Open a notebook and wait for its kernel to be connected and idle; the locator of the
    notebook's own panel (Lab may reopen earlier tabs). A page load of its URL, or
    ``in_lab``: a double click in Lab's file browser, as the operator opens the next step
    (no page load: Lab's ~4 s start is not repeated)."""
    if in_lab:
        page.locator(".jp-DirListing-item", has_text=name).first.dblclick()
    else:
        page.goto(f"{lab.base}/lab/tree/{name}?token={lab.token}")
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").filter(
        has=page.locator(f".jp-Cell:has-text('{name.removesuffix('.ipynb')}')")
    )
    panel.locator(".jp-Cell").first.wait_for()

    def ready() -> bool:
        for session in lab.api("GET", "/api/sessions") or []:
            kernel = session.get("kernel") or {}
            if session.get("path") == name:
                return bool(
                    kernel.get("execution_state") == "idle" and kernel.get("connections", 0) >= 1
                )
        return False

    _wait(f"the kernel of {name} to be connected and idle", ready, 60)
    # the frontend's kernel_info handshake follows the connection
    panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    page.wait_for_timeout(1000)
    return panel


def _save(page: Any) -> None:
    """File > Save (Ctrl+S), then wait until Lab says the document is saved (its tab is no
    longer dirty): the next page load reads the notebook, with its outputs, from disk."""
    page.keyboard.press("Control+s")
    page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").wait_for(
        state="detached", timeout=15_000
    )


def _run_all(page: Any, panel: Any) -> None:
    """Run > Run All Cells (no default shortcut; the item can be briefly disabled)."""
    panel.locator(".jp-Cell").first.click()
    deadline = time.monotonic() + 30
    while True:
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        item = page.locator(".lm-Menu-item").filter(
            has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))
        )
        item.wait_for()
        if "lm-mod-disabled" not in (item.get_attribute("class") or ""):
            item.click()
            return
        page.keyboard.press("Escape")
        if time.monotonic() > deadline:
            raise AssertionError("Run All Cells stayed disabled")
        time.sleep(0.3)


def _confirm(page: Any, panel: Any, account_id: str, shot: str | None = None) -> None:
    gate = panel.locator(".runbook-gate").last
    confirm = gate.locator("button.runbook-gate-confirm")
    confirm.wait_for()
    assert confirm.is_disabled(), "Confirm must be disabled before the account id is typed"
    field = gate.locator(".runbook-gate-typed input")
    field.fill(account_id[:-1])
    page.wait_for_timeout(300)
    assert confirm.is_disabled(), "a partial account id must not enable Confirm"
    field.fill(account_id)
    _wait("Confirm to be enabled", confirm.is_enabled, 10)
    if shot:
        gate.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / shot))
    confirm.click()
    _wait(
        "the control to say Confirmed",
        lambda: "Confirmed" in gate.locator(".runbook-gate-status").inner_text(),
        15,
    )
    _assert_whole(gate)  # the long "Confirmed by ARN at TIME ..." line included


def _assert_whole(control: Any) -> None:
    """Every button label and status line of a control is shown whole: none is wider than
    its box (ipywidgets' defaults cut them with an ellipsis)."""
    cut = control.evaluate(
        """el => [...el.querySelectorAll('button, .runbook-gate-status, .runbook-console-status')]
            .filter(e => e.scrollWidth > e.clientWidth + 1)
            .map(e => e.textContent)"""
    )
    assert cut == [], f"cut off: {cut}"


def _rerun(page: Any, panel: Any, text: str) -> None:
    """Re-run the code cell showing ``text`` (Ctrl+Enter), as the operator does after a halt."""
    cell = panel.locator(".jp-CodeCell", has_text=text)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")


def _member_lab_run(
    info: SandboxInfo, profiles: dict[str, str], tmp_path: Path, sandbox_actor: bool
) -> tuple[dict[str, Any], Path]:
    """A prepared lab run on the member sandbox: assume-root, interactive, not a dry run."""
    raw = demo_parameters(info, "assume-root", profiles)
    raw.update(mode="interactive", sandbox_actor=sandbox_actor, dry_run=False)
    raw = keys.approved(raw, tmp_path / "approvals")
    return raw, prepare_lab(raw, tmp_path / "runs").path


def test_lab_gates_in_chromium(
    sandbox_factory: Callable[[str], SandboxInfo], tmp_path: Path, browser_page: Any
) -> None:
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    info = sandbox_factory("member")
    acct = info.target_account_id
    page = browser_page
    with sandbox_profiles(info) as profiles:
        raw, run_dir = _member_lab_run(info, profiles, tmp_path, sandbox_actor=False)
        serial = raw["device_serial"]
        with lab_server(run_dir) as lab:
            private = lab.private_dir
            try:
                # ---- 00 preflight: Run All without confirming: the step must not finish
                panel = _open(page, lab, "00-preflight.ipynb")
                _run_all(page, panel)
                _wait(
                    "00-preflight to halt at its finish",
                    lambda: (
                        _step_events(run_dir, "step.halted", "00-preflight")
                        or _events(run_dir, "step.error")
                    ),
                    60,
                )
                assert not _events(run_dir, "step.error"), _events(run_dir, "step.error")
                assert not _events(run_dir, "gate.approved", "risk-acknowledged")
                assert not _step_events(run_dir, "step.finished", "00-preflight")
                _save(page)

                # ---- 01 before 00 finished: refuses to start, nothing acts
                panel = _open(page, lab, "01-remove-device.ipynb", in_lab=True)
                _run_all(page, panel)
                opener = panel.locator(".jp-CodeCell", has_text="open_step(")
                _wait(
                    "01 to refuse to start",
                    lambda: "has not finished" in opener.locator(".jp-OutputArea").inner_text(),
                    90,
                )
                refused = opener.locator(".jp-OutputArea").inner_text()
                assert "Traceback" not in refused and "site-packages" not in refused, refused
                assert not _step_events(run_dir, "step.started", "01-remove-device")
                assert serial in _serials(info), "the device must still be there"
                _save(page)

                # ---- back in 00: confirm the risk acknowledgement, re-run its last cell
                panel = _open(page, lab, "00-preflight.ipynb")
                _confirm(page, panel, acct)
                approved = _events(run_dir, "gate.approved", "risk-acknowledged")
                assert approved and approved[-1]["data"]["typed"] == acct
                _rerun(page, panel, "step.finish()")
                _finish(run_dir, "00-preflight")
                page.screenshot(path=str(ARTIFACTS / "lab-00-preflight-confirmed.png"))
                _save(page)

                # ---- 01 remove: Run All before confirming: the action must halt
                panel = _open(page, lab, "01-remove-device.ipynb")
                _run_all(page, panel)
                _wait(
                    "the removal action to halt",
                    lambda: _events(run_dir, "gate.halted", "remove-device"),
                    60,
                )
                action = panel.locator(".jp-CodeCell", has_text="remove.remove(step)")
                _wait(
                    "the halt's notice in the action cell's output",
                    lambda: (
                        "HALTED at gate remove-device"
                        in action.locator(".jp-OutputArea").inner_text()
                    ),
                    20,
                )
                shown = action.locator(".jp-OutputArea").inner_text()
                assert "Traceback" not in shown and "site-packages" not in shown, shown
                assert "re-run this cell" in shown
                _assert_whole(panel.locator(".runbook-gate").last)
                assert not _events(run_dir, "action.started")
                assert serial in _serials(info), "the device must still be there"
                page.screenshot(path=str(ARTIFACTS / "lab-01-halted.png"))

                _confirm(page, panel, acct, shot="lab-01-gate-typed.png")
                assert _events(run_dir, "gate.approved", "remove-device")
                assert serial in _serials(info), "confirming alone must not remove the device"

                # re-run the action cell: now the removal happens
                action.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Control+Enter")
                _wait("the device to be removed", lambda: serial not in _serials(info), 60)
                _wait(
                    "the removal to be recorded",
                    lambda: _events(run_dir, "action.remove-device"),
                    30,
                )
                removed = _events(run_dir, "action.remove-device")[-1]["data"]
                assert removed.get("serial", serial) == serial
                halt_seq = _events(run_dir, "gate.halted", "remove-device")[0]["seq"]
                ok_seq = _events(run_dir, "gate.approved", "remove-device")[0]["seq"]
                act_seq = _events(run_dir, "action.started")[0]["seq"]
                assert halt_seq < ok_seq < act_seq
                page.screenshot(path=str(ARTIFACTS / "lab-01-removed.png"))
                # let Lab save the notebooks into the run (File > Save would also do)
                _save(page)
                page.wait_for_timeout(500)
                kernels = lab.kernels()
                assert kernels, "JupyterLab should have started kernels"
                assert _kernel_pids(private), "kernel processes should be running"
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "lab-failure.png"))
                raise
        lab_process = lab.process

    # every process is stopped: JupyterLab and its kernels
    assert lab_process.poll() is not None
    _wait("the kernels to exit", lambda: not _kernel_pids(private), 15)
    # the record: checkpoint-sealed when Lab stopped (close-out not run), then ended on purpose
    assert not list(run_dir.rglob(".ipynb_checkpoints"))
    report = verify(run_dir)
    assert report.ok, report.problems
    saved = json.loads((run_dir / "notebooks" / "01-remove-device.ipynb").read_text())
    assert any(c.get("outputs") for c in saved["cells"]), "Lab saved the outputs into the run"
    result = abandon(run_dir, "browser test: stops after the removal")
    assert result["ok"] and result["final"], result
    shutil.copy(ARTIFACTS / "lab-01-gate-typed.png", ARTIFACTS / "lab-gate.png")
    assert time.monotonic() - started < 120


def _step_events(run_dir: Path, type: str, step: str) -> list[dict[str, Any]]:
    return [e for e in RunRecord.open(run_dir).events() if e["type"] == type and e["step"] == step]


def _finish(run_dir: Path, step: str, timeout: float = 60) -> None:
    _wait(
        f"{step} to finish",
        lambda: (
            _step_events(run_dir, "step.finished", step)
            or _step_events(run_dir, "step.error", step)
        ),
        timeout,
    )
    assert not _step_events(run_dir, "step.error", step), _step_events(run_dir, "step.error", step)


def _console_step_by_actor(page: Any, panel: Any, run_dir: Path, gate: str, cell: str) -> None:
    """A console step in the sandbox: the cell halted and shows its control; the engineer lets
    the simulated console actor do it, waits for the API check, then re-runs the cell."""
    _wait(f"{gate} to halt", lambda: _events(run_dir, "gate.halted", gate), 60)
    control = panel.locator(".runbook-console").last
    control.wait_for()
    _assert_whole(control)
    # the instructions once: in the control, not printed beside it too
    line = next(
        x.strip()
        for x in _events(run_dir, "gate.halted", gate)[-1]["data"]["instructions"].splitlines()
        if x.strip()
    )
    output = panel.locator(".jp-CodeCell", has_text=cell).locator(".jp-OutputArea")
    _wait("the halt's notice", lambda: f"HALTED at gate {gate}" in output.inner_text(), 20)
    assert output.inner_text().count(line) == 1, output.inner_text()
    control.locator("button.runbook-console-actor").click()
    _wait(
        f"{gate} to be verified through the API",
        lambda: "Verified" in control.locator(".runbook-console-status").inner_text(),
        60,
    )
    _assert_whole(control)
    assert _events(run_dir, "human.claimed", gate) and _events(run_dir, "human.verified", gate)
    _rerun(page, panel, cell)


def test_whole_procedure_in_chromium(
    sandbox_factory: Callable[[str], SandboxInfo], tmp_path: Path, browser_page: Any
) -> None:
    """An engineer does the whole procedure in JupyterLab on the sandbox: every notebook, every
    gate typed and clicked, the console steps done by the sandbox's console actor from their
    controls; stopping Lab seals the record for good and it verifies."""
    ARTIFACTS.mkdir(exist_ok=True)
    info = sandbox_factory("member")
    acct = info.target_account_id
    page = browser_page
    with sandbox_profiles(info) as profiles:
        raw, run_dir = _member_lab_run(info, profiles, tmp_path, sandbox_actor=True)
        serial = raw["device_serial"]
        with lab_server(run_dir) as lab:
            try:
                panel = _open(page, lab, "00-preflight.ipynb")
                _run_all(page, panel)
                _wait(
                    "00 to halt", lambda: _events(run_dir, "gate.halted", "risk-acknowledged"), 60
                )
                _confirm(page, panel, acct)
                _rerun(page, panel, "step.finish()")
                _finish(run_dir, "00-preflight")
                _save(page)

                panel = _open(page, lab, "01-remove-device.ipynb", in_lab=True)
                _run_all(page, panel)
                _wait(
                    "the removal to halt",
                    lambda: _events(run_dir, "gate.halted", "remove-device"),
                    60,
                )
                _confirm(page, panel, acct)
                _rerun(page, panel, "remove.remove(step)")
                _wait("the device to be removed", lambda: serial not in _serials(info), 60)
                _wait("the removal record", lambda: _events(run_dir, "action.remove-device"), 30)
                _rerun(page, panel, "step.finish()")
                _finish(run_dir, "01-remove-device")
                _save(page)

                for name in ("02-verify-removal",):
                    panel = _open(page, lab, f"{name}.ipynb", in_lab=True)
                    _run_all(page, panel)
                    _finish(run_dir, name)
                    _save(page)

                panel = _open(page, lab, "03-first-sign-in.ipynb", in_lab=True)
                _run_all(page, panel)
                _console_step_by_actor(
                    page, panel, run_dir, "signed-in-with-email-code", "sign_in.sign_in(step)"
                )
                _wait(
                    "the sign-in evidence",
                    lambda: _events(run_dir, "evidence.console-login"),
                    60,
                )
                _rerun(page, panel, "step.finish()")
                _finish(run_dir, "03-first-sign-in")
                _save(page)

                panel = _open(page, lab, "04-rebind.ipynb", in_lab=True)
                _run_all(page, panel)
                _console_step_by_actor(
                    page, panel, run_dir, "new-device-bound-in-console", "bind.rebind(step)"
                )
                _wait("the EnableMFADevice evidence", lambda: _events(run_dir, "evidence.enable"))
                _rerun(page, panel, "step.finish()")
                _finish(run_dir, "04-rebind")
                _save(page)

                panel = _open(page, lab, "05-close-out.ipynb", in_lab=True)
                _run_all(page, panel)
                _finish(run_dir, "05-close-out")
                _save(page)
                page.wait_for_timeout(500)
                page.screenshot(path=str(ARTIFACTS / "lab-05-closed-out.png"))
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "lab-whole-failure.png"))
                raise
    after = _serials(info)
    assert serial not in after and len(after) == 2  # the FIDO key and the new virtual device
    report = verify(run_dir)
    assert report.ok and report.final, report.problems
    types = [e["type"] for e in RunRecord.open(run_dir).events()]
    assert "run.succeeded" in types
