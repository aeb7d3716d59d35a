"""CloudTrail evidence: the events that prove each claim, redacted, under the rate limit."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

import pytest

from runbook_lib.aws import actions, evidence, privileged
from runbook_lib.aws.evidence import RateLimiter, TrailEvent
from runbook_lib.errors import ThrottledError
from runbook_sandbox import ControlApiError, SandboxInfo

from .helpers import (
    MANAGEMENT_ID,
    STANDALONE_ID,
    ContextFactory,
    assert_not_leaked,
    serials,
)


def trail_event(record: dict[str, Any], name: str = "ConsoleLogin") -> TrailEvent:
    return TrailEvent(
        "id-1",
        name,
        "2026-01-01T00:00:00+00:00",
        "signin.amazonaws.com",
        "root",
        None,
        "us-east-1",
        record,
    )


# ----------------------------------------------------------------- deactivation
def test_find_deactivation_of_an_assume_root_removal(
    member: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    virtual, fido = serials(member)["virtual"], serials(member)["fido"]
    target, mgmt = aws_for(member), aws_for(member, "org-admin")
    result = actions.remove_root_mfa_device(
        mgmt, member.target_account_id, virtual, dry_run=False, target_reader=target
    )
    ev = evidence.find_deactivation(target, member.target_account_id, virtual, since)
    assert ev.found and len(ev.events) == 1
    (event,) = ev.events
    assert ev.event_ids == [event.event_id]
    assert event.identity_type == "Root" and event.error_code is None
    assert event.access_key_id and event.access_key_id.startswith("ASIA")
    full_key = result.details.get("session_access_key_id")
    suffix = result.details.get("session_key_suffix") or (full_key or "")[-4:]
    assert event.access_key_id.endswith(suffix)
    if full_key:
        assert event.access_key_id == full_key
    assert "AssumeRoot session" in ev.facts[0] and f"...{suffix}" in ev.facts[0]
    assert ev.summary()["claim"] == f"root deactivated {virtual}"

    # the AssumeRoot record in the management account names the same key: the chain holds
    assumed = evidence.find_assume_root(mgmt, member.target_account_id, since, "us-east-1")
    issued = [e.record["responseElements"]["credentials"]["accessKeyId"] for e in assumed.events]
    assert event.access_key_id in issued

    by_key = evidence.find_deactivation(
        target, member.target_account_id, virtual, since, access_key_id=event.access_key_id
    )
    assert by_key.event_ids == ev.event_ids
    other_key = evidence.find_deactivation(
        target, member.target_account_id, virtual, since, access_key_id="ASIAOTHERKEY00000000"
    )
    assert not other_key.found and other_key.facts == []
    assert not evidence.find_deactivation(target, member.target_account_id, fido, since).found
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert not evidence.find_deactivation(target, member.target_account_id, virtual, later).found


def test_find_deactivation_of_a_console_removal(
    standalone: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    control = standalone.control
    virtual = serials(standalone)["virtual"]
    session = control.sign_in_fully(STANDALONE_ID)
    control.remove_mfa(session, virtual)
    ev = evidence.find_deactivation(aws_for(standalone), STANDALONE_ID, virtual, since)
    assert ev.found and len(ev.events) == 1
    assert "(console)" in ev.facts[0]
    assert "AssumeRoot" not in ev.facts[0]


def test_failed_deactivation_is_not_evidence(
    standalone: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    """A device bound in the current console session cannot be removed: the error event
    recorded for the attempt must not count."""
    control = standalone.control
    session = control.sign_in_fully(STANDALONE_ID)
    new = control.bind_virtual(session, "second-phone")
    with pytest.raises(ControlApiError, match="EntityTemporarilyUnmodifiable"):
        control.remove_mfa(session, new)
    ev = evidence.find_deactivation(aws_for(standalone), STANDALONE_ID, new, since)
    assert not ev.found


# ----------------------------------------------------------------- console sign-in
def test_find_console_login_with_and_without_mfa(
    standalone: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    control = standalone.control
    reader = aws_for(standalone)
    session = control.sign_in_fully(STANDALONE_ID)  # with the virtual device
    with_mfa = evidence.find_console_login(reader, STANDALONE_ID, since, mfa=True)
    assert with_mfa.found and len(with_mfa.events) == 1
    assert "MFAUsed=Yes" in with_mfa.facts[0]
    assert not evidence.find_console_login(reader, STANDALONE_ID, since, mfa=False).found

    control.remove_mfa(session, serials(standalone)["virtual"])
    control.sign_out(session)
    # a wrong e-mailed code: a failed sign-in, which is no evidence
    assert control.sign_in(STANDALONE_ID)["status"] == "email_code_sent"
    with pytest.raises(ControlApiError, match="FailedAuthentication"):
        control.sign_in(STANDALONE_ID, email_code="not-a-code")
    assert not evidence.find_console_login(reader, STANDALONE_ID, since, mfa=False).found

    control.sign_in_fully(STANDALONE_ID)  # no device left: the e-mailed code
    without = evidence.find_console_login(reader, STANDALONE_ID, since, mfa=False)
    assert without.found and len(without.events) == 1
    assert "MFAUsed=No" in without.facts[0]
    assert without.claim == "root signed in to the console without MFA"
    both = evidence.find_console_login(reader, STANDALONE_ID, since)
    assert len(both.events) == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("YES", True),
        ("Yes", True),
        ("yes", True),
        (" Yes ", True),
        ("no", False),
        ("No", False),
        ("NO", False),
        ("", False),
    ],
)
def test_mfa_used_ignores_case(value: str, expected: bool) -> None:
    assert evidence.mfa_used(trail_event({"additionalEventData": {"MFAUsed": value}})) is expected


def test_mfa_used_unknown_when_absent() -> None:
    assert evidence.mfa_used(trail_event({})) is None
    assert evidence.mfa_used(trail_event({"additionalEventData": None})) is None
    assert evidence.mfa_used(trail_event({"additionalEventData": {"LoginTo": "x"}})) is None


# ----------------------------------------------------------------- binding
def test_find_enable_after_binding(
    standalone: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    control = standalone.control
    reader = aws_for(standalone)
    old = serials(standalone)["virtual"]
    session = control.sign_in_fully(STANDALONE_ID)
    control.remove_mfa(session, old)
    assert not evidence.find_enable(reader, STANDALONE_ID, since, exclude_serial=old).found
    # wrong codes: an EnableMFADevice error event, which is no evidence
    start = control.call(
        "POST", "console/bind-virtual/start", {"session_id": session, "name": "typo-phone"}
    )
    with pytest.raises(ControlApiError, match="InvalidAuthenticationCode"):
        control.call(
            "POST",
            "console/bind-virtual/finish",
            {
                "session_id": session,
                "serial": start["serial"],
                "code1": "000000",
                "code2": "000000",
            },
        )
    assert not evidence.find_enable(reader, STANDALONE_ID, since, exclude_serial=old).found

    new = control.bind_virtual(session, "new-phone")
    ev = evidence.find_enable(reader, STANDALONE_ID, since, exclude_serial=old)
    assert ev.found and len(ev.events) == 1
    assert new in ev.facts[0]
    assert not evidence.find_enable(reader, STANDALONE_ID, since, exclude_serial=new).found


# ----------------------------------------------------------------- AssumeRoot, region
def test_find_assume_root_only_in_the_region_used(
    member: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    mgmt = aws_for(member, "org-admin")
    with privileged.assume_root(
        mgmt, member.target_account_id, privileged.AUDIT, region="eu-west-1"
    ):
        pass
    there = evidence.find_assume_root(mgmt, member.target_account_id, since, "eu-west-1")
    assert there.found and len(there.events) == 1
    assert there.events[0].region == "eu-west-1"
    assert "IAMAuditRootUserCredentials" in there.facts[0]
    assert not evidence.find_assume_root(mgmt, member.target_account_id, since, "us-east-1").found
    assert not evidence.find_assume_root(mgmt, "999999999999", since, "eu-west-1").found


def test_lookup_refuses_two_attributes(
    member: SandboxInfo, aws_for: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = aws_for(member)
    monkeypatch.setattr(ctx, "client", lambda *a, **k: pytest.fail("a call was made"))
    with pytest.raises(ValueError, match="one lookup attribute"):
        evidence.lookup(ctx, event_name="AssumeRoot", access_key_id="ASIAEXAMPLE")
    with pytest.raises(ValueError):
        evidence.lookup(ctx, username="root", access_key_id="ASIAEXAMPLE")


# ----------------------------------------------------------------- redaction
def test_assume_root_records_are_redacted(
    member: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    mgmt = aws_for(member, "org-admin")
    with privileged.assume_root(mgmt, member.target_account_id, privileged.AUDIT) as root:
        creds = root.aws.session.get_credentials().get_frozen_credentials()
        token, secret = creds.token, creds.secret_key
    # the sandbox stores the token, as AWS does: the redaction is what keeps it out
    raw = member.client("cloudtrail", "org-admin").lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "AssumeRoot"}]
    )
    assert sum(token in e["CloudTrailEvent"] for e in raw["Events"]) == 1
    time.sleep(0.5)

    events = evidence.lookup(mgmt, event_name="AssumeRoot", start=since)
    found = evidence.find_assume_root(mgmt, member.target_account_id, since, "us-east-1")
    assert len(events) == 1 and found.found
    for event in [*events, *found.events]:
        text = json.dumps(event.record) + repr(event)
        assert_not_leaked(text, token, "session token in a looked-up record")
        assert_not_leaked(text, secret, "secret key in a looked-up record")
        issued = event.record["responseElements"]["credentials"]
        assert issued["sessionToken"] == "<redacted>"
        assert issued["accessKeyId"] == creds.access_key
    assert_not_leaked(json.dumps(found.summary()), token, "session token in the summary")


def test_redact_walks_nested_records() -> None:
    record = {
        "a": [{"sessionToken": "T", "keep": 1}, {"Password": "", "x": None}],
        "b": {"SecretAccessKey": "S", "c": {"authenticationCode1": "123456"}},
    }
    assert evidence.redact(record) == {
        "a": [{"sessionToken": "<redacted>", "keep": 1}, {"Password": "", "x": None}],
        "b": {"SecretAccessKey": "<redacted>", "c": {"authenticationCode1": "<redacted>"}},
    }
    assert record["b"]["SecretAccessKey"] == "S", "the input is not modified"


# ----------------------------------------------------------------- rate limiting
class FakeTime:
    def __init__(self) -> None:
        self.now = 50.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limiter_spaces_calls_per_key() -> None:
    fake = FakeTime()
    limiter = RateLimiter(2.0, clock=fake.clock, sleep=fake.sleep)
    starts = []
    for _ in range(4):
        limiter.wait("us-east-1")
        starts.append(fake.now)
    assert starts == [50.0, 50.5, 51.0, 51.5]
    limiter.wait("eu-west-1")  # another key does not wait
    assert fake.now == 51.5
    fake.now += 10  # idle time is not banked as a burst
    limiter.wait("us-east-1")
    limiter.wait("us-east-1")
    assert fake.sleeps[-1] == pytest.approx(0.5)
    slow = RateLimiter(0.25, clock=fake.clock, sleep=fake.sleep)
    slow.wait("k")
    before = fake.now
    slow.wait("k")
    assert fake.now - before == pytest.approx(4.0)


def test_rate_limiter_is_shared_by_threads() -> None:
    fake_lock = threading.Lock()
    clock_value = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        with fake_lock:
            slept.append(seconds)

    limiter = RateLimiter(2.0, clock=lambda: clock_value[0], sleep=sleep)
    threads = [threading.Thread(target=limiter.wait, args=("k",)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # each thread gets its own slot
    assert sorted(slept) == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5])


def test_default_rate_keeps_under_cloudtrail_throttling(
    member: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    """The sandbox throttles LookupEvents at 2/s per account and region (AWS's limit). With
    retries off, any throttle would surface, so the default limiter alone keeps under it."""
    reader = aws_for(member, max_attempts=1)
    mgmt = aws_for(member, "org-admin", max_attempts=1)
    sts = member.client("sts")
    for _ in range(55):  # more than one page of 50
        sts.get_caller_identity()
    start = time.monotonic()
    paged = evidence.lookup(reader, event_name="GetCallerIdentity", start=since)
    assert len(paged) == 55
    for _ in range(3):
        evidence.lookup(reader, event_name="DeactivateMFADevice", start=since)
        evidence.find_assume_root(mgmt, member.target_account_id, since, "us-east-1")
    elapsed = time.monotonic() - start
    assert elapsed >= 3.0, "8 lookups at 2/s take at least 3.5 s"


def test_without_the_limiter_the_sandbox_throttles(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    """The control for the test above: the same burst without spacing is throttled."""
    reader = aws_for(member, max_attempts=1)
    unlimited = RateLimiter(1000.0)
    with pytest.raises(ThrottledError) as exc:
        for _ in range(10):
            evidence.lookup(reader, event_name="ConsoleLogin", limiter=unlimited)
    assert exc.value.operation == "LookupEvents"


def test_lookup_in_another_account_is_separate(
    standalone: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    """LookupEvents answers the caller's account: nothing of another account shows."""
    reader = aws_for(standalone)
    standalone.control.sign_in_fully(STANDALONE_ID)
    assert evidence.find_console_login(reader, STANDALONE_ID, since).found
    assert not evidence.find_console_login(reader, MANAGEMENT_ID, since).found


def test_wait_for_evidence_returns_when_found() -> None:
    found = evidence.Evidence("claim", True, ["e"], ["fact"])
    assert evidence.wait_for_evidence(lambda: found, timeout=1, interval=0.01) is found
