"""Contract: cloudtrail:LookupEvents over the calls the sandbox served, in CloudTrail's shape.

Every test reaches the sandbox over HTTP through boto3 or the ControlClient. Records of AssumeRoot
carry session credentials, so tests assert single fields and never whole records.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pyotp
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from runbook_sandbox import SandboxInfo, boto_session

DELETE_TASK = "arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials"
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _lookup(
    info: SandboxInfo,
    key: str | None = None,
    value: str | None = None,
    *,
    principal: str = "admin",
    region: str = "us-east-1",
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """All events of one lookup (every page), throttling off."""
    info.control.set_lookup_rate(0)
    ct = info.client("cloudtrail", principal, region=region)
    if key is not None:
        kwargs["LookupAttributes"] = [{"AttributeKey": key, "AttributeValue": value}]
    events: list[dict[str, Any]] = []
    while True:
        page = ct.lookup_events(**kwargs)
        events.extend(page["Events"])
        if not page.get("NextToken"):
            return events
        kwargs["NextToken"] = page["NextToken"]


def _record(event: dict[str, Any]) -> dict[str, Any]:
    record = json.loads(event["CloudTrailEvent"])
    assert isinstance(record, dict)
    return record


def _assume_root(info: SandboxInfo, region: str) -> dict[str, Any]:
    sts = info.client("sts", "org-admin", region=region)
    answer = sts.assume_root(
        TargetPrincipal=info.target_account_id,
        TaskPolicyArn={"arn": DELETE_TASK},
        DurationSeconds=900,
    )
    return dict(answer["Credentials"])


def _session_client(info: SandboxInfo, creds: dict[str, Any], service: str, region: str) -> Any:
    return boto_session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    ).client(service, endpoint_url=info.endpoint, config=NO_RETRIES)


def _with_principal(
    info: SandboxInfo, name: str, policies: list[dict[str, Any]] | None = None
) -> SandboxInfo:
    """Add an IAM principal; the answer is the sandbox's start line, now naming it too."""
    info.control.add_principal(name, info.target_account_id, policies)
    return SandboxInfo.from_json(info.control.info())


def _sandbox_now(info: SandboxInfo) -> dt.datetime:
    return dt.datetime.fromisoformat(info.control.advance_clock(0))


# --------------------------------------------------------------------------- IAM user calls
def test_iam_call_by_admin_is_recorded_in_us_east_1_in_cloudtrail_shape(
    standalone: SandboxInfo,
) -> None:
    standalone.client("iam", region="eu-central-1").get_account_summary()
    admin = standalone.principals["admin"]

    events = _lookup(standalone, "EventName", "GetAccountSummary")
    assert len(events) == 1
    event = events[0]
    assert event["EventName"] == "GetAccountSummary"
    assert event["EventSource"] == "iam.amazonaws.com"
    assert event["Username"] == "runbook-admin"
    assert event["AccessKeyId"] == admin["access_key_id"]
    assert event["ReadOnly"] == "true"
    assert isinstance(event["EventTime"], dt.datetime)
    assert abs(event["EventTime"] - _sandbox_now(standalone)) < dt.timedelta(minutes=1)
    assert event["Resources"] == []

    record = _record(event)
    assert record["eventID"] == event["EventId"]
    assert record["eventName"] == "GetAccountSummary"
    assert record["eventSource"] == "iam.amazonaws.com"
    assert record["awsRegion"] == "us-east-1"
    assert record["eventType"] == "AwsApiCall"
    assert record["recipientAccountId"] == standalone.target_account_id
    assert record["managementEvent"] is True
    assert record["readOnly"] is True
    assert "errorCode" not in record
    assert "_resources" not in record
    identity = record["userIdentity"]
    assert identity["type"] == "IAMUser"
    assert identity["arn"] == admin["arn"]
    assert identity["userName"] == "runbook-admin"
    assert identity["accountId"] == standalone.target_account_id
    assert identity["accessKeyId"] == admin["access_key_id"]


def test_iam_events_are_not_seen_from_another_region(standalone: SandboxInfo) -> None:
    standalone.client("iam").get_account_summary()
    assert len(_lookup(standalone, "EventName", "GetAccountSummary")) == 1
    assert _lookup(standalone, "EventName", "GetAccountSummary", region="us-west-2") == []


