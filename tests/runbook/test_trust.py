"""The plan's trust (who may sign, who operates) and the failure paths around it: refused
before anything is done, and nothing written when a refusal comes later."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from runbook_lib import creation, runner
from runbook_lib.approval import ApprovalRefused, approval_digest
from runbook_lib.errors import ParameterError, RunRefused
from runbook_lib.params import validate
from runbook_lib.plan import make_plan
from tests import keys

from .helpers import Env, approval_of, cli, events, run_dirs, run_info, write_params

BASE = {"account_id": "123456789012", "change_ticket": "CHG-1", "dry_run": False}


def test_a_plan_needs_the_operators_key_and_allowed_signers() -> None:
    with pytest.raises(ParameterError) as err:
        make_plan(validate(BASE))
    text = "\n".join(err.value.problems)
    assert "operator_key is required" in text and "allowed_signers is required" in text


def test_an_operator_key_not_in_allowed_signers_is_refused() -> None:
    params = validate(
        {
            **BASE,
            "operator_key": str(keys.key("mallory")),
            "allowed_signers": str(keys.allowed_signers()),
        }
    )
    with pytest.raises(ParameterError, match="does not list your key"):
        make_plan(params)


def test_a_missing_operator_key_is_named() -> None:
    params = validate(
        {
            **BASE,
            "operator_key": "/nonexistent/id_ed25519",
            "allowed_signers": str(keys.allowed_signers()),
        }
    )
    with pytest.raises(ParameterError, match="no such file"):
        make_plan(params)


def test_the_old_approve_flag_says_what_replaced_it(tmp_path: Path) -> None:
    file = write_params(tmp_path / "p.yml", keys.with_keys(BASE))
    result = cli("run", "-f", str(file), "--approve", "0" * 64, cwd=tmp_path)
    assert result.returncode == 2
    assert "--approve DIGEST is gone" in result.stderr and "--approval FILE" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_approval_files_of_two_plans_or_no_approval_at_all_are_refused(tmp_path: Path) -> None:
    first = approval_of(keys.with_keys(BASE), "alice", tmp_path)
    second = approval_of(keys.with_keys(BASE), "bob", tmp_path)
    with pytest.raises(ApprovalRefused, match="approve different plans"):
        approval_digest([first, second])
    junk = tmp_path / "junk.approval"
    junk.write_text("not an approval\n")
    with pytest.raises(ApprovalRefused, match="not a readable approval file"):
        approval_digest([junk])


def test_allowed_signers_changed_after_the_plan_refuses_the_run(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("standalone")
    trust = tmp_path / "allowed_signers"
    shutil.copy(keys.allowed_signers(), trust)
    params = validate({**env.params("console"), "allowed_signers": str(trust)})
    plan = make_plan(params)
    trust.write_text(trust.read_text() + "# edited after planning\n")
    with pytest.raises(RunRefused, match="changed since the plan was made"):
        creation.create_run(params, env.runs, plan)
    assert run_dirs(env.runs) == []


def test_a_run_whose_trust_changed_since_it_started_does_not_resume(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("standalone")
    trust = tmp_path / "allowed_signers"
    shutil.copy(keys.allowed_signers(), trust)
    code, run_dir = env.run({**env.params("console"), "allowed_signers": str(trust)})
    assert code == 3
    count = len(events(run_dir))
    trust.write_text(trust.read_text() + "# a new signer, say\n")
    with pytest.raises(RunRefused, match="trust changed since this run started"):
        runner.resume(run_dir, {})
    assert len(events(run_dir)) == count


def test_abandon_without_the_operators_key_writes_nothing(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("standalone")
    key = tmp_path / "operator"
    shutil.copy(keys.key("operator"), key)
    shutil.copy(keys.key("operator").with_name("operator.pub"), tmp_path / "operator.pub")
    code, run_dir = env.run({**env.params("console"), "operator_key": str(key)})
    assert code == 3
    count = len(events(run_dir))
    shutil.copy(keys.key("mallory"), key)  # another key at the operator's path
    shutil.copy(keys.key("mallory").with_name("mallory.pub"), tmp_path / "operator.pub")
    for call in (lambda: runner.abandon(run_dir, "wrong window"), lambda: runner.seal_run(run_dir)):
        with pytest.raises((ParameterError, RunRefused)):
            call()
    assert len(events(run_dir)) == count and run_info(run_dir)["status"] == "halted"
