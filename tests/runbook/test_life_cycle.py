"""The run life cycle, tried as a careless operator and as an attacker would: gates that cannot
be skipped, evidence that cannot be overwritten or laundered, one run per account and per
approval, honest outcomes, claims checked by the API, crashes and I/O failures recovered.

Each test names the defect it pins (issue "A run life cycle an auditor can trust", observed
items 1-11); each failed on the code before that issue.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import papermill
import psutil
import pytest
from papermill.exceptions import PapermillExecutionError

from runbook_lib import lease, runner
from runbook_lib.approval import ApprovalRefused
from runbook_lib.errors import RunRefused
from runbook_lib.lab import prepare_lab
from runbook_lib.record.verify import verify
from tests import keys

from .helpers import (
    REPO,
    STEP_NAMES,
    Env,
    approval_of,
    check_operator_text,
    cli,
    events,
    of_type,
    run_dirs,
    run_info,
    write_params,
)
from .test_failures import start_cli_run


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def execute(notebook: Path, out: Path, **parameters: object) -> None:
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters=parameters or None,
        kernel_name="python3",
        progress_bar=False,
        log_output=False,
    )


# ------------------------------------------------------------------ 1. interactive gates
def test_prepared_lab_notebooks_run_with_no_clicks_neither_finish_00_nor_act_in_01(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    """Through the kernel: the notebooks `runbook lab` prepared, executed top to bottom with
    nobody at the controls (what "Run All" does), must not finish 00, and 01 must not act."""
    env = env_for("member")
    raw = {**env.params("assume-root"), "mode": "interactive"}
    record = prepare_lab(keys.approved(raw, env.runs.parent / "approvals"), env.runs)
    before = env.serials()
    notebooks = record.path / "notebooks"
    with pytest.raises(PapermillExecutionError) as err:
        execute(notebooks / "00-preflight.ipynb", tmp_path / "00.ipynb")
    # a halt ends its cell in error (papermill stops) but shows a notice, not an error output
    assert err.value.ename == "CellExecutionError"
    halted = nbformat.read(tmp_path / "00.ipynb", as_version=4).cells
    notice = "".join(
        str(o.get("data", {}).get("text/plain", "")) for c in halted for o in c.get("outputs", [])
    )
    assert "HALTED at gate risk-acknowledged" in notice and "cannot finish" in notice
    assert not [e for e in of_type(record.path, "step.finished") if e["step"] == "00-preflight"]
    assert of_type(record.path, "step.halted")[-1]["data"]["gate"] == "risk-acknowledged"
    with pytest.raises(PapermillExecutionError) as err:
        execute(notebooks / "01-remove-device.ipynb", tmp_path / "01.ipynb")
    assert err.value.ename == "StepRefused" and "00-preflight has not finished" in err.value.evalue
    assert not of_type(record.path, "action.started")
    assert not [e for e in of_type(record.path, "step.started") if e["step"] != "00-preflight"]
    assert env.serials() == before


# ------------------------------------------------------------------ 2. write-once evidence
def test_a_finished_step_is_never_executed_again_nor_out_of_order(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    """After the removal, re-executing 00 would rewrite the before-state with the state after
    the removal; it is refused, naming the step to continue with. So is a later step."""
    env = env_for("member")
    code, run_dir = env.run(env.approved("assume-root", sandbox_actor=False))
    assert code == 3 and run_info(run_dir)["halted_at"]["step"] == "03-first-sign-in"
    check_operator_text(run_dir)  # the sign-in instructions it shows say what the person sees
    before_sha = sha(run_dir / "snapshots" / "before.json")
    params = {**run_info(run_dir)["parameters"], "run_dir": str(run_dir)}
    count = len(events(run_dir))
    for name, fragment in (
        ("00-preflight", "00-preflight already finished"),
        ("01-remove-device", "Continue with 03-first-sign-in"),
        ("05-close-out", "03-first-sign-in has not finished"),
    ):
        with pytest.raises(PapermillExecutionError) as err:
            execute(REPO / "notebooks" / f"{name}.ipynb", tmp_path / f"{name}.ipynb", **params)
        assert err.value.ename == "StepRefused" and fragment in err.value.evalue, name
    assert sha(run_dir / "snapshots" / "before.json") == before_sha
    assert len(events(run_dir)) == count  # nothing was appended by the refused steps
    # the run continues where it stopped
    assert runner.run_state(runner.RunRecord.open(run_dir)).next_step() == "03-first-sign-in"


def test_lab_reopen_checks_the_record_first(env_for: Callable[[str], Env]) -> None:
    from runbook_lib.lab import lab_server, next_notebook

    env = env_for("standalone")
    record = prepare_lab(env.params("console"), env.runs)
    assert next_notebook(record) == "00-preflight"
    info = run_info(record.path)
    info["parameters"]["dry_run"] = True
    (record.path / "run.json").write_text(json.dumps(info))
    count = len(events(record.path))
    with pytest.raises(RunRefused, match="cannot be reopened"), lab_server(record.path):
        pass
    assert len(events(record.path)) == count


# ------------------------------------------------------------------ 3. one run per approval
def test_an_approval_approves_one_run_only(env_for: Callable[[str], Env], tmp_path: Path) -> None:
    env = env_for("standalone")
    params = env.params("console", sandbox_actor=False)
    approval = approval_of(params, "alice", tmp_path)
    code, first = env.run({**params, "approvals": [str(approval)]})
    assert code == 3  # approved; halts at the console step
    digest = run_info(first)["plan_digest"]
    assert of_type(first, "approval.consumed")[0]["data"]["digest"] == digest
    cli("abandon", str(first), "--reason", "wrong window", cwd=tmp_path)
    # the same approval, a second run: refused before anything is created
    with pytest.raises(RunRefused, match="already used by run " + first.name):
        env.run({**params, "approvals": [str(approval)]})
    assert run_dirs(env.runs) == [first.name]
    # a new plan, a new approval: fine
    code, second = env.run(env.approved("console", sandbox_actor=False))
    assert code == 3 and second != first


def test_an_expired_plan_is_refused(env_for: Callable[[str], Env]) -> None:
    env = env_for("standalone")
    params = env.params("console")
    approval = approval_of(params)
    digest = approval.read_text().split("plan-digest: ")[1].split()[0]
    stored = lease.load_plan(digest)
    assert stored is not None
    path = lease.state_dir() / "plans" / f"{digest}.json"
    stored["identity"]["expires_at"] = "2020-01-01T00:00:00+00:00"
    path.write_text(json.dumps(stored))  # an old plan (the digest no longer matches it)
    with pytest.raises(ApprovalRefused, match="not this plan"):
        env.run({**params, "approvals": [str(approval)]})  # a new plan: not the approved one
    assert run_dirs(env.runs) == []


# ------------------------------------------------------------------ 4. no laundering
@pytest.fixture
def halted_run(env_for: Callable[[str], Env]) -> tuple[Env, Path]:
    env = env_for("standalone")
    code, run_dir = env.run(env.params("console"))
    assert code == 3 and run_info(run_dir)["halted_at"]["gate"] == "risk-acknowledged"
    return env, run_dir


def test_resume_and_seal_refuse_an_edited_snapshot(halted_run: tuple[Env, Path]) -> None:
    env, run_dir = halted_run
    snap = run_dir / "snapshots" / "before.json"
    data = json.loads(snap.read_text())
    data["virtual_devices"] = []
    snap.write_text(json.dumps(data))
    count = len(events(run_dir))
    for call in (
        lambda: runner.resume(run_dir, {}),
        lambda: runner.seal_run(run_dir),
    ):
        with pytest.raises(RunRefused, match="snapshots/before.json") as err:
            call()
        assert "Nothing was written" in str(err.value)
    assert len(events(run_dir)) == count
    assert not verify(run_dir).ok
    # abandoning it is allowed (the account must be freed), and the record says why it is odd
    runner.abandon(run_dir, "found edited")
    problems = of_type(run_dir, "run.abandoned")[0]["data"]["integrity_problems"]
    assert any("snapshots/before.json" in p for p in problems)
    # the file as found is taken onto the chain after the problem was stated: the abandoned
    # record verifies, and says what was wrong with it
    taken = [e for e in of_type(run_dir, "file.recorded") if e["data"]["path"].startswith("snap")]
    assert taken and taken[-1]["seq"] > of_type(run_dir, "run.abandoned")[0]["seq"]
    assert verify(run_dir).ok and run_info(run_dir)["status"] == "abandoned"


def test_resume_refuses_run_json_edited_to_make_a_dry_run_real(
    env_for: Callable[[str], Env],
) -> None:
    env = env_for("standalone")
    code, run_dir = env.run(env.params("console", dry_run=True, sandbox_actor=False))
    assert code == 0 and run_info(run_dir)["status"] == "dry-run"
    # a halted real run: edit its run.json so that it says something else than its chain
    code, run_dir = env.run(env.params("console"))
    info = run_info(run_dir)
    info["parameters"]["change_ticket"] = "CHG-LAUNDERED"
    info["parameters"]["dry_run"] = True
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunRefused, match="parameter dry_run is True, but the event chain") as err:
        runner.resume(run_dir, {})
    assert "change_ticket" in str(err.value)
    assert env.devices() and not of_type(run_dir, "run.resumed")


def test_a_notebook_run_with_other_parameters_is_refused(
    halted_run: tuple[Env, Path], tmp_path: Path
) -> None:
    """papermill on a run's notebook with dry_run=false where the run is a dry run (or any
    other value than the run's): refused before anything is recorded."""
    env, run_dir = halted_run
    params = {**run_info(run_dir)["parameters"], "run_dir": str(run_dir), "rebind": "skip"}
    with pytest.raises(PapermillExecutionError) as err:
        execute(REPO / "notebooks" / "00-preflight.ipynb", tmp_path / "00.ipynb", **params)
    assert err.value.ename == "StepRefused" and "rebind (given 'skip'" in err.value.evalue


