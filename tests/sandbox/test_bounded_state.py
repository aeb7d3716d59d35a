"""Contract: the sandbox's memory is bounded in the number of calls. Expired STS sessions are
dropped (and still answered ExpiredToken), and the CloudTrail store keeps the newest events of
the last 90 days only (``--cloudtrail-max-events``, ``POST /_sandbox/cloudtrail-retention``).

AWS: "The duration, in seconds, of the privileged session. The value can range from 0 seconds
up to the maximum session duration of 900 seconds" (STS API reference, AssumeRoot,
https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoot.html); temporary credentials
"expire after a specified duration" and are not usable afterwards (IAM User Guide, "Temporary
security credentials in IAM", https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp.html);
"You can look up events that occurred in a Region within the last 90 days" (CloudTrail API
reference, LookupEvents,
https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html).
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runbook_sandbox import ControlApiError, SandboxInfo

from .helpers import AUDIT, assume_root, error_code, session_client

RUNBOOK_SANDBOX = [sys.executable, "-m", "runbook_sandbox"]


def _status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def test_expired_assume_root_sessions_are_dropped_and_still_answer_expired_token(
    member: SandboxInfo,
) -> None:
    before = member.control.stats()["sessions"]
    sessions = [assume_root(member, AUDIT, duration=60) for _ in range(3)]
    for creds in sessions:
        assert session_client(member, creds, "iam").list_mfa_devices()["MFADevices"]
    assert member.control.stats()["sessions"] == before + 3
    member.control.advance_clock(61)
    assert member.control.stats()["sessions"] == before  # dropped, nothing kept for them
    for creds in sessions:
        with pytest.raises(ClientError) as exc:
            session_client(member, creds, "iam").list_mfa_devices()
        assert error_code(exc) == "ExpiredToken"
        assert _status(exc) == 403
        assert exc.value.response["Error"]["Message"] == (
            "The security token included in the request is expired"
        )


def test_sessions_do_not_accumulate_over_many_short_sessions(member: SandboxInfo) -> None:
    """An audit loop issues a session per account: only the unexpired ones are held."""
    before = member.control.stats()["sessions"]
    peak = 0
    for _ in range(5):
        for _ in range(4):
            assume_root(member, AUDIT, duration=30)
        peak = max(peak, member.control.stats()["sessions"] - before)
        member.control.advance_clock(31)
    assert peak == 4
    assert member.control.stats()["sessions"] == before


def test_an_altered_or_swapped_token_of_a_dropped_session_is_invalid_not_expired(
    member: SandboxInfo,
) -> None:
    before = member.control.stats()["sessions"]
    first, second = (assume_root(member, AUDIT, duration=60) for _ in range(2))
    member.control.advance_clock(61)
    assert member.control.stats()["sessions"] == before  # both dropped: only tokens are left
    token = first["SessionToken"]
    altered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    cases: list[dict[str, Any]] = [
        {**first, "SessionToken": altered},
        {**first, "SessionToken": second["SessionToken"]},  # another session's token
        {**first, "SessionToken": "not base64 at all!"},
    ]
    for creds in cases:
        with pytest.raises(ClientError) as exc:
            session_client(member, creds, "iam").list_mfa_devices()
        assert error_code(exc) == "InvalidClientTokenId", creds["SessionToken"][:12]
    with pytest.raises(ClientError) as exc:
        session_client(member, first, "iam").list_mfa_devices()
    assert error_code(exc) == "ExpiredToken"


def test_a_session_from_before_a_reset_is_unknown(member: SandboxInfo) -> None:
    creds = assume_root(member, AUDIT, duration=60)
    member.control.reset()
    assert member.control.stats()["sessions"] == 0
    member.control.advance_clock(61)
    with pytest.raises(ClientError) as exc:
        session_client(member, creds, "iam").list_mfa_devices()
    assert error_code(exc) == "InvalidClientTokenId"


def test_expired_role_sessions_are_dropped_too(standalone: SandboxInfo) -> None:
    role = standalone.control.add_role(
        "bounded",
        standalone.target_account_id,
        policies=[
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}],
            }
        ],
    )
    before = standalone.control.stats()["sessions"]
    creds = standalone.client("sts").assume_role(
        RoleArn=role["arn"], RoleSessionName="bounded", DurationSeconds=900
    )["Credentials"]
    assert standalone.control.stats()["sessions"] == before + 1
    iam = session_client(standalone, creds, "iam")
    assert iam.get_account_summary()["SummaryMap"]
    standalone.control.advance_clock(901)
    assert standalone.control.stats()["sessions"] == before
    with pytest.raises(ClientError) as exc:
        iam.get_account_summary()
    assert error_code(exc) == "ExpiredToken"


# ---------------------------------------------------------------------------- CloudTrail store
def _summary_request_ids(info: SandboxInfo) -> list[str]:
    """Request ids of the ListVirtualMFADevices events LookupEvents answers, newest first."""
    events = info.client("cloudtrail").lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "ListVirtualMFADevices"}],
        MaxResults=50,
    )["Events"]
    return [json.loads(e["CloudTrailEvent"])["requestID"] for e in events]


def test_the_store_keeps_the_newest_events_at_its_cap(standalone: SandboxInfo) -> None:
    assert standalone.control.stats()["max_events"] == 10_000  # the default
    standalone.control.set_lookup_rate(0)
    assert standalone.control.set_cloudtrail_retention(5)["max_events"] == 5
    iam = standalone.client("iam")
    made = [iam.list_virtual_mfa_devices()["ResponseMetadata"]["RequestId"] for _ in range(8)]
    assert standalone.control.stats()["events"] == 5
    assert _summary_request_ids(standalone) == list(reversed(made[-5:]))  # the 3 oldest dropped
    # a lower cap drops the oldest at once; a reset restores the default
    standalone.control.set_cloudtrail_retention(2)
    assert _summary_request_ids(standalone) == list(reversed(made[-2:]))
    standalone.control.reset()
    assert standalone.control.stats()["max_events"] == 10_000


def test_events_older_than_lookup_s_90_days_are_not_kept(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    iam.list_virtual_mfa_devices()
    assert standalone.control.stats()["events"] >= 1
    standalone.control.advance_clock(91 * 24 * 3600)
    latest = iam.list_virtual_mfa_devices()["ResponseMetadata"]["RequestId"]
    assert standalone.control.stats()["events"] == 1
    assert _summary_request_ids(standalone) == [latest]


@pytest.mark.parametrize("value", [0, -1, 10_000_001, "10", True])
def test_a_bad_cap_is_refused(standalone: SandboxInfo, value: Any) -> None:
    with pytest.raises(ControlApiError) as exc:
        standalone.control.set_cloudtrail_retention(value)
    assert exc.value.status == 400 and "max_events" in exc.value.message
    assert standalone.control.stats()["max_events"] == 10_000


def test_the_cap_is_a_command_line_option_kept_across_resets() -> None:
    proc = subprocess.Popen(
        [*RUNBOOK_SANDBOX, "--cloudtrail-max-events", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no start line"
        info = SandboxInfo.from_json(json.loads(proc.stdout.readline()))
        assert info.control.stats()["max_events"] == 7
        info.control.reset()
        assert info.control.stats()["max_events"] == 7
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("value", ["0", "x"])
def test_a_bad_cap_option_is_a_usage_error(value: str) -> None:
    done = subprocess.run(
        [*RUNBOOK_SANDBOX, "--cloudtrail-max-events", value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()  # one line, no usage block
    assert line.startswith("runbook-sandbox: ") and "--cloudtrail-max-events" in line
    assert ("must be 1..10000000, got 0" if value == "0" else "invalid int value: 'x'") in line
