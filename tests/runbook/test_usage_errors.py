"""First contact: every bad invocation of every subcommand, through the real CLI (a subprocess).

Each one is a usage error: exit 2, exactly one line on stderr (what is wrong and what to do), no
traceback, and nothing created: the working directory (where runs/ and plan files go) and the
state directory (leases, stored plans, consumed approvals) are byte for byte as before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib import runner
from runbook_lib.approval import write_plan_file
from tests import keys

from .helpers import cli

ACCOUNT = "123456789012"


def _params(profile: str) -> str:
    return (
        f'account_id: "{ACCOUNT}"\nchange_ticket: CHG-1\nmethod: console\n'
        f"profile: {profile}\nendpoint_url: http://127.0.0.1:9\ndry_run: true\n"
        f"operator_key: {keys.key('operator')}\nallowed_signers: {keys.allowed_signers()}\n"
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The files the bad invocations name: parameters files (good, broken, a profile that is
    not configured), a real plan file, a directory that is not a record, a runs directory."""
    Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "[present]\naws_access_key_id = AKIAEXAMPLEEXAMPLE00\n"
        "aws_secret_access_key = notarealsecretnotarealsecretnotarealsec0\n"
    )
    (tmp_path / "good.yml").write_text(_params("present"))
    (tmp_path / "missing-profile.yml").write_text(_params("nosuch"))
    (tmp_path / "bad.yml").write_text(": [\n")
    (tmp_path / "binary.yml").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "list.yml").write_text("- a\n- b\n")
    (tmp_path / "adir.yml").mkdir()
    (tmp_path / "notarecord").mkdir()
    (tmp_path / "notarecord" / "notes.txt").write_text("hello\n")
    (tmp_path / "runs").mkdir()
    _, plan = runner.plan_for(
        {**_params_dict(tmp_path / "good.yml"), "dry_run": False}
    )  # not stored
    write_plan_file(plan, tmp_path / "plan.txt")
    return tmp_path


def _params_dict(path: Path) -> dict[str, object]:
    from runbook_lib.params import load_file

    return load_file(path)


KEY = str(Path("KEYDIR") / "alice")
BAD_INVOCATIONS: dict[str, list[str]] = {
    # top level
    "no-such-command": ["frobnicate"],
    "unknown-option": ["run", "-f", "good.yml", "--frobnicate"],
    # plan
    "plan-without-file": ["plan"],
    "plan-missing-file": ["plan", "-f", "nosuch.yml"],
    "plan-not-yaml": ["plan", "-f", "bad.yml"],
    "plan-not-utf8": ["plan", "-f", "binary.yml"],
    "plan-not-mapping": ["plan", "-f", "list.yml"],
    "plan-file-is-a-directory": ["plan", "-f", "adir.yml"],
    "plan-missing-profile": ["plan", "-f", "missing-profile.yml"],
    "plan-bad-override": ["plan", "-f", "good.yml", "-p", "nokey"],
    "plan-run-typo": ["plan", "--run", "runs/typo"],
    "plan-run-not-a-record": ["plan", "--run", "notarecord"],
    # approve
    "approve-missing-plan-file": ["approve", "nosuch.txt", "--key", KEY, "--yes"],
    "approve-missing-key": ["approve", "plan.txt", "--key", "nosuchkey", "--yes"],
    "approve-without-key": ["approve", "plan.txt", "--yes"],
    # run
    "run-without-file": ["run"],
    "run-missing-file": ["run", "-f", "nosuch.yml"],
    "run-not-yaml": ["run", "-f", "bad.yml"],
    "run-file-is-a-directory": ["run", "-f", "adir.yml"],
    "run-missing-profile": ["run", "-f", "missing-profile.yml"],
    "run-missing-profile-override": ["run", "-f", "good.yml", "-p", "profile=nosuch"],
    "run-missing-management-profile": [
        *("run", "-f", "good.yml", "-p", "management_profile=nosuch-mgmt"),
    ],
    "run-missing-approval-file": [
        *("run", "-f", "good.yml", "-p", "dry_run=false", "--approval", "nosuch.approval"),
    ],
    "run-bad-method": ["run", "-f", "good.yml", "-p", "method=telepathy"],
    "run-runs-dir-is-a-file": ["run", "-f", "good.yml", "--runs-dir", "good.yml"],
    # resume, runs, verify, seal, abandon
    "resume-typo": ["resume", "runs/typo"],
    "resume-not-a-record": ["resume", "notarecord"],
    "runs-dir-is-a-file": ["runs", "--runs-dir", "good.yml"],
    "verify-typo": ["verify", "runs/typo"],
    "verify-not-a-record": ["verify", "notarecord"],
    "verify-a-file": ["verify", "good.yml"],
    "verify-the-runs-dir": ["verify", "runs"],
    "verify-profile-without-against": ["verify", "runs/typo", "--profile", "x"],
    "seal-typo": ["seal", "runs/typo"],
    "abandon-typo": ["abandon", "runs/typo", "--reason", "mistake"],
    "abandon-without-reason": ["abandon", "notarecord"],
    # lab
    "lab-without-file": ["lab"],
    "lab-missing-profile": ["lab", "-f", "missing-profile.yml"],
    "lab-reopen-typo": ["lab", "--reopen", "runs/typo"],
    "lab-runs-dir-is-a-file": ["lab", "-f", "good.yml", "--runs-dir", "good.yml"],
    # archive
    "archive-typo": ["archive", "runs/typo", "s3://bucket-name/p", "--retain-days", "1"],
    "archive-bad-destination": ["archive", "notarecord", "notaurl", "--retain-days", "1"],
    "archive-retain-days-not-a-number": [
        *("archive", "runs/typo", "s3://bucket-name/p", "--retain-days", "ten"),
    ],
    # policies
    "policies-unknown": ["policies", "nosuch.json"],
    # demo, sandbox
    "demo-unknown-scenario": ["demo", "--scenario", "bogus"],
    "demo-unknown-method": ["demo", "--method", "telepathy"],
    "demo-runs-dir-is-a-file": ["demo", "--runs-dir", "good.yml"],
    "sandbox-unknown-scenario": ["sandbox", "--scenario", "bogus"],
}