# ------------------------------------------------------------------ 5. what resume trusts
def test_runs_dir_and_record_are_private_under_any_umask(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("standalone")
    old = os.umask(0)
    try:
        code, run_dir = env.run(env.params("console", dry_run=True))
    finally:
        os.umask(old)
    assert code == 0, env.progress
    assert stat.S_IMODE(env.runs.stat().st_mode) == 0o700
    for path in [run_dir, *run_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_a_planted_run_is_refused_and_nothing_reaches_its_endpoint(
    halted_run: tuple[Env, Path], tmp_path: Path
) -> None:
    """Another local user plants a run (a copy of a real one) whose run.json points
    endpoint_url at their listener and whose notebooks/ is a symlink: resume refuses it
    without sending anything there or writing through the symlink."""
    env, genuine = halted_run
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    planted = env.runs / "planted"
    shutil.copytree(genuine, planted, symlinks=True)
    info = run_info(planted)
    info["run_id"] = "planted"
    info["parameters"]["endpoint_url"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    (planted / "run.json").write_text(json.dumps(info))
    shutil.rmtree(planted / "notebooks")
    (planted / "notebooks").symlink_to(elsewhere)
    with pytest.raises(RunRefused) as err:
        runner.resume(planted, {})
    text = str(err.value)
    assert "symbolic link" in text or "symlink" in text
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody called the listener
    listener.close()
    assert list(elsewhere.iterdir()) == []


def test_a_run_dir_owned_by_someone_else_is_refused(halted_run: tuple[Env, Path]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the run directory to another user")
    env, run_dir = halted_run
    os.chown(run_dir / "snapshots", 65534, 65534)
    with pytest.raises(RunRefused, match="owned by uid 65534, not by you"):
        runner.resume(run_dir, {})


def test_a_symlinked_runs_dir_is_refused_before_anything_is_created(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("standalone")
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "runs-link"
    link.symlink_to(target)
    with pytest.raises(Exception, match="symbolic link|symlink"):
        runner.run(env.params("console"), link, progress=lambda _: None)
    assert list(target.iterdir()) == []
    assert lease.holder(env.account) is None  # the lease taken for it was given back


# ------------------------------------------------------------------ 6. every session, crashes
def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    for child in children:
        child.send_signal(signal.SIGKILL)
    proc.wait(30)


@pytest.mark.slow
def test_runner_killed_between_the_removal_and_its_record_is_recovered_from_cloudtrail(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("member")
    params = env.approved("assume-root")
    serial = str(params["device_serial"])
    # DeleteVirtualMFADevice (after DeactivateMFADevice, before the result is recorded) hangs
    env.info.control.add_fault("latency", "iam:DeleteVirtualMFADevice", 1, seconds=30)
    proc = start_cli_run(env, params, tmp_path)
    try:
        deadline = time.monotonic() + 90
        while serial in env.serials() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert serial not in env.serials(), "the device should be deactivated by now"
        time.sleep(0.5)
    finally:
        _kill_tree(proc)
    (run_id,) = run_dirs(env.runs)
    run_dir = env.runs / run_id
    assert of_type(run_dir, "action.started") and not of_type(run_dir, "action.remove-device")
    sessions = [e for e in of_type(run_dir, "session.assumed") if e["step"] == "01-remove-device"]
    assert sessions, "the removal's session was recorded before it acted"
    env.info.control.clear_faults()
    code = env.resume(run_dir, {})
    assert code == 0, env.progress
    recovered = of_type(run_dir, "action.recovered")
    assert recovered and recovered[0]["data"]["evidence"]["found"] is True
    assert "reconstructed from CloudTrail" in recovered[0]["data"]["how"]
    assert of_type(run_dir, "evidence.deactivation")[-1]["data"]["found"] is True
    assert len(of_type(run_dir, "action.started")) == 1
    report = verify(run_dir)
    assert report.ok and report.final, report.problems


# ------------------------------------------------------------------ 7. plans that cannot end well
def test_bind_without_a_root_password_stops_in_preflight(env_for: Callable[[str], Env]) -> None:
    env = env_for("member-no-password")
    before = env.devices()
    code, run_dir = env.run(env.approved("assume-root", rebind="bind"))
    assert code == 1
    info = run_info(run_dir)
    assert info["status"] == "failed" and info["halted_at"]["step"] == "00-preflight"
    error = info["halted_at"]["error"]
    assert "rebind: bind cannot end well" in error and "rebind: skip" in error
    assert "CreateLoginProfile" in error
    assert of_type(run_dir, "precondition.failed")[-1]["data"]["check"] == "plan can end well"
    assert not of_type(run_dir, "gate.approved") and not of_type(run_dir, "action.started")
    assert env.devices() == before


# ------------------------------------------------------------------ 8. dry runs in `runs`
def test_runs_lists_statuses_from_the_chain(halted_run: tuple[Env, Path], tmp_path: Path) -> None:
    env, halted = halted_run
    runner.abandon(halted, "superseded")
    code, dry = env.run(env.params("console", dry_run=True))
    assert code == 0
    listing = cli("runs", "--runs-dir", str(env.runs), cwd=tmp_path).stdout
    rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
    assert "abandoned" in rows[halted.name] and "superseded" in rows[halted.name]
    assert "dry-run" in rows[dry.name] and "DRY RUN" in rows[dry.name]
    assert "succeeded" not in rows[dry.name]


# ------------------------------------------------------------------ 9. claims, then verdicts
def test_a_false_console_claim_is_contradicted_and_halts(env_for: Callable[[str], Env]) -> None:
    env = env_for("standalone")
    before = env.serials()
    params = env.approved("console", sandbox_actor=False, verify_timeout=2)
    code, run_dir = env.run(params)
    assert code == 3
    # the operator says the device was removed in the console; it was not
    code = env.resume(run_dir, {"confirm": ["device-removed-in-console"]})
    assert code == 3
    assert [e["type"] for e in events(run_dir) if e["type"].startswith("human.")] == [
        "human.claimed",
        "human.contradicted",
    ]
    halted = run_info(run_dir)["halted_at"]
    assert (halted["step"], halted["gate"]) == ("01-remove-device", "device-removed-in-console")
    assert "claimed, but the AWS API did not show" in halted["reason"]
    assert env.serials() == before
    assert not of_type(run_dir, "verification.removed")
    assert verify(run_dir).ok


# ------------------------------------------------------------------ 10. disk full
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode()[:200]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave: int) -> Path:
    filler = mount / "filler"
    free = shutil.disk_usage(mount).free
    filler.write_bytes(b"\0" * max(0, free - leave))
    return filler


@pytest.mark.slow
def test_disk_full_mid_run_is_one_clear_line_and_resumable(
    env_for: Callable[[str], Env], small_disk: Path, tmp_path: Path
) -> None:
    env = env_for("standalone")
    runs = small_disk / "runs"
    params = env.approved("console")
    file = write_params(tmp_path / "params.yml", params)
    # room for the run's creation and a few steps, not for the whole record (where the disk
    # fills decides which file is cut short: an event, run.json, or a step's notebook after the
    # kernel recorded the step's success, which resume then records as lost)
    filler = _fill(small_disk, 120_000)
    result = cli(
        "run",
        "-f",
        str(file),
        "--approval",
        str(params["approvals"][0]),
        "--runs-dir",
        str(runs),
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "No space left on device" in result.stderr + result.stdout
    (run_id,) = run_dirs(runs)
    run_dir = runs / run_id
    json.loads((run_dir / "run.json").read_text())  # consistent: never torn
    assert (run_dir / "events.jsonl").read_bytes().endswith(b"\n")  # no torn event
    for notebook in (run_dir / "notebooks").glob("*.ipynb"):
        json.loads(notebook.read_text())  # no torn notebook
        assert stat.S_IMODE(notebook.stat().st_mode) == 0o600
    filler.unlink()
    code = env.resume(run_dir, {})
    assert code == 0, env.progress
    report = verify(run_dir)
    assert report.ok and report.final, report.problems
    _every_notebook_is_stored_or_its_loss_recorded(run_dir)


def test_a_run_whose_final_seal_failed_is_sealed_by_runbook_seal_not_resumed(
    env_for: Callable[[str], Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every step succeeded, then the final seal could not be written (disk full): resume
    says what to do (it has nothing left to run) and `runbook seal` finishes the record."""
    env = env_for("standalone")
    real = runner._seal

    def full_disk_at_final_seal(record: object, final: bool = False) -> object:
        if final:
            raise OSError(28, "No space left on device")
        return real(record, final=final)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "_seal", full_disk_at_final_seal)
    with pytest.raises(OSError, match="No space left"):
        env.run(env.approved("console"))
    monkeypatch.setattr(runner, "_seal", real)
    (run_id,) = run_dirs(env.runs)
    run_dir = env.runs / run_id
    with pytest.raises(RunRefused, match=r"every step succeeded.*runbook seal") as refused:
        runner.resume(run_dir, {})
    assert "is sealed" not in str(refused.value)
    runner.seal_run(run_dir)
    report = verify(run_dir)
    assert report.ok and report.final, report.problems


def _every_notebook_is_stored_or_its_loss_recorded(run_dir: Path) -> list[str]:
    """Where the disk fills decides which file could not be written; whatever it was, the
    record holds every step's executed notebook or says which one it lost and why."""
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    lost = [e["step"] for e in events if e["type"] == "notebook.lost"]
    for name in STEP_NAMES:
        stored = (run_dir / "notebooks" / f"{name}.ipynb").exists()
        assert stored != (name in lost), f"{name}: stored={stored}, lost={name in lost}"
    return lost


def test_a_step_whose_notebook_could_not_be_written_is_named_in_the_record(
    env_for: Callable[[str], Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel recorded 04's success, then writing its executed notebook failed (disk
    full): the step is not run again (its action happened), the run fails, and resume records
    the lost notebook (event, progress line, report) instead of sealing as if it were there."""
    env = env_for("standalone")
    real = papermill.execute_notebook

    def full_disk_at_04(source: str, output: str, **kw: object) -> object:
        result = real(source, output, **kw)
        if "04-rebind" in source:
            Path(output).unlink()
            raise OSError(28, "No space left on device")
        return result

    monkeypatch.setattr(papermill, "execute_notebook", full_disk_at_04)
    code, run_dir = env.run(env.approved("console"))
    assert code == 1, env.progress
    assert any("No space left on device" in line for line in env.progress)
    monkeypatch.setattr(papermill, "execute_notebook", real)
    env.progress.clear()
    assert env.resume(run_dir, {}) == 0, env.progress
    assert _every_notebook_is_stored_or_its_loss_recorded(run_dir) == ["04-rebind"]
    assert any(
        line.startswith("WARNING: the executed notebook of 04-rebind was not stored")
        for line in env.progress
    ), env.progress
    report = verify(run_dir)
    assert report.ok and report.final, report.problems
    html = (run_dir / "report.html").read_text()
    assert "NOTEBOOK LOST" in html and "04-rebind" in html


# ------------------------------------------------------------------ 11. batch halts say enough
def test_the_console_halt_prints_the_console_path_with_the_serial(
    env_for: Callable[[str], Env],
) -> None:
    env = env_for("standalone")
    (serial,) = env.serials()
    code, run_dir = env.run(env.approved("console", sandbox_actor=False))
    assert code == 3
    out = "\n".join(env.progress)
    assert "HALTED at 01-remove-device, gate device-removed-in-console" in out
    assert f"Select the device {serial} and choose Remove" in out
    assert f"next: runbook resume {run_dir} -p confirm=[device-removed-in-console]" in out
