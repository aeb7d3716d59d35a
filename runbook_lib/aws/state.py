"""The root user's MFA state: collect every signal, judge whether they agree, wait for change.

Signals readable from inside the account (an IAM principal with read permissions):

* ``GetAccountSummary`` → ``AccountMFAEnabled`` (any device type);
* the credential report's ``<root_account>`` row → ``mfa_active`` (a report is reused for up
  to four hours, so it can predate a change: it is then *stale*, not contradictory);
* ``ListVirtualMFADevices(AssignmentStatus=Assigned)`` entries whose user is the root ARN
  (virtual devices only).

Only ``ListMFADevices`` in an ``IAMAuditRootUserCredentials`` AssumeRoot session (member
accounts) shows FIDO security keys and hardware tokens. IAM is eventually consistent: the wait
functions poll with a deadline; nothing here sleeps blindly.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from botocore.exceptions import ClientError

from ..errors import AwsActionError, RunbookError, VerificationTimeout, from_client_error
from .privileged import RootSession
from .session import AwsContext, call, paginate

DeviceKind = Literal["virtual", "fido", "hardware"]
T = TypeVar("T")


def device_kind(serial: str) -> DeviceKind:
    """AWS's serial formats: ``arn:...:mfa/NAME`` virtual, ``arn:...:u2f/...`` FIDO, else a
    hardware token's serial number."""
    if ":mfa/" in serial:
        return "virtual"
    if ":u2f/" in serial:
        return "fido"
    return "hardware"


@dataclass(frozen=True)
class MfaDeviceInfo:
    serial: str
    kind: DeviceKind
    enable_date: str | None = None


@dataclass(frozen=True)
class CredentialReportRoot:
    generated_at: str
    mfa_active: bool
    password_enabled: str
    password_last_used: str
    access_key_1_active: bool
    access_key_2_active: bool
    cert_1_active: bool = False
    cert_2_active: bool = False