def snapshot(*roots: Path) -> dict[str, bytes | None]:
    """Every path under ``roots`` with its content (None for a directory)."""
    found: dict[str, bytes | None] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            found[str(path)] = path.read_bytes() if path.is_file() else None
    return found


def assert_usage_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("runbook"), result.stderr
    return lines[0]


@pytest.mark.parametrize("name", list(BAD_INVOCATIONS))
def test_a_bad_invocation_is_one_line_exit_2_and_creates_nothing(
    name: str, workdir: Path, _private_state_dir: Path
) -> None:
    args = [a.replace("KEYDIR", str(keys.key_dir())) for a in BAD_INVOCATIONS[name]]
    before = snapshot(workdir, _private_state_dir.parent)
    result = cli(*args, cwd=workdir)
    assert_usage_error(result)
    assert snapshot(workdir, _private_state_dir.parent) == before, result.stderr


def test_the_missing_profile_is_named_with_how_to_configure_it(workdir: Path) -> None:
    line = assert_usage_error(cli("run", "-f", "missing-profile.yml", cwd=workdir))
    assert "'nosuch'" in line
    assert "aws configure --profile nosuch" in line
    assert "AWS_CONFIG_FILE" in line


def test_a_missing_aws_profile_from_the_environment_is_named_too(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, _private_state_dir: Path
) -> None:
    """No profile in the parameters: the standard chain's AWS_PROFILE is checked the same way."""
    text = (workdir / "good.yml").read_text().replace("profile: present\n", "")
    (workdir / "no-profile.yml").write_text(text)
    monkeypatch.setenv("AWS_PROFILE", "from-env")
    before = snapshot(workdir, _private_state_dir.parent)
    line = assert_usage_error(cli("run", "-f", "no-profile.yml", cwd=workdir))
    assert "'from-env'" in line and "aws configure --profile from-env" in line
    assert snapshot(workdir, _private_state_dir.parent) == before


def test_an_unknown_demo_scenario_lists_the_valid_ones(workdir: Path) -> None:
    line = assert_usage_error(cli("demo", "--scenario", "bogus", cwd=workdir))
    assert "'bogus'" in line
    for scenario in ("standalone", "member", "no-mfa", "fleet-N"):
        assert scenario in line
    assert "starting the sandbox" not in line


@pytest.mark.parametrize("path", ["runs/typo", "notarecord", "good.yml"])
def test_verify_says_a_path_is_not_a_record(path: str, workdir: Path) -> None:
    line = assert_usage_error(cli("verify", path, cwd=workdir))
    assert f"'{path}' is not a run record" in line
    assert "runbook runs" in line
    assert "TAMPERED" not in line


def test_verify_of_a_runs_directory_points_to_its_runs(workdir: Path) -> None:
    (workdir / "runs" / "ledger.jsonl").write_text("")
    line = assert_usage_error(cli("verify", "runs", cwd=workdir))
    assert "runbook runs --runs-dir 'runs'" in line


def test_a_record_missing_its_events_is_still_tampered_not_a_usage_error(
    workdir: Path,
) -> None:
    """A directory that holds the record's other files but no events.jsonl was a record: that is
    a finding (exit 1), not a typo."""
    run = workdir / "runs" / "20260101T000000Z-abcd"
    run.mkdir()
    (run / "run.json").write_text('{"run_id": "20260101T000000Z-abcd"}')
    result = cli("verify", str(run), cwd=workdir)
    assert result.returncode == 1, result.stderr
    assert "TAMPERED or INCOMPLETE" in result.stdout


def test_several_parameter_problems_are_listed_one_per_line(workdir: Path) -> None:
    result = cli("plan", "-f", "good.yml", "-p", "method=x", "-p", "colour=blue", cwd=workdir)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "runbook: 2 parameter problem(s); nothing was run:"
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("command", "hidden"),
    [
        ("demo", "runbook_demo"),
        ("sandbox", "runbook_sandbox"),
        ("demo", "moto"),
        ("sandbox", "moto"),
        ("sandbox", "werkzeug"),
    ],
)
def test_a_missing_plugin_is_one_line_naming_the_extra(
    command: str, hidden: str, workdir: Path, tmp_path: Path
) -> None:
    """As on an install without the [sandbox] extra: the plug-in's package, or the extra's
    moto or werkzeug, cannot be imported."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nsys.modules[{hidden!r}] = None\n")
    # (no __pycache__ of this scaffold beside it: the snapshot compares the CLI's doing)
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    before = snapshot(workdir)
    result = subprocess.run(
        [sys.executable, "-m", "runbook_lib.cli", command],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    line = assert_usage_error(result)
    assert "root-mfa-runbook[sandbox]" in line
    assert snapshot(workdir) == before
