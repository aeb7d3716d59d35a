"""Failure paths: every one ends in a verifiable record and changes nothing it should not."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from runbook_lib import runner
from runbook_lib.approval import ApprovalRefused
from runbook_lib.plan import PACKAGE_DIR
from runbook_lib.record.verify import verify

from .helpers import (
    STEP_NAMES,
    Env,
    approval_of,
    cli,
    edit_cell,
    events,
    kill_tree,
    of_type,
    run_dirs,
    run_info,
    write_params,
)


def assert_failed_cleanly(run_dir: Path, step: str) -> dict[str, object]:
    info = run_info(run_dir)
    assert info["status"] == "failed"
    assert info["halted_at"]["step"] == step
    assert info["steps"][step]["status"] == "failed"
    report = verify(run_dir)
    assert report.ok, report.problems
    assert not report.final  # a checkpoint: resume may continue it
    assert of_type(run_dir, "run.failed")
    return info


# ------------------------------------------------------------------ wrong account
def test_profile_of_another_account(env_for: Callable[[str], Env]) -> None:
    env = env_for("member")
    env.info.control.set_cloudtrail_delay(0.0)  # what the run called is visible at once
    before = env.devices()
    # org-admin's credentials reach the management account, not the member
    params = env.approved("console", profile=env.profiles["org-admin"])
    code, run_dir = env.run(params)
    assert code == 1
    info = assert_failed_cleanly(run_dir, "00-preflight")
    failed = of_type(run_dir, "precondition.failed")
    assert failed[-1]["data"]["check"] == "account guard"
    assert "111111111111" in failed[-1]["data"]["reason"]
    assert "Nothing was changed" in str(info["halted_at"]["error"])
    assert not of_type(run_dir, "gate.approved")
    assert env.devices() == before
    # nothing was asked of the account the profile reaches but the run is not for: not even
    # the credential report preflight starts early (only once the account is confirmed)
    trail = env.info.client("cloudtrail", "org-admin")
    names = {e["EventName"] for e in trail.lookup_events(MaxResults=50)["Events"]}
    assert "GetCallerIdentity" in names  # the guard's own call is there: the lookup sees
    assert "GenerateCredentialReport" not in names, names


def test_a_credential_report_refused_early_leaves_the_identity_check_standing(
    env_for: Callable[[str], Env],
) -> None:
    """preflight asks for the credential report as soon as the account is confirmed; IAM
    refusing it there is not the identity check's failure: the before-state records the
    refusal, as it records any signal it cannot read."""
    env = env_for("standalone")
    env.info.control.add_fault("deny", "iam:GenerateCredentialReport")
    code, run_dir = env.run(env.params("console", dry_run=True))
    assert of_type(run_dir, "observation.identity"), env.progress
    assert not [
        e for e in of_type(run_dir, "precondition.failed") if e["data"]["check"] == "account guard"
    ]
    (before,) = [
        e for e in of_type(run_dir, "observation.snapshot") if e["data"]["which"] == "before"
    ]
    errors = before["data"]["snapshot"]["errors"]
    assert any(e.startswith("credential report:") for e in errors), errors
    assert code == 0, env.progress


def test_account_id_of_another_account(env_for: Callable[[str], Env]) -> None:
    env = env_for("standalone")
    before = env.devices()
    params = env.approved("console", account_id="210987654321", device_serial=None)
    code, run_dir = env.run(params)
    assert code == 1
    assert_failed_cleanly(run_dir, "00-preflight")
    reason = of_type(run_dir, "precondition.failed")[-1]["data"]["reason"]
    assert "123456789012" in reason and "210987654321" in reason
    assert env.devices() == before


# ------------------------------------------------------------------ approvals
def test_missing_approval_halts_at_the_risk_gate(env_for: Callable[[str], Env]) -> None:
    env = env_for("standalone")
    before = env.devices()
    code, run_dir = env.run(env.params("console"))
    assert code == 3
    info = run_info(run_dir)
    assert info["status"] == "halted"
    assert info["halted_at"]["step"] == "00-preflight"
    assert info["halted_at"]["gate"] == "risk-acknowledged"
    assert "no approval was given" in info["halted_at"]["reason"]
    assert info["steps"]["01-remove-device"]["status"] == "pending"
    report = verify(run_dir)
    assert report.ok and report.sealed and not report.final
    assert (run_dir / "notebooks" / "00-preflight.ipynb").exists()
    assert not (run_dir / "notebooks" / "01-remove-device.ipynb").exists()
    assert env.devices() == before


def test_stale_approval_names_the_mismatch(env_for: Callable[[str], Env]) -> None:
    env = env_for("standalone")
    before = env.devices()
    params = env.approved("console")
    params["change_ticket"] = "CHG-OTHER"  # the plan changed after it was approved
    with pytest.raises(ApprovalRefused) as err:
        env.run(params)
    assert "approves plan" in str(err.value) and "not this plan" in str(err.value)
    assert run_dirs(env.runs) == []  # refused before anything was created
    assert env.devices() == before


# ------------------------------------------------------------------ console steps by hand
def test_console_steps_confirmed_one_by_one(env_for: Callable[[str], Env]) -> None:
    env = env_for("standalone")
    control = env.info.control
    (old,) = env.serials()
    params = env.approved("console", sandbox_actor=False)
    code, run_dir = env.run(params)
    assert code == 3
    assert run_info(run_dir)["halted_at"]["step"] == "01-remove-device"
    assert run_info(run_dir)["halted_at"]["gate"] == "device-removed-in-console"
    assert "runbook resume" in run_info(run_dir)["halted_at"]["reason"]
    assert verify(run_dir).ok
    assert env.serials() == {old}  # the runbook itself removes nothing in the console

    # the operator removes the device in the console, then confirms it
    session = control.sign_in_fully(env.account)
    control.remove_mfa(session, old)
    control.sign_out(session)
    confirmed = ["device-removed-in-console"]
    code = env.resume(run_dir, {"confirm": confirmed})
    assert code == 3
    halted = run_info(run_dir)["halted_at"]
    assert (halted["step"], halted["gate"]) == ("03-first-sign-in", "signed-in-with-email-code")
    assert of_type(run_dir, "evidence.deactivation")[-1]["data"]["found"] is True

    # the operator signs in with the e-mailed code
    session = control.sign_in_fully(env.account)
    control.sign_out(session)
    confirmed.append("signed-in-with-email-code")
    code = env.resume(run_dir, {"confirm": confirmed})
    assert code == 3
    halted = run_info(run_dir)["halted_at"]
    assert (halted["step"], halted["gate"]) == ("04-rebind", "new-device-bound-in-console")
    login = of_type(run_dir, "evidence.console-login")[-1]["data"]
    assert login["found"] is True and any("MFAUsed=No" in f for f in login["facts"])

    # the operator binds a new device
    session = control.sign_in_fully(env.account)
    new = control.bind_virtual(session, "root-by-hand")
    control.sign_out(session)
    confirmed.append("new-device-bound-in-console")
    code = env.resume(run_dir, {"confirm": confirmed})
    assert code == 0, env.progress
    info = run_info(run_dir)
    assert info["status"] == "succeeded"
    report = verify(run_dir)
    assert report.ok and report.final
    assert env.serials() == {new}
    gates = [e["data"]["gate"] for e in of_type(run_dir, "human.claimed")]
    assert gates == confirmed
    assert [e["data"]["gate"] for e in of_type(run_dir, "human.verified")] == confirmed
    for e in of_type(run_dir, "human.claimed"):
        assert e["data"]["typed"] == f"confirm={e['data']['gate']}"
        assert e["data"]["who"]["os_user"]
    assert len(of_type(run_dir, "run.resumed")) == 3
    assert of_type(run_dir, "evidence.enable")[-1]["data"]["found"] is True


# ------------------------------------------------------------------ AWS errors
def test_access_denied_on_deactivate(env_for: Callable[[str], Env]) -> None:
    env = env_for("member")
    before = env.devices()
    env.info.control.add_fault("deny", "iam:DeactivateMFADevice")
    code, run_dir = env.run(env.approved("assume-root"))
    assert code == 1
    info = assert_failed_cleanly(run_dir, "01-remove-device")
    error = str(info["halted_at"]["error"])
    assert "AccessDenied" in error
    assert "iam:DeactivateMFADevice" in error
    step_errors = of_type(run_dir, "step.error")
    assert step_errors and "iam:DeactivateMFADevice" in step_errors[-1]["data"]["evalue"]
    assert env.devices() == before


def test_access_denied_on_cloudtrail_lookup(env_for: Callable[[str], Env]) -> None:
    env = env_for("standalone")
    env.info.control.add_fault("deny", "cloudtrail:LookupEvents")
    code, run_dir = env.run(env.approved("console"))
    assert code == 1
    info = assert_failed_cleanly(run_dir, "02-verify-removal")
    error = str(info["halted_at"]["error"])
    assert "AccessDenied" in error and "cloudtrail:LookupEvents" in error
    # the removal (step 01) happened and is recorded; the new device was not bound
    assert of_type(run_dir, "verification.removed")
    assert env.serials() == set()


def test_throttling_is_absorbed_by_retries(
    env_for: Callable[[str], Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the kernel sees RUNBOOK_* settings: standard retries, without adaptive mode's client-side
    # rate limit, which after a throttle holds every later call back for seconds
    monkeypatch.setenv("RUNBOOK_RETRY_MODE", "standard")
    env = env_for("standalone")
    control = env.info.control
    # twice in a row on one call, once on two others: the SDK's own back-off (random x 2^n s,
    # no setting) is what the test waits for, so no more throttles than the claim needs
    control.add_fault("throttle", "iam:ListVirtualMFADevices", 2)
    control.add_fault("throttle", "cloudtrail:LookupEvents", 1)
    control.add_fault("throttle", "sts:GetCallerIdentity", 1)
    code, run_dir = env.run(env.approved("console"))
    assert code == 0, env.progress
    assert verify(run_dir).ok
    faults = control.call("POST", "faults", {"kind": "latency", "operation": "none", "count": 0})
    assert all(f["remaining"] in (0, None) for f in faults["faults"])  # every throttle fired


# ------------------------------------------------------------------ interrupted runs
def wait_for_event(runs: Path, type_: str, timeout: float = 90) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_id in run_dirs(runs):
            run_dir = runs / run_id
            if any(e["type"] == type_ for e in events(run_dir)):
                return run_dir
        time.sleep(0.2)
    raise AssertionError(f"no {type_} event within {timeout} s")


def kernels_of(pid: int) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(pid).children(recursive=True)
        if "runbook_lib.batch_kernel" in " ".join(p.cmdline())
    ]


def start_cli_run(env: Env, params: dict[str, object], tmp_path: Path) -> subprocess.Popen[bytes]:
    file = write_params(tmp_path / "params.yml", params)
    args = ["run", "-f", str(file)]  # the file names the approval files
    return subprocess.Popen(
        [sys.executable, "-m", "runbook_lib.cli", *args, "--runs-dir", str(env.runs)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_kernel_killed_mid_step_then_resume(env_for: Callable[[str], Env], tmp_path: Path) -> None:
    env = env_for("standalone")
    # step 02 waits 20 s for its first CloudTrail lookup: the kernel is killed while it waits
    env.info.control.add_fault("latency", "cloudtrail:LookupEvents", 1, seconds=20)
    params = env.approved("console")
    proc = start_cli_run(env, params, tmp_path)
    try:
        run_dir = wait_for_event(env.runs, "verification.removed")
        time.sleep(0.5)
        (kernel,) = kernels_of(proc.pid)
        kernel.send_signal(signal.SIGKILL)
        code = proc.wait(30)  # the runner notices the dead kernel and records the failure
    finally:
        kill_tree(proc)
    assert code == 1
    info = run_info(run_dir)
    assert info["status"] == "failed"
    assert info["halted_at"]["step"] == "02-verify-removal"
    assert "DeadKernelError" in info["halted_at"]["error"]
    assert verify(run_dir).ok
    listing = cli("runs", "--runs-dir", str(env.runs), cwd=tmp_path)
    row = [line for line in listing.stdout.splitlines() if run_dir.name in line]
    assert row and "failed" in row[0] and "02-verify-removal" in row[0], listing.stdout

    code = env.resume(run_dir, {})
    assert code == 0, env.progress
    assert run_info(run_dir)["status"] == "succeeded"
    report = verify(run_dir)
    assert report.ok and report.final
    assert of_type(run_dir, "evidence.deactivation")[-1]["data"]["found"] is True
    assert len(env.serials()) == 1


@pytest.mark.slow
def test_runner_killed_mid_step_is_interrupted_then_resumed(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("member")
    env.info.control.add_fault("latency", "cloudtrail:LookupEvents", 1, seconds=20)
    params = env.approved("assume-root")
    proc = start_cli_run(env, params, tmp_path)
    try:
        run_dir = wait_for_event(env.runs, "verification.removed")
        time.sleep(0.5)
        kernels = kernels_of(proc.pid)
        assert len(kernels) == 1
        proc.send_signal(signal.SIGKILL)
        for kernel in kernels:
            kernel.send_signal(signal.SIGKILL)
    finally:
        kill_tree(proc)
    assert run_info(run_dir)["status"] == "running"  # nobody recorded the end
    listing = cli("runs", "--runs-dir", str(env.runs), cwd=tmp_path)
    row = [line for line in listing.stdout.splitlines() if run_dir.name in line]
    assert row and "incomplete" in row[0], listing.stdout

    result = cli("resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(run_dir)
    info = run_info(run_dir)
    assert info["status"] == "succeeded"
    assert verify(run_dir).ok
    resumed = of_type(run_dir, "run.resumed")[-1]["data"]
    assert resumed["from_step"] == "02-verify-removal"
    # the removal was not repeated
    assert len(of_type(run_dir, "action.remove-device")) == 1
    assert params["device_serial"] not in env.serials()


# ------------------------------------------------------------------ sealed records
def test_tampered_records_are_named(env_for: Callable[[str], Env], tmp_path: Path) -> None:
    env = env_for("standalone")
    code, run_dir = env.run(env.approved("console"))
    assert code == 0
    ok = cli("verify", str(run_dir), cwd=tmp_path)
    assert ok.returncode == 0 and "intact" in ok.stdout and "final seal" in ok.stdout

    # a sealed run cannot be resumed
    with pytest.raises(runner.RunRefused, match="is sealed"):
        runner.resume(run_dir, {})
    refused = cli("resume", str(run_dir), cwd=tmp_path)
    assert refused.returncode == 1 and "start a new run" in refused.stderr

    def tampered(name: str, edit: Callable[[Path], None]) -> str:
        copy = tmp_path / f"copy-{name}"
        shutil.copytree(env.runs, copy)
        edit(copy / run_dir.name)
        result = cli("verify", str(copy / run_dir.name), cwd=tmp_path)
        assert result.returncode != 0, name
        assert "TAMPERED" in result.stdout
        return result.stdout

    def edit_event(path: Path) -> None:
        lines = (path / "events.jsonl").read_text().splitlines()
        for i, line in enumerate(lines):
            event = json.loads(line)
            if event["type"] == "gate.approved":
                event["data"]["who"]["os_user"] = "someone-else"
                lines[i] = json.dumps(event, separators=(",", ":"), sort_keys=True)
                break
        (path / "events.jsonl").write_text("\n".join(lines) + "\n")

    def edit_notebook(path: Path) -> None:
        edit_cell(path / "notebooks" / "01-remove-device.ipynb")

    def edit_manifest(path: Path) -> None:
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["files"]["summary.json"]["size"] += 1
        (path / "manifest.json").write_text(json.dumps(manifest, indent=2))

    assert "events.jsonl" in tampered("event", edit_event)
    assert "notebooks/01-remove-device.ipynb: changed since the seal" in tampered(
        "notebook", edit_notebook
    )
    out = tampered("manifest", edit_manifest)
    assert "manifest.json" in out and "ledger" in out


# ------------------------------------------------------------------ the account's lease
def test_a_second_run_on_a_leased_account_is_refused(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    """A run halted at a gate holds its account: a second run on it is refused, in the same
    runs dir, in another runs dir, and from another process, naming the holder and how to
    release it; nothing is created. Abandoning the first releases the account."""
    env = env_for("standalone")
    code, first = env.run(env.params("console"))
    assert code == 3  # halted at the risk gate, holding nothing before this issue
    other_runs = tmp_path / "other-runs"
    for runs in (env.runs, other_runs):
        with pytest.raises(runner.RunRefused, match=f"leased to run {first.name}") as err:
            runner.run(env.approved("console"), runs, progress=lambda _: None)
        assert "runbook abandon" in str(err.value) and "Nothing was changed" in str(err.value)
    file = write_params(tmp_path / "params.yml", env.params("console"))
    result = cli("run", "-f", str(file), "--runs-dir", str(other_runs), cwd=tmp_path)
    assert result.returncode == 1 and f"leased to run {first.name}" in result.stderr
    assert run_dirs(env.runs) == [first.name] and run_dirs(other_runs) == []
    # another account is not blocked by it
    code, elsewhere = env.run(env.params("console", account_id="210987654321"))
    assert code == 1 and of_type(elsewhere, "precondition.failed")  # the guard, not the lease
    # released only by ending the first run on purpose
    done = cli("abandon", str(first), "--reason", "replaced by a new plan", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    info = run_info(first)
    assert info["status"] == "abandoned" and verify(first).final
    abandoned = of_type(first, "run.abandoned")[0]["data"]
    assert abandoned["reason"] == "replaced by a new plan"
    assert abandoned["stopped_at"]["step"] == "00-preflight" and abandoned["who"]["os_user"]
    code, second = env.run(env.params("console"))
    assert code == 3 and second != first


# ------------------------------------------------------------------ resume refusals
def test_resume_refuses_changed_notebooks(
    env_for: Callable[[str], Env], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "notebooks"
    shutil.copytree(PACKAGE_DIR.parent / "notebooks", copy)
    monkeypatch.setenv("RUNBOOK_NOTEBOOKS", str(copy))
    env = env_for("standalone")
    code, run_dir = env.run(env.params("console"))  # halts at the risk gate
    assert code == 3
    edit_cell(copy / "02-verify-removal.ipynb")
    with pytest.raises(runner.RunRefused, match="notebooks changed.*02-verify-removal"):
        runner.resume(run_dir, {})
    assert run_info(run_dir)["status"] == "halted"
    assert verify(run_dir).ok
    assert [s for s in STEP_NAMES if (run_dir / "notebooks" / f"{s}.ipynb").exists()] == [
        "00-preflight"
    ]


def test_resume_cannot_change_the_account(env_for: Callable[[str], Env]) -> None:
    env = env_for("standalone")
    code, run_dir = env.run(env.params("console"))
    assert code == 3
    from runbook_lib.errors import ParameterError

    with pytest.raises(ParameterError, match="account_id cannot change on resume"):
        runner.resume(run_dir, {"account_id": "210987654321"})


def test_resume_cannot_swap_the_device_under_a_new_approval(
    env_for: Callable[[str], Env],
) -> None:
    """Preflight chose a device; a resume with another device_serial and an approval of the
    new plan must not remove the device preflight chose (nor any other)."""
    from runbook_lib.errors import ParameterError

    env = env_for("member")
    params = env.params("assume-root")  # names the virtual device
    fido = next(d["serial"] for d in env.devices() if d["kind"] == "fido")
    code, run_dir = env.run(params)
    assert code == 3 and run_info(run_dir)["halted_at"]["gate"] == "risk-acknowledged"
    before = env.devices()
    swapped = {**params, "device_serial": fido}
    with pytest.raises(ParameterError, match="device_serial cannot change on resume"):
        runner.resume(run_dir, {"device_serial": fido, "approvals": [str(approval_of(swapped))]})
    with pytest.raises(ParameterError, match="dry_run cannot change on resume"):
        runner.resume(run_dir, {"dry_run": True})
    assert env.devices() == before
    assert verify(run_dir).ok


@pytest.mark.parametrize(
    ("scenario", "fragment"),
    [
        ("management", "assume-root is not possible for the management account"),
        ("member", "missing: RootSessions"),
    ],
)
def test_assume_root_where_aws_does_not_allow_it_stops_in_preflight(
    env_for: Callable[[str], Env], scenario: str, fragment: str
) -> None:
    """The management account, or a member whose organization turned RootSessions off: the
    run stops in 00-preflight with the reason and the alternative, nothing changed."""
    env = env_for(scenario)
    if scenario == "member":
        env.info.client("iam", "org-admin").disable_organizations_root_sessions()
    before = env.devices()
    code, run_dir = env.run(env.approved("assume-root"))
    assert code == 1
    info = run_info(run_dir)
    assert info["status"] == "failed" and info["halted_at"]["step"] == "00-preflight"
    assert fragment in info["halted_at"]["error"] and "method=console" in info["halted_at"]["error"]
    failed = of_type(run_dir, "precondition.failed")
    assert failed and failed[-1]["data"]["check"] == "removal method"
    assert not of_type(run_dir, "action.remove-device")
    assert env.devices() == before
    assert verify(run_dir).ok


def test_a_failed_device_listing_is_named_as_such(env_for: Callable[[str], Env]) -> None:
    """A ListVirtualMFADevices that fails (throttled past the retries, denied, ...) is not "a
    FIDO key or hardware token": the message names the real cause; nothing was changed. (The
    sandbox's deny fault stands for any such failure: a throttle that outlasts the SDK's eight
    adaptive attempts takes about a minute, too long for the suite; the code path is the same.)"""
    env = env_for("standalone")
    before = env.devices()
    env.info.control.add_fault("deny", "iam:ListVirtualMFADevices", 10)
    code, run_dir = env.run(env.params("console", dry_run=True))
    assert code == 1
    error = run_info(run_dir)["halted_at"]["error"]
    assert "could not be read" in error and "virtual devices" in error
    assert "AccessDenied" in error and "iam:ListVirtualMFADevices" in error
    assert "FIDO" not in error
    assert env.devices() == before


def test_cloudtrail_delivery_delay_tests_the_runbooks_patience(
    env_for: Callable[[str], Env],
) -> None:
    """CloudTrail delivers events minutes after the call (the sandbox's delay runs on its
    clock): with a delay longer than evidence_timeout the run fails at 02 saying why and what
    to do, changes nothing more, and resumes once the event is there."""
    env = env_for("member")
    control = env.info.control
    control.set_cloudtrail_delay(600)  # ten minutes of sandbox time
    code, run_dir = env.run(env.approved("assume-root", evidence_timeout=2))
    assert code == 1
    halted = run_info(run_dir)["halted_at"]
    assert halted["step"] == "02-verify-removal"
    assert "waiting for the CloudTrail event" in halted["error"]
    assert "CloudTrail usually shows events within 5 minutes" in halted["error"]
    assert not of_type(run_dir, "evidence.deactivation")
    control.advance_clock(601)  # the event is delivered
    control.set_cloudtrail_delay(0.3)
    code = env.resume(run_dir, {"evidence_timeout": 20})
    assert code == 0, env.progress
    assert of_type(run_dir, "evidence.deactivation")[-1]["data"]["found"] is True
    assert len(of_type(run_dir, "action.started")) == 1  # the removal was not repeated
    assert verify(run_dir).ok
