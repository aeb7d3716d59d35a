"""verify_approvals: signed approval files counted under a four-eyes policy."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from runbook_lib.approval import (
    ApprovalRefused,
    PlanFile,
    Policy,
    parse_statement,
    policy_event,
    read_plan_file,
    split_approval,
    verify_approvals,
)
from runbook_lib.record import signing

from .helpers import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    OLIVIA,
    Keys,
    approval_bytes,
    plan_dict,
    plan_file,
    write_approval,
)


@pytest.fixture
def plan(tmp_path: Path, keys: Keys) -> PlanFile:
    return read_plan_file(plan_file(tmp_path, plan_dict(keys)))


def four_eyes(keys: Keys, required: int = 1, self_approval: bool = False) -> Policy:
    return Policy(required, self_approval, OLIVIA, keys.olivia.fingerprint)


def refused(
    files: list[Path], plan: PlanFile, policy: Policy, signers: Path, **kw: object
) -> list[str]:
    with pytest.raises(ApprovalRefused) as err:
        verify_approvals(files, plan.digest, policy, signers, **kw)  # type: ignore[arg-type]
    assert all("\n" not in p for p in err.value.problems)
    return err.value.problems


def test_a_valid_approval(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    file = write_approval(tmp_path, "a.approval", approval_bytes(plan, keys.alice, ALICE))
    result = verify_approvals([file], plan.digest, four_eyes(keys), keys.allowed_signers)
    assert result.approvers == (ALICE,) and not result.self_approved and not result.duplicates
    (approval,) = result.approvals
    assert approval.principal == ALICE and approval.key_fingerprint == keys.alice.fingerprint
    assert approval.key_type == "ssh-ed25519" and not approval.by_operator
    assert approval.plan_digest == plan.digest
    assert approval.fields["plan-file-sha256"] == plan.sha256
    assert approval.fields["operator"] == OLIVIA and approval.fields["account"] == "123456789012"
    statement, signature = split_approval(file.read_bytes())
    assert approval.statement == statement and approval.signature == signature
    assert parse_statement(statement)["approver"] == ALICE
    assert approval.to_dict()["approved_at"] == approval.fields["approved-at"]
    event = policy_event(result, four_eyes(keys), plan.digest, "ab" * 32)
    assert event["satisfied"] and event["approvers"] == [ALICE]
    assert event["operator"] == {"principal": OLIVIA, "fingerprint": keys.olivia.fingerprint}
    # the plan file itself, when given, must be the one approved
    assert verify_approvals(
        [file], plan.digest, four_eyes(keys), keys.allowed_signers, plan_file_sha256=plan.sha256
    ).approvers == (ALICE,)
    problems = refused(
        [file], plan, four_eyes(keys), keys.allowed_signers, plan_file_sha256="0" * 64
    )
    assert "names plan file" in problems[0]


def test_key_not_in_allowed_signers(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    file = write_approval(tmp_path, "m.approval", approval_bytes(plan, keys.mallory, MALLORY))
    problems = refused([file], plan, four_eyes(keys), keys.allowed_signers)
    assert f"key {keys.mallory.fingerprint}, which allowed_signers does not list" in problems[0]
    assert "not counted" in problems[0]
    assert "0 valid approval(s)" in problems[-1] and "1 required" in problems[-1]


def test_principal_claimed_with_another_persons_key(
    tmp_path: Path, keys: Keys, plan: PlanFile
) -> None:
    file = write_approval(tmp_path, "x.approval", approval_bytes(plan, keys.bob, ALICE))
    problems = refused([file], plan, four_eyes(keys), keys.allowed_signers)
    assert f"lists for {BOB}, not for {ALICE}" in problems[0]


def test_statement_edited_after_signing(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    raw = approval_bytes(plan, keys.alice, ALICE)
    edited = raw.replace(b"change-ticket: CHG-1234", b"change-ticket: CHG-4321")
    assert edited != raw
    file = write_approval(tmp_path, "a.approval", edited)
    problems = refused([file], plan, four_eyes(keys), keys.allowed_signers)
    assert "changed after signing" in problems[0]


def test_approval_of_another_plan(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    other = read_plan_file(plan_file(tmp_path, plan_dict(keys), "other.txt"))
    file = write_approval(tmp_path, "a.approval", approval_bytes(other, keys.alice, ALICE))
    problems = refused([file], plan, four_eyes(keys), keys.allowed_signers)
    assert f"approves plan {other.digest[:12]}…, not this plan {plan.digest[:12]}…" in problems[0]


def test_operator_approving_own_plan(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    own = write_approval(tmp_path, "o.approval", approval_bytes(plan, keys.olivia, OLIVIA))
    alice = write_approval(tmp_path, "a.approval", approval_bytes(plan, keys.alice, ALICE))
    # four-eyes: refused, even with another valid approval beside it
    problems = refused([own, alice], plan, four_eyes(keys), keys.allowed_signers)
    assert len(problems) == 1 and f"is by the operator ({OLIVIA}" in problems[0]
    # allowed and flagged with self_approval
    policy = four_eyes(keys, self_approval=True)
    result = verify_approvals([own], plan.digest, policy, keys.allowed_signers)
    assert result.self_approved and result.approvers == (OLIVIA,)
    assert result.approvals[0].by_operator
    result = verify_approvals(
        [own, alice], plan.digest, four_eyes(keys, 2, True), keys.allowed_signers
    )
    assert result.approvers == (OLIVIA, ALICE) and result.self_approved


def test_operator_key_under_another_name(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_text(
        keys.allowed_signers.read_text() + f"ops-bot@example.com {keys.olivia.public_key}\n"
    )
    file = write_approval(
        tmp_path, "b.approval", approval_bytes(plan, keys.olivia, "ops-bot@example.com")
    )
    problems = refused([file], plan, four_eyes(keys), signers)
    assert "is by the operator (ops-bot@example.com" in problems[0]


def test_the_same_approver_counts_once(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    first = write_approval(tmp_path, "1.approval", approval_bytes(plan, keys.alice, ALICE))
    second = write_approval(tmp_path, "2.approval", approval_bytes(plan, keys.alice, ALICE))
    result = verify_approvals([first, second], plan.digest, four_eyes(keys), keys.allowed_signers)
    assert result.approvers == (ALICE,) and [d.path for d in result.duplicates] == [second]
    problems = refused([first, second, first], plan, four_eyes(keys, 2), keys.allowed_signers)
    assert problems == [
        f"1 valid approval(s) by distinct approvers (2 more by an approver already counted: "
        f"{ALICE} in {second}, {ALICE} in {first}), 2 required: ask 1 more reviewer(s) listed in "
        "allowed_signers to approve the plan file (runbook approve)"
    ]
    # the same key under a second name is the same person
    signers = tmp_path / "allowed_signers"
    signers.write_text(
        keys.allowed_signers.read_text() + f"alice2@example.com {keys.alice.public_key}\n"
    )
    alias = write_approval(
        tmp_path, "3.approval", approval_bytes(plan, keys.alice, "alice2@example.com")
    )
    problems = refused([first, alias], plan, four_eyes(keys, 2), signers)
    assert "1 valid approval(s)" in problems[0]
    # two people: satisfied
    bob = write_approval(tmp_path, "b.approval", approval_bytes(plan, keys.bob, BOB))
    result = verify_approvals([first, bob], plan.digest, four_eyes(keys, 2), keys.allowed_signers)
    assert result.approvers == (ALICE, BOB)


def test_namespace_confusion(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    """A seal signature (the operator signs SHA256SUMS with it) offered as an approval."""
    raw = approval_bytes(plan, keys.alice, ALICE, namespace=signing.SEAL_NAMESPACE)
    file = write_approval(tmp_path, "a.approval", raw)
    problems = refused([file], plan, four_eyes(keys), keys.allowed_signers)
    assert (
        f"namespace '{signing.SEAL_NAMESPACE}', not '{signing.APPROVAL_NAMESPACE}'" in problems[0]
    )
    # carol's key is listed for seals only: it cannot approve at all
    file = write_approval(tmp_path, "c.approval", approval_bytes(plan, keys.carol, CAROL))
    problems = refused([file], plan, four_eyes(keys), keys.allowed_signers)
    assert "may not sign in namespace approval@root-mfa-runbook" in problems[0]


def test_approval_dates(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    now = dt.datetime.now(dt.UTC)
    future = write_approval(
        tmp_path,
        "f.approval",
        approval_bytes(plan, keys.alice, ALICE, at=now + dt.timedelta(hours=1)),
    )
    problems = refused([future], plan, four_eyes(keys), keys.allowed_signers)
    assert "in the future" in problems[0]
    soon = write_approval(
        tmp_path,
        "s.approval",
        approval_bytes(plan, keys.alice, ALICE, at=now + dt.timedelta(minutes=2)),
    )
    assert verify_approvals([soon], plan.digest, four_eyes(keys), keys.allowed_signers).approvers
    # backdated before the plan was issued
    old = write_approval(
        tmp_path,
        "o.approval",
        approval_bytes(plan, keys.alice, ALICE, at=now - dt.timedelta(days=2)),
    )
    issued = plan.identity.issued_at
    problems = refused([old], plan, four_eyes(keys), keys.allowed_signers, issued_at=issued)
    assert "before the plan was issued" in problems[0]


def test_signatures_are_verified_at_the_approval_time(
    tmp_path: Path, keys: Keys, plan: PlanFile
) -> None:
    """allowed_signers valid-before ends a key's approvals from then on, not before."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cutoff = (now - dt.timedelta(hours=1)).strftime("%Y%m%d%H%M%SZ")
    signers = tmp_path / "allowed_signers"
    signers.write_text(
        f'{ALICE} namespaces="{signing.APPROVAL_NAMESPACE}",valid-before="{cutoff}" '
        f"{keys.alice.public_key}\n"
    )
    before = write_approval(
        tmp_path,
        "1.approval",
        approval_bytes(plan, keys.alice, ALICE, at=now - dt.timedelta(hours=2)),
    )
    assert verify_approvals([before], plan.digest, four_eyes(keys), signers).approvers == (ALICE,)
    after = write_approval(tmp_path, "2.approval", approval_bytes(plan, keys.alice, ALICE, at=now))
    problems = refused([after], plan, four_eyes(keys), signers)
    assert "not valid at that time" in problems[0]


