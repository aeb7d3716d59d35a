"""IAM as AWS answers it about the root user (moto keeps IAM users; this adds the root).

Calls without ``UserName`` made by the root user or an AssumeRoot session act on the root user's
own credentials; the same calls by an IAM user act on that user (moto does it, told the name).
Every read of the root's MFA devices goes through :meth:`RootUser.devices_seen`, so an injected
IAM lag shows the older state, as IAM's eventual consistency can.

AWS facts modelled here (each pinned by a contract test in ``tests/sandbox`` that quotes its
source):

* The credential report (IAM User Guide, "Generate credential reports for your AWS account";
  API reference, GenerateCredentialReport / GetCredentialReport): a new report at most every
  four hours; generating one takes a moment: GenerateCredentialReport answers STARTED, then
  INPROGRESS, then COMPLETE, and GetCredentialReport answers ``ReportInProgress`` (HTTP 404)
  until it is ready. The root row's ``password_enabled`` is true or false.
* A root access key's last use (date, service, Region) is recorded on every authenticated
  request it signs, the first use of each 15-minute span (the guide's access_key_1_last_used_*
  columns), and shown by GetAccessKeyLastUsed and the report.
* Long-term root credentials (IAM User Guide, "Root user best practices for your AWS
  account" and "Manage access keys for the root user"; CIS AWS Foundations Benchmark, "Ensure
  no 'root' user account access key exists"): the root user may hold access keys and X.509
  signing certificates; GetAccountSummary reports them as ``AccountAccessKeysPresent`` and
  ``AccountSigningCertificatesPresent`` ("1 if the root user has ... , 0 otherwise"), the
  credential report's root row as ``access_key_N_active`` / ``cert_N_active``, and
  ListAccessKeys / ListSigningCertificates without UserName list them in a root session
  (IAMAuditRootUserCredentials allows both). At most two of each. ``POST
  /_sandbox/root-credentials`` adds them to any scenario's root user.
* GetMFADevice (API reference) accepts only FIDO security key ARNs; for the root user (its
  own long-term keys) it answers the root's FIDO keys.

What AWS does not document is chosen by a switch (``_state.SWITCHES``): which root devices
GetAccountSummary counts in MFADevices / MFADevicesInUse (the API reference lists the keys,
not what they count; by default every root device), GetMFADevice with a non-FIDO serial, and
DeleteVirtualMFADevice in an IAMDeleteRootUserCredentials session (denied by default: the
published task policy denies every resource but ``arn:aws:iam::*:root``, and the call names
an ``...:mfa/...`` ARN).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any
from urllib.parse import urlencode

import pyotp

from ._protocol import AwsError, AwsRequest, Response, render_result
from ._registry import ControlRouteError, after_moto, control_route, handles
from ._state import (
    CREDENTIAL_REPORT_MAX_AGE,
    Account,
    CredentialReport,
    MfaDevice,
    Principal,
    World,
)

REPORT_COLUMNS = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    "access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    "access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,"
    "access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)


def _moto_iam(account_id: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account_id]["aws"]


def _acts_on_root(req: AwsRequest, principal: Principal) -> bool:
    return principal.kind in ("root", "assumed-root") and not req.params.get("UserName")


def _forward_as_user(req: AwsRequest, principal: Principal) -> None:
    """An IAM user omitting UserName means itself: tell moto the name explicitly."""
    if principal.kind == "iam-user" and principal.user_name and not req.params.get("UserName"):
        req.params["UserName"] = principal.user_name
        req.body = urlencode(req.params).encode()
        req.headers["content-type"] = "application/x-www-form-urlencoded; charset=utf-8"


def _account(world: World, principal: Principal) -> Account:
    account = world.account(principal.account_id)
    if account is None:
        raise AwsError("NoSuchEntity", f"No account {principal.account_id} in the sandbox.", 404)
    return account


def _no_such_device(serial: str) -> AwsError:
    return AwsError("NoSuchEntity", f"MFA Device with serial number {serial} does not exist.", 404)


def _seen(world: World, account: Account) -> tuple[MfaDevice, ...]:
    return account.root.devices_seen(world.clock.now(), world.iam_read_lag)


# --------------------------------------------------------------------------- MFA devices
@handles("iam", "ListMFADevices")
def list_mfa_devices(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    if not _acts_on_root(req, principal):
        _forward_as_user(req, principal)
        return None
    with world.lock:
        account = _account(world, principal)
        devices = [
            {"UserName": account.account_id, "SerialNumber": d.serial, "EnableDate": d.enable_date}
            for d in _seen(world, account)
        ]
    return render_result(req, {"MFADevices": devices, "IsTruncated": False})


@handles("iam", "GetMFADevice")
def get_mfa_device(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    """The root user's own device (no UserName). The API accepts only FIDO security key ARNs;
    what it answers for another root device is undocumented (switch get-mfa-device-non-fido)."""
    if not _acts_on_root(req, principal):
        _forward_as_user(req, principal)
        return None
    serial = str(req.params.get("SerialNumber", ""))
    with world.lock:
        account = _account(world, principal)
        device = next((d for d in _seen(world, account) if d.serial == serial), None)
        mode = world.switch("get-mfa-device-non-fido")
    if device is None:
        raise _no_such_device(serial)
    if device.kind != "fido" and mode == "no-such-entity":
        raise _no_such_device(serial)
    if device.kind != "fido" and mode == "validation-error":
        raise AwsError("ValidationError", "GetMFADevice accepts only FIDO security key ARNs.", 400)
    result = {
        "UserName": account.account_id,
        "SerialNumber": device.serial,
        "EnableDate": device.enable_date,
    }
    return render_result(req, result)


@handles("iam", "DeactivateMFADevice")
def deactivate_mfa_device(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    if principal.kind == "root" and not req.params.get("UserName"):
        raise AwsError(
            "ValidationError",
            "When you make this request with root user credentials, you must use an "
            "AssumeRoot session to omit the user name.",
            400,
        )
    if not _acts_on_root(req, principal):
        _forward_as_user(req, principal)
        return None
    serial = str(req.params.get("SerialNumber", ""))
    with world.lock:
        account = _account(world, principal)
        deactivate_root_device(world, account, serial)
    return render_result(req, {})


def deactivate_root_device(world: World, account: Account, serial: str) -> MfaDevice:
    """Remove ``serial`` from the root user (shared by the API and the console actor)."""
    root = account.root
    devices = root.devices()
    match = next((d for d in devices if d.serial == serial), None)
    if match is None:
        raise _no_such_device(serial)
    remaining = tuple(d for d in devices if d.serial != serial)
    root.set_devices(world.clock.now(), remaining)
    if match.kind == "virtual":
        # the virtual device object outlives the assignment until DeleteVirtualMFADevice
        root.unassigned_virtual[serial] = match
    if not remaining:
        root.email_verification_pending = True
    return match


@handles("iam", "DeleteVirtualMFADevice")
def delete_virtual_mfa_device(
    world: World, req: AwsRequest, principal: Principal
) -> Response | None:
    # in an IAMDeleteRootUserCredentials session the switch delete-virtual-mfa-in-delete-session
    # (default deny) is enforced with the task policy itself, in _authz
    serial = str(req.params.get("SerialNumber", ""))
    with world.lock:
        account = _account(world, principal)
        root = account.root
        if any(d.serial == serial for d in root.devices()):
            raise AwsError(
                "DeleteConflict", "MFA device is still in use: deactivate it first.", 409
            )
        if serial in root.unassigned_virtual:
            del root.unassigned_virtual[serial]
            return render_result(req, {})
    if principal.kind == "assumed-root":
        raise _no_such_device(serial)
    device = _moto_iam(principal.account_id).virtual_mfa_devices.get(serial)
    if device is not None and device.user is not None:
        raise AwsError("DeleteConflict", "MFA device is still in use: deactivate it first.", 409)
    return None


@handles("iam", "EnableMFADevice")
def enable_mfa_device(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    """Moto accepts any codes; AWS checks two consecutive codes of the device's seed."""
    serial = str(req.params.get("SerialNumber", ""))
    device = _moto_iam(principal.account_id).virtual_mfa_devices.get(serial)
    if device is None:
        return None
    code1 = str(req.params.get("AuthenticationCode1", ""))
    code2 = str(req.params.get("AuthenticationCode2", ""))
    if not consecutive_codes_valid(device.base32_string_seed, code1, code2, world.clock.now()):
        raise AwsError(
            "InvalidAuthenticationCode", "Authentication code for device is not valid.", 403
        )
    return None