def test_lookup_by_username_and_access_key_id(standalone: SandboxInfo) -> None:
    standalone = _with_principal(standalone, "auditor")
    auditor = standalone.principals["auditor"]
    standalone.client("iam").get_account_summary()
    standalone.client("iam", "auditor").list_users()

    by_user = _lookup(standalone, "Username", "runbook-auditor")
    assert [e["EventName"] for e in by_user] == ["ListUsers"]
    by_key = _lookup(standalone, "AccessKeyId", auditor["access_key_id"])
    assert [e["EventName"] for e in by_key] == ["ListUsers"]
    admin_names = {e["EventName"] for e in _lookup(standalone, "Username", "runbook-admin")}
    assert "GetAccountSummary" in admin_names
    assert "ListUsers" not in admin_names


def test_request_parameters_are_lower_camel_and_typed(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    iam.create_user(UserName="alice")
    iam.list_users(MaxItems=7)

    (create,) = _lookup(standalone, "EventName", "CreateUser")
    assert _record(create)["requestParameters"] == {"userName": "alice"}
    assert {"ResourceType": "AWS::IAM::User", "ResourceName": "alice"} in create["Resources"]
    assert create["ReadOnly"] == "false"
    (listed,) = _lookup(standalone, "EventName", "ListUsers")
    assert _record(listed)["requestParameters"] == {"maxItems": 7}


def test_authentication_codes_are_not_recorded(standalone: SandboxInfo) -> None:
    """EnableMFADevice for an IAM user: the two codes never reach the trail."""
    iam = standalone.client("iam")
    iam.create_user(UserName="carol")
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName="carol-phone")["VirtualMFADevice"]
    totp = pyotp.TOTP(device["Base32StringSeed"].decode())
    now = _sandbox_now(standalone)
    iam.enable_mfa_device(
        UserName="carol",
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=totp.at(now - dt.timedelta(seconds=30)),
        AuthenticationCode2=totp.at(now),
    )
    (event,) = _lookup(standalone, "EventName", "EnableMFADevice")
    params = _record(event)["requestParameters"]
    assert sorted(params) == ["serialNumber", "userName"]
    assert params["serialNumber"] == device["SerialNumber"]


def test_access_denied_call_is_recorded_with_error_code(standalone: SandboxInfo) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:GetAccountSummary", "Resource": "*"}],
    }
    standalone = _with_principal(standalone, "narrow", [policy])
    with pytest.raises(ClientError) as exc:
        standalone.client("iam", "narrow").list_users()
    assert _code(exc) == "AccessDenied"

    (event,) = _lookup(standalone, "Username", "runbook-narrow")
    assert event["EventName"] == "ListUsers"
    record = _record(event)
    assert record["errorCode"] == "AccessDenied"
    assert "iam:ListUsers" in record["errorMessage"]
    assert record["responseElements"] is None


def test_failed_call_from_moto_is_recorded_with_its_error_code(standalone: SandboxInfo) -> None:
    with pytest.raises(ClientError) as exc:
        standalone.client("iam").get_user(UserName="nobody-here")
    assert _code(exc) == "NoSuchEntity"
    (event,) = _lookup(standalone, "EventName", "GetUser")
    assert _record(event)["errorCode"] == "NoSuchEntity"


# --------------------------------------------------------------------------- AssumeRoot
def test_assume_root_is_recorded_in_the_management_account_in_its_region(
    member: SandboxInfo,
) -> None:
    creds = _assume_root(member, "eu-west-1")
    org_admin = member.principals["org-admin"]

    events = _lookup(member, "EventName", "AssumeRoot", principal="org-admin", region="eu-west-1")
    assert len(events) == 1
    event = events[0]
    assert event["EventSource"] == "sts.amazonaws.com"
    assert event["Username"] == "runbook-org-admin"
    assert event["AccessKeyId"] == org_admin["access_key_id"]
    record = _record(event)
    assert record["awsRegion"] == "eu-west-1"
    assert record["recipientAccountId"] == org_admin["account_id"]
    assert record["userIdentity"]["type"] == "IAMUser"
    assert record["userIdentity"]["arn"] == org_admin["arn"]
    assert record["requestParameters"] == {
        "targetPrincipal": member.target_account_id,
        "taskPolicyArn": {"arn": DELETE_TASK},
        "durationSeconds": 900,
    }
    issued = record["responseElements"]["credentials"]
    assert issued["accessKeyId"] == creds["AccessKeyId"]
    assert issued["accessKeyId"].startswith("ASIA")
    assert "secretAccessKey" not in issued

    # not in us-east-1, and not in the member account's trail
    assert _lookup(member, "EventName", "AssumeRoot", principal="org-admin") == []
    assert _lookup(member, "EventName", "AssumeRoot", region="eu-west-1") == []


