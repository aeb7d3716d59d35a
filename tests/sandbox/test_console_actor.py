"""Contract: the simulated console actor (``/_sandbox/console/...``) and the events it records.

One-time codes and e-mailed codes are handled but never printed: assertions compare them only
through booleans or against values that are not secrets.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from runbook_sandbox import ControlApiError, SandboxInfo

CONSOLE_EVENTS = {
    "DeactivateMFADevice",
    "DeleteVirtualMFADevice",
    "CreateVirtualMFADevice",
    "EnableMFADevice",
}


def _events(info: SandboxInfo, name: str | None = None) -> list[dict[str, Any]]:
    """The target account's us-east-1 events (newest first), as CloudTrail records."""
    info.control.set_lookup_rate(0)
    ct = info.client("cloudtrail", region="us-east-1")
    kwargs: dict[str, Any] = {}
    if name:
        kwargs["LookupAttributes"] = [{"AttributeKey": "EventName", "AttributeValue": name}]
    records: list[dict[str, Any]] = []
    while True:
        page = ct.lookup_events(**kwargs)
        records.extend(json.loads(e["CloudTrailEvent"]) for e in page["Events"])
        if not page.get("NextToken"):
            return records
        kwargs["NextToken"] = page["NextToken"]


def _logins(info: SandboxInfo) -> list[dict[str, Any]]:
    return _events(info, "ConsoleLogin")


def _virtual_serial(info: SandboxInfo, name: str = "root-authenticator") -> str:
    return f"arn:aws:iam::{info.target_account_id}:mfa/{name}"


def _wrong(codes: list[str]) -> str:
    """A six-digit code that is none of the given ones."""
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in codes)


def _refused(call: Any, *args: Any, **kwargs: Any) -> ControlApiError:
    with pytest.raises(ControlApiError) as exc:
        call(*args, **kwargs)
    return exc.value


def _sign_in_with_mfa(info: SandboxInfo) -> str:
    control = info.control
    answer = control.sign_in(info.target_account_id)
    assert answer["status"] == "mfa_required"
    return str(
        control.sign_in(info.target_account_id, mfa_serial=answer["devices"][0])["session_id"]
    )


def _root_devices(info: SandboxInfo) -> list[str]:
    return [d["serial"] for d in info.control.state(info.target_account_id)["devices"]]


# --------------------------------------------------------------------------- sign-in
def test_sign_in_with_mfa_records_a_successful_console_login(standalone: SandboxInfo) -> None:
    control = standalone.control
    account = standalone.target_account_id
    serial = _virtual_serial(standalone)
    answer = control.sign_in(account)
    assert answer == {"status": "mfa_required", "devices": [serial]}
    assert _logins(standalone) == []  # the password step alone records nothing

    code = control.authenticator_codes(serial)[-1]
    signed_in = control.sign_in(account, mfa_serial=serial, mfa_code=code)
    assert signed_in["status"] == "signed_in"
    assert signed_in["mfa_used"] is True
    assert signed_in["session_id"]

    (login,) = _logins(standalone)
    assert login["eventSource"] == "signin.amazonaws.com"
    assert login["eventType"] == "AwsConsoleSignIn"
    assert login["awsRegion"] == "us-east-1"
    assert login["requestParameters"] is None
    assert login["responseElements"] == {"ConsoleLogin": "Success"}
    extra = login["additionalEventData"]
    assert extra["MFAUsed"] == "Yes"
    assert extra["MFAIdentifier"] == serial
    assert extra["MobileVersion"] == "No"
    assert extra["LoginTo"].startswith("https://console.aws.amazon.com/")
    identity = login["userIdentity"]
    assert identity == {
        "type": "Root",
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
    }
    assert "errorMessage" not in login


def test_console_login_is_looked_up_as_root_and_only_in_us_east_1(standalone: SandboxInfo) -> None:
    _sign_in_with_mfa(standalone)
    standalone.control.set_lookup_rate(0)
    ct = standalone.client("cloudtrail")
    events = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": "root"}]
    )["Events"]
    assert [e["EventName"] for e in events] == ["ConsoleLogin"]
    assert events[0]["EventSource"] == "signin.amazonaws.com"
    west = standalone.client("cloudtrail", region="us-west-2").lookup_events()["Events"]
    assert west == []


