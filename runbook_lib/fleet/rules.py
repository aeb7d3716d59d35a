"""Judging one account's root credentials, against named rules: pure, no AWS call.

The fleet audit collects, per member account, what an ``IAMAuditRootUserCredentials``
AssumeRoot session can read (:class:`RootCredentials`); :func:`judge` turns it into
:class:`Finding` s, each naming its :class:`Rule` (where the rule comes from, how severe, what
to do), and one :class:`Verdict` for the account.

The rules, and where each comes from:

=========================== ======================================================= ========
rule                        source                                                  severity
=========================== ======================================================= ========
``root-access-keys``        CIS AWS Foundations Benchmark 3.0.0, 1.4 (Security Hub  critical
                            IAM.4): no root access key exists
``root-mfa``                CIS 1.5 (Security Hub IAM.9): root has MFA              high
``root-hardware-mfa``       CIS 1.6 (Security Hub IAM.6): root's MFA is hardware    medium
                            (a virtual device permitted is non-compliant, as AWS
                            Config's ``root-account-hardware-mfa-enabled`` judges)
``member-root-credentials`` AWS IAM User Guide, *Centrally manage root access for   medium
                            member accounts*: once centralised, members keep no root
                            credentials (password, access keys, signing
                            certificates, MFA)
``password-without-mfa``    ours: a root password with no MFA is one factor          critical
                            between anyone and the account
``several-mfa-devices``     ours: every device is a way in; each needs a known      low
                            holder
``old-mfa-device``          ours: a device enabled more than ``max_device_age_days``  low
                            ago is due for replacement (lost, left with someone)
=========================== ======================================================= ========

Like AWS Config's root rules, the CIS MFA rules are *not applicable* to a root user without
credentials (no password, no active access key or certificate): there is nothing to sign in
with, which is exactly what AWS recommends for members.

A finding whose remediation is this runbook carries :attr:`Finding.runbook`: the parameters of
the ``runbook run`` that fixes it (``runbook fleet plan`` writes them as files).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Literal

from ..aws.state import MfaDeviceInfo

Reach = Literal[
    "probed",  # an audit session read everything below
    "management-account",  # AssumeRoot cannot target the management account: console only
    "suspended",  # suspended or closing accounts are reported, not probed
    "features-disabled",  # centralised root access (RootSessions) is not enabled
    "access-denied",  # AssumeRoot or a read was denied
    "failed",  # another AWS error, named in reach_detail
]
DEFAULT_MAX_DEVICE_AGE_DAYS = 3 * 365


class Severity(Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class Verdict(Enum):
    """One word per account, worst first (the report's summary picture counts them)."""

    UNREACHABLE = "unreachable"  # not probed: what to do is in the account's reach note
    CHANGE_MFA = "change-mfa"  # root MFA must change: a runbook run is planned
    ATTENTION = "attention"  # other findings (access keys, password, ...)
    OK = "ok"


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    source: str
    severity: Severity
    remediation: str


RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "root-access-keys",
            "The root user has an active access key",
            "CIS AWS Foundations Benchmark 3.0.0, 1.4 (AWS Security Hub IAM.4)",
            Severity.CRITICAL,
            "Delete the root access keys: for a member with centralised root access, "
            "`aws iam delete-access-key` in an AssumeRoot session with the "
            "IAMDeleteRootUserCredentials task policy; otherwise as root in the console "
            "(Security credentials > Access keys).",
        ),
        Rule(
            "root-mfa",
            "The root user has credentials and no MFA device",
            "CIS AWS Foundations Benchmark 3.0.0, 1.5 (AWS Security Hub IAM.9)",
            Severity.HIGH,
            "Sign in as root and assign an MFA device (a FIDO security key, or a hardware "
            "TOTP token) in the console: Security credentials > Multi-factor "
            "authentication (MFA) > Assign MFA device. AWS offers no API for it.",
        ),
        Rule(
            "root-hardware-mfa",
            "The root user's MFA includes a virtual (authenticator app) device",
            "CIS AWS Foundations Benchmark 3.0.0, 1.6 (AWS Security Hub IAM.6; AWS Config "
            "root-account-hardware-mfa-enabled)",
            Severity.MEDIUM,
            "Replace the virtual device with a hardware one: the planned `runbook run` "
            "removes it and guides the binding of the new device in the console.",
        ),
        Rule(
            "member-root-credentials",
            "A member account with centralised root access still has root credentials",
            "AWS IAM User Guide: Centrally manage root access for member accounts",
            Severity.MEDIUM,
            "Delete the member's root credentials: the password, access keys and signing "
            "certificates (AssumeRoot, IAMDeleteRootUserCredentials: delete-login-profile, "
            "delete-access-key, delete-signing-certificate), then each MFA device with the "
            "planned `runbook run` (rebind: skip).",
        ),
        Rule(
            "password-without-mfa",
            "The root user has a password and no MFA device",
            "root-mfa-runbook: a password alone is one factor between anyone and the account",
            Severity.CRITICAL,
            "Assign an MFA device as root in the console now, or (a member with centralised "
            "root access) delete the root password: delete-login-profile in an AssumeRoot "
            "session with IAMDeleteRootUserCredentials.",
        ),
        Rule(
            "several-mfa-devices",
            "The root user has several MFA devices",
            "root-mfa-runbook: every device is a way in, and each needs a known holder",
            Severity.LOW,
            "Confirm who holds each device and where; remove any nobody can account for with "
            "the planned `runbook run` (rebind: skip).",
        ),
        Rule(
            "old-mfa-device",
            "A root MFA device is older than the fleet's limit",
            "root-mfa-runbook: an old device may be lost, broken or left with someone",
            Severity.LOW,
            "Check the device is still held and works; replace it with the planned "
            "`runbook run` (remove, sign in, bind the new device).",
        ),
    )
}


