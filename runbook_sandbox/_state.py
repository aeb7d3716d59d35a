"""The sandbox's own state: what moto does not model for this procedure.

Moto keeps IAM users, organizations and S3; this module keeps the rest: a movable clock, the
principals and their keys, each account's root user (MFA devices with their history, password,
access keys, signing certificates), the organization's root-access features, the recorded
CloudTrail events, the simulated mailbox and console sessions, the injected faults, and the
switches that choose among the plausible variants of what AWS does not document
(``SWITCHES``). One lock guards it all; the server is threaded.

Memory is bounded in the number of calls, so a long audit loop over ``fleet-5000`` does not grow
the sandbox without end: STS sessions (AssumeRoot, AssumeRole) are dropped once expired (their
session token carries its own expiry under an HMAC of a per-world key, so a call with an expired,
dropped session is still answered ``ExpiredToken``, with nothing kept for it), and the CloudTrail
store keeps the newest ``World.cloudtrail_max_events`` events (default
:data:`DEFAULT_CLOUDTRAIL_MAX_EVENTS`) of the last 90 days. What stays is per account (its root
user, built on first use) and per principal the scenario or a test created.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import heapq
import hmac
import os
import secrets
import string
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

# the actions each root task policy leaves to an AssumeRoot session (the policies themselves, as
# AWS publishes them, are in _authz.TASK_POLICY_DOCUMENTS, which the sandbox evaluates)
ROOT_TASK_POLICIES = {
    "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials": frozenset(
        {
            "iam:GetAccessKeyLastUsed",
            "iam:GetAccountSummary",
            "iam:GetLoginProfile",
            "iam:GetUser",
            "iam:ListAccessKeys",
            "iam:ListMFADevices",
            "iam:ListSigningCertificates",
        }
    ),
    "arn:aws:iam::aws:policy/root-task/IAMCreateRootUserPassword": frozenset(
        {"iam:CreateLoginProfile", "iam:GetLoginProfile"}
    ),
    "arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials": frozenset(
        {
            "iam:DeactivateMFADevice",
            "iam:DeleteAccessKey",
            "iam:DeleteLoginProfile",
            "iam:DeleteSigningCertificate",
            "iam:DeleteVirtualMFADevice",
            "iam:GetAccessKeyLastUsed",
            "iam:GetLoginProfile",
            "iam:GetUser",
            "iam:ListAccessKeys",
            "iam:ListMFADevices",
            "iam:ListSigningCertificates",
        }
    ),
    "arn:aws:iam::aws:policy/root-task/S3UnlockBucketPolicy": frozenset(
        {"s3:DeleteBucketPolicy", "s3:GetBucketPolicy", "s3:ListAllMyBuckets", "s3:PutBucketPolicy"}
    ),
    "arn:aws:iam::aws:policy/root-task/SQSUnlockQueuePolicy": frozenset(
        {"sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueues", "sqs:SetQueueAttributes"}
    ),
}

MAX_ROOT_MFA_DEVICES = 8
CREDENTIAL_REPORT_MAX_AGE = dt.timedelta(hours=4)
# how long generating a credential report takes on the sandbox clock (AWS: "a few seconds";
# short, so a client polling from 0.1 s waits about as long as its first two polls)
CREDENTIAL_REPORT_SECONDS = 0.3
# root users must register MFA within 35 days of their first sign-in attempt without it
ROOT_MFA_GRACE = dt.timedelta(days=35)
# an access key's last use is recorded at most once per 15-minute span (the first use)
KEY_USE_SPAN = dt.timedelta(minutes=15)
#: how many CloudTrail events the sandbox keeps (the newest; LookupEvents sees no older ones):
#: a fleet audit's two passes over fleet-5000 record 30,000; AWS keeps 90 days' worth
DEFAULT_CLOUDTRAIL_MAX_EVENTS = 10_000
MAX_CLOUDTRAIL_MAX_EVENTS = 10_000_000  # a bound still, where a test wants "everything"

# Switches: AWS behaviour that AWS does not document, each plausible variant selectable at run
# time (POST /_sandbox/switches). name -> (default, choices, what it decides).
SWITCHES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "delete-virtual-mfa-in-delete-session": (
        "deny",
        ("deny", "allow"),
        "iam:DeleteVirtualMFADevice in an IAMDeleteRootUserCredentials AssumeRoot session: the "
        "published task policy allows the action but denies every resource that is "
        "NotResource arn:aws:iam::*:root, and the call names an ...:mfa/... ARN",
    ),
    "root-mfa-window": (
        "first-attempt",
        ("first-attempt", "each-lapse"),
        "the 35-day window to register root MFA runs from the first sign-in attempt without "
        "MFA ever (first-attempt) or starts afresh each time root is left without MFA "
        "(each-lapse)",
    ),
    "summary-root-mfa-devices": (
        "all",
        ("all", "virtual-only", "none"),
        "which of the root user's MFA devices GetAccountSummary counts in MFADevices and "
        "MFADevicesInUse",
    ),
    "first-sign-in-without-mfa": (
        "email-code",
        ("email-code", "password-only"),
        "the first root sign-in after the last MFA device is gone: AWS e-mails a one-time code "
        "to the root address (the procedure's step 3, email-code), or asks only for the "
        "password (password-only); either way CloudTrail records a ConsoleLogin with MFAUsed No",
    ),
    "remove-device-bound-this-session": (
        "refused",
        ("refused", "allowed"),
        "removing a root MFA device in the console session that bound it: refused until the "
        "root user signs in again (the procedure's note: EntityTemporarilyUnmodifiable, a "
        "failed DeactivateMFADevice in CloudTrail), or allowed",
    ),
    "get-mfa-device-non-fido": (
        "no-such-entity",
        ("no-such-entity", "validation-error", "answer"),
        "GetMFADevice with the serial of a root device that is not a FIDO security key (the "
        "API accepts only FIDO security key ARNs)",
    ),
}

PrincipalKind = Literal["iam-user", "root", "assumed-root", "assumed-role"]
DeviceKind = Literal["virtual", "fido", "hardware"]
AccountKind = Literal["standalone", "management", "member"]


class Clock:
    """Wall-clock time plus an offset that tests move forward (never backward)."""

    def __init__(self) -> None:
        self._offset = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self._offset

    def advance(self, seconds: float) -> dt.datetime:
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._offset += dt.timedelta(seconds=seconds)
        return self.now()


SWITCHES_ENV = "RUNBOOK_SANDBOX_SWITCHES"


def default_switches() -> dict[str, str]:
    """Each switch's default, or the variant ``RUNBOOK_SANDBOX_SWITCHES`` (``name=value,...``)
    chooses for every world of this process (a reset keeps it), e.g. to run a test suite
    against another variant."""
    chosen = {name: spec[0] for name, spec in SWITCHES.items()}
    for item in filter(
        None, (part.strip() for part in os.environ.get(SWITCHES_ENV, "").split(","))
    ):
        name, _, value = item.partition("=")
        if name not in SWITCHES or value not in SWITCHES[name][1]:
            raise ValueError(f"{SWITCHES_ENV}: {item!r} is not a known switch=value")
        chosen[name] = value
    return chosen


def new_key_id(prefix: str = "AKIA") -> str:
    alphabet = string.ascii_uppercase + "234567"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(16))


def new_secret() -> str:
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


def new_totp_seed() -> str:
    alphabet = string.ascii_uppercase + "234567"
    return "".join(secrets.choice(alphabet) for _ in range(32))


def fido_serial(account_id: str, name: str) -> str:
    """A new security key's serial, as IAM makes them (``arn:aws:iam::ACCOUNT:u2f/root/NAME-X``)."""
    suffix = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(26))
    return f"arn:aws:iam::{account_id}:u2f/root/{name}-{suffix}"


