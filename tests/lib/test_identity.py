"""Who is calling, the account guard, the account's kind and the removal methods it allows."""

from __future__ import annotations

import pytest

from runbook_lib.aws import identity, privileged
from runbook_lib.aws.identity import AccountContext, CallerIdentity
from runbook_lib.errors import (
    AccountMismatchError,
    AwsActionError,
    MethodNotAvailableError,
    PreconditionError,
)
from runbook_sandbox import SandboxInfo

from .helpers import MANAGEMENT_ID, STANDALONE_ID, ContextFactory, SandboxGetter

BOTH = frozenset(identity.ROOT_FEATURES)


# ----------------------------------------------------------------- caller identity
def test_caller_identity_of_an_iam_admin(standalone: SandboxInfo, aws_for: ContextFactory) -> None:
    who = identity.caller_identity(aws_for(standalone))
    assert who.account_id == STANDALONE_ID
    assert who.arn == standalone.principals["admin"]["arn"]
    assert ":user/" in who.arn
    assert who.user_id
    assert who.is_root is False


def test_caller_identity_of_root_access_keys(
    sandbox_factory: SandboxGetter, aws_for: ContextFactory
) -> None:
    info = sandbox_factory("root-access-keys")
    who = identity.caller_identity(aws_for(info, "root"))
    assert who.arn == f"arn:aws:iam::{info.target_account_id}:root"
    assert who.is_root is True