def test_sign_in_with_a_wrong_mfa_code_is_refused_and_recorded(standalone: SandboxInfo) -> None:
    control = standalone.control
    serial = _virtual_serial(standalone)
    wrong = _wrong(control.authenticator_codes(serial))
    err = _refused(control.sign_in, standalone.target_account_id, mfa_serial=serial, mfa_code=wrong)
    assert err.status == 403
    assert err.code == "FailedAuthentication"

    (login,) = _logins(standalone)
    assert login["responseElements"] == {"ConsoleLogin": "Failure"}
    assert login["errorMessage"] == "Failed authentication"
    assert login["userIdentity"]["type"] == "Root"


def test_sign_in_with_a_device_root_does_not_have_is_refused(standalone: SandboxInfo) -> None:
    err = _refused(
        standalone.control.sign_in,
        standalone.target_account_id,
        mfa_serial=_virtual_serial(standalone, "someone-elses"),
    )
    assert err.code == "FailedAuthentication"
    assert _logins(standalone)[0]["responseElements"] == {"ConsoleLogin": "Failure"}


def test_after_removing_the_only_device_sign_in_needs_the_emailed_code(
    standalone: SandboxInfo,
) -> None:
    control = standalone.control
    account = standalone.target_account_id
    session = _sign_in_with_mfa(standalone)
    removed = control.remove_mfa(session, _virtual_serial(standalone))
    assert removed == {"removed": _virtual_serial(standalone), "kind": "virtual"}
    control.sign_out(session)
    assert control.mailbox(account) == []

    answer = control.sign_in(account)
    assert answer == {"status": "email_code_sent", "to": f"root+{account}@example.com"}
    mails = control.mailbox(account)
    assert len(mails) == 1
    assert mails[0]["to"] == f"root+{account}@example.com"
    code = mails[0]["code"]
    assert len(code) == 6 and code.isdigit()

    err = _refused(control.sign_in, account, email_code=_wrong([code]))
    assert err.code == "FailedAuthentication"
    failure = _logins(standalone)[0]
    assert failure["responseElements"] == {"ConsoleLogin": "Failure"}
    assert failure["errorMessage"] == "Failed authentication"

    signed_in = control.sign_in(account, email_code=code)
    assert signed_in["status"] == "signed_in"
    assert signed_in["mfa_used"] is False
    success = _logins(standalone)[0]
    assert success["responseElements"] == {"ConsoleLogin": "Success"}
    assert success["additionalEventData"]["MFAUsed"] == "No"
    assert "MFAIdentifier" not in success["additionalEventData"]

    # the code is spent; the next sign-in needs none
    control.sign_out(signed_in["session_id"])
    again = control.sign_in(account)
    assert again["status"] == "signed_in"
    assert again["mfa_used"] is False
    assert len(control.mailbox(account)) == 1
    assert [e["responseElements"]["ConsoleLogin"] for e in _logins(standalone)] == [
        "Success",
        "Success",
        "Failure",
        "Success",
    ]


def test_emailed_code_expires(standalone: SandboxInfo) -> None:
    control = standalone.control
    account = standalone.target_account_id
    session = _sign_in_with_mfa(standalone)
    control.remove_mfa(session, _virtual_serial(standalone))
    assert control.sign_in(account)["status"] == "email_code_sent"
    code = control.mailbox(account)[-1]["code"]
    control.advance_clock(11 * 60)
    err = _refused(control.sign_in, account, email_code=code)
    assert err.code == "FailedAuthentication"


def test_member_without_password_cannot_sign_in(
    sandbox_factory: Any,
) -> None:
    info: SandboxInfo = sandbox_factory("member-no-password")
    err = _refused(info.control.sign_in, info.target_account_id)
    assert err.status == 409
    assert err.code == "NoRootPassword"
    assert "no password" in err.message
    assert "IAMCreateRootUserPassword" in err.message
    assert _logins(info) == []