@dataclass(frozen=True)
class RoleSession:
    """What an ``sts:AssumeRole`` session carries (issued by ``_sts.assume_role``): the role
    whose IAM policies it is evaluated against, its session policies, and who assumed it."""

    role_arn: str
    role_name: str
    role_id: str
    session_name: str
    issued_at: dt.datetime
    source_arn: str
    session_policies: tuple[dict[str, Any], ...] = ()


@dataclass(slots=True)
class Principal:
    """Someone who signs requests: an IAM user, the root user, an AssumeRoot session, or a role
    session (``role`` set). Slotted: a fleet audit holds thousands of live sessions."""

    name: str
    kind: PrincipalKind
    account_id: str
    arn: str
    access_key_id: str
    secret_access_key: str
    user_name: str | None = None
    user_id: str = ""
    session_token: str | None = None
    expires_at: dt.datetime | None = None
    task_policy_arn: str | None = None
    # IAM policy documents that bound what this principal may do; None means unrestricted
    # (an administrator). Evaluated by runbook_sandbox._authz.
    policies: list[dict[str, Any]] | None = None
    assumed_by_arn: str | None = None
    assumed_by_account: str | None = None
    role: RoleSession | None = None  # kind "assumed-role"
    # an STS session's start: the time of the AssumeRoot/AssumeRole event that issued it
    issued_at: dt.datetime | None = None

    def public(self) -> dict[str, str]:
        """What the sandbox prints on start for this principal (its keys are sandbox-only)."""
        return {
            "account_id": self.account_id,
            "arn": self.arn,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        }


