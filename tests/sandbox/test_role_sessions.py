"""Contract: IAM roles as callers, through sts:AssumeRole sessions, everywhere a principal is.

AWS documents the caller of AssumeRoot as a user *or a role*: "To use centralized root access,
you must sign in through a management account or delegated administrator account as an IAM user
or role with the sts:AssumeRoot permission explicitly granted" (IAM User Guide, "Perform a
privileged task on an AWS Organizations member account",
https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user-privileged-task.html; quoted in
translation from the stored Japanese edition). Operators reach AWS through role profiles
("Use an IAM role in the AWS CLI": ``role_arn`` + ``source_profile``,
https://docs.aws.amazon.com/cli/latest/userguide/cli-roles.html) and through helpers that print
credentials ("Source credentials with an external process": ``credential_process``,
https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-sourcing-external.html), as IAM
Identity Center (SSO) profiles end up doing: role-session credentials for an
``AWSReservedSSO_...`` role under the path ``/aws-reserved/sso.amazonaws.com/``.

The sessions themselves follow the AssumeRole API reference
(https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html): DurationSeconds "can
range from 900 seconds (15 minutes) up to the maximum session duration set for the role"; "Role
chaining limits your ... role session to a maximum of one hour"; "By default, the value is set
to 3600 seconds". What CloudTrail shows of them follows "CloudTrail userIdentity element"
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html):
``type: AssumedRole``, ``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``,
``principalId: ROLEID:SESSION``, ``sessionContext.sessionIssuer`` of type ``Role``.

Every test reaches the sandbox over HTTP through boto3 sessions built from AWS config files, as
an operator's machine would.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from runbook_sandbox import SandboxInfo, boto_session, write_profiles
from tests.conftest import isolate_aws_env

from .helpers import AUDIT, DELETE, error_code, session_client

REPO = Path(__file__).resolve().parents[2]
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
READ_IAM = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"}],
}
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
SSO_PATH = "/aws-reserved/sso.amazonaws.com/"
SSO_ROLE = "AWSReservedSSO_RunbookReader_0123456789abcdef"
OPERATOR = "operator@example.com"

CREDENTIAL_PROCESS = '''\
"""credential_process helper: AssumeRole with a source profile, print the credentials."""
import json, sys
import boto3
profile, role_arn, session_name, endpoint = sys.argv[1:5]
sts = boto3.Session(profile_name=profile, region_name="us-east-1").client(
    "sts", endpoint_url=endpoint
)
creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
print(json.dumps({
    "Version": 1,
    "AccessKeyId": creds["AccessKeyId"],
    "SecretAccessKey": creds["SecretAccessKey"],
    "SessionToken": creds["SessionToken"],
    "Expiration": creds["Expiration"].isoformat(),
}))
'''


def policy_file(name: str) -> dict[str, Any]:
    return dict(json.loads((REPO / "policies" / name).read_text()))


class Profiles:
    """An AWS config and credentials file in ``tmp``, the sandbox's principals as
    ``sandbox-NAME`` profiles, and boto3 sessions built from them."""

    def __init__(self, info: SandboxInfo, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        isolate_aws_env(tmp, monkeypatch)
        self.info = info
        self.tmp = tmp
        self.config = tmp / "aws-config"
        self.config.write_text("")
        write_profiles(tmp / "aws-credentials", info.principals)
        self.sessions: dict[str, Any] = {}

    def add(self, name: str, **settings: str) -> str:
        lines = [f"[profile {name}]", "region = us-east-1"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        with self.config.open("a") as handle:
            handle.write("\n".join(lines) + "\n\n")
        return name

    def role_profile(self, name: str, role_arn: str, source: str) -> str:
        """``role_arn`` + ``source_profile``; the STS endpoint for botocore's AssumeRole is the
        sandbox (``endpoint_url`` of the profile)."""
        return self.add(
            name,
            role_arn=role_arn,
            source_profile=f"sandbox-{source}",
            endpoint_url=self.info.endpoint,
        )

    def process_profile(self, name: str, role_arn: str, source: str, session: str) -> str:
        script = self.tmp / "credential_process.py"
        script.write_text(CREDENTIAL_PROCESS)
        command = (
            f"{sys.executable} {script} sandbox-{source} {role_arn} {session} {self.info.endpoint}"
        )
        return self.add(name, credential_process=command)

    def client(self, profile: str, service: str) -> Any:
        """A client of the profile's one boto3 session (so of one role session)."""
        if profile not in self.sessions:
            self.sessions[profile] = boto_session(profile_name=profile, region_name="us-east-1")
        session = self.sessions[profile]
        return session.client(service, endpoint_url=self.info.endpoint, config=NO_RETRIES)