def consecutive_codes_valid(seed: str, code1: str, code2: str, now: dt.datetime) -> bool:
    """True when code1 and code2 are the TOTP codes of two consecutive 30 s windows near now."""
    totp = pyotp.TOTP(seed)
    for back in range(-1, 4):
        first = now - dt.timedelta(seconds=30 * (back + 1))
        second = now - dt.timedelta(seconds=30 * back)
        if totp.at(first) == code1 and totp.at(second) == code2:
            return True
    return False


@handles("iam", "ListVirtualMFADevices")
def list_virtual_mfa_devices(world: World, req: AwsRequest, principal: Principal) -> Response:
    status = str(req.params.get("AssignmentStatus", "Any"))
    rows: list[dict[str, Any]] = []
    with world.lock:
        account = _account(world, principal)
        for device in _seen(world, account):
            if device.kind == "virtual" and status in ("Assigned", "Any"):
                rows.append(
                    {
                        "SerialNumber": device.serial,
                        "EnableDate": device.enable_date,
                        "User": {
                            "UserId": account.account_id,
                            "Arn": account.root.arn,
                            "CreateDate": account.root.created,
                            "PasswordLastUsed": account.root.password_last_used,
                        },
                    }
                )
        if status in ("Unassigned", "Any"):
            rows.extend({"SerialNumber": s} for s in account.root.unassigned_virtual)
    for serial, device in _moto_iam(principal.account_id).virtual_mfa_devices.items():
        if device.user is not None and status in ("Assigned", "Any"):
            user = device.user
            rows.append(
                {
                    "SerialNumber": serial,
                    "EnableDate": device.enable_date,
                    "User": {
                        "Path": user.path,
                        "UserName": user.name,
                        "UserId": user.id,
                        "Arn": user.arn,
                        "CreateDate": user.create_date,
                    },
                }
            )
        elif device.user is None and status in ("Unassigned", "Any"):
            rows.append({"SerialNumber": serial})
    start = int(req.params.get("Marker") or 0)
    size = int(req.params.get("MaxItems") or 100)
    page = rows[start : start + size]
    result: dict[str, Any] = {"VirtualMFADevices": page, "IsTruncated": start + size < len(rows)}
    if result["IsTruncated"]:
        result["Marker"] = str(start + size)
    return render_result(req, result)


