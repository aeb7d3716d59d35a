"""Contract: injected faults, least-privilege principals, and unsupported calls."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from runbook_sandbox import ControlApiError, SandboxInfo

from .helpers import AUDIT, error_code, root_virtual_serials


def test_throttle_for_n_calls_then_recovers(standalone: SandboxInfo) -> None:
    standalone.control.add_fault("throttle", "iam:GetAccountSummary", count=2)
    iam = standalone.client("iam")
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            iam.get_account_summary()
        assert error_code(exc) == "Throttling"
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1


def test_throttled_call_succeeds_with_sdk_retries(standalone: SandboxInfo) -> None:
    standalone.control.add_fault("throttle", "iam:ListVirtualMFADevices", count=2)
    iam = standalone.client("iam", retries={"max_attempts": 5, "mode": "standard"})
    answer = iam.list_virtual_mfa_devices()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2


def test_json_protocol_throttle_code(standalone: SandboxInfo) -> None:
    standalone.control.set_lookup_rate(0)
    standalone.control.add_fault("throttle", "cloudtrail:LookupEvents", count=1)
    with pytest.raises(ClientError) as exc:
        standalone.client("cloudtrail").lookup_events()
    assert error_code(exc) == "ThrottlingException"


def test_access_denied_injection_until_cleared(standalone: SandboxInfo) -> None:
    standalone.control.add_fault("deny", "iam:ListVirtualMFADevices")
    iam = standalone.client("iam")
    for _ in range(3):
        with pytest.raises(ClientError) as exc:
            iam.list_virtual_mfa_devices()
        assert error_code(exc) == "AccessDenied"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # other operations are not affected
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1
    standalone.control.clear_faults()
    assert root_virtual_serials(standalone)


def test_latency_is_added(standalone: SandboxInfo) -> None:
    sts = standalone.client("sts")
    standalone.control.add_fault("latency", "sts:GetCallerIdentity", count=1, seconds=0.4)
    started = time.monotonic()
    sts.get_caller_identity()
    assert time.monotonic() - started >= 0.4


def test_unknown_fault_kind_is_refused(standalone: SandboxInfo) -> None:
    with pytest.raises(ControlApiError) as exc:
        standalone.control.add_fault("explode", "*")
    assert exc.value.status == 400


READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"},
    ],
}


def test_principal_with_policies_is_limited_to_them(standalone: SandboxInfo) -> None:
    keys = standalone.control.add_principal("reader", standalone.target_account_id, [READ_ONLY])
    assert keys["arn"].endswith(":user/runbook-reader")
    info = SandboxInfo.from_json(
        {**standalone.__dict__, "principals": {**standalone.principals, "reader": keys}}
    )
    iam = info.client("iam", "reader")
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1
    with pytest.raises(ClientError) as exc:
        iam.generate_credential_report()
    assert error_code(exc) == "AccessDenied"
    message = exc.value.response["Error"]["Message"]
    assert "iam:GenerateCredentialReport" in message and "runbook-reader" in message
    with pytest.raises(ClientError) as exc:
        info.client("cloudtrail", "reader").lookup_events()
    assert error_code(exc) == "AccessDeniedException"
    # identity is always answerable
    assert info.client("sts", "reader").get_caller_identity()["Arn"] == keys["arn"]


def test_assume_root_condition_on_task_policy(member: SandboxInfo) -> None:
    audit_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRoot",
                "Resource": "*",
                "Condition": {"StringEquals": {"sts:TaskPolicyArn": AUDIT}},
            }
        ],
    }
    management = member.principals["org-admin"]["account_id"]
    keys = member.control.add_principal("auditor", management, [audit_only])
    info = SandboxInfo.from_json(
        {**member.__dict__, "principals": {**member.principals, "auditor": keys}}
    )
    sts = info.client("sts", "auditor")
    ok = sts.assume_root(
        TargetPrincipal=member.target_account_id,
        TaskPolicyArn={"arn": "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials"},
    )
    assert ok["Credentials"]["AccessKeyId"].startswith("ASIA")
    with pytest.raises(ClientError) as exc:
        sts.assume_root(
            TargetPrincipal=member.target_account_id,
            TaskPolicyArn={"arn": "arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials"},
        )
    assert error_code(exc) == "AccessDenied"


def test_explicit_deny_wins(standalone: SandboxInfo) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "iam:GetAccountSummary", "Resource": "*"},
        ],
    }
    keys = standalone.control.add_principal("denied", standalone.target_account_id, [policy])
    info = SandboxInfo.from_json(
        {**standalone.__dict__, "principals": {**standalone.principals, "denied": keys}}
    )
    with pytest.raises(ClientError) as exc:
        info.client("iam", "denied").get_account_summary()
    assert error_code(exc) == "AccessDenied"
    assert info.client("iam", "denied").list_users()["Users"]


def test_unsupported_call_is_an_aws_shaped_error(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    with pytest.raises(ClientError) as exc:
        iam.generate_organizations_access_report(EntityPath="o-abc/r-ab12/ou-ab12-11111111")
    assert error_code(exc) == "NotImplemented"
    assert "sandbox does not support iam:GenerateOrganizationsAccessReport" in str(exc.value)


def test_unknown_access_key_is_invalid_client_token(standalone: SandboxInfo) -> None:
    fake = SandboxInfo.from_json(
        {
            **standalone.__dict__,
            "principals": {
                "ghost": {
                    "account_id": "123456789012",
                    "arn": "x",
                    "access_key_id": "AKIAGHOSTGHOSTGHOST1",
                    "secret_access_key": "x" * 40,
                }
            },
        }
    )
    with pytest.raises(ClientError) as exc:
        fake.client("sts", "ghost").get_caller_identity()
    assert error_code(exc) == "InvalidClientTokenId"