@pytest.fixture
def profiles_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:  # Callable[[SandboxInfo], Profiles]
    return lambda info: Profiles(info, tmp_path, monkeypatch)


def _role(info: SandboxInfo, name: str, account: str | None = None, **kw: Any) -> dict[str, str]:
    return info.control.add_role(name, account or info.target_account_id, **kw)


def _assume(info: SandboxInfo, principal: str, role_arn: str, **kw: Any) -> dict[str, Any]:
    sts = info.client("sts", principal)
    return dict(sts.assume_role(RoleArn=role_arn, RoleSessionName="tester", **kw))


def _role_client(info: SandboxInfo, creds: dict[str, Any], service: str) -> Any:
    return session_client(info, creds, service)


def _records(info: SandboxInfo, principal: str, key: str, value: str) -> list[dict[str, Any]]:
    info.control.set_lookup_rate(0)
    ct = info.client("cloudtrail", principal)
    events = ct.lookup_events(LookupAttributes=[{"AttributeKey": key, "AttributeValue": value}])
    return [dict(e, Record=json.loads(e["CloudTrailEvent"])) for e in events["Events"]]


# ---------------------------------------------------------------------------- profiles
def test_role_profile_with_source_profile_is_a_role_session(
    standalone: SandboxInfo, profiles_for: Any
) -> None:
    role = _role(standalone, "ops-reader", policies=[READ_IAM])
    profiles = profiles_for(standalone)
    profile = profiles.role_profile("ops", role["arn"], "admin")

    identity = profiles.client(profile, "sts").get_caller_identity()
    account = standalone.target_account_id
    assert identity["Account"] == account
    assert identity["Arn"].startswith(f"arn:aws:sts::{account}:assumed-role/ops-reader/")
    session_name = identity["Arn"].rsplit("/", 1)[-1]
    assert identity["UserId"] == f"{role['role_id']}:{session_name}"
    assert role["role_id"].startswith("AROA")

    iam = profiles.client(profile, "iam")
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1
    with pytest.raises(ClientError) as exc:
        iam.create_user(UserName="not-allowed")
    assert error_code(exc) == "AccessDenied"
    message = exc.value.response["Error"]["Message"]
    assert f"User: {identity['Arn']} is not authorized to perform: iam:CreateUser" in message


def test_credential_process_profile_with_an_sso_shaped_role(
    member: SandboxInfo, profiles_for: Any
) -> None:
    """What an IAM Identity Center profile ends up with: a role session of an AWSReservedSSO_
    role (path /aws-reserved/sso.amazonaws.com/), named after the operator."""
    role = _role(member, SSO_ROLE, path=SSO_PATH, policies=[policy_file("runbook-reader.json")])
    account = member.target_account_id
    assert role["arn"] == f"arn:aws:iam::{account}:role{SSO_PATH}{SSO_ROLE}"
    profiles = profiles_for(member)
    profile = profiles.process_profile("sso-reader", role["arn"], "admin", OPERATOR)

    identity = profiles.client(profile, "sts").get_caller_identity()
    # the role's path is not part of the session's ARN
    assert identity["Arn"] == f"arn:aws:sts::{account}:assumed-role/{SSO_ROLE}/{OPERATOR}"
    assert identity["UserId"] == f"{role['role_id']}:{OPERATOR}"
    summary = profiles.client(profile, "iam").get_account_summary()["SummaryMap"]
    assert summary["AccountMFAEnabled"] == 1
    org = profiles.client(profile, "organizations").describe_organization()["Organization"]
    assert org["MasterAccountId"] == member.principals["org-admin"]["account_id"]
    member.control.set_lookup_rate(0)
    assert "Events" in profiles.client(profile, "cloudtrail").lookup_events(MaxResults=1)
    with pytest.raises(ClientError) as exc:
        profiles.client(profile, "iam").list_users()
    assert error_code(exc) == "AccessDenied"


