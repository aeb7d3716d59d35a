"""Every AssumeRoot session is reported before it is used, and the deactivation is found by the
key of whichever session made it (a re-assumed session has another key than the first)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from runbook_lib.aws import actions, evidence, privileged
from runbook_lib.aws.privileged import RootSession, SessionInfo
from runbook_lib.aws.session import AwsContext
from runbook_lib.record.secrets import find_secrets
from runbook_sandbox import SandboxInfo

from .helpers import ContextFactory, assert_not_leaked, raw_events, root_state, serials

SESSION_FIELDS = {
    "access_key_id",
    "request_id",
    "expires_at",
    "task_policy",
    "purpose",
    "account_id",
    "reassumed",
    "secret_fingerprints",
}


def assigned(info: SandboxInfo) -> list[str]:
    return sorted(d["serial"] for d in root_state(info)["devices"])


def events_by_key(info: SandboxInfo, access_key_id: str) -> list[dict[str, Any]]:
    """CloudTrail records made with ``access_key_id`` in the target account (raw, unredacted:
    for counting only)."""
    client = info.client(
        "cloudtrail", "admin", retries={"mode": "standard", "total_max_attempts": 6}
    )
    answer = client.lookup_events(
        LookupAttributes=[{"AttributeKey": "AccessKeyId", "AttributeValue": access_key_id}]
    )
    return [json.loads(e["CloudTrailEvent"]) for e in answer["Events"]]


def secrets_of(root: RootSession) -> tuple[str, str]:
    creds = root.aws.session.get_credentials()
    assert creds is not None
    frozen = creds.get_frozen_credentials()
    return str(frozen.secret_key), str(frozen.token)


def list_devices(aws: AwsContext) -> list[str]:
    return [d["SerialNumber"] for d in aws.client("iam").list_mfa_devices()["MFADevices"]]


# ----------------------------------------------------------------- (a) the reported defect
# A session of DURATION s (the sandbox truncates the expiry to whole seconds: it lasts
# DURATION-1..DURATION s) and ListMFADevices held LATENCY s after it was authenticated:
# ListMFADevices is served by the first session, DeactivateMFADevice starts after it expired.
DURATION = 3
LATENCY = DURATION + 1.5


def test_session_expiring_between_list_and_deactivate(
    member: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    virtual, fido = serials(member)["virtual"], serials(member)["fido"]
    acct = member.target_account_id
    target, mgmt = aws_for(member), aws_for(member, "org-admin")
    member.control.add_fault("latency", "iam:ListMFADevices", count=1, seconds=LATENCY)
    told: list[SessionInfo] = []
    still_assigned: list[bool] = []

    def on_session(info: SessionInfo) -> None:
        # what a caller would write to its record; the device must not be touched yet
        told.append(info)
        still_assigned.append(virtual in assigned(member))

    result = actions.remove_root_mfa_device(
        mgmt,
        acct,
        virtual,
        dry_run=False,
        duration=DURATION,
        target_reader=target,
        verify_timeout=15,
        on_session=on_session,
    )
    assert result.outcome == "removed"
    assert assigned(member) == [fido]

    sessions = result.details["sessions"]
    assert len(sessions) == 2, "the session expired between ListMFADevices and Deactivate"
    first, second = (s["access_key_id"] for s in sessions)
    assert first != second and first.startswith("ASIA") and second.startswith("ASIA")
    assert [s["reassumed"] for s in sessions] == [0, 1]
    assert {s["purpose"] for s in sessions} == {"remove root MFA device"}
    assert {s["task_policy"] for s in sessions} == {"IAMDeleteRootUserCredentials"}
    assert {s["account_id"] for s in sessions} == {acct}
    assert sessions[0]["request_id"] != sessions[1]["request_id"]
    assert result.request_ids["AssumeRoot"] == sessions[0]["request_id"]

    # told twice, in order, each time before the deactivation happened
    assert [s.to_dict() for s in told] == sessions
    assert still_assigned == [True, True]

    # the result names the key that made the call, not the first session's
    assert result.details["session_access_key_id"] == second
    assert result.details["deactivated_by_access_key_id"] == second
    (recorded,) = [
        e for e in raw_events(member, "admin", "DeactivateMFADevice") if not e.get("errorCode")
    ]
    assert recorded["userIdentity"]["accessKeyId"] == second

    # the key the result names finds the event (the reviewer's lookup timed out forever)
    by_result = evidence.find_deactivation(
        target, acct, virtual, since, access_key_id=result.details["session_access_key_id"]
    )
    assert by_result.found
    # a caller that crashed before the result knows only the keys it was told about
    by_all = evidence.find_deactivation(
        target, acct, virtual, since, access_key_ids=[s.access_key_id for s in told]
    )
    assert by_all.found and len(by_all.events) == 1
    assert by_all.events[0].access_key_id == second
    assert by_all.summary()["matched_access_key_ids"] == [second]
    assert by_all.summary()["access_key_ids"] == [first, second]
    assert f"...{second[-4:]}" in by_all.facts[0] and "key 2 of the 2" in by_all.facts[0]
    by_first = evidence.find_deactivation(target, acct, virtual, since, access_key_id=first)
    assert not by_first.found
    assert by_first.summary()["matched_access_key_ids"] == []


def test_result_key_finds_the_deactivation_after_a_reassume(
    member: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    """The reviewer's reproduction with the API that existed before ``on_session``: the key
    the result names must find the DeactivateMFADevice event (it named the first session's
    key, and verification waited for an event that never comes)."""
    virtual, acct, target = serials(member)["virtual"], member.target_account_id, aws_for(member)
    member.control.add_fault("latency", "iam:ListMFADevices", count=1, seconds=LATENCY)
    result = actions.remove_root_mfa_device(
        aws_for(member, "org-admin"),
        acct,
        virtual,
        dry_run=False,
        duration=DURATION,
        target_reader=target,
        verify_timeout=15,
    )
    assert result.outcome == "removed"
    key = result.details["session_access_key_id"]
    (recorded,) = [
        e for e in raw_events(member, "admin", "DeactivateMFADevice") if not e.get("errorCode")
    ]
    assert recorded["userIdentity"]["accessKeyId"] == key
    assert evidence.find_deactivation(target, acct, virtual, since, access_key_id=key).found


# ----------------------------------------------------------------- (b) told before use
def test_on_assume_is_called_before_the_session_is_used(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    log: list[tuple[str, str, int]] = []
    root: RootSession

    def on_assume(info: SessionInfo) -> None:
        assert info is root.sessions[-1]
        log.append(("assumed", info.access_key_id, len(events_by_key(member, info.access_key_id))))

    def listed(aws: AwsContext) -> list[str]:
        log.append(("call", root.access_key_id, 0))
        return list_devices(aws)

    root = RootSession(
        aws_for(member, "org-admin"),
        member.target_account_id,
        privileged.AUDIT,
        60,
        None,
        on_assume=on_assume,
        purpose="audit",
    )
    assert root.sessions == [] and log == [], "nothing is assumed before use"
    devices = root.run(listed)  # assumes lazily: told first, then used
    first = root.access_key_id
    member.control.advance_clock(61)
    assert root.run(listed) == devices  # ExpiredToken: re-assumed, told, used
    second = root.access_key_id
    assert first != second
    assert log == [
        ("assumed", first, 0),
        ("call", first, 0),
        ("call", first, 0),
        ("assumed", second, 0),
        ("call", second, 0),
    ]
    assert [s.access_key_id for s in root.sessions] == [first, second]
    assert [s.reassumed for s in root.sessions] == [0, 1]
    assert {s.purpose for s in root.sessions} == {"audit"}
    assert {s.task_policy for s in root.sessions} == {"IAMAuditRootUserCredentials"}
    expiries = [dt.datetime.fromisoformat(s.expires_at or "") for s in root.sessions]
    assert expiries[1] > expiries[0]
    # the sessions were then used: their calls are in CloudTrail under their own keys
    assert [e["eventName"] for e in events_by_key(member, second)] == ["ListMFADevices"]

    # assume_root tells before it yields
    told: list[SessionInfo] = []
    with privileged.assume_root(
        aws_for(member, "org-admin"),
        member.target_account_id,
        privileged.AUDIT,
        on_assume=told.append,
    ) as ctx:
        assert told == ctx.sessions and len(told) == 1
        assert told[0].purpose is None
        assert events_by_key(member, told[0].access_key_id) == []


def test_failing_on_session_stops_before_any_action(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    """A session the caller could not record is not used."""
    before = root_state(member)
    keys: list[str] = []

    def cannot_record(info: SessionInfo) -> None:
        keys.append(info.access_key_id)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        actions.remove_root_mfa_device(
            aws_for(member, "org-admin"),
            member.target_account_id,
            serials(member)["virtual"],
            dry_run=False,
            on_session=cannot_record,
        )
    assert len(keys) == 1
    assert events_by_key(member, keys[0]) == []
    assert root_state(member) == before


def test_dry_run_reports_its_session(member: SandboxInfo, aws_for: ContextFactory) -> None:
    told: list[SessionInfo] = []
    result = actions.remove_root_mfa_device(
        aws_for(member, "org-admin"),
        member.target_account_id,
        serials(member)["virtual"],
        on_session=told.append,
    )
    assert result.outcome == "planned"
    assert result.details["sessions"] == [told[0].to_dict()] and len(told) == 1
    assert result.details["session_access_key_id"] == told[0].access_key_id
    assert result.details["deactivated_by_access_key_id"] is None
    assert result.request_ids["AssumeRoot"] == told[0].request_id


# ----------------------------------------------------------------- (c) no secret
def test_session_info_holds_no_secret(member: SandboxInfo, aws_for: ContextFactory) -> None:
    root = RootSession(
        aws_for(member, "org-admin"), member.target_account_id, privileged.DELETE, 60, None
    )
    root.assume()
    known = list(secrets_of(root))
    member.control.advance_clock(61)
    root.run(list_devices)
    known += secrets_of(root)
    assert len(root.sessions) == 2 and len(set(known)) == 4

    for info in root.sessions:
        assert {f.name for f in dataclasses.fields(info)} == SESSION_FIELDS
        assert set(info.to_dict()) == SESSION_FIELDS
        with pytest.raises(dataclasses.FrozenInstanceError):
            info.access_key_id = "changed"  # type: ignore[misc]
        texts = {
            "repr": repr(info),
            "str": str(info),
            "json": json.dumps(info.to_dict()),
        }
        for label, text in texts.items():
            findings = find_secrets(text, known=known)
            assert not findings, f"SessionInfo {label}: {findings}"
            for secret in known:
                assert_not_leaked(text, secret, f"a session secret in SessionInfo {label}")

    # and the action's result as a whole, the way a record would keep it
    result = actions.remove_root_mfa_device(
        aws_for(member, "org-admin"), member.target_account_id, serials(member)["virtual"]
    )
    text = json.dumps(result.to_dict())
    assert not find_secrets(text, known=known)
    assert len(result.details["sessions"]) == 1


# ----------------------------------------------------------------- (d) several keys
def test_find_deactivation_with_several_keys(
    member: SandboxInfo, aws_for: ContextFactory, since: dt.datetime
) -> None:
    virtual = serials(member)["virtual"]
    acct = member.target_account_id
    target = aws_for(member)
    result = actions.remove_root_mfa_device(
        aws_for(member, "org-admin"), acct, virtual, dry_run=False, target_reader=target
    )
    key = result.details["deactivated_by_access_key_id"]
    assert key and result.details["session_access_key_id"] == key
    assert [s["access_key_id"] for s in result.details["sessions"]] == [key]
    others = ["ASIAOTHERKEY00000001", "ASIAOTHERKEY00000002"]

    none = evidence.find_deactivation(target, acct, virtual, since, access_key_ids=others)
    assert not none.found and none.events == [] and none.facts == []
    assert none.summary()["matched_access_key_ids"] == []
    assert none.summary()["access_key_ids"] == others

    among = evidence.find_deactivation(
        target, acct, virtual, since, access_key_ids=[others[0], key, others[1]]
    )
    assert among.found and len(among.events) == 1
    assert among.summary()["matched_access_key_ids"] == [key]
    assert "key 2 of the 3" in among.facts[0]
    # both parameters: any of them
    both = evidence.find_deactivation(
        target, acct, virtual, since, access_key_id=others[0], access_key_ids={key}
    )
    assert both.event_ids == among.event_ids
    neither = evidence.find_deactivation(
        target, acct, virtual, since, access_key_id=others[0], access_key_ids=others[1:]
    )
    assert not neither.found
    # no key given: any caller, as before
    anyone = evidence.find_deactivation(target, acct, virtual, since)
    assert anyone.event_ids == among.event_ids
    assert anyone.summary()["access_key_ids"] is None
    assert anyone.summary()["matched_access_key_ids"] == [key]


def test_find_deactivation_refuses_unusable_key_lists(
    member: SandboxInfo, aws_for: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before any lookup: an empty list would never match (a wait would time out
    forever), and one key passed as a string would be taken as its characters."""
    target = aws_for(member)
    monkeypatch.setattr(target, "client", lambda *a, **k: pytest.fail("a call was made"))
    since = dt.datetime.now(dt.UTC)
    with pytest.raises(ValueError, match="empty"):
        evidence.find_deactivation(
            target, member.target_account_id, "arn:x", since, access_key_ids=[]
        )
    with pytest.raises(TypeError, match="access_key_id"):
        evidence.find_deactivation(
            target, member.target_account_id, "arn:x", since, access_key_ids="ASIAEXAMPLE"
        )
