"""`runbook approve`: a reviewer checks a plan file and signs an approval of it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.approval import (
    Policy,
    approval_file_name,
    read_plan_file,
    render_plan_file,
    verify_approvals,
)

from .helpers import ALICE, BOB, OLIVIA, Keys, cli, plan_dict, plan_file, redigest


def approve(
    plan: Path, key: Path, *extra: str, cwd: Path, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return cli("approve", str(plan), "--key", str(key), *extra, cwd=cwd, **kw)


def four_eyes(keys: Keys) -> Policy:
    return Policy(1, False, OLIVIA, keys.olivia.fingerprint)


def test_approve_with_yes(tmp_path: Path, keys: Keys) -> None:
    plan = plan_file(tmp_path, plan_dict(keys))
    result = approve(
        plan, keys.alice.path, "--allowed-signers", str(keys.allowed_signers), "--yes", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    target = tmp_path / f"plan.{ALICE}.approval"
    assert target == approval_file_name(plan, ALICE) and target.is_file()
    read = read_plan_file(plan)
    assert result.stdout.startswith(read.text)
    assert target.read_text().rstrip("\n") in result.stdout
    assert f"approval file {target}" in result.stdout
    found = verify_approvals([target], read.digest, four_eyes(keys), keys.allowed_signers)
    approval = found.approvals[0]
    assert approval.principal == ALICE and approval.fields["operator"] == OLIVIA
    assert approval.fields["plan-file-sha256"] == read.sha256
    assert approval.fields["change-ticket"] == "CHG-1234"
    # never overwritten
    before = target.read_bytes()
    again = approve(
        plan, keys.alice.path, "--allowed-signers", str(keys.allowed_signers), "--yes", cwd=tmp_path
    )
    assert again.returncode == 2 and "never overwritten" in again.stderr
    assert target.read_bytes() == before


def _with_terminal(args: list[str], cwd: Path, typed: bytes) -> tuple[int, str]:
    """Run the CLI with a terminal on stdin, type ``typed``; (exit code, stderr)."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "runbook_lib.cli", *args],
            cwd=cwd,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
        )
        os.write(master, typed)
        _, stderr = process.communicate(timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    return process.returncode, stderr.decode()


def test_approve_typing_the_account_id(tmp_path: Path, keys: Keys) -> None:
    plan = plan_file(tmp_path, plan_dict(keys))
    args = ["approve", str(plan), "--key", str(keys.bob.path)]
    args += ["--allowed-signers", str(keys.allowed_signers), "--out", "bob.approval"]
    code, stderr = _with_terminal(args, tmp_path, b"999999999999\n")
    assert code == 1 and "not approved" in stderr and "nothing was signed" in stderr
    assert not (tmp_path / "bob.approval").exists()
    code, stderr = _with_terminal(args, tmp_path, b"123456789012\n")
    assert code == 0, stderr
    assert "Type the account id to approve" in stderr
    found = verify_approvals(
        [tmp_path / "bob.approval"],
        read_plan_file(plan).digest,
        four_eyes(keys),
        keys.allowed_signers,
    )
    assert found.approvers == (BOB,)


def test_approve_refuses_without_a_terminal_or_yes(tmp_path: Path, keys: Keys) -> None:
    plan = plan_file(tmp_path, plan_dict(keys))
    result = approve(
        plan,
        keys.alice.path,
        "--allowed-signers",
        str(keys.allowed_signers),
        cwd=tmp_path,
        input="123456789012\n",
    )
    assert result.returncode == 2 and "stdin is not a terminal" in result.stderr
    assert list(tmp_path.glob("*.approval")) == []


def test_operator_cannot_approve_own_plan(tmp_path: Path, keys: Keys) -> None:
    plan = plan_file(tmp_path, plan_dict(keys))
    result = approve(
        plan,
        keys.olivia.path,
        "--allowed-signers",
        str(keys.allowed_signers),
        "--yes",
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "you are this plan's operator" in result.stderr
    assert list(tmp_path.glob("*.approval")) == []
    # the plan allows self-approval: allowed, with a warning
    plan = plan_file(tmp_path, plan_dict(keys, self_approval=True), "self.txt")
    result = approve(
        plan,
        keys.olivia.path,
        "--allowed-signers",
        str(keys.allowed_signers),
        "--yes",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "SELF-APPROVED" in result.stderr
    found = verify_approvals(
        [approval_file_name(plan, OLIVIA)],
        read_plan_file(plan).digest,
        Policy(1, True, OLIVIA, keys.olivia.fingerprint),
        keys.allowed_signers,
    )
    assert found.self_approved


def test_approver_must_be_listed(tmp_path: Path, keys: Keys) -> None:
    plan = plan_file(tmp_path, plan_dict(keys))
    signers = ["--allowed-signers", str(keys.allowed_signers), "--yes"]
    result = approve(plan, keys.mallory.path, *signers, cwd=tmp_path)
    assert result.returncode == 1
    assert f"your key {keys.mallory.fingerprint} is not listed" in result.stderr
    # carol's key may sign seals only
    result = approve(plan, keys.carol.path, *signers, cwd=tmp_path)
    assert result.returncode == 1 and "is not listed" in result.stderr
    # --as a principal the key is not listed for
    result = approve(plan, keys.alice.path, *signers, "--as", BOB, cwd=tmp_path)
    assert result.returncode == 1 and f"not for '{BOB}'" in result.stderr
    assert list(tmp_path.glob("*.approval")) == []


def test_key_listed_for_several_principals_needs_as(tmp_path: Path, keys: Keys) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"{ALICE},alice-admin@example.com {keys.alice.public_key}\n")
    plan = plan_file(tmp_path, plan_dict(keys))
    result = approve(
        plan, keys.alice.path, "--allowed-signers", str(signers), "--yes", cwd=tmp_path
    )
    assert result.returncode == 1 and "--as PRINCIPAL" in result.stderr
    result = approve(
        plan,
        keys.alice.path,
        "--allowed-signers",
        str(signers),
        "--yes",
        "--as",
        "alice-admin@example.com",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plan.alice-admin@example.com.approval").is_file()


def test_allowed_signers_from_the_plan(tmp_path: Path, keys: Keys) -> None:
    """Without --allowed-signers, the file the plan's parameters name."""
    data = plan_dict(keys)
    data["parameters"]["allowed_signers"] = str(keys.allowed_signers)
    data["digest_covers"] = [
        "parameters",
        "notebooks",
        "library",
        "dependencies",
        "account_id",
        "identity",
        "gates",
    ]
    plan = plan_file(tmp_path, redigest(data))
    result = approve(plan, keys.alice.path, "--yes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data["parameters"]["allowed_signers"] = str(tmp_path / "nowhere")
    plan = plan_file(tmp_path, redigest(data), "other.txt")
    result = approve(plan, keys.alice.path, "--yes", cwd=tmp_path)
    assert result.returncode == 1 and "pass --allowed-signers FILE" in result.stderr
    data["parameters"]["allowed_signers"] = None
    plan = plan_file(tmp_path, redigest(data), "third.txt")
    result = approve(plan, keys.alice.path, "--yes", cwd=tmp_path)
    assert result.returncode == 1 and "names no allowed_signers" in result.stderr


@pytest.mark.parametrize("what", ["json", "text", "dry-run"])
def test_approve_refuses_a_bad_plan_file(tmp_path: Path, keys: Keys, what: str) -> None:
    data = plan_dict(keys, dry_run=(what == "dry-run"))
    raw = render_plan_file(data).decode()
    if what == "json":
        raw = raw.replace('"change_ticket":"CHG-1234"', '"change_ticket":"CHG-1"')
    elif what == "text":
        raw = raw.replace("change ticket CHG-1234", "change ticket CHG-1")
    path = tmp_path / "plan.txt"
    path.write_text(raw)
    result = approve(
        path, keys.alice.path, "--allowed-signers", str(keys.allowed_signers), "--yes", cwd=tmp_path
    )
    assert result.returncode == 1
    expected = {
        "json": "does not match its digest",
        "text": "its text part is not what its plan says",
        "dry-run": "a dry run needs no approval",
    }[what]
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.glob("*.approval")) == []