@dataclass(frozen=True)
class RootMfaSnapshot:
    """Every signal at one moment; ``None`` means the signal could not be read (see errors)."""

    account_id: str
    taken_at: str
    account_mfa_enabled: bool | None
    credential_report: CredentialReportRoot | None
    virtual_devices: tuple[str, ...] | None
    session_devices: tuple[MfaDeviceInfo, ...] | None
    errors: tuple[str, ...] = field(default=())
    account_password_present: bool | None = None
    # the root user's long-term credentials (None: not read): GetAccountSummary's flags, and
    # the active ones ListAccessKeys / ListSigningCertificates list in an audit session
    account_access_keys_present: bool | None = None
    account_signing_certificates_present: bool | None = None
    session_active_access_keys: int | None = None
    session_active_signing_certificates: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RootMfaSnapshot:
        """The snapshot :meth:`to_dict` wrote (as read back from the run record)."""
        data = dict(data)
        if data.get("credential_report"):
            data["credential_report"] = CredentialReportRoot(**data["credential_report"])
        for key in ("virtual_devices", "errors"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        if data.get("session_devices") is not None:
            data["session_devices"] = tuple(MfaDeviceInfo(**d) for d in data["session_devices"])
        return cls(**data)

    def known_serials(self) -> set[str]:
        serials = set(self.virtual_devices or ())
        serials |= {d.serial for d in self.session_devices or ()}
        return serials


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def read_account_summary(aws: AwsContext) -> dict[str, int]:
    """``iam:GetAccountSummary``'s SummaryMap (root flags: AccountMFAEnabled,
    AccountPasswordPresent, AccountAccessKeysPresent)."""
    summary = call(aws.client("iam"), "get_account_summary", "iam:GetAccountSummary")
    return dict(summary["SummaryMap"])


def read_account_mfa_enabled(aws: AwsContext) -> bool:
    """``iam:GetAccountSummary`` → AccountMFAEnabled."""
    return bool(read_account_summary(aws).get("AccountMFAEnabled", 0))


def read_root_virtual_devices(aws: AwsContext, account_id: str) -> tuple[str, ...]:
    """``iam:ListVirtualMFADevices``: the virtual devices assigned to the root user."""
    devices = paginate(
        aws.client("iam"),
        "list_virtual_mfa_devices",
        "VirtualMFADevices",
        "iam:ListVirtualMFADevices",
        AssignmentStatus="Assigned",
    )
    root_arn = f"arn:aws:iam::{account_id}:root"
    return tuple(
        sorted(d["SerialNumber"] for d in devices if d.get("User", {}).get("Arn") == root_arn)
    )


def start_credential_report(aws: AwsContext) -> None:
    """``iam:GenerateCredentialReport`` now, so that IAM builds the report while other reads go
    on and :func:`read_credential_report_root` finds it ready (it asks again: a report being
    built, or younger than four hours, is answered as such). A refusal is not raised here: the
    read that needs the report records it."""
    with contextlib.suppress(AwsActionError):
        call(aws.client("iam"), "generate_credential_report", "iam:GenerateCredentialReport")


def read_credential_report_root(aws: AwsContext, timeout: float = 60.0) -> CredentialReportRoot:
    """``iam:GenerateCredentialReport`` once, then ``iam:GetCredentialReport`` until the report
    is ready: while IAM generates it, GetCredentialReport answers ``ReportInProgress``. (A
    report younger than four hours is reused: Generate answers COMPLETE and Get returns it.)"""
    iam = aws.client("iam")
    call(iam, "generate_credential_report", "iam:GenerateCredentialReport")

    def fetch() -> dict[str, Any] | None:
        try:
            return dict(iam.get_credential_report())
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ReportInProgress":
                return None
            raise from_client_error(err, "GetCredentialReport", "iam:GetCredentialReport") from err

    report = poll_until(
        fetch,
        lambda got: got is not None,
        timeout=timeout,
        what="the IAM credential report",
        interval=0.1,  # AWS usually has it within a second; poll_until backs off
    )
    assert report is not None  # poll_until returns only a result that is done
    content = report["Content"]
    text = content.decode() if isinstance(content, bytes) else str(content)
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("user") == "<root_account>":
            generated = report["GeneratedTime"]
            return CredentialReportRoot(
                generated_at=generated.isoformat()
                if hasattr(generated, "isoformat")
                else str(generated),
                mfa_active=row.get("mfa_active") == "true",
                password_enabled=row.get("password_enabled", ""),
                password_last_used=row.get("password_last_used", ""),
                access_key_1_active=row.get("access_key_1_active") == "true",
                access_key_2_active=row.get("access_key_2_active") == "true",
                cert_1_active=row.get("cert_1_active") == "true",
                cert_2_active=row.get("cert_2_active") == "true",
            )
    raise RunbookError(
        "The credential report has no <root_account> row; AWS always includes "
        "it, so the endpoint is not behaving like IAM."
    )


def read_session_devices(session: RootSession) -> tuple[MfaDeviceInfo, ...]:
    """``iam:ListMFADevices`` without UserName, inside an AssumeRoot session."""

    def list_devices(aws: AwsContext) -> tuple[MfaDeviceInfo, ...]:
        devices = paginate(
            aws.client("iam"), "list_mfa_devices", "MFADevices", "iam:ListMFADevices"
        )
        return tuple(
            sorted(
                (
                    MfaDeviceInfo(
                        d["SerialNumber"],
                        device_kind(d["SerialNumber"]),
                        d["EnableDate"].isoformat() if d.get("EnableDate") else None,
                    )
                    for d in devices
                ),
                key=lambda d: d.serial,
            )
        )

    return session.run(list_devices)


def read_session_root_credentials(session: RootSession) -> tuple[int, int]:
    """``iam:ListAccessKeys`` and ``iam:ListSigningCertificates`` without UserName, inside an
    AssumeRoot session (IAMAuditRootUserCredentials allows both): how many of the root user's
    access keys and X.509 signing certificates are Active."""

    def count(aws: AwsContext) -> tuple[int, int]:
        iam = aws.client("iam")
        keys = paginate(iam, "list_access_keys", "AccessKeyMetadata", "iam:ListAccessKeys")
        certs = paginate(
            iam, "list_signing_certificates", "Certificates", "iam:ListSigningCertificates"
        )
        return (
            sum(1 for k in keys if k.get("Status") == "Active"),
            sum(1 for c in certs if c.get("Status") == "Active"),
        )

    return session.run(count)


def collect_snapshot(
    aws: AwsContext,
    account_id: str,
    session: RootSession | None = None,
    report_timeout: float = 60.0,
    with_report: bool = True,
    root_credentials: bool = False,
) -> RootMfaSnapshot:
    """Read every signal available. A signal that fails is recorded in ``errors``, not raised,
    so one missing permission still leaves the others as evidence. ``root_credentials`` also
    lists the root user's access keys and signing certificates in ``session``."""
    errors: list[str] = []

    def attempt(name: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except (AwsActionError, VerificationTimeout, RunbookError) as err:
            errors.append(f"{name}: {err}")
            return None

    taken = _now().isoformat()
    summary = attempt("AccountMFAEnabled", lambda: read_account_summary(aws))
    enabled = bool(summary.get("AccountMFAEnabled", 0)) if summary is not None else None
    password = (
        bool(summary["AccountPasswordPresent"])
        if summary is not None and "AccountPasswordPresent" in summary
        else None
    )
    report = (
        attempt("credential report", lambda: read_credential_report_root(aws, report_timeout))
        if with_report
        else None
    )
    virtual = attempt("virtual devices", lambda: read_root_virtual_devices(aws, account_id))
    devices = (
        attempt("ListMFADevices (AssumeRoot)", lambda: read_session_devices(session))
        if session is not None
        else None
    )
    credentials = (
        attempt(
            "root access keys and signing certificates (AssumeRoot)",
            lambda: read_session_root_credentials(session),
        )
        if session is not None and root_credentials
        else None
    )

    def flag(name: str) -> bool | None:
        return bool(summary[name]) if summary is not None and name in summary else None

    return RootMfaSnapshot(
        account_id,
        taken,
        enabled,
        report,
        virtual,
        devices,
        tuple(errors),
        password,
        account_access_keys_present=flag("AccountAccessKeysPresent"),
        account_signing_certificates_present=flag("AccountSigningCertificatesPresent"),
        session_active_access_keys=credentials[0] if credentials else None,
        session_active_signing_certificates=credentials[1] if credentials else None,
    )


@dataclass(frozen=True)
class RootCredentialFinding:
    """Long-term root credentials a snapshot shows: ``kind`` is "access keys" or "signing
    certificates"; ``seen_by`` names each signal that shows them."""

    kind: str
    seen_by: tuple[str, ...]


def root_credential_findings(snapshot: RootMfaSnapshot) -> list[RootCredentialFinding]:
    """Which long-term credentials the root user still has, by any signal (no AWS calls).
    AWS advises against root access keys (IAM User Guide, root user best practices) and the
    CIS AWS Foundations Benchmark requires none; X.509 signing certificates are long-term root
    credentials alike. A credential report is up to four hours old: it is named as such."""
    s = snapshot
    report = s.credential_report
    aged = f" (report generated {report.generated_at})" if report else ""
    signals = {
        "access keys": [
            ("GetAccountSummary AccountAccessKeysPresent=1", s.account_access_keys_present),
            (f"credential report access_key_1_active{aged}", report and report.access_key_1_active),
            (f"credential report access_key_2_active{aged}", report and report.access_key_2_active),
            (
                f"ListAccessKeys (AssumeRoot): {s.session_active_access_keys} active",
                bool(s.session_active_access_keys),
            ),
        ],
        "signing certificates": [
            (
                "GetAccountSummary AccountSigningCertificatesPresent=1",
                s.account_signing_certificates_present,
            ),
            (f"credential report cert_1_active{aged}", report and report.cert_1_active),
            (f"credential report cert_2_active{aged}", report and report.cert_2_active),
            (
                "ListSigningCertificates (AssumeRoot): "
                f"{s.session_active_signing_certificates} active",
                bool(s.session_active_signing_certificates),
            ),
        ],
    }
    return [
        RootCredentialFinding(kind, tuple(name for name, seen in found if seen))
        for kind, found in signals.items()
        if any(seen for _, seen in found)
    ]


@dataclass(frozen=True)
class Judgement:
    """What the signals say together."""

    mfa_enabled: bool | None
    devices: tuple[str, ...]
    agree: bool
    disagreements: tuple[str, ...]
    notes: tuple[str, ...]


def judge(snapshot: RootMfaSnapshot, changed_after: str | None = None) -> Judgement:
    """Compare the signals (no AWS calls). ``changed_after``: ISO time of the last change this
    run made; a credential report generated before it is stale, not a disagreement."""
    disagreements: list[str] = []
    notes: list[str] = []
    enabled = snapshot.account_mfa_enabled
    report = snapshot.credential_report
    virtual = snapshot.virtual_devices
    session = snapshot.session_devices
    if report is not None:
        stale = changed_after is not None and _instant(report.generated_at) < _instant(
            changed_after
        )
        if stale:
            notes.append(
                f"The credential report was generated at {report.generated_at}, "
                "before the change; AWS reuses a report for up to four hours, so its "
                "mfa_active is not current."
            )
        elif enabled is not None and report.mfa_active != enabled:
            disagreements.append(
                f"AccountMFAEnabled={int(enabled)} but the credential report "
                f"says mfa_active={str(report.mfa_active).lower()}"
            )
    if virtual and enabled is False:
        disagreements.append(
            f"AccountMFAEnabled=0 but {len(virtual)} virtual device(s) are assigned to root"
        )
    if session is not None:
        if enabled is not None and bool(session) != enabled:
            disagreements.append(
                f"AccountMFAEnabled={int(enabled)} but ListMFADevices in the "
                f"AssumeRoot session lists {len(session)} device(s)"
            )
        session_virtual = {d.serial for d in session if d.kind == "virtual"}
        if virtual is not None and set(virtual) != session_virtual:
            disagreements.append(
                "ListVirtualMFADevices and ListMFADevices list different virtual devices"
            )
    elif enabled and not virtual:
        notes.append(
            "Root MFA is enabled but no virtual device is assigned: the device is a "
            "FIDO security key or hardware token, which only the console or an "
            "AssumeRoot session (member accounts) can list."
        )
    if snapshot.errors:
        notes.append(f"{len(snapshot.errors)} signal(s) could not be read.")
    if enabled is None:
        enabled = report.mfa_active if report is not None else None
    devices = tuple(sorted(snapshot.known_serials()))
    return Judgement(enabled, devices, not disagreements, tuple(disagreements), tuple(notes))


def _instant(value: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def poll_until(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 1.0,
    max_interval: float = 10.0,
    check: str = "",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``probe`` until ``done(result)``; back off between probes; raise
    :class:`VerificationTimeout` (carrying the last result) at the deadline."""
    deadline = clock() + timeout
    wait = interval
    while True:
        result = probe()
        if done(result):
            return result
        remaining = deadline - clock()
        if remaining <= 0:
            raise VerificationTimeout(what, timeout, result, check)
        sleep(min(wait, remaining))
        wait = min(wait * 2, max_interval)


def wait_for_device_removed(
    aws: AwsContext,
    account_id: str,
    serial: str,
    session: RootSession | None = None,
    timeout: float = 120.0,
    interval: float = 1.0,
) -> RootMfaSnapshot:
    """Poll until no signal lists ``serial`` (credential report excluded: it may be stale)."""

    def probe() -> RootMfaSnapshot:
        return collect_snapshot(aws, account_id, session, with_report=False)

    def gone(snap: RootMfaSnapshot) -> bool:
        if device_kind(serial) != "virtual" and snap.session_devices is None:
            return False  # only an AssumeRoot session lists FIDO keys and hardware tokens
        if snap.virtual_devices is None and snap.session_devices is None:
            return False
        return serial not in snap.known_serials()

    return poll_until(
        probe,
        gone,
        timeout=timeout,
        interval=interval,
        what=f"device {serial} to disappear from root's MFA devices",
        check="Check in the console (Security credentials > MFA) that the "
        "device is gone; IAM can lag for a short while.",
    )


def wait_for_new_device(
    aws: AwsContext,
    account_id: str,
    removed_serial: str | None,
    before: set[str],
    session: RootSession | None = None,
    timeout: float = 300.0,
    interval: float = 2.0,
) -> RootMfaSnapshot:
    """Poll until a root MFA device appears that was not there before and is not the removed
    one; a FIDO or hardware device shows only as AccountMFAEnabled=1 without a session."""

    def probe() -> RootMfaSnapshot:
        return collect_snapshot(aws, account_id, session, with_report=False)

    def appeared(snap: RootMfaSnapshot) -> bool:
        new = snap.known_serials() - before - ({removed_serial} if removed_serial else set())
        if new:
            return True
        return bool(snap.account_mfa_enabled) and not snap.known_serials() and not before

    return poll_until(
        probe,
        appeared,
        timeout=timeout,
        interval=interval,
        what="a new root MFA device",
        check="Finish binding in the console (scan the QR code, enter two "
        "consecutive codes) and confirm the console shows the device.",
    )