# --------------------------------------------------------------------------- removing devices
def test_removing_a_device_records_deactivate_and_delete_as_root(standalone: SandboxInfo) -> None:
    account = standalone.target_account_id
    serial = _virtual_serial(standalone)
    session = _sign_in_with_mfa(standalone)
    standalone.control.remove_mfa(session, serial)

    assert _root_devices(standalone) == []
    iam = standalone.client("iam")
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 0
    assert iam.list_virtual_mfa_devices()["VirtualMFADevices"] == []

    records = [r for r in _events(standalone) if r["eventName"] in CONSOLE_EVENTS]
    assert [r["eventName"] for r in records] == ["DeleteVirtualMFADevice", "DeactivateMFADevice"]
    for record in records:
        assert record["eventSource"] == "iam.amazonaws.com"
        assert record["awsRegion"] == "us-east-1"
        assert record["requestParameters"] == {"serialNumber": serial}
        assert "errorCode" not in record
        identity = record["userIdentity"]
        assert identity["type"] == "Root"
        assert identity["arn"] == f"arn:aws:iam::{account}:root"
        assert identity["accessKeyId"].startswith("ASIA")
        assert identity["sessionContext"]["attributes"]["mfaAuthenticated"] == "true"
        assert (
            identity["sessionContext"]["attributes"]["creationDate"]
            == (_logins(standalone)[0]["eventTime"])
        )


def test_removing_a_security_key_records_only_deactivate(member: SandboxInfo) -> None:
    fido = next(
        d for d in member.control.state(member.target_account_id)["devices"] if d["kind"] == "fido"
    )
    session = _sign_in_with_mfa(member)
    assert member.control.remove_mfa(session, fido["serial"])["kind"] == "fido"
    names = [r["eventName"] for r in _events(member) if r["eventName"] in CONSOLE_EVENTS]
    assert names == ["DeactivateMFADevice"]
    assert fido["serial"] not in _root_devices(member)


def test_removing_a_device_root_does_not_have_is_refused(standalone: SandboxInfo) -> None:
    session = _sign_in_with_mfa(standalone)
    err = _refused(standalone.control.remove_mfa, session, _virtual_serial(standalone, "nope"))
    assert err.code == "NoSuchEntity"
    assert _root_devices(standalone) == [_virtual_serial(standalone)]


def test_console_actions_need_a_signed_in_session(standalone: SandboxInfo) -> None:
    session = _sign_in_with_mfa(standalone)
    standalone.control.sign_out(session)
    err = _refused(standalone.control.remove_mfa, session, _virtual_serial(standalone))
    assert err.status == 401
    assert err.code == "NotSignedIn"
    assert _root_devices(standalone) == [_virtual_serial(standalone)]


# --------------------------------------------------------------------------- binding devices
def test_binding_a_virtual_device_with_two_consecutive_codes(standalone: SandboxInfo) -> None:
    account = standalone.target_account_id
    session = _sign_in_with_mfa(standalone)
    serial = standalone.control.bind_virtual(session, "new-phone")
    assert serial == _virtual_serial(standalone, "new-phone")

    assert serial in _root_devices(standalone)
    iam = standalone.client("iam")
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1
    listed = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]
    by_serial = {d["SerialNumber"]: d for d in listed}
    assert by_serial[serial]["User"]["Arn"] == f"arn:aws:iam::{account}:root"

    records = [r for r in _events(standalone) if r["eventName"] in CONSOLE_EVENTS]
    assert [r["eventName"] for r in records] == ["EnableMFADevice", "CreateVirtualMFADevice"]
    enable, create = records
    assert create["requestParameters"] == {"virtualMFADeviceName": "new-phone"}
    assert create["responseElements"] == {"virtualMFADevice": {"serialNumber": serial}}
    assert enable["requestParameters"] == {"serialNumber": serial}  # no codes in the trail
    assert "errorCode" not in enable
    for record in records:
        assert record["userIdentity"]["type"] == "Root"
        assert record["awsRegion"] == "us-east-1"