# ---------------------------------------------------------------------------- the session
def test_session_token_is_checked(standalone: SandboxInfo) -> None:
    role = _role(standalone, "token-check", policies=[READ_IAM])
    creds = _assume(standalone, "admin", role["arn"])["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert _role_client(standalone, creds, "iam").get_account_summary()["SummaryMap"]
    for token in (None, creds["SessionToken"][:-2] + "xx"):
        session: Any = boto_session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=token,
            region_name="us-east-1",
        )
        iam = session.client("iam", endpoint_url=standalone.endpoint, config=NO_RETRIES)
        with pytest.raises(ClientError) as exc:
            iam.get_account_summary()
        assert error_code(exc) == "InvalidClientTokenId", token


def test_session_expires_on_the_sandbox_clock(standalone: SandboxInfo) -> None:
    role = _role(standalone, "short", policies=[READ_IAM])
    answer = _assume(standalone, "admin", role["arn"], DurationSeconds=900)
    creds = answer["Credentials"]
    now = dt.datetime.fromisoformat(standalone.control.advance_clock(0))
    assert abs((creds["Expiration"] - now).total_seconds() - 900) < 5
    iam = _role_client(standalone, creds, "iam")
    assert iam.get_account_summary()["SummaryMap"]
    standalone.control.advance_clock(901)
    with pytest.raises(ClientError) as exc:
        iam.get_account_summary()
    assert error_code(exc) == "ExpiredToken"


def test_default_duration_is_an_hour(standalone: SandboxInfo) -> None:
    role = _role(standalone, "default-duration", policies=[READ_IAM])
    creds = _assume(standalone, "admin", role["arn"])["Credentials"]
    now = dt.datetime.fromisoformat(standalone.control.advance_clock(0))
    assert abs((creds["Expiration"] - now).total_seconds() - 3600) < 5


def test_duration_bounds_and_role_chaining(standalone: SandboxInfo) -> None:
    role = _role(standalone, "bounded", policies=[READ_IAM])
    # (below 900 botocore refuses before sending)
    with pytest.raises(ClientError) as exc:
        _assume(standalone, "admin", role["arn"], DurationSeconds=3601)
    assert error_code(exc) == "ValidationError"
    assert "MaxSessionDuration" in exc.value.response["Error"]["Message"]
    longer = _role(
        standalone,
        "longer",
        policies=[ALLOW_ALL],
        max_session_duration=7200,
    )
    creds = _assume(standalone, "admin", longer["arn"], DurationSeconds=7200)["Credentials"]
    # role chaining: a role session assuming a role gets at most one hour
    chained = _role_client(standalone, creds, "sts")
    with pytest.raises(ClientError) as exc:
        chained.assume_role(RoleArn=role["arn"], RoleSessionName="chain", DurationSeconds=7200)
    assert error_code(exc) == "ValidationError"
    assert "role chaining" in exc.value.response["Error"]["Message"]
    again = chained.assume_role(RoleArn=role["arn"], RoleSessionName="chain")
    assert again["AssumedRoleUser"]["Arn"].endswith(":assumed-role/bounded/chain")


def test_trust_policy_decides_who_may_assume(standalone: SandboxInfo) -> None:
    account = standalone.target_account_id
    standalone.add_principal("outsider", account)
    admin_arn = standalone.principals["admin"]["arn"]
    only_admin = _role(standalone, "only-admin", policies=[READ_IAM], trusted=[admin_arn])
    assert _assume(standalone, "admin", only_admin["arn"])["AssumedRoleUser"]["Arn"]
    for role_arn in (only_admin["arn"], f"arn:aws:iam::{account}:role/no-such-role"):
        with pytest.raises(ClientError) as exc:
            _assume(standalone, "outsider", role_arn)
        assert error_code(exc) == "AccessDenied"
        assert f"sts:AssumeRole on resource: {role_arn}" in exc.value.response["Error"]["Message"]


def test_root_credentials_cannot_assume_a_role(sandbox_factory: Any) -> None:
    info = sandbox_factory("root-access-keys")
    role = _role(info, "for-root", policies=[READ_IAM])
    with pytest.raises(ClientError) as exc:
        _assume(info, "root", role["arn"])
    assert error_code(exc) == "AccessDenied"


