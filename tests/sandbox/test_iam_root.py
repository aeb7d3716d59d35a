"""Contract: the root user's MFA state, as every IAM signal shows it, follows the truth."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from runbook_lib.sandbox import SandboxInfo

from .helpers import (
    AUDIT,
    CREATE_PASSWORD,
    DELETE,
    assume_root,
    credential_report_root_row,
    error_code,
    root_arn,
    root_virtual_serials,
    session_client,
)


def test_standalone_root_signals_show_one_virtual_device(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1
    serials = root_virtual_serials(standalone)
    assert serials == [f"arn:aws:iam::{standalone.target_account_id}:mfa/root-authenticator"]
    row = credential_report_root_row(standalone)
    assert row["arn"] == root_arn(standalone)
    assert row["mfa_active"] == "true"
    assert row["password_enabled"] == "not_supported"
    assert row["access_key_1_active"] == "false"


def test_no_mfa_scenario_signals_agree_on_no_device(sandbox_factory: object) -> None:
    info = sandbox_factory("no-mfa")  # type: ignore[operator]
    assert info.client("iam").get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 0
    assert root_virtual_serials(info) == []
    assert credential_report_root_row(info)["mfa_active"] == "false"


def test_member_root_devices_listed_only_in_assume_root_session(member: SandboxInfo) -> None:
    creds = assume_root(member, AUDIT)
    devices = session_client(member, creds, "iam").list_mfa_devices()["MFADevices"]
    serials = sorted(d["SerialNumber"] for d in devices)
    acct = member.target_account_id
    assert len(serials) == 2
    assert serials[0].startswith(f"arn:aws:iam::{acct}:mfa/")
    assert serials[1].startswith(f"arn:aws:iam::{acct}:u2f/root/YubiKey-")
    # the virtual-device view from inside the account shows only the virtual one
    assert root_virtual_serials(member) == [serials[0]]


def test_deactivate_in_delete_session_changes_every_signal(member: SandboxInfo) -> None:
    creds = assume_root(member, DELETE)
    iam = session_client(member, creds, "iam")
    virtual = root_virtual_serials(member)[0]
    iam.deactivate_mfa_device(SerialNumber=virtual)
    remaining = [d["SerialNumber"] for d in iam.list_mfa_devices()["MFADevices"]]
    assert virtual not in remaining and len(remaining) == 1
    assert root_virtual_serials(member) == []
    # the FIDO key is still there, so root MFA stays enabled
    assert member.client("iam").get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1
    iam.deactivate_mfa_device(SerialNumber=remaining[0])
    assert member.client("iam").get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 0
    state = member.control.state(member.target_account_id)
    assert state["devices"] == [] and state["unassigned_virtual"] == [virtual]


def test_deactivate_unknown_serial_is_no_such_entity(member: SandboxInfo) -> None:
    iam = session_client(member, assume_root(member, DELETE), "iam")
    with pytest.raises(ClientError) as exc:
        iam.deactivate_mfa_device(SerialNumber=f"arn:aws:iam::{member.target_account_id}:mfa/x")
    assert error_code(exc) == "NoSuchEntity"
    assert len(member.control.state(member.target_account_id)["devices"]) == 2


def test_delete_assigned_virtual_device_is_delete_conflict(member: SandboxInfo) -> None:
    iam = session_client(member, assume_root(member, DELETE), "iam")
    virtual = root_virtual_serials(member)[0]
    with pytest.raises(ClientError) as exc:
        iam.delete_virtual_mfa_device(SerialNumber=virtual)
    assert error_code(exc) == "DeleteConflict"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    iam.deactivate_mfa_device(SerialNumber=virtual)
    unassigned = member.client("iam").list_virtual_mfa_devices(AssignmentStatus="Unassigned")
    assert [d["SerialNumber"] for d in unassigned["VirtualMFADevices"]] == [virtual]
    iam.delete_virtual_mfa_device(SerialNumber=virtual)
    assert member.control.state(member.target_account_id)["unassigned_virtual"] == []


def test_delete_assigned_iam_user_virtual_device_is_delete_conflict(
    standalone: SandboxInfo,
) -> None:
    iam = standalone.client("iam")
    iam.create_user(UserName="alice")
    serial = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice")["VirtualMFADevice"]
    with pytest.raises(ClientError) as exc:
        iam.enable_mfa_device(
            UserName="alice",
            SerialNumber=serial["SerialNumber"],
            AuthenticationCode1="123456",
            AuthenticationCode2="654321",
        )
    assert error_code(exc) == "InvalidAuthenticationCode"
    assert iam.list_mfa_devices(UserName="alice")["MFADevices"] == []
    import pyotp

    seed = serial["Base32StringSeed"].decode()
    totp = pyotp.TOTP(seed)
    import time

    now = time.time()
    iam.enable_mfa_device(
        UserName="alice",
        SerialNumber=serial["SerialNumber"],
        AuthenticationCode1=totp.at(now - 30),
        AuthenticationCode2=totp.at(now),
    )
    assert len(iam.list_mfa_devices(UserName="alice")["MFADevices"]) == 1
    with pytest.raises(ClientError) as exc:
        iam.delete_virtual_mfa_device(SerialNumber=serial["SerialNumber"])
    assert error_code(exc) == "DeleteConflict"


def test_root_long_term_keys_are_root_and_must_name_no_user_only_in_a_session(
    sandbox_factory: object,
) -> None:
    info = sandbox_factory("root-access-keys")  # type: ignore[operator]
    assert info.client("sts", "root").get_caller_identity()["Arn"] == root_arn(info)
    iam = info.client("iam", "root")
    serials = [d["SerialNumber"] for d in iam.list_mfa_devices()["MFADevices"]]
    assert serials == root_virtual_serials(info)
    with pytest.raises(ClientError) as exc:
        iam.deactivate_mfa_device(SerialNumber=serials[0])
    assert error_code(exc) == "ValidationError"
    assert "AssumeRoot" in exc.value.response["Error"]["Message"]
    assert info.client("iam").get_account_summary()["SummaryMap"]["AccountAccessKeysPresent"] == 1
    assert credential_report_root_row(info)["access_key_1_active"] == "true"


def test_iam_user_without_user_name_means_itself(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    assert iam.list_mfa_devices()["MFADevices"] == []
    assert iam.get_user()["User"]["UserName"] == "runbook-admin"


def test_assume_root_session_is_root_and_sees_root_credentials(member: SandboxInfo) -> None:
    creds = assume_root(member, AUDIT)
    assert creds["AccessKeyId"].startswith("ASIA")
    who = session_client(member, creds, "sts").get_caller_identity()
    assert who["Arn"] == root_arn(member) and who["Account"] == member.target_account_id
    iam = session_client(member, creds, "iam")
    assert iam.get_user()["User"]["Arn"] == root_arn(member)
    assert "LoginProfile" in iam.get_login_profile()
    assert iam.list_access_keys()["AccessKeyMetadata"] == []
    assert iam.list_signing_certificates()["Certificates"] == []
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1


def test_member_without_password_then_create_password_session(sandbox_factory: object) -> None:
    info = sandbox_factory("member-no-password")  # type: ignore[operator]
    iam = session_client(info, assume_root(info, AUDIT), "iam")
    with pytest.raises(ClientError) as exc:
        iam.get_login_profile()
    assert error_code(exc) == "NoSuchEntity"
    create = session_client(info, assume_root(info, CREATE_PASSWORD), "iam")
    create.create_login_profile()
    assert info.control.state(info.target_account_id)["has_password"] is True
    with pytest.raises(ClientError) as exc:
        create.create_login_profile()
    assert error_code(exc) == "EntityAlreadyExists"


def test_iam_lag_shows_the_old_state_until_it_passes(member: SandboxInfo) -> None:
    member.control.set_iam_lag(3600)
    iam = session_client(member, assume_root(member, DELETE), "iam")
    virtual = root_virtual_serials(member)[0]
    iam.deactivate_mfa_device(SerialNumber=virtual)
    # the truth changed, the reads have not caught up
    assert member.control.state(member.target_account_id)["devices"][0]["kind"] == "fido"
    assert root_virtual_serials(member) == [virtual]
    member.control.advance_clock(3601)
    assert root_virtual_serials(member) == []


def test_credential_report_is_reused_for_four_hours(member: SandboxInfo) -> None:
    assert credential_report_root_row(member)["mfa_active"] == "true"
    iam = session_client(member, assume_root(member, DELETE), "iam")
    for device in iam.list_mfa_devices()["MFADevices"]:
        iam.deactivate_mfa_device(SerialNumber=device["SerialNumber"])
    # a report younger than four hours is not regenerated: it still says MFA is active
    assert credential_report_root_row(member)["mfa_active"] == "true"
    member.control.advance_clock(4 * 3600 + 1)
    admin = member.client("iam")
    with pytest.raises(ClientError) as exc:
        admin.get_credential_report()
    assert error_code(exc) == "ReportExpired"
    assert credential_report_root_row(member)["mfa_active"] == "false"


def test_credential_report_states(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    with pytest.raises(ClientError) as exc:
        iam.get_credential_report()
    assert error_code(exc) == "ReportNotPresent"
    assert iam.generate_credential_report()["State"] == "STARTED"
    with pytest.raises(ClientError) as exc:
        iam.get_credential_report()
    assert error_code(exc) == "ReportInProgress"
    assert iam.generate_credential_report()["State"] == "COMPLETE"
    assert iam.get_credential_report()["ReportFormat"] == "text/csv"
