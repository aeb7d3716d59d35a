"""Contract: AssumeRoot's TargetPrincipal in both documented forms, and its CloudTrail event's
``expiration`` written as AWS writes it.

* TargetPrincipal: "The member account principal ARN or account ID" (STS API reference,
  AssumeRoot, https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoot.html; length
  12 to 2048). The principal of a member account is its root user, ``arn:aws:iam::ID:root``.
* The AssumeRoot event: "expiration": "Oct 25, 2024, 9:07:11 PM" (IAM User Guide, "Track
  privileged tasks in AWS CloudTrail",
  https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-track-privileged-tasks.html):
  month abbreviation, day and 12-hour clock hour without zero-padding, seconds, AM/PM.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runbook_sandbox import SandboxInfo

from .helpers import AUDIT, DELETE, aws_cli, error_code, session_client

AWS_EXPIRATION = re.compile(r"[A-Z][a-z]{2} [1-9]\d?, \d{4}, (1[0-2]|[1-9]):[0-5]\d:[0-5]\d [AP]M")


def _assume(info: SandboxInfo, target: str, policy: str = AUDIT, **kw: Any) -> dict[str, Any]:
    sts = info.client("sts", "org-admin")
    return dict(sts.assume_root(TargetPrincipal=target, TaskPolicyArn={"arn": policy}, **kw))


def _assume_root_records(info: SandboxInfo) -> list[dict[str, Any]]:
    info.control.set_lookup_rate(0)
    ct = info.client("cloudtrail", "org-admin")
    events = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "AssumeRoot"}]
    )["Events"]
    return [dict(e, Record=json.loads(e["CloudTrailEvent"])) for e in events]


def test_target_principal_may_be_the_member_root_arn(member: SandboxInfo) -> None:
    account = member.target_account_id
    arn = f"arn:aws:iam::{account}:root"
    creds = _assume(member, arn, DELETE)["Credentials"]
    iam = session_client(member, creds, "iam")
    assert len(iam.list_mfa_devices()["MFADevices"]) == 2
    identity = session_client(member, creds, "sts").get_caller_identity()
    assert identity["Arn"] == arn and identity["Account"] == account

    (event,) = _assume_root_records(member)
    # CloudTrail shows the parameter as sent; the resource is the member's root either way
    assert event["Record"]["requestParameters"]["targetPrincipal"] == arn
    assert {"ResourceType": "AWS::IAM::Root", "ResourceName": arn} in event["Resources"]


def test_both_forms_reach_the_same_account(member: SandboxInfo) -> None:
    account = member.target_account_id
    for target in (account, f"arn:aws:iam::{account}:root"):
        creds = _assume(member, target)["Credentials"]
        answer = session_client(member, creds, "sts").get_caller_identity()
        assert answer["Account"] == account, target


def test_an_arn_that_is_no_member_principal_is_refused(member: SandboxInfo) -> None:
    account = member.target_account_id
    management = member.principals["org-admin"]["account_id"]
    for target in (f"arn:aws:iam::{account}:user/runbook-admin", f"arn:aws:iam::{account}:rot"):
        with pytest.raises(ClientError) as exc:
            _assume(member, target)
        assert error_code(exc) == "ValidationError", target
    for target in (f"arn:aws:iam::{management}:root", "arn:aws:iam::999999999999:root"):
        with pytest.raises(ClientError) as exc:
            _assume(member, target)
        assert error_code(exc) == "AccessDenied", target
        assert f"on resource: {target} " in exc.value.response["Error"]["Message"]


def _expiry_needing_no_padding(now: dt.datetime) -> dt.datetime:
    """The next half past an hour, on a day 1-9, whose 12-hour clock hour is 1-9: where a
    zero-padded format ("Dec 01", "05:30") would differ from AWS's."""
    when = now.replace(minute=30, second=0, microsecond=0) + dt.timedelta(hours=1)
    while not (when.day <= 9 and 1 <= when.hour % 12 <= 9):
        when += dt.timedelta(hours=1)
    return when


def test_assume_root_event_expiration_is_written_as_aws_writes_it(member: SandboxInfo) -> None:
    now = dt.datetime.fromisoformat(member.control.advance_clock(0))
    expires = _expiry_needing_no_padding(now)
    member.control.advance_clock((expires - now).total_seconds() - 900)
    creds = _assume(member, member.target_account_id, DurationSeconds=900)["Credentials"]

    (event,) = _assume_root_records(member)
    text = event["Record"]["responseElements"]["credentials"]["expiration"]
    assert AWS_EXPIRATION.fullmatch(text), text
    issued = creds["Expiration"].astimezone(dt.UTC)
    hour = issued.hour % 12 or 12
    assert text == f"{issued:%b} {issued.day}, {issued.year}, {hour}:{issued:%M:%S} {issued:%p}"
    assert abs((issued - expires).total_seconds()) < 120


@pytest.mark.awscli
def test_assume_root_then_use_the_credentials_with_the_aws_cli(member: SandboxInfo) -> None:
    """The ordinary sequence, as a person types it: `aws sts assume-root` from the management
    account, then the returned credentials in the environment for `aws iam list-mfa-devices`
    (STS API reference, AssumeRoot: "returns a set of short term credentials you can use to
    perform privileged tasks on a member account"; IAM User Guide, "Perform a privileged task
    on an AWS Organizations member account")."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    assumed = aws_cli(
        member,
        "sts",
        "assume-root",
        "--target-principal",
        member.target_account_id,
        "--task-policy-arn",
        "arn=arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials",
        "--duration-seconds",
        "900",
        principal="org-admin",
    )
    assert assumed.returncode == 0, assumed.stderr
    creds = json.loads(assumed.stdout)["Credentials"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=creds["AccessKeyId"],
        AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
        AWS_SESSION_TOKEN=creds["SessionToken"],
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    aws = Path(sys.executable).parent / "aws"
    listed = subprocess.run(
        [
            str(aws),
            "--endpoint-url",
            member.endpoint,
            "--output",
            "json",
            "iam",
            "list-mfa-devices",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    serials = {d["SerialNumber"] for d in json.loads(listed.stdout)["MFADevices"]}
    expected = {d["serial"] for d in member.control.state(member.target_account_id)["devices"]}
    assert serials == expected and serials
