"""Contract: the fleet-N variants an audit must handle (throttling on some calls, an
organization with centralised root access off or half on) and the faults they are made of
(throttling every k-th call, latency on every call).

AWS documents: the SDKs' standard retry mode retries throttling errors, three attempts by
default (AWS SDKs and Tools Reference Guide, "Retry behavior",
https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html); IAM and STS,
query-protocol services, answer a throttled call with HTTP 400 and the code ``Throttling``
("Rate exceeded"), one of the throttling codes the SDKs retry. AssumeRoot needs centralised
root access enabled in the organization (IAM User Guide, "Perform a privileged task on an AWS
Organizations member account", Prerequisites,
https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user-privileged-task.html); refused,
it is AccessDenied in the documented form "User user is not authorized to perform action on
resource because context" (IAM User Guide, "Troubleshoot access denied error messages",
https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from runbook_sandbox import ControlApiError, SandboxInfo, boto_session

from .helpers import AUDIT, error_code, with_unknown_key

Factory = Callable[[str], SandboxInfo]
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
STANDARD_RETRIES = Config(retries={"max_attempts": 3, "mode": "standard"})


def _members(info: SandboxInfo) -> list[str]:
    management = info.principals["org-admin"]["account_id"]
    orgs = info.client("organizations", "org-admin")
    return [
        a["Id"]
        for page in orgs.get_paginator("list_accounts").paginate()
        for a in page["Accounts"]
        if a["Id"] != management
    ]


def _session_iam(info: SandboxInfo, creds: dict[str, Any], config: Config) -> Any:
    return boto_session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    ).client("iam", endpoint_url=info.endpoint, config=config)


def _audit_loop(info: SandboxInfo, config: Config) -> int:
    """A bare audit over every member: AssumeRoot, ListMFADevices, GetLoginProfile. The
    number of retries the SDK made."""
    sts = info.session("org-admin").client("sts", endpoint_url=info.endpoint, config=config)
    retries = 0
    for account_id in _members(info):
        answer = sts.assume_root(
            TargetPrincipal=account_id, TaskPolicyArn={"arn": AUDIT}, DurationSeconds=300
        )
        retries += answer["ResponseMetadata"]["RetryAttempts"]
        iam = _session_iam(info, answer["Credentials"], config)
        devices = iam.list_mfa_devices()
        retries += devices["ResponseMetadata"]["RetryAttempts"]
        try:
            iam.get_login_profile()
        except ClientError as err:
            assert error_code_of(err) == "NoSuchEntity"
    return retries


def error_code_of(err: ClientError) -> str:
    return str(err.response["Error"]["Code"])


def _throttled(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as err:
        assert error_code_of(err) == "Throttling"
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert err.response["Error"]["Message"] == "Rate exceeded"
        return True
    return False


# ---------------------------------------------------------------------------- throttling
def test_the_throttled_fleet_throttles_every_kth_assume_root_and_list_mfa_devices(
    sandbox_factory: Factory,
) -> None:
    info = sandbox_factory("fleet-6-throttled")
    members = _members(info)
    sts = info.client("sts", "org-admin")

    def assume(account_id: str) -> Any:
        return sts.assume_root(TargetPrincipal=account_id, TaskPolicyArn={"arn": AUDIT})

    outcomes = [_throttled(lambda a=a: assume(a)) for a in members[:5]]  # type: ignore[misc]
    assert outcomes == [False, False, False, True, False]  # the 4th AssumeRoot
    creds = assume(members[0])["Credentials"]
    iam = _session_iam(info, creds, NO_RETRIES)
    listed = [_throttled(iam.list_mfa_devices) for _ in range(7)]
    assert listed == [False, False, True, False, False, True, False]  # every 3rd
    rules = {r["operation"]: r for r in info.control.faults()}
    assert rules["sts:AssumeRoot"]["every"] == 4 and rules["sts:AssumeRoot"]["fired"] == 1
    assert rules["iam:ListMFADevices"]["every"] == 3 and rules["iam:ListMFADevices"]["fired"] == 2


def test_a_client_with_retries_reads_the_whole_throttled_fleet(sandbox_factory: Factory) -> None:
    info = sandbox_factory("fleet-14-throttled")
    retries = _audit_loop(info, STANDARD_RETRIES)
    fired = sum(r["fired"] for r in info.control.faults())
    assert fired >= 5  # 14 AssumeRoots and 14 ListMFADevices: 3 + 4 throttled at least
    assert retries == fired  # each throttled call was retried once and then answered


def test_the_default_fleet_is_not_throttled(sandbox_factory: Factory) -> None:
    info = sandbox_factory("fleet-6")
    assert info.control.faults() == []
    assert _audit_loop(info, NO_RETRIES) == 0


def test_a_reset_starts_the_throttling_pattern_again(sandbox_factory: Factory) -> None:
    info = sandbox_factory("fleet-3-throttled")
    sts = info.client("sts", "org-admin")
    target = _members(info)[0]
    for _ in range(2):
        sts.assume_root(TargetPrincipal=target, TaskPolicyArn={"arn": AUDIT})
    info = sandbox_factory("fleet-3-throttled")  # reset (new principals' keys too)
    sts, target = info.client("sts", "org-admin"), _members(info)[0]
    rules = {r["operation"]: r for r in info.control.faults()}
    assert rules["sts:AssumeRoot"]["seen"] == 0
    for _ in range(3):
        sts.assume_root(TargetPrincipal=target, TaskPolicyArn={"arn": AUDIT})
    assert _throttled(lambda: sts.assume_root(TargetPrincipal=target, TaskPolicyArn={"arn": AUDIT}))


def test_a_fault_can_throttle_every_kth_call(standalone: SandboxInfo) -> None:
    standalone.control.add_fault("throttle", "sts:GetCallerIdentity", every=3)
    sts = standalone.client("sts")
    outcomes = [_throttled(sts.get_caller_identity) for _ in range(7)]
    assert outcomes == [False, False, True, False, False, True, False]
    # a count bounds it: two more throttled calls at most
    standalone.control.clear_faults()
    standalone.control.add_fault("deny", "iam:ListUsers", count=1, every=2)
    iam = standalone.client("iam")
    results = []
    for _ in range(5):
        try:
            iam.list_users()
            results.append("ok")
        except ClientError as err:
            results.append(error_code_of(err))
    assert results == ["ok", "AccessDenied", "ok", "ok", "ok"]


@pytest.mark.parametrize(
    ("kind", "every"), [("throttle", 0), ("deny", -2), ("latency", 2), ("throttle", "x")]
)
def test_a_bad_every_is_refused(standalone: SandboxInfo, kind: str, every: Any) -> None:
    with pytest.raises(ControlApiError) as exc:
        standalone.control.add_fault(kind, "*", every=every)
    assert exc.value.status == 400
    assert standalone.control.faults() == []


# ---------------------------------------------------------------------------- latency
def test_a_latency_fault_on_star_delays_every_call(standalone: SandboxInfo) -> None:
    """50 ms on every call, the round trip a bench emulates: every service, failed calls and
    calls with an unknown key included."""
    standalone.control.set_lookup_rate(0)
    standalone.control.add_fault("latency", "*", seconds=0.05)
    stranger = with_unknown_key(standalone)
    calls: list[Callable[[], Any]] = [
        standalone.client("sts").get_caller_identity,
        standalone.client("iam").list_users,
        standalone.client("s3").list_buckets,
        standalone.client("cloudtrail").lookup_events,
        standalone.client("organizations").describe_organization,  # fails: no organization
        stranger.client("sts", "ghost").get_caller_identity,  # fails: unknown key
    ]
    started = time.monotonic()
    for call in calls:
        try:
            call()
        except ClientError:
            pass
    elapsed = time.monotonic() - started
    (rule,) = standalone.control.faults()
    assert rule["operation"] == "*" and rule["fired"] == len(calls)
    assert elapsed >= 0.05 * len(calls)  # a lower bound: each call slept its 50 ms


# ---------------------------------------------------------------------------- features
ASSUME_ROOT_REFUSED = re.compile(
    r"User: arn:aws:iam::111111111111:user/runbook-org-admin is not authorized to perform: "
    r"sts:AssumeRoot on resource: arn:aws:iam::(\d{12}):root because .*\(RootSessions\) .*"
)


def _refused(info: SandboxInfo, account_id: str) -> pytest.ExceptionInfo[ClientError]:
    with pytest.raises(ClientError) as exc:
        info.client("sts", "org-admin").assume_root(
            TargetPrincipal=account_id, TaskPolicyArn={"arn": AUDIT}
        )
    return exc


@pytest.mark.parametrize(
    ("scenario", "features"),
    [("fleet-3-features-off", []), ("fleet-3-credentials-only", ["RootCredentialsManagement"])],
)
def test_an_organization_without_root_sessions_refuses_assume_root(
    sandbox_factory: Factory, scenario: str, features: list[str]
) -> None:
    info = sandbox_factory(scenario)
    iam = info.client("iam", "org-admin")
    assert iam.list_organizations_features()["EnabledFeatures"] == features
    for account_id in _members(info):
        exc = _refused(info, account_id)
        assert error_code(exc) == "AccessDenied"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        match = ASSUME_ROOT_REFUSED.fullmatch(exc.value.response["Error"]["Message"])
        assert match and match.group(1) == account_id, exc.value.response["Error"]["Message"]
    # the feature is what refused it: turned on, the same call works
    iam.enable_organizations_root_sessions()
    creds = info.client("sts", "org-admin").assume_root(
        TargetPrincipal=_members(info)[0], TaskPolicyArn={"arn": AUDIT}
    )["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")


def test_the_suffixes_combine(sandbox_factory: Factory) -> None:
    info = sandbox_factory("fleet-3-credentials-only-throttled")
    features = info.client("iam", "org-admin").list_organizations_features()["EnabledFeatures"]
    assert features == ["RootCredentialsManagement"]
    assert {r["operation"] for r in info.control.faults()} == {
        "sts:AssumeRoot",
        "iam:ListMFADevices",
    }


@pytest.mark.parametrize(
    "name",
    ["fleet-3-throttled-features-off", "fleet-3-bogus", "fleet-N-throttled", "fleet-0-throttled"],
)
def test_a_wrong_fleet_name_is_a_usage_error(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runbook_sandbox", "--scenario", name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert f"unknown scenario {name!r}" in done.stderr
    assert "-features-off or -credentials-only, then -throttled" in done.stderr
