"""`runbook verify` as an auditor runs it: who sealed, who approved with which key (each
approval checked again from the record's files), against which allowed_signers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runbook_lib.approval import ApprovalRefused
from runbook_lib.record.run import RunRecord
from runbook_lib.runner import audit_run
from tests import keys
from tests.record.test_signed_seals import _forge

from .helpers import Env, cli, run_dirs


def test_verify_names_the_sealer_the_approver_and_the_trust_root(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("standalone")
    code, run_dir = env.run(env.approved("console"))
    assert code == 0
    result = cli("verify", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    alice, olivia = keys.signer("alice").key, keys.signer("operator").key
    assert f"sealed by   olivia@example.com (ssh-ed25519 {olivia.fingerprint})" in result.stdout
    assert f"approved by alice@example.com (ssh-ed25519 {alice.fingerprint})" in result.stdout
    assert "SELF-APPROVED" not in result.stdout
    assert "RUNBOOK_ALLOWED_SIGNERS" in result.stdout

    # an auditor's allowed_signers without alice: the seal still verifies, her approval not
    only_olivia = tmp_path / "allowed_signers"
    only_olivia.write_text(
        "".join(line for line in keys.trust_bytes().decode().splitlines(True) if "olivia" in line)
    )
    result = cli("verify", str(run_dir), "--allowed-signers", str(only_olivia), cwd=tmp_path)
    assert result.returncode == 1
    assert "approval by alice@example.com" in result.stdout and "does not list" in result.stdout
    assert f"{only_olivia} (given)" in result.stdout


def test_a_seal_by_another_trusted_person_is_not_the_operators(
    env_for: Callable[[str], Env],
) -> None:
    """alice may sign (she approves): a record re-chained and re-sealed with her key verifies
    as a record, but the audit says the seal is not the run's operator's."""
    env = env_for("standalone")
    code, run_dir = env.run(env.approved("console"))
    assert code == 0
    _forge(RunRecord.open(run_dir), resign="alice")
    audit = audit_run(run_dir)
    assert audit.record.ok, audit.record.problems
    assert not audit.ok
    assert any(
        "signed by alice@example.com, not by the run's operator" in p for p in audit.problems
    )


def test_verify_of_a_dry_run_says_nobody_approved(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("standalone")
    code, run_dir = env.run(env.params("console", dry_run=True))
    assert code == 0
    result = cli("verify", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "approved by nobody: DRY RUN" in result.stdout


def test_a_self_approved_run_is_possible_only_when_the_plan_says_so_and_says_so_everywhere(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("standalone")
    # four eyes (the default): the operator's own approval is refused, nothing created
    with pytest.raises(ApprovalRefused, match="operator"):
        env.run(env.approved("console", approver="operator"))
    assert run_dirs(env.runs) == []
    # a plan that allows it: it runs, and every view says SELF-APPROVED
    code, run_dir = env.run(env.approved("console", approver="operator", self_approval=True))
    assert code == 0
    assert env.progress[-1] == "run succeeded (SELF-APPROVED)"
    assert any(line.startswith("SELF-APPROVED run ") for line in env.progress)
    listed = cli("runs", "--runs-dir", str(env.runs), cwd=tmp_path)
    assert "SELF-APPROVED change" in listed.stdout
    verified = cli("verify", str(run_dir), cwd=tmp_path)
    assert verified.returncode == 0 and "SELF-APPROVED" in verified.stdout
    assert "SELF-APPROVED" in (run_dir / "report.html").read_text()
