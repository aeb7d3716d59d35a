"""A run halted for want of an approval gets one afterwards: the run's own plan file goes to
a reviewer (`runbook plan --run RUN --out FILE`), who signs it (`runbook approve`); the batch
run resumes with it, an interactive run takes it with `runbook lab --reopen RUN --approval`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runbook_lib import runner
from runbook_lib.approval import ApprovalRefused
from runbook_lib.lab import prepare_lab
from tests import keys

from .helpers import Env, approval_of, cli, events, of_type, run_info


def test_a_batch_run_halted_for_approval_resumes_with_the_reviewers_signature(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("standalone")
    code, run_dir = env.run(env.params("console"))
    assert code == 3 and run_info(run_dir)["halted_at"]["gate"] == "risk-acknowledged"
    reason = run_info(run_dir)["halted_at"]["reason"]
    assert f"runbook plan --run {run_dir} --out PLAN_FILE" in reason
    assert f"runbook resume {run_dir} --approval FILE" in reason

    planned = cli("plan", "--run", str(run_dir), "--out", "plan.txt", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert run_info(run_dir)["plan_digest"] in (tmp_path / "plan.txt").read_text()
    approved = cli(
        "approve",
        "plan.txt",
        "--key",
        str(keys.key("alice")),
        "--yes",
        "--out",
        "a.approval",
        cwd=tmp_path,
    )
    assert approved.returncode == 0, approved.stderr
    resumed = cli("resume", str(run_dir), "--approval", "a.approval", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert run_info(run_dir)["status"] == "succeeded"
    assert [e["data"]["principal"] for e in of_type(run_dir, "approval.verified")] == [
        "alice@example.com"
    ]


def test_an_interactive_run_takes_approvals_on_reopen_and_refuses_another_plans(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("member")
    raw = {**env.params("assume-root"), "mode": "interactive"}
    record = prepare_lab(raw, env.runs)
    assert not of_type(record.path, "approval.policy")
    count = len(events(record.path))
    # an approval of another plan (a new plan of the same parameters): refused, nothing written
    other = approval_of(raw, "alice", tmp_path)
    with pytest.raises(ApprovalRefused, match="not this plan"):
        runner.add_approvals(record.path, [str(other)])
    assert len(events(record.path)) == count
    # this run's plan, signed by bob
    planned = cli("plan", "--run", str(record.path), "--out", "plan.txt", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    approved = cli(
        "approve",
        "plan.txt",
        "--key",
        str(keys.key("bob")),
        "--yes",
        "--out",
        "b.approval",
        cwd=tmp_path,
    )
    assert approved.returncode == 0, approved.stderr
    runner.add_approvals(record.path, [str(tmp_path / "b.approval")])
    (policy,) = of_type(record.path, "approval.policy")
    assert policy["data"]["satisfied"] and policy["data"]["approvers"] == ["bob@example.com"]
    assert run_info(record.path)["parameters"]["approvals"] == []  # the notebooks' parameters