@dataclass(frozen=True, slots=True)
class MfaDevice:
    serial: str
    kind: DeviceKind
    name: str
    enable_date: dt.datetime
    seed: str | None = None  # TOTP seed (virtual, hardware); never leaves the sandbox's state
    console_session: str | None = None  # the console session that bound it, if any


@dataclass(slots=True)
class RootAccessKey:
    access_key_id: str
    status: str
    created: dt.datetime
    last_used: dt.datetime | None = None
    last_used_service: str | None = None
    last_used_region: str | None = None


@dataclass(slots=True)
class RootSigningCertificate:
    """An X.509 signing certificate of the root user (long-term, what AWS advises against)."""

    certificate_id: str
    status: str
    uploaded: dt.datetime
    body: str = ""


#: IAM quotas: "Access keys assigned to an IAM user: 2", "Signing certificates assigned to an
#: IAM user: 2" (the root user's own are limited alike)
MAX_ROOT_ACCESS_KEYS = 2
MAX_ROOT_SIGNING_CERTIFICATES = 2


@dataclass(slots=True)
class RootUser:
    """An account's root user (slotted, like its devices and keys: a fleet holds thousands)."""

    account_id: str
    email: str
    created: dt.datetime
    has_password: bool = True
    password_last_used: dt.datetime | None = None
    access_keys: list[RootAccessKey] = field(default_factory=list)
    signing_certificates: list[RootSigningCertificate] = field(default_factory=list)
    # every version of the device list with the time it took effect; reads with an injected
    # IAM lag see an older version, as IAM's eventual consistency would show it
    history: list[tuple[dt.datetime, tuple[MfaDevice, ...]]] = field(default_factory=list)
    # set when the last device is removed: the next console sign-in needs an e-mailed code
    email_verification_pending: bool = False
    # unassigned virtual device objects (created, or deactivated without deletion)
    unassigned_virtual: dict[str, MfaDevice] = field(default_factory=dict)
    # root MFA enforcement: the first console sign-in attempt without MFA ever, and the first
    # since root last registered MFA (the start of the 35-day window, by the switch)
    first_attempt_without_mfa: dt.datetime | None = None
    attempt_since_last_mfa: dt.datetime | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:root"

    def devices(self) -> tuple[MfaDevice, ...]:
        return self.history[-1][1] if self.history else ()

    def devices_seen(self, now: dt.datetime, lag: float) -> tuple[MfaDevice, ...]:
        """The device list as an IAM read sees it ``lag`` seconds behind the truth."""
        if lag <= 0:
            return self.devices()
        horizon = now - dt.timedelta(seconds=lag)
        seen: tuple[MfaDevice, ...] = ()
        for when, devices in self.history:
            if when <= horizon:
                seen = devices
        return seen

    def set_devices(self, now: dt.datetime, devices: tuple[MfaDevice, ...]) -> None:
        self.history.append((now, devices))
        if devices:
            self.attempt_since_last_mfa = None

    def mfa_window_start(self, mode: str) -> dt.datetime | None:
        """When the 35-day window to register MFA began (None: no attempt without MFA)."""
        if mode == "each-lapse":
            return self.attempt_since_last_mfa
        return self.first_attempt_without_mfa

    def mfa_deadline(self, mode: str) -> dt.datetime | None:
        start = self.mfa_window_start(mode)
        return None if start is None else start + ROOT_MFA_GRACE


