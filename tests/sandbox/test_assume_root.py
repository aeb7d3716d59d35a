"""Contract: sts:AssumeRoot makes every check AWS documents, and its sessions are bounded."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from runbook_sandbox import SandboxInfo

from .helpers import AUDIT, CREATE_PASSWORD, DELETE, assume_root, error_code, session_client

ALL_TASK_POLICIES = [
    AUDIT,
    CREATE_PASSWORD,
    DELETE,
    "arn:aws:iam::aws:policy/root-task/S3UnlockBucketPolicy",
    "arn:aws:iam::aws:policy/root-task/SQSUnlockQueuePolicy",
]


@pytest.mark.parametrize("policy", ALL_TASK_POLICIES)
def test_each_root_task_policy_is_accepted(member: SandboxInfo, policy: str) -> None:
    creds = assume_root(member, policy, duration=60)
    assert creds["AccessKeyId"].startswith("ASIA")
    assert creds["SessionToken"] and creds["SecretAccessKey"]
    lifetime = creds["Expiration"].timestamp() - __import__("time").time()
    assert 0 < lifetime <= 61


def test_duration_over_900_is_a_validation_error(member: SandboxInfo) -> None:
    with pytest.raises(ClientError) as exc:
        assume_root(member, AUDIT, duration=901)
    assert error_code(exc) == "ValidationError"


def test_unknown_task_policy_is_refused(member: SandboxInfo) -> None:
    with pytest.raises(ClientError) as exc:
        assume_root(member, "arn:aws:iam::aws:policy/AdministratorAccess")
    assert error_code(exc) == "ValidationError"


def test_caller_outside_management_account_is_denied(member: SandboxInfo) -> None:
    sts = member.client("sts", "admin")  # an IAM user of the member account
    with pytest.raises(ClientError) as exc:
        sts.assume_root(
            TargetPrincipal=member.target_account_id,
            TaskPolicyArn={"arn": AUDIT},
            DurationSeconds=900,
        )
    assert error_code(exc) == "AccessDenied"


def test_standalone_account_cannot_assume_root(standalone: SandboxInfo) -> None:
    with pytest.raises(ClientError) as exc:
        standalone.client("sts").assume_root(
            TargetPrincipal=standalone.target_account_id, TaskPolicyArn={"arn": AUDIT}
        )
    assert error_code(exc) == "AccessDenied"


def test_target_must_be_a_member_account(member: SandboxInfo) -> None:
    management = member.principals["org-admin"]["account_id"]
    for target in (management, "999999999999"):
        with pytest.raises(ClientError) as exc:
            assume_root(member, AUDIT, target=target)
        assert error_code(exc) == "AccessDenied", target
    with pytest.raises(ClientError) as exc:
        assume_root(member, AUDIT, target="not-an-account")
    assert error_code(exc) == "ValidationError"


def test_root_sessions_feature_must_be_enabled(member: SandboxInfo) -> None:
    member.client("iam", "org-admin").disable_organizations_root_sessions()
    with pytest.raises(ClientError) as exc:
        assume_root(member, AUDIT)
    assert error_code(exc) == "AccessDenied"
    assert "RootSessions" in exc.value.response["Error"]["Message"]
    member.client("iam", "org-admin").enable_organizations_root_sessions()
    assert assume_root(member, AUDIT)["AccessKeyId"].startswith("ASIA")


def test_root_credentials_cannot_call_assume_root(sandbox_factory: object) -> None:
    info = sandbox_factory("root-access-keys")  # type: ignore[operator]
    with pytest.raises(ClientError) as exc:
        info.client("sts", "root").assume_root(
            TargetPrincipal=info.target_account_id, TaskPolicyArn={"arn": AUDIT}
        )
    assert error_code(exc) == "AccessDenied"


def test_session_expires(member: SandboxInfo) -> None:
    creds = assume_root(member, AUDIT, duration=120)
    iam = session_client(member, creds, "iam")
    assert iam.list_mfa_devices()["MFADevices"]
    member.control.advance_clock(121)
    with pytest.raises(ClientError) as exc:
        iam.list_mfa_devices()
    assert error_code(exc) == "ExpiredToken"


@pytest.mark.parametrize(
    ("policy", "allowed", "denied"),
    [
        (
            AUDIT,
            ["list_mfa_devices", "get_account_summary", "get_login_profile"],
            ["deactivate_mfa_device", "create_login_profile", "list_users"],
        ),
        (
            DELETE,
            ["list_mfa_devices", "get_login_profile", "list_access_keys"],
            ["get_account_summary", "create_login_profile", "list_users"],
        ),
        (
            CREATE_PASSWORD,
            ["get_login_profile"],
            ["list_mfa_devices", "deactivate_mfa_device", "get_account_summary"],
        ),
    ],
)
def test_task_policy_allows_exactly_its_actions(
    member: SandboxInfo, policy: str, allowed: list[str], denied: list[str]
) -> None:
    iam = session_client(member, assume_root(member, policy), "iam")
    serial = f"arn:aws:iam::{member.target_account_id}:mfa/root-authenticator"
    args = {"deactivate_mfa_device": {"SerialNumber": serial}}
    for name in allowed:
        try:
            getattr(iam, name)(**args.get(name, {}))
        except ClientError as err:  # NoSuchEntity is an answer, not a denial
            assert err.response["Error"]["Code"] != "AccessDenied", name
    for name in denied:
        with pytest.raises(ClientError) as exc:
            getattr(iam, name)(**args.get(name, {}))
        assert error_code(exc) == "AccessDenied", name
        assert "no session policy allows" in exc.value.response["Error"]["Message"]
    # nothing was removed by a denied call
    assert len(member.control.state(member.target_account_id)["devices"]) == 2


def test_session_cannot_act_on_iam_users(member: SandboxInfo) -> None:
    iam = session_client(member, assume_root(member, DELETE), "iam")
    with pytest.raises(ClientError) as exc:
        iam.list_mfa_devices(UserName="runbook-admin")
    assert error_code(exc) == "AccessDenied"


def test_s3_unlock_session_cannot_touch_iam(member: SandboxInfo) -> None:
    creds = assume_root(member, "arn:aws:iam::aws:policy/root-task/S3UnlockBucketPolicy")
    with pytest.raises(ClientError) as exc:
        session_client(member, creds, "iam").list_mfa_devices()
    assert error_code(exc) == "AccessDenied"