# --------------------------------------------------------------------------- account summary
@after_moto("iam", "GetAccountSummary")
def account_summary(
    world: World, req: AwsRequest, principal: Principal, response: Response
) -> Response:
    body = response.body.decode()
    with world.lock:
        account = _account(world, principal)
        root = account.root
        seen = _seen(world, account)
        mode = world.switch("summary-root-mfa-devices")
        counted = {
            "all": seen,
            "virtual-only": tuple(d for d in seen if d.kind == "virtual"),
            "none": (),
        }[mode]
        # MFADevices also counts virtual device objects assigned to no one (moto does)
        unassigned = 0 if mode == "none" else len(root.unassigned_virtual)
        flags = {
            "AccountMFAEnabled": int(bool(seen)),
            "AccountAccessKeysPresent": int(any(k.status == "Active" for k in root.access_keys)),
            "AccountPasswordPresent": int(root.has_password),
            "AccountSigningCertificatesPresent": int(
                any(c.status == "Active" for c in root.signing_certificates)
            ),
            # moto counts IAM users' devices; the root user's are added
            "MFADevices": _summary_value(body, "MFADevices") + len(counted) + unassigned,
            "MFADevicesInUse": _summary_value(body, "MFADevicesInUse") + len(counted),
        }
    for key, value in flags.items():
        entry = f"<entry><key>{key}</key><value>{value}</value></entry>"
        pattern = rf"<entry>\s*<key>{key}</key>\s*<value>[^<]*</value>\s*</entry>"
        body, n = re.subn(pattern, entry, body)
        if n == 0:
            body = body.replace("</SummaryMap>", entry + "</SummaryMap>", 1)
    response.body = body.encode()
    return response