@dataclass(slots=True)
class Account:
    account_id: str
    kind: AccountKind
    root: RootUser
    name: str = ""


@dataclass
class ConsoleSession:
    session_id: str
    account_id: str
    signed_in_at: dt.datetime
    mfa_used: bool
    console_key: str = ""
    pending_binds: dict[str, MfaDevice] = field(default_factory=dict)
    # past the 35-day deadline without MFA: the session may only register a device
    registration_only: bool = False


@dataclass
class PendingSignIn:
    account_id: str
    code: str
    sent_at: dt.datetime


@dataclass
class FaultRule:
    """One injected fault: ``kind`` is throttle | deny | latency; ``operation`` is e.g.
    ``iam:ListMFADevices``, ``iam:*``, ``ListMFADevices`` or ``*`` (every call); ``remaining``
    counts calls left (None: until cleared); ``every`` (throttle, deny) fires on every k-th
    matching call only (the k-th, 2k-th, ...: a deterministic pattern a client with retries
    absorbs). ``seen`` counts the matching calls, ``fired`` the calls it acted on."""

    kind: str
    operation: str
    remaining: int | None = None
    seconds: float = 0.0
    every: int | None = None
    seen: int = 0
    fired: int = 0

    def matches(self, operation: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.operation in ("*", operation):
            return True
        service, _, action = operation.partition(":")
        return self.operation == f"{service}:*" or self.operation == action

    def due(self) -> bool:
        """Count one matching call; whether this rule acts on it (``every``: the k-th only)."""
        self.seen += 1
        return self.every is None or self.seen % self.every == 0

    def act(self) -> None:
        """This rule acted on a call: count it, and one call less remains."""
        self.fired += 1
        if self.remaining is not None:
            self.remaining -= 1


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One recorded CloudTrail event, compact: the fields LookupEvents filters and summarises
    on, and the event itself as CloudTrail's JSON text (``CloudTrailEvent``)."""

    seq: int  # the order of recording (pagination snapshots)
    account: str
    region: str
    when: dt.datetime
    visible_at: dt.datetime  # delivery: LookupEvents sees it from then on
    event_id: str
    event_name: str
    event_source: str
    read_only: str  # "true" | "false"
    access_key_id: str | None
    username: str | None
    resources: tuple[tuple[str, str], ...]  # (ResourceType, ResourceName)
    text: str


@dataclass
class CredentialReport:
    generated_at: dt.datetime
    content: bytes
    ready_at: dt.datetime  # when generation finishes (GetCredentialReport: ReportInProgress)


class World:
    """All sandbox state beyond moto's, guarded by one re-entrant lock."""

    def __init__(self, scenario: str) -> None:
        self.lock = threading.RLock()
        self.scenario = scenario
        self.clock = Clock()
        self.accounts: dict[str, Account] = {}
        self.principals: dict[str, Principal] = {}  # by access key id
        # sessions issued by the request in flight (AssumeRoot, AssumeRole), until recorded
        self.principals_by_request: dict[str, Principal] = {}
        # STS sessions by expiry (a heap), to drop them once expired; the key that signs their
        # session tokens (so an expired, dropped session is still recognised as expired)
        self.session_expiries: list[tuple[dt.datetime, str]] = []
        self.session_key = secrets.token_bytes(32)
        self.named: dict[str, Principal] = {}  # by the name printed on start
        self.target_account_id = ""
        self.management_account_id: str | None = None
        self.organization_id: str | None = None
        self.org_features: set[str] = set()
        # recorded CloudTrail events (see _cloudtrail), oldest first, the newest kept
        self.cloudtrail_max_events = DEFAULT_CLOUDTRAIL_MAX_EVENTS
        self.events: collections.deque[StoredEvent] = collections.deque(
            maxlen=self.cloudtrail_max_events
        )
        self.event_seq = 0
        self.authenticator_seeds: dict[str, str] = {}  # the simulated phone app
        self.mailbox: dict[str, list[dict[str, Any]]] = {}
        self.pending_sign_ins: dict[str, PendingSignIn] = {}
        self.console_sessions: dict[str, ConsoleSession] = {}
        self.faults: list[FaultRule] = []
        self.iam_read_lag = 0.0
        self.credential_reports: dict[str, CredentialReport] = {}
        self.credential_report_seconds = CREDENTIAL_REPORT_SECONDS
        self.switches: dict[str, str] = default_switches()
        self.lookup_rate_per_second = 2.0
        self.lookup_buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self.lazy_accounts: dict[str, Any] = {}  # fleet accounts built on first use
        # CloudTrail delivery (runbook_sandbox._cloudtrail): an event becomes visible to
        # LookupEvents this long (sandbox clock) after the call, plus up to ``jitter`` more
        self.cloudtrail_delay = 0.3
        self.cloudtrail_jitter = 0.0
        self.lookup_window = "clip"  # a StartTime older than 90 days: "clip" or "error"

    # ----------------------------------------------------------------- STS sessions
    def session_token(self, access_key_id: str, expires_at: dt.datetime, size: int) -> str:
        """A session token for ``access_key_id`` (``size`` bytes, base64: 80 or 120 characters
        for 60 or 90): its expiry (4 bytes, Unix seconds), random bytes, and an HMAC-SHA256 of
        key id, expiry and randomness under this world's key. Like AWS's own tokens it
        describes itself, so nothing needs keeping once the session is dropped."""
        stamp = int(expires_at.timestamp()).to_bytes(4, "big")
        body = stamp + secrets.token_bytes(size - 4 - 32)
        tag = hmac.new(self.session_key, access_key_id.encode() + body, hashlib.sha256).digest()
        return base64.b64encode(body + tag).decode()

    def token_expiry(self, access_key_id: str, token: str) -> dt.datetime | None:
        """The expiry a session token of this world carries for ``access_key_id``; None when
        it is not one (another world's, another key's, altered, or not base64)."""
        try:
            raw = base64.b64decode(token.encode(), validate=True)
        except ValueError:
            return None
        if len(raw) < 4 + 32:
            return None
        body, tag = raw[:-32], raw[-32:]
        expected = hmac.new(self.session_key, access_key_id.encode() + body, hashlib.sha256)
        if not hmac.compare_digest(tag, expected.digest()):
            return None
        return dt.datetime.fromtimestamp(int.from_bytes(body[:4], "big"), dt.UTC)

    def add_session(self, session: Principal) -> None:
        """A new STS session: usable until it expires, then dropped (see :meth:`drop_expired`)."""
        assert session.expires_at is not None and session.session_token is not None
        with self.lock:
            self.drop_expired()
            self.principals[session.access_key_id] = session
            heapq.heappush(self.session_expiries, (session.expires_at, session.access_key_id))

    def drop_expired(self) -> int:
        """Forget the STS sessions expired on the sandbox clock (their calls are answered
        ExpiredToken from their tokens alone). How many are live."""
        with self.lock:
            now = self.clock.now()
            while self.session_expiries and self.session_expiries[0][0] <= now:
                _, key = heapq.heappop(self.session_expiries)
                self.principals.pop(key, None)
            return len(self.session_expiries)

    # ----------------------------------------------------------------- CloudTrail store
    def set_cloudtrail_max_events(self, count: int) -> None:
        """Keep the newest ``count`` CloudTrail events (older ones drop out of LookupEvents)."""
        if not 1 <= count <= MAX_CLOUDTRAIL_MAX_EVENTS:
            raise ValueError(f"max_events must be 1..{MAX_CLOUDTRAIL_MAX_EVENTS}, got {count}")
        with self.lock:
            self.cloudtrail_max_events = count
            self.events = collections.deque(self.events, maxlen=count)

    # ----------------------------------------------------------------- principals
    def add_principal(self, principal: Principal) -> Principal:
        with self.lock:
            self.principals[principal.access_key_id] = principal
            self.named.setdefault(principal.name, principal)
        return principal

    def account(self, account_id: str) -> Account | None:
        with self.lock:
            found = self.accounts.get(account_id)
            if found is None and account_id in self.lazy_accounts:
                builder = self.lazy_accounts.pop(account_id)
                found = builder()
                self.accounts[account_id] = found
            return found

    def is_member(self, account_id: str) -> bool:
        acct = self.account(account_id)
        return acct is not None and acct.kind == "member"

    @property
    def task_policy_variant(self) -> str:
        """DeleteVirtualMFADevice in an IAMDeleteRootUserCredentials session (``_authz``): the
        switch ``delete-virtual-mfa-in-delete-session``, under the name ``_authz`` uses."""
        return self.switches["delete-virtual-mfa-in-delete-session"]

    @task_policy_variant.setter
    def task_policy_variant(self, value: str) -> None:
        self.switches["delete-virtual-mfa-in-delete-session"] = value

    def switch(self, name: str) -> str:
        with self.lock:
            return self.switches[name]

    def add_root_access_key(
        self, account: Account, created: dt.datetime | None = None
    ) -> Principal:
        """An active long-term access key of ``account``'s root user, and the principal that
        signs with it (named ``root`` if no other is)."""
        with self.lock:
            root = account.root
            if len(root.access_keys) >= MAX_ROOT_ACCESS_KEYS:
                raise ValueError(
                    f"the root user already has {MAX_ROOT_ACCESS_KEYS} access keys (the quota)"
                )
            key_id = new_key_id("AKIA")
            when = created or self.clock.now().replace(microsecond=0)
            root.access_keys.append(RootAccessKey(key_id, "Active", when))
            return self.add_principal(
                Principal(
                    name="root",
                    kind="root",
                    account_id=account.account_id,
                    arn=root.arn,
                    access_key_id=key_id,
                    secret_access_key=new_secret(),
                    user_id=account.account_id,
                )
            )

    def add_root_signing_certificate(
        self, account: Account, uploaded: dt.datetime | None = None
    ) -> RootSigningCertificate:
        """An active X.509 signing certificate of ``account``'s root user."""
        with self.lock:
            root = account.root
            if len(root.signing_certificates) >= MAX_ROOT_SIGNING_CERTIFICATES:
                raise ValueError(
                    f"the root user already has {MAX_ROOT_SIGNING_CERTIFICATES} signing "
                    "certificates (the quota)"
                )
            alphabet = string.ascii_uppercase + string.digits
            cert_id = "".join(secrets.choice(alphabet) for _ in range(28))
            body = (
                "-----BEGIN CERTIFICATE-----\n"
                + "".join(secrets.choice(string.ascii_letters) for _ in range(64))
                + "\n-----END CERTIFICATE-----\n"
            )
            cert = RootSigningCertificate(
                cert_id, "Active", uploaded or self.clock.now().replace(microsecond=0), body
            )
            root.signing_certificates.append(cert)
            return cert

    def record_key_use(self, principal: Principal, service: str, region: str) -> None:
        """An authenticated request signed with ``principal``'s key: a root access key's last
        use (date, service, Region), the first use of each 15-minute span, as IAM records it."""
        if principal.kind != "root":
            return
        with self.lock:
            account = self.accounts.get(principal.account_id)
            if account is None:
                return
            key = next(
                (k for k in account.root.access_keys if k.access_key_id == principal.access_key_id),
                None,
            )
            now = self.clock.now()
            if key is None or (key.last_used is not None and now - key.last_used < KEY_USE_SPAN):
                return
            key.last_used = now.replace(microsecond=0)
            key.last_used_service = service or None
            key.last_used_region = region or None