#: a root MFA device as the audit session lists it (serial, kind, ISO 8601 enable date)
MfaDevice = MfaDeviceInfo


@dataclass(frozen=True)
class AccessKey:
    """A root access key, by the last four characters of its id (ids are not secret, but a
    record needs no more to tell two apart)."""

    id_suffix: str
    active: bool
    created: str | None = None
    last_used: str | None = None


@dataclass(frozen=True)
class RootCredentials:
    """What the audit found for one account. Fields other than the identity are ``None``
    when the account was not probed (see :attr:`reach`)."""

    account_id: str
    name: str = ""
    status: str = "ACTIVE"  # Organizations: ACTIVE | SUSPENDED | PENDING_CLOSURE
    reach: Reach = "probed"
    reach_detail: str | None = None
    centralised: bool = False  # RootCredentialsManagement enabled for the organization
    password: bool | None = None
    mfa_devices: tuple[MfaDevice, ...] = ()
    access_keys: tuple[AccessKey, ...] = ()
    signing_certificates_active: int = 0

    @property
    def active_keys(self) -> tuple[AccessKey, ...]:
        return tuple(key for key in self.access_keys if key.active)

    @property
    def has_credentials(self) -> bool:
        """Something to sign in or call AWS with as root (MFA alone is not)."""
        return bool(self.password or self.active_keys or self.signing_certificates_active)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the fleet record's per-account snapshot); :meth:`from_dict` reverses it."""
        out = asdict(self)
        out["mfa_devices"] = [asdict(d) for d in self.mfa_devices]
        out["access_keys"] = [asdict(k) for k in self.access_keys]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RootCredentials:
        """The snapshot :meth:`to_dict` wrote (ValueError if it is not one)."""
        try:
            fields = dict(data)
            fields["mfa_devices"] = tuple(MfaDevice(**d) for d in fields.get("mfa_devices", ()))
            fields["access_keys"] = tuple(AccessKey(**k) for k in fields.get("access_keys", ()))
            return cls(**fields)
        except (TypeError, AttributeError) as err:
            raise ValueError(f"not a root credentials snapshot: {err}") from err


@dataclass(frozen=True)
class Finding:
    account_id: str
    rule: Rule
    detail: str
    #: the `runbook run` parameters that remediate it (None: not this runbook's job)
    runbook: dict[str, Any] | None = None
    #: the one MFA device the finding is about (None: it is about the account)
    device_serial: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the rule's id, title, source, severity and remediation, inlined."""
        return {
            "account_id": self.account_id,
            "rule": self.rule.id,
            "title": self.rule.title,
            "source": self.rule.source,
            "severity": self.rule.severity.value,
            "detail": self.detail,
            "remediation": self.rule.remediation,
            "runbook": self.runbook,
            "device_serial": self.device_serial,
        }


@dataclass(frozen=True)
class Judgement:
    account_id: str
    verdict: Verdict
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    note: str | None = None  # why it was not probed, and what to do

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "verdict": self.verdict.value,
            "note": self.note,
            "findings": [f.to_dict() for f in self.findings],
        }


UNREACHABLE_NOTES: dict[str, str] = {
    "management-account": "the management account: AssumeRoot cannot target it; check its "
    "root user in the console (IAM > Security credentials) or with its own credential report",
    "suspended": "suspended or closing: not probed",
    "features-disabled": "centralised root access (RootSessions) is not enabled for this "
    "organization: enable it (IAM > Root access management) to audit members from here",
    "access-denied": "access denied: the caller needs sts:AssumeRoot with the "
    "IAMAuditRootUserCredentials task policy (policies/runbook-fleet-audit.json), and no "
    "SCP may deny it",
    "failed": "the audit could not read this account",
}