def test_the_roles_policies_are_evaluated_as_they_are_now(standalone: SandboxInfo) -> None:
    role = _role(standalone, "changing", policies=[READ_IAM])
    bare = _role(standalone, "bare")
    iam = _role_client(standalone, _assume(standalone, "admin", role["arn"])["Credentials"], "iam")
    assert iam.list_users()["Users"] is not None
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "iam:ListUsers", "Resource": "*"}],
    }
    standalone.client("iam").put_role_policy(
        RoleName="changing", PolicyName="deny-list", PolicyDocument=json.dumps(deny)
    )
    with pytest.raises(ClientError) as exc:
        iam.list_users()
    assert error_code(exc) == "AccessDenied"
    assert iam.get_account_summary()["SummaryMap"]
    # a role without policies may only ask who it is
    creds = _assume(standalone, "admin", bare["arn"])["Credentials"]
    assert (
        _role_client(standalone, creds, "sts")
        .get_caller_identity()["Arn"]
        .endswith(":assumed-role/bare/tester")
    )
    with pytest.raises(ClientError) as exc:
        _role_client(standalone, creds, "iam").get_account_summary()
    assert error_code(exc) == "AccessDenied"


def test_session_policy_bounds_the_session(standalone: SandboxInfo) -> None:
    role = _role(standalone, "wide", policies=[READ_IAM])
    narrow = {
        "Statement": [{"Effect": "Allow", "Action": "iam:GetAccountSummary", "Resource": "*"}]
    }
    answer = _assume(standalone, "admin", role["arn"], Policy=json.dumps(narrow))
    assert "PackedPolicySize" in answer
    iam = _role_client(standalone, answer["Credentials"], "iam")
    assert iam.get_account_summary()["SummaryMap"]
    with pytest.raises(ClientError) as exc:
        iam.list_users()
    assert error_code(exc) == "AccessDenied"
    assert "no session policy allows the iam:ListUsers action" in str(exc.value)


# ---------------------------------------------------------------------------- CloudTrail
def test_cloudtrail_records_the_session_as_an_assumed_role(standalone: SandboxInfo) -> None:
    role = _role(standalone, "audited", policies=[READ_IAM], path="/team/")
    answer = _assume(standalone, "admin", role["arn"])
    creds = answer["Credentials"]
    _role_client(standalone, creds, "iam").get_account_summary()
    account = standalone.target_account_id

    (call,) = _records(standalone, "admin", "AccessKeyId", creds["AccessKeyId"])
    assert call["EventName"] == "GetAccountSummary"
    assert call["Username"] == "tester"  # a role session's user name is its session name
    identity = call["Record"]["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["arn"] == f"arn:aws:sts::{account}:assumed-role/audited/tester"
    assert identity["principalId"] == f"{role['role_id']}:tester"
    assert identity["accountId"] == account
    assert identity["accessKeyId"] == creds["AccessKeyId"]
    issuer = identity["sessionContext"]["sessionIssuer"]
    assert issuer == {
        "type": "Role",
        "principalId": role["role_id"],
        "arn": f"arn:aws:iam::{account}:role/team/audited",
        "accountId": account,
        "userName": "audited",
    }
    attributes = identity["sessionContext"]["attributes"]
    assert attributes["mfaAuthenticated"] == "false"

    # the AssumeRole call itself, in the caller's account, in the STS endpoint's region
    (assumed,) = _records(standalone, "admin", "EventName", "AssumeRole")
    record = assumed["Record"]
    assert record["userIdentity"]["type"] == "IAMUser"
    assert record["requestParameters"]["roleArn"] == role["arn"]
    assert record["requestParameters"]["roleSessionName"] == "tester"
    elements = record["responseElements"]
    assert elements["assumedRoleUser"] == {
        "assumedRoleId": f"{role['role_id']}:tester",
        "arn": f"arn:aws:sts::{account}:assumed-role/audited/tester",
    }
    assert elements["credentials"]["accessKeyId"] == creds["AccessKeyId"]
    assert "secretAccessKey" not in elements["credentials"]
    created = dt.datetime.fromisoformat(attributes["creationDate"].replace("Z", "+00:00"))
    called = dt.datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))
    assert abs((created - called).total_seconds()) <= 1
    expected = creds["Expiration"].astimezone(dt.UTC)
    assert elements["credentials"]["expiration"] == (
        f"{expected:%b} {expected.day}, {expected.year}, {expected.hour % 12 or 12}:"
        f"{expected:%M:%S} {expected:%p}"
    )


