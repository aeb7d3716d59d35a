"""remove_root_mfa_device: dry run, ambiguity, removal, idempotency, failures."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from runbook_lib.aws import actions
from runbook_lib.aws.privileged import RootSession
from runbook_lib.errors import (
    AccessDeniedError,
    AmbiguousDeviceError,
    AwsActionError,
    PreconditionError,
    ThrottledError,
    VerificationTimeout,
)
from runbook_sandbox import SandboxInfo

from .helpers import MANAGEMENT_ID, STANDALONE_ID, ContextFactory, raw_events, root_state, serials


def remove(info: SandboxInfo, aws_for: ContextFactory, serial: str | None, **kw: Any) -> Any:
    mgmt = aws_for(info, "org-admin", max_attempts=kw.pop("max_attempts", None))
    kw.setdefault("verify_timeout", 15)
    return actions.remove_root_mfa_device(mgmt, info.target_account_id, serial, **kw)


def assigned(info: SandboxInfo) -> list[str]:
    return sorted(d["serial"] for d in root_state(info)["devices"])


# ----------------------------------------------------------------- nothing changed
def test_dry_run_is_the_default_and_changes_nothing(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    before = root_state(member)
    virtual = serials(member)["virtual"]
    for result in (
        remove(member, aws_for, virtual),
        remove(member, aws_for, virtual, dry_run=True),
    ):
        assert result.dry_run is True
        assert result.outcome == "planned"
        assert result.target == virtual
        assert result.details["kind"] == "virtual"
        assert "Dry run" in result.details["note"]
        assert list(result.request_ids) == ["AssumeRoot"] and result.request_ids["AssumeRoot"]
        assert sorted(result.details["devices_before"]) == assigned(member)
    assert root_state(member) == before
    assert raw_events(member, "admin", "DeactivateMFADevice") == []


@pytest.mark.parametrize("dry_run", [True, False])
def test_two_devices_and_none_named_is_ambiguous(
    dry_run: bool, member: SandboxInfo, aws_for: ContextFactory
) -> None:
    before = root_state(member)
    with pytest.raises(AmbiguousDeviceError) as exc:
        remove(member, aws_for, None, dry_run=dry_run)
    assert sorted(exc.value.serials) == assigned(member)
    assert len(exc.value.serials) == 2
    assert "Nothing was changed" in str(exc.value)
    assert root_state(member) == before


# ----------------------------------------------------------------- removal
def test_named_device_is_removed_verified_and_recorded(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    devices = serials(member)
    result = remove(
        member, aws_for, devices["virtual"], dry_run=False, target_reader=aws_for(member)
    )
    assert result.outcome == "removed"
    assert result.dry_run is False
    assert result.target == devices["virtual"]
    assert result.details["devices_after"] == [devices["fido"]]
    assert set(result.request_ids) == {"AssumeRoot", "DeactivateMFADevice"}
    assert all(len(v) >= 16 for v in result.request_ids.values())
    assert len(set(result.request_ids.values())) == 2
    assert "virtual_device_deleted" not in result.details
    after = root_state(member)
    assert [d["serial"] for d in after["devices"]] == [devices["fido"]]
    assert after["unassigned_virtual"] == [devices["virtual"]], "kept without delete_virtual"
    assert result.to_dict()["request_ids"] == result.request_ids

    # the second run finds nothing to do
    again = remove(member, aws_for, devices["virtual"], dry_run=False)
    assert again.outcome == "already-absent"
    assert list(again.request_ids) == ["AssumeRoot"]
    assert "not assigned" in again.details["note"]
    assert root_state(member) == after
    assert len(raw_events(member, "admin", "DeactivateMFADevice")) == 1


def test_last_device_is_chosen_and_then_nothing_is_left(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    devices = serials(member)
    fido = remove(member, aws_for, devices["fido"], dry_run=False, delete_virtual=True)
    assert fido.outcome == "removed" and fido.details["kind"] == "fido"
    assert "virtual_device_deleted" not in fido.details, "only virtual devices are deleted"
    only = remove(member, aws_for, None, dry_run=False)
    assert only.outcome == "removed" and only.target == devices["virtual"]
    none = remove(member, aws_for, None, dry_run=False)
    assert none.outcome == "already-absent"
    assert "no MFA device" in none.details["note"]
    state = root_state(member)
    assert state["devices"] == [] and state["email_verification_pending"] is True


def test_delete_virtual_deletes_the_device_object(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    # the sandbox's variant in which AWS lets an IAMDeleteRootUserCredentials session delete
    # the device object (undocumented; the sandbox's default denies it)
    member.control.set_switch("delete-virtual-mfa-in-delete-session", "allow")
    virtual = serials(member)["virtual"]
    result = remove(member, aws_for, virtual, dry_run=False, delete_virtual=True)
    assert result.outcome == "removed"
    assert result.details["virtual_device_deleted"] == "deleted"
    assert result.request_ids["DeleteVirtualMFADevice"]
    assert root_state(member)["unassigned_virtual"] == []
    assert virtual not in assigned(member)


# ----------------------------------------------------------------- DeleteVirtualMFADevice fails
@pytest.mark.parametrize("how", ["task policy (sandbox default)", "deny fault"])
def test_delete_virtual_denied_after_the_deactivation_is_recorded_not_raised(
    member: SandboxInfo, aws_for: ContextFactory, how: str
) -> None:
    """AWS does not document whether IAMDeleteRootUserCredentials allows
    DeleteVirtualMFADevice on the device's ARN (the sandbox denies it by default, switch
    delete-virtual-mfa-in-delete-session). The deactivation is the change: a denied delete
    leaves the unassigned object, recorded and explained, and the removal succeeds."""
    devices = serials(member)
    if how == "deny fault":
        member.control.set_switch("delete-virtual-mfa-in-delete-session", "allow")
        member.control.add_fault("deny", "iam:DeleteVirtualMFADevice")
    result = remove(member, aws_for, devices["virtual"], dry_run=False, delete_virtual=True)
    assert result.outcome == "removed"
    assert result.details["virtual_device_left"] == devices["virtual"]
    assert "IAMDeleteRootUserCredentials" in result.details["virtual_device_left_note"]
    assert result.details["virtual_device_deleted"].startswith("left")
    # the outcome: deactivated, the device object left, the FIDO key untouched
    after = root_state(member)
    assert [d["serial"] for d in after["devices"]] == [devices["fido"]]
    assert after["unassigned_virtual"] == [devices["virtual"]]


def test_rerun_after_a_denied_delete_cleans_up_when_allowed(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    virtual = serials(member)["virtual"]
    first = remove(member, aws_for, virtual, dry_run=False, delete_virtual=True)
    assert first.details["virtual_device_left"] == virtual
    member.control.set_switch("delete-virtual-mfa-in-delete-session", "allow")
    again = remove(member, aws_for, virtual, dry_run=False, delete_virtual=True)
    assert (
        again.outcome == "already-absent" and again.details["virtual_device_deleted"] == "deleted"
    )
    assert root_state(member)["unassigned_virtual"] == []


def stub_delete_virtual(
    monkeypatch: pytest.MonkeyPatch, serial: str, code: str, status: int
) -> Stubber:
    """Only DeleteVirtualMFADevice (the one call made through RootSession.client) is stubbed."""
    client = boto3.client(
        "iam",
        region_name="us-east-1",
        aws_access_key_id="ASIASTUBEXAMPLE00001",
        aws_secret_access_key="stub",
    )
    stubber = Stubber(client)
    stubber.add_client_error(
        "delete_virtual_mfa_device",
        service_error_code=code,
        service_message=f"stubbed {code}",
        http_status_code=status,
        expected_params={"SerialNumber": serial},
        response_meta={"RequestId": "stubbed-request-id"},
    )
    stubber.activate()
    original = RootSession.client

    def client_for(self: RootSession, service: str) -> Any:
        return client if service == "iam" else original(self, service)

    monkeypatch.setattr(RootSession, "client", client_for)
    return stubber


def test_delete_conflict_after_deactivation(
    member: SandboxInfo, aws_for: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = serials(member)
    stubber = stub_delete_virtual(monkeypatch, devices["virtual"], "DeleteConflict", 409)
    with pytest.raises(AwsActionError) as exc:
        remove(member, aws_for, devices["virtual"], dry_run=False, delete_virtual=True)
    stubber.assert_no_pending_responses()
    assert not isinstance(exc.value, PreconditionError)  # something was changed: deactivated
    assert "DeleteConflict" in str(exc.value) and "Re-run" in str(exc.value)
    after = root_state(member)
    assert [d["serial"] for d in after["devices"]] == [devices["fido"]]
    assert after["unassigned_virtual"] == [devices["virtual"]]


def test_virtual_device_already_deleted_is_fine(
    member: SandboxInfo, aws_for: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = serials(member)
    stubber = stub_delete_virtual(monkeypatch, devices["virtual"], "NoSuchEntity", 404)
    result = remove(member, aws_for, devices["virtual"], dry_run=False, delete_virtual=True)
    stubber.assert_no_pending_responses()
    assert result.outcome == "removed"
    assert result.details["virtual_device_deleted"] == "already-deleted"
    assert "DeleteVirtualMFADevice" not in result.request_ids


# ----------------------------------------------------------------- throttling and denial
def test_short_throttling_is_absorbed_by_retries(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    virtual = serials(member)["virtual"]
    member.control.add_fault("throttle", "iam:DeactivateMFADevice", count=2)
    result = remove(member, aws_for, virtual, dry_run=False)
    assert result.outcome == "removed"
    assert virtual not in assigned(member)
    attempts = raw_events(member, "admin", "DeactivateMFADevice")
    assert [e.get("errorCode") for e in reversed(attempts)] == ["Throttling", "Throttling", None]


def test_persistent_throttling_is_a_throttled_error(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    before = root_state(member)
    member.control.add_fault("throttle", "iam:DeactivateMFADevice")
    with pytest.raises(ThrottledError) as exc:
        remove(member, aws_for, serials(member)["virtual"], dry_run=False, max_attempts=2)
    assert exc.value.operation == "DeactivateMFADevice"
    assert exc.value.code == "Throttling"
    assert exc.value.request_id
    assert "re-run" in (exc.value.hint or "")
    assert root_state(member) == before


def test_deactivate_denied_changes_nothing(member: SandboxInfo, aws_for: ContextFactory) -> None:
    before = root_state(member)
    member.control.add_fault("deny", "iam:DeactivateMFADevice")
    with pytest.raises(AccessDeniedError) as exc:
        remove(member, aws_for, serials(member)["virtual"], dry_run=False)
    assert "iam:DeactivateMFADevice" in (exc.value.hint or "")
    assert root_state(member) == before


def test_device_removed_meanwhile_under_iam_lag(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    """IAM still lists the device, the console removed it already: NoSuchEntity is fine."""
    virtual = serials(member)["virtual"]
    member.control.set_iam_lag(2)
    session = member.control.sign_in_fully(member.target_account_id)
    member.control.remove_mfa(session, virtual)
    result = remove(member, aws_for, virtual, dry_run=False)
    assert result.details["devices_before"].count(virtual) == 1, "the lagging list still has it"
    assert result.request_ids["DeactivateMFADevice"] == "already-absent"
    assert result.outcome == "removed"
    assert virtual not in result.details["devices_after"]


def test_verification_timeout_when_iam_lags_too_long(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    virtual = serials(member)["virtual"]
    member.control.set_iam_lag(60)
    with pytest.raises(VerificationTimeout) as exc:
        remove(member, aws_for, virtual, dry_run=False, verify_timeout=1)
    assert virtual in exc.value.last.known_serials()
    assert virtual not in assigned(member), "the change itself was made"


# ----------------------------------------------------------------- not a member account
def test_standalone_target_is_refused(standalone: SandboxInfo, aws_for: ContextFactory) -> None:
    before = root_state(standalone)
    with pytest.raises(AccessDeniedError) as exc:
        actions.remove_root_mfa_device(
            aws_for(standalone), STANDALONE_ID, serials(standalone)["virtual"], dry_run=False
        )
    assert exc.value.operation == "AssumeRoot"
    assert "sts:AssumeRoot" in (exc.value.hint or "")
    assert root_state(standalone) == before


def test_management_target_is_refused(management: SandboxInfo, aws_for: ContextFactory) -> None:
    before = root_state(management)
    with pytest.raises(AccessDeniedError) as exc:
        actions.remove_root_mfa_device(
            aws_for(management, "org-admin"),
            MANAGEMENT_ID,
            serials(management)["virtual"],
            dry_run=False,
        )
    assert exc.value.operation == "AssumeRoot"
    assert "not a member account" in exc.value.aws_message
    assert root_state(management) == before


def test_root_sessions_disabled_is_refused(member: SandboxInfo, aws_for: ContextFactory) -> None:
    before = root_state(member)
    member.client("iam", "org-admin").disable_organizations_root_sessions()
    with pytest.raises(AccessDeniedError, match="RootSessions"):
        remove(member, aws_for, serials(member)["virtual"], dry_run=False)
    assert root_state(member) == before


def test_choose_device() -> None:
    a, b = "arn:aws:iam::1:mfa/a", "arn:aws:iam::1:u2f/root/b"
    assert actions.choose_device([a], None) == a
    assert actions.choose_device([a, b], b) == b
    assert actions.choose_device([a], b) is None
    assert actions.choose_device([], None) is None
    with pytest.raises(AmbiguousDeviceError):
        actions.choose_device([a, b], None)