def test_calls_in_an_assume_root_session_are_recorded_as_root_in_the_member_account(
    member: SandboxInfo,
) -> None:
    creds = _assume_root(member, "eu-west-1")
    serial = f"arn:aws:iam::{member.target_account_id}:mfa/root-authenticator"
    # an IAM call: recorded in us-east-1 whatever the client's region
    iam = _session_client(member, creds, "iam", "eu-west-1")
    iam.deactivate_mfa_device(SerialNumber=serial)

    events = _lookup(member, "AccessKeyId", creds["AccessKeyId"])
    assert [e["EventName"] for e in events] == ["DeactivateMFADevice"]
    event = events[0]
    assert event["Username"] == "root"
    assert event["AccessKeyId"] == creds["AccessKeyId"]
    assert {"ResourceType": "AWS::IAM::MFADevice", "ResourceName": serial} in event["Resources"]
    record = _record(event)
    assert record["awsRegion"] == "us-east-1"
    assert record["recipientAccountId"] == member.target_account_id
    assert record["requestParameters"] == {"serialNumber": serial}
    identity = record["userIdentity"]
    assert identity["type"] == "Root"
    assert identity["arn"] == f"arn:aws:iam::{member.target_account_id}:root"
    assert identity["principalId"] == member.target_account_id
    assert identity["accountId"] == member.target_account_id
    assert identity["accessKeyId"] == creds["AccessKeyId"]
    context = identity["sessionContext"]
    assert context["assumedRoot"] == "true"
    assert context["attributes"]["mfaAuthenticated"] == "false"

    # the session started when AssumeRoot was called, not when it expires
    (assumed,) = _lookup(
        member, "EventName", "AssumeRoot", principal="org-admin", region="eu-west-1"
    )
    assert context["attributes"]["creationDate"] == _record(assumed)["eventTime"]

    # the member's trail in the session's region has nothing of it (IAM lands in us-east-1)
    assert _lookup(member, "AccessKeyId", creds["AccessKeyId"], region="eu-west-1") == []


def test_sts_call_in_an_assume_root_session_lands_in_its_region(member: SandboxInfo) -> None:
    creds = _assume_root(member, "us-east-1")
    sts = _session_client(member, creds, "sts", "ap-southeast-2")
    assert sts.get_caller_identity()["Account"] == member.target_account_id

    events = _lookup(member, "AccessKeyId", creds["AccessKeyId"], region="ap-southeast-2")
    assert [e["EventName"] for e in events] == ["GetCallerIdentity"]
    assert _record(events[0])["userIdentity"]["sessionContext"]["assumedRoot"] == "true"
    assert _lookup(member, "AccessKeyId", creds["AccessKeyId"]) == []


def test_denied_call_in_an_assume_root_session_is_recorded(member: SandboxInfo) -> None:
    creds = _assume_root(member, "us-east-1")
    with pytest.raises(ClientError) as exc:
        _session_client(member, creds, "iam", "us-east-1").list_users()
    assert _code(exc) == "AccessDenied"
    (event,) = _lookup(member, "AccessKeyId", creds["AccessKeyId"])
    record = _record(event)
    assert record["eventName"] == "ListUsers"
    assert record["errorCode"] == "AccessDenied"
    assert record["userIdentity"]["type"] == "Root"


# --------------------------------------------------------------------------- lookup rules
def test_only_one_lookup_attribute_per_call(standalone: SandboxInfo) -> None:
    standalone.control.set_lookup_rate(0)
    ct = standalone.client("cloudtrail")
    with pytest.raises(ClientError) as exc:
        ct.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "EventName", "AttributeValue": "ListUsers"},
                {"AttributeKey": "Username", "AttributeValue": "root"},
            ]
        )
    assert _code(exc) == "InvalidLookupAttributesException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_max_results_above_50_is_refused(standalone: SandboxInfo) -> None:
    standalone.control.set_lookup_rate(0)
    with pytest.raises(ClientError) as exc:
        standalone.client("cloudtrail").lookup_events(MaxResults=51)
    assert _code(exc) == "InvalidMaxResultsException"


def test_start_after_end_is_refused(standalone: SandboxInfo) -> None:
    standalone.control.set_lookup_rate(0)
    now = _sandbox_now(standalone)
    with pytest.raises(ClientError) as exc:
        standalone.client("cloudtrail").lookup_events(
            StartTime=now, EndTime=now - dt.timedelta(hours=1)
        )
    assert _code(exc) == "InvalidTimeRangeException"