def test_every_problem_at_once(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    good = approval_bytes(plan, keys.alice, ALICE)
    statement, signature = split_approval(good)
    files = {
        "missing": tmp_path / "missing.approval",
        "big": write_approval(tmp_path, "big.approval", b"x" * (65 << 10)),
        "text": write_approval(tmp_path, "text.approval", b"I approve.\n"),
        "unsigned": write_approval(tmp_path, "u.approval", statement),
        "fields": write_approval(
            tmp_path, "f.approval", statement.replace(b"account: ", b"acct: ") + signature
        ),
        "two": write_approval(tmp_path, "two.approval", good + signature),
    }
    (tmp_path / "link.approval").symlink_to(files["big"])
    problems = refused(
        [*files.values(), tmp_path / "link.approval"], plan, four_eyes(keys), keys.allowed_signers
    )
    assert len(problems) == 8
    assert "missing.approval: cannot be read" in problems[0]
    assert "big.approval: larger than 64 KiB" in problems[1]
    for problem in problems[2:6]:
        assert "not an approval file" in problem and "runbook approve wrote" in problem
    assert "expected the field 'account'" in problems[4]
    assert "symbolic link" in problems[6]
    assert "0 valid approval(s)" in problems[7]


def test_no_approvals(keys: Keys, plan: PlanFile) -> None:
    problems = refused([], plan, four_eyes(keys), keys.allowed_signers)
    assert problems == [
        "0 valid approval(s) by distinct approvers, 1 required: ask 1 more reviewer(s) listed "
        "in allowed_signers to approve the plan file (runbook approve)"
    ]
    problems = refused([], plan, four_eyes(keys, 0), keys.allowed_signers)
    assert "at least 1" in problems[0]


def test_statement_for_another_operator(tmp_path: Path, keys: Keys, plan: PlanFile) -> None:
    file = write_approval(
        tmp_path, "a.approval", approval_bytes(plan, keys.alice, ALICE, operator="eve@example.com")
    )
    problems = refused([file], plan, four_eyes(keys), keys.allowed_signers)
    assert "given for operator eve@example.com" in problems[0]