def test_caller_identity_in_an_assume_root_session(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    with privileged.assume_root(
        aws_for(member, "org-admin"), member.target_account_id, privileged.AUDIT
    ) as root:
        who = identity.caller_identity(root.aws)
    assert who.account_id == member.target_account_id
    assert who.arn == f"arn:aws:iam::{member.target_account_id}:root"
    assert who.is_root is True
    identity.guard_account(who, member.target_account_id)


def test_is_root_needs_the_account_root_arn() -> None:
    assert CallerIdentity("arn:aws:iam::111122223333:root", "111122223333", "x").is_root
    # another account's root ARN, a user called root, an assumed role: not the root user
    assert not CallerIdentity("arn:aws:iam::444455556666:root", "111122223333", "x").is_root
    assert not CallerIdentity("arn:aws:iam::111122223333:user/root", "111122223333", "x").is_root
    assert not CallerIdentity(
        "arn:aws:sts::111122223333:assumed-role/root/x", "111122223333", "x"
    ).is_root


# ----------------------------------------------------------------- account guard
def test_guard_account_passes_for_the_right_account(
    standalone: SandboxInfo, aws_for: ContextFactory
) -> None:
    assert (
        identity.guard_account(identity.caller_identity(aws_for(standalone)), STANDALONE_ID) is None
    )


def test_guard_account_stops_a_wrong_account(member: SandboxInfo, aws_for: ContextFactory) -> None:
    """Management credentials used for a run on the member account: refused, nothing done."""
    who = identity.caller_identity(aws_for(member, "org-admin"))
    before = member.control.state(member.target_account_id)
    with pytest.raises(AccountMismatchError) as exc:
        identity.guard_account(who, member.target_account_id)
    err = exc.value
    assert isinstance(err, PreconditionError)
    assert (err.expected, err.actual) == (member.target_account_id, MANAGEMENT_ID)
    text = str(err)
    assert member.target_account_id in text and MANAGEMENT_ID in text
    assert who.arn in text
    assert "Nothing was changed" in text
    assert member.control.state(member.target_account_id) == before


# ----------------------------------------------------------------- account context
def test_standalone_account(standalone: SandboxInfo, aws_for: ContextFactory) -> None:
    ctx = identity.account_context(aws_for(standalone), STANDALONE_ID)
    assert ctx.kind == "standalone"
    assert ctx.organization_id is None and ctx.management_account_id is None
    assert ctx.root_features == frozenset()
    assert not ctx.centralised_root_access
    assert identity.removal_methods(ctx) == ["console"]
    identity.require_method(ctx, "console")
    with pytest.raises(MethodNotAvailableError, match="standalone account") as exc:
        identity.require_method(ctx, "assume-root")
    assert "method=console" in str(exc.value)


def test_member_without_management_credentials(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    ctx = identity.account_context(aws_for(member), member.target_account_id)
    assert ctx.kind == "member"
    assert ctx.management_account_id == MANAGEMENT_ID
    assert ctx.organization_id and ctx.organization_id.startswith("o-")
    assert ctx.root_features is None, "features are unknown without management credentials"
    assert not ctx.centralised_root_access
    assert any("management-account credentials" in n for n in ctx.notes)
    assert identity.removal_methods(ctx) == ["console"]
    with pytest.raises(MethodNotAvailableError) as exc:
        identity.require_method(ctx, "assume-root")
    text = str(exc.value)
    assert "RootCredentialsManagement" in text and "RootSessions" in text
    assert "management_profile" in text


def test_member_with_management_credentials(member: SandboxInfo, aws_for: ContextFactory) -> None:
    ctx = identity.account_context(
        aws_for(member), member.target_account_id, aws_for(member, "org-admin")
    )
    assert ctx.kind == "member"
    assert ctx.root_features == BOTH
    assert ctx.centralised_root_access
    assert ctx.notes == ()
    assert identity.removal_methods(ctx) == ["console", "assume-root"]
    identity.require_method(ctx, "assume-root")
    identity.require_method(ctx, "console")


@pytest.mark.parametrize(
    ("disable", "missing"),
    [
        ("disable_organizations_root_sessions", "RootSessions"),
        ("disable_organizations_root_credentials_management", "RootCredentialsManagement"),
    ],
)
def test_member_with_one_feature_disabled(
    member: SandboxInfo, aws_for: ContextFactory, disable: str, missing: str
) -> None:
    getattr(member.client("iam", "org-admin"), disable)()
    ctx = identity.account_context(
        aws_for(member), member.target_account_id, aws_for(member, "org-admin")
    )
    assert ctx.root_features == BOTH - {missing}
    assert not ctx.centralised_root_access
    assert identity.removal_methods(ctx) == ["console"]
    with pytest.raises(MethodNotAvailableError) as exc:
        identity.require_method(ctx, "assume-root")
    assert f"missing: {missing}." in str(exc.value)


def test_management_account_as_target(management: SandboxInfo, aws_for: ContextFactory) -> None:
    ctx = identity.account_context(
        aws_for(management), MANAGEMENT_ID, aws_for(management, "org-admin")
    )
    assert ctx.kind == "management"
    assert ctx.management_account_id == MANAGEMENT_ID
    assert ctx.root_features == BOTH
    assert identity.removal_methods(ctx) == ["console"]
    with pytest.raises(MethodNotAvailableError, match="the management account"):
        identity.require_method(ctx, "assume-root")


def test_fleet_member_as_target(sandbox_factory: SandboxGetter, aws_for: ContextFactory) -> None:
    info = sandbox_factory("fleet-3")
    ctx = identity.account_context(
        aws_for(info), info.target_account_id, aws_for(info, "org-admin")
    )
    assert ctx.kind == "member"
    assert ctx.account_id == info.target_account_id != MANAGEMENT_ID
    assert ctx.management_account_id == MANAGEMENT_ID
    assert identity.removal_methods(ctx) == ["console", "assume-root"]


def test_describe_organization_denied_gives_unknown_kind(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    member.control.add_fault("deny", "organizations:DescribeOrganization")
    ctx = identity.account_context(
        aws_for(member), member.target_account_id, aws_for(member, "org-admin")
    )
    assert ctx.kind == "unknown"
    assert ctx.root_features is None
    assert any("organizations:DescribeOrganization" in n for n in ctx.notes)
    assert identity.removal_methods(ctx) == ["console"]
    with pytest.raises(MethodNotAvailableError, match="unknown kind"):
        identity.require_method(ctx, "assume-root")


def test_management_credentials_of_another_account_are_an_error(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    """The member's admin passed as "management": AWS refuses; not silently "no features"."""
    with pytest.raises(AwsActionError) as exc:
        identity.account_context(aws_for(member), member.target_account_id, aws_for(member))
    assert exc.value.operation == "ListOrganizationsFeatures"
    assert exc.value.code == "AccountNotManagementOrDelegatedAdministratorException"


def test_describe_organization_throttled_is_raised(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    member.control.add_fault("throttle", "organizations:DescribeOrganization")
    with pytest.raises(AwsActionError) as exc:
        identity.account_context(aws_for(member, max_attempts=1), member.target_account_id)
    assert exc.value.operation == "DescribeOrganization"
    assert exc.value.code == "ThrottlingException"


# ----------------------------------------------------------------- judging (no AWS calls)
@pytest.mark.parametrize(
    ("kind", "features", "methods"),
    [
        ("member", BOTH, ["console", "assume-root"]),
        ("member", frozenset({"RootSessions"}), ["console"]),
        ("member", frozenset(), ["console"]),
        ("member", None, ["console"]),
        ("management", BOTH, ["console"]),
        ("standalone", frozenset(), ["console"]),
        ("unknown", BOTH, ["console"]),
    ],
)
def test_removal_methods(kind: str, features: frozenset[str] | None, methods: list[str]) -> None:
    ctx = AccountContext("222233334444", kind, root_features=features)  # type: ignore[arg-type]
    assert identity.removal_methods(ctx) == methods


def test_require_method_refuses_an_unknown_method() -> None:
    ctx = AccountContext("222233334444", "member", root_features=BOTH)
    with pytest.raises(MethodNotAvailableError, match="Unknown removal method 'sms'"):
        identity.require_method(ctx, "sms")