def _summary_value(body: str, key: str) -> int:
    match = re.search(rf"<entry>\s*<key>{key}</key>\s*<value>(\d+)</value>\s*</entry>", body)
    return int(match.group(1)) if match else 0


# --------------------------------------------------------------------------- credential report
def _fmt(value: dt.datetime | None, missing: str = "N/A") -> str:
    if value is None:
        return missing
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def root_report_row(world: World, account: Account) -> list[str]:
    root = account.root
    keys = root.access_keys[:2]
    row = [
        "<root_account>",
        root.arn,
        _fmt(root.created),
        "true" if root.has_password else "false",
        _fmt(root.password_last_used, "no_information") if root.has_password else "N/A",
        "not_supported",
        "not_supported",
        "true" if _seen(world, account) else "false",
    ]
    for index in range(2):
        if index < len(keys):
            key = keys[index]
            # the guide: the Region is N/A when the service is not region-specific (S3)
            region = key.last_used_region if key.last_used_service != "s3" else None
            row += [
                "true" if key.status == "Active" else "false",
                _fmt(key.created),
                _fmt(key.last_used),
                region or "N/A",
                key.last_used_service or "N/A",
            ]
        else:
            row += ["false", "N/A", "N/A", "N/A", "N/A"]
    certs = root.signing_certificates[:2]
    for index in range(2):
        if index < len(certs):
            row += ["true" if certs[index].status == "Active" else "false"]
            row += [_fmt(certs[index].uploaded)]
        else:
            row += ["false", "N/A"]
    return row


def _build_report(world: World, principal: Principal, account: Account) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    out.write(REPORT_COLUMNS + "\n")
    writer.writerow(root_report_row(world, account))
    backend = _moto_iam(principal.account_id)
    for user in list(backend.users.values()):
        out.write(user.to_csv())
    return out.getvalue().encode()


@handles("iam", "GenerateCredentialReport")
def generate_credential_report(world: World, req: AwsRequest, principal: Principal) -> Response:
    """A new report at most every four hours, as AWS does: the call that starts one answers
    STARTED and takes the snapshot; while it is generated (``credential_report_seconds`` on
    the sandbox clock) calls answer INPROGRESS, then COMPLETE until it is four hours old. It
    finishes on its own: no further call is needed."""
    with world.lock:
        account = _account(world, principal)
        now = world.clock.now()
        report = world.credential_reports.get(account.account_id)
        text: str | None = None
        if report is None or now - report.generated_at > CREDENTIAL_REPORT_MAX_AGE:
            content = _build_report(world, principal, account)
            ready = now + dt.timedelta(seconds=world.credential_report_seconds)
            world.credential_reports[account.account_id] = CredentialReport(now, content, ready)
            state, text = "STARTED", "No report exists. Starting a new report generation task"
        elif now < report.ready_at:
            state = "INPROGRESS"
        else:
            state = "COMPLETE"
    return render_result(req, {"State": state, "Description": text})


@handles("iam", "GetCredentialReport")
def get_credential_report(world: World, req: AwsRequest, principal: Principal) -> Response:
    with world.lock:
        account = _account(world, principal)
        report = world.credential_reports.get(account.account_id)
        now = world.clock.now()
        if report is None:
            raise AwsError("ReportNotPresent", "Credential report not present", 410)
        if now < report.ready_at:
            raise AwsError("ReportInProgress", "Credential report is still being generated", 404)
        if now - report.generated_at > CREDENTIAL_REPORT_MAX_AGE:
            raise AwsError("ReportExpired", "Credential report has expired", 410)
        payload = {
            "Content": report.content,
            "ReportFormat": "text/csv",
            "GeneratedTime": report.generated_at.replace(microsecond=0),
        }
    return render_result(req, payload)