def test_the_new_device_signs_in(standalone: SandboxInfo) -> None:
    control = standalone.control
    session = _sign_in_with_mfa(standalone)
    old = _virtual_serial(standalone)
    serial = control.bind_virtual(session, "new-phone")
    control.sign_out(session)
    second = control.sign_in(standalone.target_account_id, mfa_serial=old)["session_id"]
    control.remove_mfa(second, old)
    control.sign_out(second)

    answer = control.sign_in(standalone.target_account_id)
    assert answer == {"status": "mfa_required", "devices": [serial]}
    code = control.authenticator_codes(serial)[-1]
    assert (
        control.sign_in(standalone.target_account_id, mfa_serial=serial, mfa_code=code)["mfa_used"]
        is True
    )
    assert _logins(standalone)[0]["additionalEventData"]["MFAIdentifier"] == serial


def test_wrong_codes_bind_nothing(standalone: SandboxInfo) -> None:
    control = standalone.control
    session = _sign_in_with_mfa(standalone)
    start = control.call(
        "POST", "console/bind-virtual/start", {"session_id": session, "name": "new-phone"}
    )
    serial = start["serial"]
    code1, code2 = control.authenticator_codes(serial)

    attempts = [
        (code2, code1),  # right codes, wrong order
        (code1, code1),  # not consecutive
        (_wrong([code1, code2]), code2),
    ]
    for first, second in attempts:
        err = _refused(
            control.call,
            "POST",
            "console/bind-virtual/finish",
            {"session_id": session, "serial": serial, "code1": first, "code2": second},
        )
        assert err.status == 403
        assert err.code == "InvalidAuthenticationCode"

    assert _root_devices(standalone) == [_virtual_serial(standalone)]
    assigned = standalone.client("iam").list_virtual_mfa_devices(AssignmentStatus="Assigned")[
        "VirtualMFADevices"
    ]
    assert serial not in {d["SerialNumber"] for d in assigned}
    failures = [r for r in _events(standalone, "EnableMFADevice")]
    assert len(failures) == 3
    assert {r["errorCode"] for r in failures} == {"InvalidAuthenticationCode"}
    assert {r["userIdentity"]["type"] for r in failures} == {"Root"}

    # the right codes still bind it
    code1, code2 = control.authenticator_codes(serial)
    control.call(
        "POST",
        "console/bind-virtual/finish",
        {"session_id": session, "serial": serial, "code1": code1, "code2": code2},
    )
    assert serial in _root_devices(standalone)


def test_a_device_bound_in_this_session_cannot_be_removed_until_root_signs_in_again(
    standalone: SandboxInfo,
) -> None:
    control = standalone.control
    session = _sign_in_with_mfa(standalone)
    serial = control.bind_virtual(session, "new-phone")

    err = _refused(control.remove_mfa, session, serial)
    assert err.status == 409
    assert err.code == "EntityTemporarilyUnmodifiable"
    assert "sign in again" in err.message.lower()
    assert serial in _root_devices(standalone)
    refused = _events(standalone, "DeactivateMFADevice")[0]
    assert refused["errorCode"] == "EntityTemporarilyUnmodifiable"
    assert refused["userIdentity"]["type"] == "Root"

    # devices bound earlier are not affected
    control.remove_mfa(session, _virtual_serial(standalone))

    control.sign_out(session)
    again = control.sign_in(standalone.target_account_id, mfa_serial=serial)["session_id"]
    assert control.remove_mfa(again, serial) == {"removed": serial, "kind": "virtual"}
    assert _root_devices(standalone) == []
    assert "errorCode" not in _events(standalone, "DeactivateMFADevice")[0]


def test_a_security_key_bound_in_this_session_is_also_held(standalone: SandboxInfo) -> None:
    control = standalone.control
    session = _sign_in_with_mfa(standalone)
    serial = control.bind_security_key(session, "YubiKey")
    assert serial.startswith(f"arn:aws:iam::{standalone.target_account_id}:u2f/root/YubiKey-")
    assert _refused(control.remove_mfa, session, serial).code == "EntityTemporarilyUnmodifiable"
    (enable,) = _events(standalone, "EnableMFADevice")
    assert enable["requestParameters"] == {"serialNumber": serial}
    assert enable["userIdentity"]["type"] == "Root"


