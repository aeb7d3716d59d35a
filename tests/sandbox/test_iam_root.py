"""Contract: the root user's MFA state, as every IAM signal shows it, follows the truth."""

from __future__ import annotations

import base64
import datetime as dt
import time

import pytest
from botocore.exceptions import ClientError

from runbook_sandbox import ControlApiError, SandboxInfo

from .helpers import (
    AUDIT,
    CREATE_PASSWORD,
    DELETE,
    assume_root,
    aws_cli,
    aws_cli_json,
    credential_report,
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
    assert row["password_enabled"] == "true"
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
    # the variant of the undocumented DeleteVirtualMFADevice-in-a-delete-session behaviour in
    # which AWS allows the call (test_delete_virtual_in_a_delete_session_by_switch)
    member.control.set_switch("delete-virtual-mfa-in-delete-session", "allow")
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


def _status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def test_credential_report_life_cycle(standalone: SandboxInfo) -> None:
    """IAM API Reference, "GenerateCredentialReport"
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GenerateCredentialReport.html):
    State "Valid Values: STARTED | INPROGRESS | COMPLETE"; a new report starts with
    "No report exists. Starting a new report generation task". "GetCredentialReport"
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetCredentialReport.html):
    ReportInProgress, "The request was rejected because the credential report is still being
    generated", HTTP Status Code: 404; ReportNotPresent, HTTP Status Code: 410. IAM User
    Guide, "Generate credential reports for your AWS account"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_getting-report.html):
    "You can generate a credential report as often as once every four hours"."""
    standalone.control.set_credential_report_time(30)
    iam = standalone.client("iam")
    with pytest.raises(ClientError) as exc:
        iam.get_credential_report()
    assert (error_code(exc), _status(exc)) == ("ReportNotPresent", 410)
    started = iam.generate_credential_report()
    assert started["State"] == "STARTED"
    assert started["Description"] == "No report exists. Starting a new report generation task"
    with pytest.raises(ClientError) as exc:
        iam.get_credential_report()
    assert (error_code(exc), _status(exc)) == ("ReportInProgress", 404)
    assert "still being generated" in exc.value.response["Error"]["Message"]
    standalone.control.advance_clock(10)
    assert iam.generate_credential_report()["State"] == "INPROGRESS"
    with pytest.raises(ClientError) as exc:
        iam.get_credential_report()
    assert error_code(exc) == "ReportInProgress"
    standalone.control.advance_clock(21)
    report = iam.get_credential_report()
    assert report["ReportFormat"] == "text/csv"
    assert report["Content"].decode().startswith("user,arn,user_creation_time,")
    # the finished report is reused: Generate says COMPLETE and starts nothing new
    assert iam.generate_credential_report()["State"] == "COMPLETE"
    assert iam.get_credential_report()["GeneratedTime"] == report["GeneratedTime"]


def test_the_report_finishes_on_its_own_after_one_generate(standalone: SandboxInfo) -> None:
    """IAM API Reference, "GetCredentialReport"
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetCredentialReport.html): the
    request is rejected with ReportInProgress only while "the credential report is still
    being generated"; nothing but time ends the generation (no second Generate)."""
    standalone.control.set_credential_report_time(5)
    iam = standalone.client("iam")
    assert iam.generate_credential_report()["State"] == "STARTED"
    standalone.control.advance_clock(5)
    assert iam.get_credential_report()["ReportFormat"] == "text/csv"


def test_by_default_the_report_is_ready_well_within_a_second(standalone: SandboxInfo) -> None:
    """A client polling GetCredentialReport from 0.1 s (as the runbook does) waits a moment,
    not seconds: the default generation time is short (see _state.CREDENTIAL_REPORT_SECONDS)."""
    iam = standalone.client("iam")
    start = time.monotonic()
    assert iam.generate_credential_report()["State"] == "STARTED"
    with pytest.raises(ClientError) as exc:
        iam.get_credential_report()
    assert error_code(exc) == "ReportInProgress"
    assert credential_report(standalone)["ReportFormat"] == "text/csv"
    assert time.monotonic() - start < 2.0


@pytest.mark.awscli
def test_cli_generate_then_get_credential_report(standalone: SandboxInfo) -> None:
    """A person types ``aws iam generate-credential-report`` then ``aws iam
    get-credential-report`` and gets the report (AWS CLI Command Reference,
    "generate-credential-report" / "get-credential-report"; life cycle as in
    test_credential_report_life_cycle): no second generate, no wait beyond typing."""
    started = aws_cli_json(standalone, "iam", "generate-credential-report")
    assert started == {
        "State": "STARTED",
        "Description": "No report exists. Starting a new report generation task",
    }
    report = aws_cli_json(standalone, "iam", "get-credential-report")
    assert report["ReportFormat"] == "text/csv"
    rows = base64.b64decode(report["Content"]).decode().splitlines()
    assert rows[0].startswith("user,arn,") and rows[1].startswith("<root_account>,")


@pytest.mark.awscli
def test_cli_get_credential_report_too_early_says_in_progress(standalone: SandboxInfo) -> None:
    """IAM API Reference, "GetCredentialReport"
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetCredentialReport.html):
    ReportInProgress while "the credential report is still being generated". A person who is
    quicker than the generation sees that error, waits, and runs the same command again."""
    standalone.control.set_credential_report_time(60)
    assert aws_cli_json(standalone, "iam", "generate-credential-report")["State"] == "STARTED"
    early = aws_cli(standalone, "iam", "get-credential-report")
    assert early.returncode != 0
    assert "(ReportInProgress)" in early.stderr and "still being generated" in early.stderr
    assert aws_cli_json(standalone, "iam", "generate-credential-report")["State"] == "INPROGRESS"
    standalone.control.advance_clock(60)
    assert aws_cli_json(standalone, "iam", "get-credential-report")["ReportFormat"] == "text/csv"


def test_root_row_password_enabled_is_true_or_false(sandbox_factory: object) -> None:
    """IAM User Guide, "Generate credential reports for your AWS account"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_getting-report.html),
    password_enabled: "When the user has a password, this value is TRUE. Otherwise it is
    FALSE. This value is FALSE for new member accounts created as part of [your
    organization]" (the guide once said "The value for the AWS account root user is always
    not_supported"; it no longer does). Written in lower case like mfa_active."""
    info: SandboxInfo = sandbox_factory("member-no-password")  # type: ignore[operator]
    assert credential_report_root_row(info)["password_enabled"] == "false"
    member: SandboxInfo = sandbox_factory("member")  # type: ignore[operator]
    assert credential_report_root_row(member)["password_enabled"] == "true"
    session_client(member, assume_root(member, DELETE), "iam").delete_login_profile()
    member.control.advance_clock(4 * 3600 + 1)  # the report is reused for four hours
    row = credential_report_root_row(member)
    assert row["password_enabled"] == "false" and row["password_last_used"] == "N/A"


# --------------------------------------------------------------------------- root access keys
def test_root_access_key_last_use_is_recorded(sandbox_factory: object) -> None:
    """IAM API Reference, "AccessKeyLastUsed"
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_AccessKeyLastUsed.html): Region
    and ServiceName are "N/A" and LastUsedDate null while "An access key exists but has not
    been used"; otherwise "The AWS Region where this access key was most recently used", "The
    name of the AWS service with which this access key was most recently used". IAM User
    Guide, "Generate credential reports for your AWS account"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_getting-report.html),
    access_key_1_last_used_date/_region/_service: the key's most recent use to sign an AWS API
    request; "When an access key is used more than once in a 15-minute span, only the first
    use is recorded in this field"."""
    info: SandboxInfo = sandbox_factory("root-access-keys")  # type: ignore[operator]
    key_id = info.principals["root"]["access_key_id"]
    iam = info.client("iam")
    assert iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"] == {
        "ServiceName": "N/A",
        "Region": "N/A",
    }
    # a request that fails authentication was not signed by the key: not a use
    forged = dict(info.principals["root"], secret_access_key="x" * 40)
    info.principals["forged"] = forged
    with pytest.raises(ClientError) as exc:
        info.client("sts", "forged").get_caller_identity()
    assert error_code(exc) == "SignatureDoesNotMatch"
    assert (
        "LastUsedDate" not in iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"]
    )

    info.client("sts", "root", region="us-west-2").get_caller_identity()
    used = iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"]
    assert (used["ServiceName"], used["Region"]) == ("sts", "us-west-2")
    assert abs((used["LastUsedDate"] - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    row = credential_report_root_row(info)
    assert row["access_key_1_last_used_service"] == "sts"
    assert row["access_key_1_last_used_region"] == "us-west-2"
    assert row["access_key_1_last_used_date"] == used["LastUsedDate"].strftime(
        "%Y-%m-%dT%H:%M:%S+00:00"
    )

    # within 15 minutes only the first use counts; after them the next one is recorded
    info.client("iam", "root").list_mfa_devices()
    again = iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"]
    assert again == used
    info.control.advance_clock(15 * 60 + 1)
    info.client("iam", "root").list_mfa_devices()
    later = iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"]
    assert (later["ServiceName"], later["Region"]) == ("iam", "us-east-1")
    assert later["LastUsedDate"] > used["LastUsedDate"]
    state = info.control.state(info.target_account_id)["access_keys_last_used"][key_id]
    assert (state["service"], state["region"]) == ("iam", "us-east-1")


# --------------------------------------------------------------------------- GetMFADevice
def test_get_mfa_device_answers_the_root_users_fido_key(sandbox_factory: object) -> None:
    """IAM API Reference, "GetMFADevice"
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetMFADevice.html): "Retrieves
    information about an MFA device for a specified user"; SerialNumber (Required: Yes) "For
    this API, we only accept FIDO security key ARNs"; UserName "Required: No"; the answer
    carries UserName, SerialNumber, EnableDate ("The date that a specified user's MFA device
    was first enabled"), Certifications; its error is NoSuchEntity. What it answers for a
    device of the user that is not a FIDO key is undocumented: switch get-mfa-device-non-fido
    (default no-such-entity, the one error the operation documents)."""
    info: SandboxInfo = sandbox_factory("root-access-keys")  # type: ignore[operator]
    control = info.control
    session = control.sign_in_fully(info.target_account_id)
    fido = control.bind_security_key(session, "YubiKey")
    control.sign_out(session)
    root = info.client("iam", "root")
    answer = root.get_mfa_device(SerialNumber=fido)
    assert answer["SerialNumber"] == fido
    enabled = next(
        d["enable_date"]
        for d in control.state(info.target_account_id)["devices"]
        if d["serial"] == fido
    )
    assert answer["EnableDate"] == dt.datetime.fromisoformat(enabled)
    virtual = root_virtual_serials(info)[0]
    with pytest.raises(ClientError) as exc:
        root.get_mfa_device(SerialNumber=virtual)
    assert (error_code(exc), _status(exc)) == ("NoSuchEntity", 404)
    with pytest.raises(ClientError) as exc:
        root.get_mfa_device(SerialNumber=f"arn:aws:iam::{info.target_account_id}:u2f/root/no")
    assert error_code(exc) == "NoSuchEntity"
    control.set_switch("get-mfa-device-non-fido", "validation-error")
    with pytest.raises(ClientError) as exc:
        root.get_mfa_device(SerialNumber=virtual)
    assert error_code(exc) == "ValidationError"
    control.set_switch("get-mfa-device-non-fido", "answer")
    assert root.get_mfa_device(SerialNumber=virtual)["SerialNumber"] == virtual


# --------------------------------------------------------------------------- GetAccountSummary
def _mfa_counts(info: SandboxInfo) -> tuple[int, int]:
    summary = info.client("iam").get_account_summary()["SummaryMap"]
    return summary["MFADevices"], summary["MFADevicesInUse"]


def test_account_summary_counts_the_root_users_devices(member: SandboxInfo) -> None:
    """IAM API Reference, "GetAccountSummary"
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccountSummary.html): the
    SummaryMap holds "information about IAM entity usage and IAM quotas", among its keys
    "MFADevices | MFADevicesInUse | AccountMFAEnabled"; the reference does not say what each
    counts. boto3's documented example answer (IAM.Client.get_account_summary) has
    MFADevices 6 and MFADevicesInUse 3: devices not in use count in MFADevices. Whether the
    root user's devices count, and which, is undocumented: switch summary-root-mfa-devices
    (default all: every root device is in use; an unassigned virtual device object counts in
    MFADevices only)."""
    assert _mfa_counts(member) == (2, 2)  # the FIDO key and the virtual device
    iam = member.client("iam")
    iam.create_virtual_mfa_device(VirtualMFADeviceName="spare")  # an IAM one, unassigned
    assert _mfa_counts(member) == (3, 2)
    member.control.set_switch("summary-root-mfa-devices", "virtual-only")
    assert _mfa_counts(member) == (2, 1)
    member.control.set_switch("summary-root-mfa-devices", "none")
    assert _mfa_counts(member) == (1, 0)
    member.control.set_switch("summary-root-mfa-devices", "all")
    virtual = root_virtual_serials(member)[0]
    session_client(member, assume_root(member, DELETE), "iam").deactivate_mfa_device(
        SerialNumber=virtual
    )
    # deactivated, not deleted: the virtual device object is no longer in use
    assert _mfa_counts(member) == (3, 1)


def test_account_summary_of_a_standalone_root_with_one_device(standalone: SandboxInfo) -> None:
    """As above (switch summary-root-mfa-devices, default all)."""
    assert _mfa_counts(standalone) == (1, 1)


# --------------------------------------------------------------------------- undocumented
def test_delete_virtual_in_a_delete_session_by_switch(member: SandboxInfo) -> None:
    """Undocumented: the AssumeRoot task policy IAMDeleteRootUserCredentials lists
    iam:DeleteVirtualMFADevice among the actions it allows, and (as published in the AWS
    Managed Policy Reference) denies the listed actions on every resource that is NotResource
    arn:aws:iam::*:root; DeleteVirtualMFADevice names an arn:aws:iam::ACCOUNT:mfa/NAME
    resource, so AWS may deny it. Switch delete-virtual-mfa-in-delete-session: deny (the
    default, the most restrictive reading) or allow. The deactivation is allowed either way."""
    assert member.control.switches()["delete-virtual-mfa-in-delete-session"] == "deny"
    iam = session_client(member, assume_root(member, DELETE), "iam")
    virtual = root_virtual_serials(member)[0]
    iam.deactivate_mfa_device(SerialNumber=virtual)
    with pytest.raises(ClientError) as exc:
        iam.delete_virtual_mfa_device(SerialNumber=virtual)
    assert (error_code(exc), _status(exc)) == ("AccessDenied", 403)
    message = exc.value.response["Error"]["Message"]
    assert "iam:DeleteVirtualMFADevice" in message and virtual in message
    assert "explicit deny" in message
    state = member.control.state(member.target_account_id)
    assert state["unassigned_virtual"] == [virtual]

    member.control.set_switch("delete-virtual-mfa-in-delete-session", "allow")
    iam.delete_virtual_mfa_device(SerialNumber=virtual)
    assert member.control.state(member.target_account_id)["unassigned_virtual"] == []


def test_switches_refuse_unknown_names_and_values(standalone: SandboxInfo) -> None:
    control = standalone.control
    with pytest.raises(ControlApiError) as exc:
        control.set_switch("no-such-switch", "x")
    assert exc.value.status == 400 and "unknown switch" in exc.value.message
    with pytest.raises(ControlApiError) as exc:
        control.set_switch("root-mfa-window", "sometimes")
    assert exc.value.status == 400 and "first-attempt" in exc.value.message
    control.set_switch("root-mfa-window", "each-lapse")
    assert control.switches()["root-mfa-window"] == "each-lapse"
    # a reset restores every default
    assert standalone.control.reset()
    assert control.switches()["root-mfa-window"] == "first-attempt"


# --------------------------------------------------------------------------- root credentials
def test_root_access_keys_and_signing_certificates_show_where_aws_shows_them(
    sandbox_factory: object,
) -> None:
    """IAM API Reference, "GetAccountSummary"
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccountSummary.html):
    AccountAccessKeysPresent "This value is 1 if the AWS account (root) has an access key,
    otherwise it is 0"; AccountSigningCertificatesPresent "This value is 1 if the AWS account
    (root) has an X.509 signing certificate, otherwise it is 0". IAM User Guide, "Generate
    credential reports for your AWS account"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_getting-report.html):
    access_key_1_active "When the user has an access key and the access key's status is
    Active, this value is TRUE"; cert_1_active "When the user has an X.509 signing certificate
    and that certificate's status is Active, this value is TRUE. Otherwise it is FALSE";
    cert_1_last_rotated "when the user's signing certificate was created or last changed";
    a report is reused for four hours. IAM User Guide, "Root user best practices for your AWS
    account" (https://docs.aws.amazon.com/IAM/latest/UserGuide/root-user-best-practices.html)
    and CIS AWS Foundations Benchmark ("Ensure no 'root' user account access key exists"):
    root access keys and signing certificates are what to look for and delete. The
    IAMAuditRootUserCredentials task policy allows iam:ListAccessKeys and
    iam:ListSigningCertificates (IAM User Guide, "Perform a privileged task on an AWS
    Organizations member account"). IAM quotas
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html): two access
    keys and two signing certificates per user."""
    info: SandboxInfo = sandbox_factory("member")  # type: ignore[operator]
    control = info.control
    iam = info.client("iam")
    summary = iam.get_account_summary()["SummaryMap"]
    assert (summary["AccountAccessKeysPresent"], summary["AccountSigningCertificatesPresent"]) == (
        0,
        0,
    )
    row = credential_report_root_row(info)
    assert [row[c] for c in ("access_key_1_active", "cert_1_active", "cert_1_last_rotated")] == [
        "false",
        "false",
        "N/A",
    ]

    added = control.add_root_credentials()
    key_id, cert_id = added["access_key"]["access_key_id"], added["certificate_id"]
    assert key_id.startswith("AKIA") and len(cert_id) == 28
    summary = iam.get_account_summary()["SummaryMap"]
    assert (summary["AccountAccessKeysPresent"], summary["AccountSigningCertificatesPresent"]) == (
        1,
        1,
    )
    # the report is reused for four hours: the new credentials show in the next one
    assert credential_report_root_row(info)["cert_1_active"] == "false"
    control.advance_clock(4 * 3600 + 1)
    row = credential_report_root_row(info)
    assert [row[c] for c in ("access_key_1_active", "cert_1_active", "cert_2_active")] == [
        "true",
        "true",
        "false",
    ]
    assert row["cert_1_last_rotated"].endswith("+00:00")
    # an audit session lists them; the new key signs as the root user
    audit = session_client(info, assume_root(info, AUDIT), "iam")
    keys = audit.list_access_keys()["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [(key_id, "Active")]
    certs = audit.list_signing_certificates()["Certificates"]
    assert [(c["CertificateId"], c["Status"]) for c in certs] == [(cert_id, "Active")]
    assert certs[0]["CertificateBody"].startswith("-----BEGIN CERTIFICATE-----")
    info.principals["new-root"] = added["access_key"]
    assert info.client("sts", "new-root").get_caller_identity()["Arn"] == root_arn(info)
    # deleted in a delete session: gone from the summary
    delete = session_client(info, assume_root(info, DELETE), "iam")
    delete.delete_signing_certificate(CertificateId=cert_id)
    with pytest.raises(ClientError) as exc:
        delete.delete_signing_certificate(CertificateId=cert_id)
    assert error_code(exc) == "NoSuchEntity"
    assert iam.get_account_summary()["SummaryMap"]["AccountSigningCertificatesPresent"] == 0
    assert control.state(info.target_account_id)["signing_certificates"] == []

    # the quota, and a request that names nothing: refused, nothing added
    control.add_root_credentials(signing_certificate=False)
    with pytest.raises(ControlApiError) as refused:
        control.add_root_credentials(signing_certificate=False)
    assert refused.value.status == 409 and "quota" in refused.value.message
    with pytest.raises(ControlApiError) as refused:
        control.add_root_credentials(access_key=False, signing_certificate=False)
    assert refused.value.status == 400
    assert len(control.state(info.target_account_id)["access_keys"]) == 2


def test_the_root_access_keys_scenario_has_a_key_and_a_signing_certificate(
    sandbox_factory: object,
) -> None:
    info: SandboxInfo = sandbox_factory("root-access-keys")  # type: ignore[operator]
    summary = info.client("iam").get_account_summary()["SummaryMap"]
    assert summary["AccountAccessKeysPresent"] == 1
    assert summary["AccountSigningCertificatesPresent"] == 1
    row = credential_report_root_row(info)
    assert (row["access_key_1_active"], row["cert_1_active"]) == ("true", "true")
    certs = info.client("iam", "root").list_signing_certificates()["Certificates"]
    assert [c["Status"] for c in certs] == ["Active"]