def test_events_come_newest_first(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    for name in ("first", "second", "third"):
        iam.create_user(UserName=name)
    events = _lookup(standalone, "EventName", "CreateUser")
    assert [_record(e)["requestParameters"]["userName"] for e in events] == [
        "third",
        "second",
        "first",
    ]


def test_start_and_end_time_select_a_window(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    iam.create_user(UserName="early")
    standalone.control.advance_clock(3600)
    middle = _sandbox_now(standalone)
    iam.create_user(UserName="middle")
    standalone.control.advance_clock(3600)
    iam.create_user(UserName="late")

    def names(**window: Any) -> list[str]:
        events = _lookup(standalone, "EventName", "CreateUser", **window)
        return [_record(e)["requestParameters"]["userName"] for e in events]

    assert names() == ["late", "middle", "early"]
    assert names(StartTime=middle - dt.timedelta(minutes=5)) == ["late", "middle"]
    assert names(EndTime=middle + dt.timedelta(minutes=5)) == ["middle", "early"]
    assert names(
        StartTime=middle - dt.timedelta(minutes=5), EndTime=middle + dt.timedelta(minutes=5)
    ) == ["middle"]
    assert names(StartTime=middle + dt.timedelta(hours=3)) == []


def test_pagination_across_more_than_50_events(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    for index in range(62):
        iam.create_user(UserName=f"user-{index:03d}")
    standalone.control.set_lookup_rate(0)
    ct = standalone.client("cloudtrail")
    query = [{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}]

    first = ct.lookup_events(LookupAttributes=query)
    assert len(first["Events"]) == 50  # the default and the maximum page
    assert first.get("NextToken")

    # events recorded between pages neither repeat nor shift the next page
    iam.create_user(UserName="user-late")

    second = ct.lookup_events(LookupAttributes=query, NextToken=first["NextToken"])
    assert len(second["Events"]) == 12
    assert "NextToken" not in second
    names = [
        _record(e)["requestParameters"]["userName"] for e in first["Events"] + second["Events"]
    ]
    assert names == [f"user-{index:03d}" for index in reversed(range(62))]
    ids = [e["EventId"] for e in first["Events"] + second["Events"]]
    assert len(set(ids)) == 62

    # smaller pages with MaxResults, through to the end
    pages: list[int] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"LookupAttributes": query, "MaxResults": 20}
        if token:
            kwargs["NextToken"] = token
        page = ct.lookup_events(**kwargs)
        pages.append(len(page["Events"]))
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [20, 20, 20, 3]


def test_next_token_of_another_query_is_refused(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    for index in range(3):
        iam.create_user(UserName=f"u{index}")
    standalone.control.set_lookup_rate(0)
    ct = standalone.client("cloudtrail")
    query = [{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}]
    token = ct.lookup_events(LookupAttributes=query, MaxResults=1)["NextToken"]
    other = [{"AttributeKey": "EventName", "AttributeValue": "ListUsers"}]
    with pytest.raises(ClientError) as exc:
        ct.lookup_events(LookupAttributes=other, MaxResults=1, NextToken=token)
    assert _code(exc) == "InvalidNextTokenException"
    with pytest.raises(ClientError) as exc:
        ct.lookup_events(LookupAttributes=query, MaxResults=1, NextToken="not-a-token")
    assert _code(exc) == "InvalidNextTokenException"


def test_lookup_events_calls_are_not_recorded(standalone: SandboxInfo) -> None:
    _lookup(standalone)
    _lookup(standalone)
    assert _lookup(standalone, "EventName", "LookupEvents") == []


def test_throttling_above_two_lookups_per_second_per_region(standalone: SandboxInfo) -> None:
    """On by default: AWS allows 2 LookupEvents per second per account per region."""
    ct = standalone.client("cloudtrail")
    outcomes: list[str] = []
    for _ in range(6):
        try:
            ct.lookup_events(MaxResults=1)
            outcomes.append("ok")
        except ClientError as err:
            assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            outcomes.append(str(err.response["Error"]["Code"]))
    assert outcomes[:2] == ["ok", "ok"]
    assert "ThrottlingException" in outcomes
    assert set(outcomes) == {"ok", "ThrottlingException"}

    # another region has its own allowance
    standalone.client("cloudtrail", region="us-west-2").lookup_events(MaxResults=1)
    # the allowance comes back after a second
    time.sleep(1.1)
    ct.lookup_events(MaxResults=1)

    standalone.control.set_lookup_rate(0)
    for _ in range(10):
        ct.lookup_events(MaxResults=1)