def test_root_has_at_most_eight_devices(standalone: SandboxInfo) -> None:
    control = standalone.control
    session = _sign_in_with_mfa(standalone)  # one virtual device already
    for index in range(4):
        control.bind_security_key(session, f"key-{index}")
    for index in range(3):
        control.bind_virtual(session, f"phone-{index}")
    assert len(_root_devices(standalone)) == 8

    err = _refused(control.bind_security_key, session, "key-9")
    assert err.code == "LimitExceeded"
    err = _refused(
        control.call,
        "POST",
        "console/bind-virtual/start",
        {"session_id": session, "name": "phone-9"},
    )
    assert err.code == "LimitExceeded"
    assert len(_root_devices(standalone)) == 8
    assert standalone.client("iam").get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1


def test_a_second_device_of_the_same_name_is_refused(standalone: SandboxInfo) -> None:
    session = _sign_in_with_mfa(standalone)
    err = _refused(
        standalone.control.call,
        "POST",
        "console/bind-virtual/start",
        {"session_id": session, "name": "root-authenticator"},
    )
    assert err.code == "EntityAlreadyExists"


# --------------------------------------------------------------------------- root MFA enforcement
def _remove_only_device(info: SandboxInfo) -> None:
    session = _sign_in_with_mfa(info)
    info.control.remove_mfa(session, _virtual_serial(info))
    info.control.sign_out(session)


def _days(first: str, second: str) -> float:
    delta = dt.datetime.fromisoformat(second) - dt.datetime.fromisoformat(first)
    return round(delta.total_seconds() / 86400, 3)


def test_sign_in_without_mfa_prompts_to_register_and_sets_a_35_day_deadline(
    standalone: SandboxInfo,
) -> None:
    """IAM User Guide, "Use multi-factor authentication with your identities"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/gs-identities-mfa.html): "All AWS account
    types (standalone, management, and members accounts) require MFA to be configured for their
    root user. Users must register MFA within 35 days of their first sign-in attempt to access
    the AWS Management Console if MFA is not already enabled." IAM User Guide, "Multi-factor
    authentication for AWS account root user"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/enable-mfa-for-root.html): users "can
    postpone MFA registration for up to 35 days by skipping the prompt. After 35 days, enabling
    MFA becomes mandatory to proceed with sign-in and to access the AWS Management Console"."""
    control = standalone.control
    account = standalone.target_account_id
    _remove_only_device(standalone)
    state = control.state(account)
    assert state["mfa_registration_deadline"] is None  # no sign-in attempt without MFA yet

    used, answer = control.sign_in_answer(account)
    assert used == "email-code" and answer["status"] == "signed_in"
    prompt = answer["mfa_prompt"]
    assert prompt["shown"] is True and prompt["enforced"] is False
    assert prompt["choices"] == ["register", "skip"]
    assert _days(prompt["window_started"], prompt["deadline"]) == 35
    state = control.state(account)
    assert state["mfa_registration_deadline"] == prompt["deadline"]
    assert state["mfa_registration"]["first_attempt_without_mfa"] == prompt["window_started"]
    control.sign_out(answer["session_id"])  # skipped

    # every sign-in without MFA prompts again, with the same deadline
    control.advance_clock(34 * 86400)
    again = control.sign_in(account)
    assert again["status"] == "signed_in"
    assert again["mfa_prompt"]["deadline"] == prompt["deadline"]
    control.sign_out(again["session_id"])

    # past the deadline: only registering an MFA device lets root proceed
    control.advance_clock(86400)
    late = control.sign_in(account)
    assert late["status"] == "mfa_registration_required"
    assert late["mfa_prompt"]["enforced"] is True and late["mfa_prompt"]["choices"] == ["register"]
    assert control.state(account)["mfa_registration"]["enforced"] is True
    err = _refused(control.remove_mfa, late["session_id"], _virtual_serial(standalone))
    assert (err.status, err.code) == (403, "MfaRegistrationRequired")
    serial = control.bind_virtual(late["session_id"], "new-phone")
    control.sign_out(late["session_id"])
    assert control.sign_in(account) == {"status": "mfa_required", "devices": [serial]}
    state = control.state(account)
    assert state["mfa_registration_deadline"] is None
    assert state["mfa_registration"]["enforced"] is False