# --------------------------------------------------------------------------- root credentials
@handles("iam", "GetUser")
def get_user(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    if not _acts_on_root(req, principal):
        _forward_as_user(req, principal)
        return None
    with world.lock:
        root = _account(world, principal).root
        user = {
            "UserId": root.account_id,
            "Arn": root.arn,
            "CreateDate": root.created,
            "PasswordLastUsed": root.password_last_used,
            "Path": "/",
            "UserName": "",
        }
    user.pop("UserName")
    return render_result(req, {"User": user})


@handles("iam", "GetLoginProfile")
def get_login_profile(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    if not _acts_on_root(req, principal):
        return None
    with world.lock:
        root = _account(world, principal).root
        if not root.has_password:
            raise AwsError("NoSuchEntity", "Login Profile for User root cannot be found.", 404)
        created = root.created
    return render_result(
        req, {"LoginProfile": {"CreateDate": created, "PasswordResetRequired": False}}
    )


@handles("iam", "CreateLoginProfile")
def create_login_profile(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    """Root password creation (IAMCreateRootUserPassword): the mailbox owner then sets it by
    password recovery. The sandbox never stores a password, only that one exists."""
    if not _acts_on_root(req, principal):
        return None
    with world.lock:
        root = _account(world, principal).root
        if root.has_password:
            raise AwsError(
                "EntityAlreadyExists", "Login Profile for user root already exists.", 409
            )
        root.has_password = True
        created = world.clock.now()
    return render_result(
        req, {"LoginProfile": {"CreateDate": created, "PasswordResetRequired": False}}
    )


@handles("iam", "DeleteLoginProfile")
def delete_login_profile(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    if not _acts_on_root(req, principal):
        return None
    with world.lock:
        root = _account(world, principal).root
        if not root.has_password:
            raise AwsError("NoSuchEntity", "Login Profile for User root cannot be found.", 404)
        root.has_password = False
    return render_result(req, {})


@handles("iam", "ListAccessKeys")
def list_access_keys(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    if not _acts_on_root(req, principal):
        _forward_as_user(req, principal)
        return None
    with world.lock:
        root = _account(world, principal).root
        keys = [
            {"AccessKeyId": k.access_key_id, "Status": k.status, "CreateDate": k.created}
            for k in root.access_keys
        ]
    return render_result(req, {"AccessKeyMetadata": keys, "IsTruncated": False})


@handles("iam", "DeleteAccessKey")
def delete_access_key(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    if not _acts_on_root(req, principal):
        _forward_as_user(req, principal)
        return None
    key_id = str(req.params.get("AccessKeyId", ""))
    with world.lock:
        root = _account(world, principal).root
        if not any(k.access_key_id == key_id for k in root.access_keys):
            raise AwsError("NoSuchEntity", f"The Access Key with id {key_id} cannot be found", 404)
        root.access_keys = [k for k in root.access_keys if k.access_key_id != key_id]
        world.principals.pop(key_id, None)
    return render_result(req, {})


@handles("iam", "GetAccessKeyLastUsed")
def get_access_key_last_used(
    world: World, req: AwsRequest, principal: Principal
) -> Response | None:
    key_id = str(req.params.get("AccessKeyId", ""))
    with world.lock:
        account = world.account(principal.account_id)
        key = None
        if account is not None:
            key = next((k for k in account.root.access_keys if k.access_key_id == key_id), None)
        if key is None:
            return None
        last: dict[str, Any] = {
            "LastUsedDate": key.last_used,
            "ServiceName": key.last_used_service or "N/A",
            "Region": key.last_used_region or "N/A",
        }
    return render_result(req, {"UserName": "root", "AccessKeyLastUsed": last})


@handles("iam", "ListSigningCertificates")
def list_signing_certificates(
    world: World, req: AwsRequest, principal: Principal
) -> Response | None:
    if not _acts_on_root(req, principal):
        _forward_as_user(req, principal)
        return None
    with world.lock:
        root = _account(world, principal).root
        certs = [
            {
                "CertificateId": c.certificate_id,
                "CertificateBody": c.body,
                "Status": c.status,
                "UploadDate": c.uploaded,
            }
            for c in root.signing_certificates
        ]
    return render_result(req, {"Certificates": certs, "IsTruncated": False})


@handles("iam", "DeleteSigningCertificate")
def delete_signing_certificate(
    world: World, req: AwsRequest, principal: Principal
) -> Response | None:
    if not _acts_on_root(req, principal):
        return None
    cert = str(req.params.get("CertificateId", ""))
    with world.lock:
        root = _account(world, principal).root
        if not any(c.certificate_id == cert for c in root.signing_certificates):
            raise AwsError("NoSuchEntity", f"The Certificate with id {cert} cannot be found.", 404)
        root.signing_certificates = [
            c for c in root.signing_certificates if c.certificate_id != cert
        ]
    return render_result(req, {})


@control_route("POST", "root-credentials")
def add_root_credentials(world: World, data: dict[str, Any]) -> dict[str, Any]:
    """Give the root user of ``account_id`` (default: the target) long-term credentials AWS
    advises against: ``access_key`` (an active access key and the principal that signs with
    it, listed by ``GET /_sandbox/info`` as ``root``) and/or ``signing_certificate`` (an active
    X.509 signing certificate). At most two of each (IAM's quota)."""
    account_id = str(data.get("account_id") or world.target_account_id)
    account = world.account(account_id)
    if account is None:
        raise ControlRouteError(404, "NoSuchAccount", f"no account {account_id} in this scenario")
    if not (data.get("access_key") or data.get("signing_certificate")):
        raise ControlRouteError(
            400, "BadRequest", "name what to add: access_key: true and/or signing_certificate: true"
        )
    out: dict[str, Any] = {"account_id": account_id}
    try:
        if data.get("access_key"):
            out["access_key"] = world.add_root_access_key(account).public()
        if data.get("signing_certificate"):
            out["certificate_id"] = world.add_root_signing_certificate(account).certificate_id
    except ValueError as err:
        raise ControlRouteError(409, "LimitExceeded", str(err)) from err
    return out


# --------------------------------------------------------------------------- organizations features
_FEATURE_ERRORS = {
    "not_found": (
        "OrganizationNotFoundException",
        "The request was rejected because no organization is associated with your account.",
    ),
    "not_management": (
        "AccountNotManagementOrDelegatedAdministratorException",
        "The request was rejected because the account making the request is not "
        "the management account or delegated administrator account for "
        "centralized root access.",
    ),
    "caller_not_management": (
        "CallerIsNotManagementAccountException",
        "The request was rejected because the account making the request "
        "is not the management account for the organization.",
    ),
    "no_service_access": (
        "ServiceAccessNotEnabledException",
        "The request was rejected because trusted access is not enabled for IAM in Organizations.",
    ),
}


def _feature_error(kind: str) -> AwsError:
    code, message = _FEATURE_ERRORS[kind]
    return AwsError(code, message, 400)


def _iam_trusted_access(management: str) -> bool:
    from moto.organizations.models import organizations_backends

    backend = organizations_backends[management]["aws"]
    return any(s.get("ServicePrincipal") == "iam.amazonaws.com" for s in backend.services)


def _features_answer(world: World, req: AwsRequest, principal: Principal, enable: bool) -> Response:
    with world.lock:
        account = world.account(principal.account_id)
        if world.organization_id is None or account is None or account.kind == "standalone":
            raise _feature_error("not_found")
        if principal.account_id != world.management_account_id:
            kind = "caller_not_management" if enable else "not_management"
            raise _feature_error(kind)
        if not _iam_trusted_access(principal.account_id):
            raise _feature_error("no_service_access")
        feature = {
            "EnableOrganizationsRootCredentialsManagement": "RootCredentialsManagement",
            "DisableOrganizationsRootCredentialsManagement": "RootCredentialsManagement",
            "EnableOrganizationsRootSessions": "RootSessions",
            "DisableOrganizationsRootSessions": "RootSessions",
        }.get(req.action)
        if feature and req.action.startswith("Enable"):
            world.org_features.add(feature)
        elif feature:
            world.org_features.discard(feature)
        enabled = sorted(world.org_features)
        org_id = world.organization_id
    return render_result(req, {"OrganizationId": org_id, "EnabledFeatures": enabled})


@handles(
    "iam",
    "ListOrganizationsFeatures",
    "DisableOrganizationsRootCredentialsManagement",
    "DisableOrganizationsRootSessions",
)
def list_features(world: World, req: AwsRequest, principal: Principal) -> Response:
    return _features_answer(world, req, principal, enable=False)


@handles("iam", "EnableOrganizationsRootCredentialsManagement", "EnableOrganizationsRootSessions")
def enable_features(world: World, req: AwsRequest, principal: Principal) -> Response:
    return _features_answer(world, req, principal, enable=True)