def judge(
    creds: RootCredentials,
    now: dt.datetime,
    max_device_age_days: int = DEFAULT_MAX_DEVICE_AGE_DAYS,
    region: str = "us-east-1",
) -> Judgement:
    """The findings and verdict for one account. ``now`` is passed in (the audit's start), so
    the same input always gives the same judgement."""
    if creds.reach != "probed":
        note = UNREACHABLE_NOTES[creds.reach]
        if creds.reach_detail:
            note = f"{note} ({creds.reach_detail})"
        return Judgement(creds.account_id, Verdict.UNREACHABLE, (), note)
    found: list[Finding] = []

    def add(
        rule_id: str,
        detail: str,
        runbook: dict[str, Any] | None = None,
        device: MfaDevice | None = None,
    ) -> None:
        serial = device.serial if device is not None else None
        found.append(Finding(creds.account_id, RULES[rule_id], detail, runbook, serial))

    def plan(device: MfaDevice, rebind: str) -> dict[str, Any]:
        return run_parameters(creds, device, rebind, region)

    devices, keys, centralised = creds.mfa_devices, creds.active_keys, creds.centralised
    if keys:
        ids = ", ".join(f"…{key.id_suffix}" for key in keys)
        add("root-access-keys", f"{len(keys)} active: {ids}")
    if creds.has_credentials and not devices:
        add("root-mfa", "credentials: " + _credentials_text(creds) + "; no MFA device")
    if creds.password and not devices:
        add("password-without-mfa", "a root password and no MFA device")
    if creds.has_credentials:
        for device in devices:
            if device.kind == "virtual":
                # a centralised member's remedy is deleting its credentials (below), not a
                # hardware device
                runbook = None if centralised else plan(device, "bind")
                add("root-hardware-mfa", f"virtual device {device.serial}", runbook, device)
    if centralised and (creds.has_credentials or devices):
        held = _credentials_text(creds, devices=True)
        # MFA removal is planned only once nothing else is left: removing a member's MFA while
        # its password remains would leave the password alone
        ready = not creds.has_credentials
        for device in devices:
            wait = "" if ready else " (delete the password, keys and certificates first)"
            runbook = plan(device, "skip") if ready else None
            detail = f"{held}; device {device.serial}{wait}"
            add("member-root-credentials", detail, runbook, device)
        if not devices:
            add("member-root-credentials", held)
    if not centralised:
        if len(devices) > 1:
            add("several-mfa-devices", f"{len(devices)} devices: " + ", ".join(_kinds(devices)))
        for device in devices:
            age = _age_days(device.enable_date, now)
            if age is not None and age > max_device_age_days:
                detail = f"{device.serial} enabled {age} days ago (limit {max_device_age_days})"
                add("old-mfa-device", detail, plan(device, "bind"), device)
    findings = tuple(_dedupe_plans(found))
    if any(f.runbook for f in findings):
        verdict = Verdict.CHANGE_MFA
    elif findings:
        verdict = Verdict.ATTENTION
    else:
        verdict = Verdict.OK
    return Judgement(creds.account_id, verdict, findings)


def run_parameters(
    creds: RootCredentials, device: MfaDevice, rebind: str, region: str
) -> dict[str, Any]:
    """The ``runbook run`` parameters that remove ``device`` from this member's root user
    (through AssumeRoot when the organization centralised root access, else in the console)
    and then bind a new one (``bind``) or not (``skip``). Profiles are left for the operator
    (``runbook fleet plan`` writes placeholders that ``runbook plan`` names if unchanged)."""
    method = "assume-root" if creds.centralised else "console"
    params: dict[str, Any] = {
        "account_id": creds.account_id,
        "method": method,
        "device_serial": device.serial,
        "rebind": rebind,
        "region": region,
    }
    return params


def _dedupe_plans(found: list[Finding]) -> list[Finding]:
    """One planned run per device: the first (most severe rule) keeps it, later findings of
    the same device keep their text but point to it instead of planning again."""
    seen: set[str] = set()
    out: list[Finding] = []
    for finding in sorted(found, key=lambda f: f.rule.severity.rank):
        serial = (finding.runbook or {}).get("device_serial")
        if serial is not None and serial in seen:
            finding = Finding(
                finding.account_id,
                finding.rule,
                finding.detail + " (same run as above)",
                None,
                finding.device_serial,
            )
        elif serial is not None:
            seen.add(serial)
        out.append(finding)
    return out


def _credentials_text(creds: RootCredentials, devices: bool = False) -> str:
    parts = []
    if creds.password:
        parts.append("password")
    if creds.active_keys:
        parts.append(f"{len(creds.active_keys)} active access key(s)")
    if creds.signing_certificates_active:
        parts.append(f"{creds.signing_certificates_active} active signing certificate(s)")
    if devices and creds.mfa_devices:
        parts.append(f"{len(creds.mfa_devices)} MFA device(s)")
    return ", ".join(parts) or "none"


def _kinds(devices: tuple[MfaDevice, ...]) -> list[str]:
    return [f"{d.kind} {d.serial}" for d in devices]


def _age_days(enable_date: str | None, now: dt.datetime) -> int | None:
    if not enable_date:
        return None
    try:
        enabled = dt.datetime.fromisoformat(enable_date.replace("Z", "+00:00"))
    except ValueError:
        return None
    if enabled.tzinfo is None:
        enabled = enabled.replace(tzinfo=dt.UTC)
    return (now - enabled).days