def test_the_35_day_window_by_switch(sandbox_factory: Any) -> None:
    """Undocumented: whether the 35-day window (the guide's words: the test above)
    starts afresh when root registers MFA and later goes without it again. Switch
    root-mfa-window: first-attempt (the default, the guide's words taken literally: the first
    sign-in attempt without MFA ever) or each-lapse."""
    for mode, expected_days in (("first-attempt", 35), ("each-lapse", 45)):
        info: SandboxInfo = sandbox_factory("no-mfa")
        control = info.control
        account = info.target_account_id
        control.set_switch("root-mfa-window", mode)
        first = control.sign_in(account)
        assert first["status"] == "signed_in"
        started = first["mfa_prompt"]["window_started"]
        control.advance_clock(10 * 86400)
        serial = control.bind_virtual(first["session_id"], "phone")
        control.sign_out(first["session_id"])
        second = control.sign_in(account, mfa_serial=serial)["session_id"]
        control.remove_mfa(second, serial)
        control.sign_out(second)
        used, answer = control.sign_in_answer(account)  # the e-mailed code, no MFA
        assert used == "email-code"
        assert _days(started, answer["mfa_prompt"]["deadline"]) == expected_days, mode
        assert control.state(account)["mfa_registration"]["window"] == mode


def test_the_console_actor_reports_the_prompt_and_skips_it(standalone: SandboxInfo) -> None:
    """The runbook's sign-in step through the actor (sandbox_actor=true): it records what a
    person saw: the prompt to register MFA, the deadline, and that it chose to skip (the
    guide's words on the prompt: the test above)."""
    from runbook_sandbox.actor import ConsoleActor

    actor = ConsoleActor(standalone.endpoint, token=standalone.control_token)
    assert actor.sign_in(standalone.target_account_id) == {
        "signed_in": True,
        "second_factor": "mfa",
    }
    _remove_only_device(standalone)
    signed = actor.sign_in(standalone.target_account_id)
    deadline = standalone.control.state(standalone.target_account_id)["mfa_registration_deadline"]
    assert signed == {
        "signed_in": True,
        "second_factor": "email-code",
        "mfa_prompt": {"shown": True, "deadline": deadline, "choice": "skip"},
    }
    standalone.control.advance_clock(35 * 86400)
    late = actor.sign_in(standalone.target_account_id)
    assert late["signed_in"] is False and late["mfa_registration_required"] is True
    assert late["mfa_prompt"]["choice"] is None


def test_the_first_sign_in_without_mfa_in_both_variants(standalone: SandboxInfo) -> None:
    """The procedure (step 3) says AWS e-mails a one-time code at the first root sign-in after
    the last device is gone; AWS's guides do not document that flow in full, so it is a switch
    (first-sign-in-without-mfa): email-code, the default, or password-only. Either way the
    sign-in is a ConsoleLogin with MFAUsed No."""
    control = standalone.control
    account = standalone.target_account_id
    assert control.switches()["first-sign-in-without-mfa"] == "email-code"
    _remove_only_device(standalone)
    control.set_switch("first-sign-in-without-mfa", "password-only")
    answer = control.sign_in(account)
    assert answer["status"] == "signed_in"
    assert not [m for m in control.mailbox(account) if m.get("code")]
    login = _events(standalone, "ConsoleLogin")[0]  # newest first
    assert login["additionalEventData"]["MFAUsed"] == "No"


def test_removing_a_device_bound_in_this_session_in_both_variants(
    standalone: SandboxInfo,
) -> None:
    """The procedure's note (a device just bound cannot be removed before the root user signs
    in again) is not in AWS's reference: a switch (remove-device-bound-this-session), refused
    by default as the procedure says, or allowed."""
    control = standalone.control
    control.set_switch("remove-device-bound-this-session", "allowed")
    session = _sign_in_with_mfa(standalone)
    serial = control.bind_virtual(session, "second")
    assert control.remove_mfa(session, serial) == {"removed": serial, "kind": "virtual"}
