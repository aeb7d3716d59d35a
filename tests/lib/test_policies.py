"""Least privilege: the runbook works with exactly the policies under policies/, and every
action they grant is needed (removing it makes the corresponding call fail)."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from runbook_lib.aws import actions, evidence, identity, privileged, state
from runbook_lib.aws.session import AwsContext
from runbook_lib.errors import AccessDeniedError
from runbook_sandbox import SandboxInfo

from .helpers import MANAGEMENT_ID, load_policy, make_context, root_state, serials

READER = "runbook-reader.json"
ASSUME_ROOT = "runbook-assume-root.json"


def actions_of(policy: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for stmt in policy["Statement"]:
        listed = stmt["Action"]
        found += [listed] if isinstance(listed, str) else list(listed)
    return found


def without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    """A copy of ``policy`` without ``action`` (a statement left with none is dropped)."""
    out = copy.deepcopy(policy)
    kept = []
    for stmt in out["Statement"]:
        listed = [stmt["Action"]] if isinstance(stmt["Action"], str) else stmt["Action"]
        rest = [a for a in listed if a != action]
        if rest:
            stmt["Action"] = rest
            kept.append(stmt)
    out["Statement"] = kept
    assert action not in actions_of(out)
    return out


@dataclass
class Least:
    info: SandboxInfo
    target: AwsContext  # runbook-reader.json in the member account
    management: AwsContext  # runbook-assume-root.json in the management account
    since: dt.datetime

    @property
    def account_id(self) -> str:
        return self.info.target_account_id


def least(
    info: SandboxInfo,
    reader: dict[str, Any] | None = None,
    management: dict[str, Any] | None = None,
) -> Least:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    info.add_principal("least-reader", info.target_account_id, [reader or load_policy(READER)])
    info.add_principal("least-mgmt", MANAGEMENT_ID, [management or load_policy(ASSUME_ROOT)])
    return Least(info, make_context(info, "least-reader"), make_context(info, "least-mgmt"), since)


def test_policies_are_what_the_readme_says() -> None:
    reader, assume = load_policy(READER), load_policy(ASSUME_ROOT)
    assert sorted(actions_of(reader)) == [
        "cloudtrail:LookupEvents",
        "iam:GenerateCredentialReport",
        "iam:GetAccountSummary",
        "iam:GetCredentialReport",
        "iam:ListVirtualMFADevices",
        "organizations:DescribeOrganization",
    ]
    assert sorted(actions_of(assume)) == [
        "cloudtrail:LookupEvents",
        "iam:ListOrganizationsFeatures",
        "sts:AssumeRoot",
    ]
    for policy in (reader, assume):
        assert all(s["Effect"] == "Allow" for s in policy["Statement"])
        assert not any(a.endswith("*") for a in actions_of(policy))
    (assume_stmt,) = [s for s in assume["Statement"] if s["Action"] == "sts:AssumeRoot"]
    assert sorted(assume_stmt["Condition"]["StringEquals"]["sts:TaskPolicyArn"]) == [
        privileged.AUDIT,
        privileged.DELETE,
    ]


# ----------------------------------------------------------------- works with exactly these
def test_runbook_works_with_exactly_these_policies(member: SandboxInfo) -> None:
    # DeleteVirtualMFADevice in the delete session: the sandbox's variant in which AWS allows
    # it (undocumented; by default the sandbox denies it, whatever the caller's policies)
    member.control.set_switch("delete-virtual-mfa-in-delete-session", "allow")
    p = least(member)
    acct = p.account_id
    devices = serials(member)

    who = identity.caller_identity(p.target)
    identity.guard_account(who, acct)
    ctx = identity.account_context(p.target, acct, p.management)
    assert ctx.kind == "member" and ctx.notes == ()
    assert identity.removal_methods(ctx) == ["console", "assume-root"]

    with privileged.assume_root(p.management, acct, privileged.AUDIT) as root:
        before = state.collect_snapshot(p.target, acct, root)
    assert before.errors == ()
    assert state.judge(before).agree
    assert before.known_serials() == set(devices.values())

    result = actions.remove_root_mfa_device(
        p.management,
        acct,
        devices["virtual"],
        dry_run=False,
        delete_virtual=True,
        target_reader=p.target,
        verify_timeout=15,
    )
    assert result.outcome == "removed"
    assert result.details["virtual_device_deleted"] == "deleted"
    assert root_state(member)["unassigned_virtual"] == []

    after = state.collect_snapshot(p.target, acct, with_report=False)
    assert after.errors == () and after.virtual_devices == ()

    assert evidence.find_deactivation(p.target, acct, devices["virtual"], p.since).found
    assert evidence.find_assume_root(p.management, acct, p.since, "us-east-1").found


# ----------------------------------------------------------------- every action is needed
def snapshot_error(p: Least, label: str, action: str) -> None:
    snap = state.collect_snapshot(p.target, p.account_id)
    assert len(snap.errors) == 1, snap.errors
    assert snap.errors[0].startswith(f"{label}: ")
    assert action in snap.errors[0]
    assert "AccessDenied" in snap.errors[0]


def denied(fn: Callable[[], object], action: str) -> None:
    with pytest.raises(AccessDeniedError) as exc:
        fn()
    assert action in (exc.value.hint or ""), exc.value.hint


def reader_lookup_events(p: Least) -> None:
    denied(
        lambda: evidence.find_deactivation(p.target, p.account_id, "arn:x", p.since),
        "cloudtrail:LookupEvents",
    )


def reader_describe_organization(p: Least) -> None:
    # the library degrades instead of raising: the kind is unknown, assume-root is not offered
    ctx = identity.account_context(p.target, p.account_id, p.management)
    assert ctx.kind == "unknown"
    assert any("organizations:DescribeOrganization" in n for n in ctx.notes)
    assert identity.removal_methods(ctx) == ["console"]


def assume_root_denied(p: Least) -> None:
    before = root_state(p.info)

    def start() -> None:
        with privileged.assume_root(p.management, p.account_id, privileged.AUDIT):
            pass

    denied(start, "sts:AssumeRoot")
    denied(
        lambda: actions.remove_root_mfa_device(
            p.management, p.account_id, serials(p.info)["virtual"], dry_run=False
        ),
        "sts:AssumeRoot",
    )
    assert root_state(p.info) == before


def management_side_path(p: Least) -> None:
    """Everything the runbook does with the management credentials."""
    identity.account_context(p.target, p.account_id, p.management)
    with privileged.assume_root(p.management, p.account_id, privileged.AUDIT) as root:
        state.read_session_devices(root)
    actions.remove_root_mfa_device(p.management, p.account_id, serials(p.info)["virtual"])
    evidence.find_assume_root(p.management, p.account_id, p.since, "us-east-1")


CHECKS: dict[tuple[str, str], Callable[[Least], None]] = {
    (READER, "iam:GetAccountSummary"): lambda p: snapshot_error(
        p, "AccountMFAEnabled", "iam:GetAccountSummary"
    ),
    (READER, "iam:GenerateCredentialReport"): lambda p: snapshot_error(
        p, "credential report", "iam:GenerateCredentialReport"
    ),
    (READER, "iam:GetCredentialReport"): lambda p: snapshot_error(
        p, "credential report", "iam:GetCredentialReport"
    ),
    (READER, "iam:ListVirtualMFADevices"): lambda p: snapshot_error(
        p, "virtual devices", "iam:ListVirtualMFADevices"
    ),
    (READER, "cloudtrail:LookupEvents"): reader_lookup_events,
    (READER, "organizations:DescribeOrganization"): reader_describe_organization,
    (ASSUME_ROOT, "sts:AssumeRoot"): assume_root_denied,
    (ASSUME_ROOT, "iam:ListOrganizationsFeatures"): lambda p: denied(
        lambda: identity.account_context(p.target, p.account_id, p.management),
        "iam:ListOrganizationsFeatures",
    ),
    (ASSUME_ROOT, "cloudtrail:LookupEvents"): lambda p: denied(
        lambda: evidence.find_assume_root(p.management, p.account_id, p.since, "us-east-1"),
        "cloudtrail:LookupEvents",
    ),
}


def test_every_action_has_a_check() -> None:
    granted = {(name, a) for name in (READER, ASSUME_ROOT) for a in actions_of(load_policy(name))}
    assert granted == set(CHECKS)


@pytest.mark.parametrize(
    ("policy", "action"),
    list(CHECKS),
    ids=[f"{p.split('.')[0].removeprefix('runbook-')}-{a}" for p, a in CHECKS],
)
def test_each_action_is_needed(member: SandboxInfo, policy: str, action: str) -> None:
    reader, management = load_policy(READER), load_policy(ASSUME_ROOT)
    if policy == READER:
        reader = without(reader, action)
    else:
        management = without(management, action)
    CHECKS[(policy, action)](least(member, reader, management))


@pytest.mark.parametrize(
    "task",
    [privileged.CREATE_PASSWORD, privileged.TASK_POLICY_PREFIX + "S3UnlockBucketPolicy"],
    ids=["IAMCreateRootUserPassword", "S3UnlockBucketPolicy"],
)
def test_task_policy_condition_refuses_other_tasks(member: SandboxInfo, task: str) -> None:
    p = least(member)
    before = root_state(member)
    with pytest.raises(AccessDeniedError) as exc:
        with privileged.assume_root(p.management, p.account_id, task):
            pytest.fail("the session must not start")
    assert "sts:AssumeRoot" in (exc.value.hint or "")
    assert root_state(member) == before
    # the two tasks the runbook needs are allowed to the same principal
    for allowed in (privileged.AUDIT, privileged.DELETE):
        with privileged.assume_root(p.management, p.account_id, allowed) as root:
            assert state.read_session_devices(root)