# ---------------------------------------------------------------------------- AssumeRoot
def test_a_management_role_calls_assume_root(member: SandboxInfo, profiles_for: Any) -> None:
    management = member.principals["org-admin"]["account_id"]
    role = _role(
        member, "root-operator", management, policies=[policy_file("runbook-assume-root.json")]
    )
    profiles = profiles_for(member)
    profile = profiles.role_profile("root-operator", role["arn"], "org-admin")
    sts = profiles.client(profile, "sts")
    caller = sts.get_caller_identity()["Arn"]

    creds = sts.assume_root(
        TargetPrincipal=member.target_account_id,
        TaskPolicyArn={"arn": DELETE},
        DurationSeconds=300,
    )["Credentials"]
    devices = session_client(member, creds, "iam").list_mfa_devices()["MFADevices"]
    assert len(devices) == 2
    # the role's policy allows the audit and delete tasks only (sts:TaskPolicyArn condition)
    with pytest.raises(ClientError) as exc:
        sts.assume_root(
            TargetPrincipal=member.target_account_id,
            TaskPolicyArn={"arn": "arn:aws:iam::aws:policy/root-task/S3UnlockBucketPolicy"},
        )
    assert error_code(exc) == "AccessDenied"
    assert sts.assume_root(TargetPrincipal=member.target_account_id, TaskPolicyArn={"arn": AUDIT})

    member.control.set_lookup_rate(0)
    ct = profiles.client(profile, "cloudtrail")
    found = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "AssumeRoot"}]
    )["Events"]
    records = [json.loads(e["CloudTrailEvent"]) for e in found]
    assert {r["errorCode"] if "errorCode" in r else "ok" for r in records} == {"ok", "AccessDenied"}
    for record in records:
        assert record["userIdentity"]["type"] == "AssumedRole"
        assert record["userIdentity"]["arn"] == caller
        assert record["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == role["arn"]


def test_a_member_account_role_cannot_assume_root(member: SandboxInfo) -> None:
    role = _role(
        member,
        "member-admin",
        policies=[ALLOW_ALL],
    )
    creds = _assume(member, "admin", role["arn"])["Credentials"]
    with pytest.raises(ClientError) as exc:
        _role_client(member, creds, "sts").assume_root(
            TargetPrincipal=member.target_account_id, TaskPolicyArn={"arn": AUDIT}
        )
    assert error_code(exc) == "AccessDenied"
    assert "not in the management account" in exc.value.response["Error"]["Message"]


def test_control_api_refuses_a_role_in_an_unknown_account(standalone: SandboxInfo) -> None:
    from runbook_sandbox import ControlApiError

    with pytest.raises(ControlApiError) as exc:
        standalone.control.add_role("nowhere", "999999999999")
    assert exc.value.status == 404


def test_session_policy_arns_are_recorded_as_a_list(standalone: SandboxInfo) -> None:
    role = _role(standalone, "with-managed", policies=[READ_IAM])
    iam = standalone.client("iam")
    arn = iam.create_policy(
        PolicyName="summary-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "iam:GetAccountSummary", "Resource": "*"}
                ],
            }
        ),
    )["Policy"]["Arn"]
    creds = _assume(standalone, "admin", role["arn"], PolicyArns=[{"arn": arn}])["Credentials"]
    session = _role_client(standalone, creds, "iam")
    assert session.get_account_summary()["SummaryMap"]
    with pytest.raises(ClientError) as exc:
        session.list_users()
    assert error_code(exc) == "AccessDenied"
    (event,) = _records(standalone, "admin", "EventName", "AssumeRole")
    assert event["Record"]["requestParameters"]["policyArns"] == [{"arn": arn}]


def test_credentials_the_sandbox_would_not_accept_are_not_issued(standalone: SandboxInfo) -> None:
    with pytest.raises(ClientError) as exc:
        standalone.client("sts").get_session_token()
    assert error_code(exc) == "NotImplemented"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
