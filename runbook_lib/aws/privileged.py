"""Short privileged sessions as a member account's root user, through ``sts:AssumeRoot``.

A :class:`RootSession` holds temporary credentials for one task policy. It never prints them
(``repr`` shows the access key id's last four characters only), tracks their expiry, and
re-assumes once when AWS answers ``ExpiredToken``.

Every session it assumes is listed in :attr:`RootSession.sessions` as a :class:`SessionInfo`
(access key id, request id, expiry, and the SHA-256 fingerprints of its secret key and session
token: no secret), and handed to ``on_assume`` right after
``AssumeRoot`` answers and before the session is used, so a caller can write it to its record
before any action happens: after a crash, the record still names every key whose CloudTrail
events may show what was done. The fingerprints let the record find those very credentials
wherever they were printed (a botocore debug log in a notebook) and redact them:
:mod:`runbook_lib.record.secrets`. :func:`credential_fingerprints` fingerprints a profile's.

Permissions (management account or IAM delegated administrator): ``sts:AssumeRoot``, best
restricted with the ``sts:TaskPolicyArn`` condition (``policies/runbook-assume-root.json``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ParameterError, RunbookError, SessionExpiredError, from_client_error
from ..record.secrets import fingerprint
from .session import AwsContext, CredentialSlot

TASK_POLICY_PREFIX = "arn:aws:iam::aws:policy/root-task/"
AUDIT = TASK_POLICY_PREFIX + "IAMAuditRootUserCredentials"
DELETE = TASK_POLICY_PREFIX + "IAMDeleteRootUserCredentials"
CREATE_PASSWORD = TASK_POLICY_PREFIX + "IAMCreateRootUserPassword"
TASK_POLICIES = (
    AUDIT,
    DELETE,
    CREATE_PASSWORD,
    TASK_POLICY_PREFIX + "S3UnlockBucketPolicy",
    TASK_POLICY_PREFIX + "SQSUnlockQueuePolicy",
)
MAX_DURATION = 900
DEFAULT_DURATION = 300  # long enough for list + deactivate + verify; shorter is safer

T = TypeVar("T")


@dataclass(frozen=True)
class SessionInfo:
    """One AssumeRoot session, as a run record may keep it: no secret key, no session token.

    ``reassumed`` is 0 for the first session of a :class:`RootSession`, 1 for the session
    assumed after ``ExpiredToken``. ``expires_at`` is ISO 8601 (None if AWS gave none).
    ``secret_fingerprints``: the sha256 (hex) of the secret access key and of the session
    token, so the record can find them (a hash of a random 40-character secret reveals
    nothing about it)."""

    access_key_id: str
    request_id: str | None
    expires_at: str | None
    task_policy: str
    purpose: str | None
    account_id: str
    reassumed: int
    secret_fingerprints: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def credential_fingerprints(profile: str | None, endpoint_url: str | None = None) -> list[str]:
    """The sha256 fingerprints of ``profile``'s secret access key and session token (if any),
    as boto3 resolves them (``None``: the default chain); [] when there are none to be had.

    Never raises: a profile whose credentials cannot be resolved here fails the run later, with
    a better message. ``endpoint_url`` is the run's (an AWS-compatible endpoint)."""
    try:
        aws = AwsContext.from_profile(profile, None, endpoint_url)
        creds = aws.session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
    except (BotoCoreError, ClientError, RunbookError, OSError, ValueError):
        return []
    if frozen is None:
        return []
    return [fingerprint(s) for s in (frozen.secret_key, frozen.token) if s]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class RootSession:
    """Temporary root credentials for one member account and one task policy.

    ``on_assume`` (optional) is called with the :class:`SessionInfo` of every session assumed
    (the first and the one after ``ExpiredToken``) before the session is used for anything.
    If it raises, the new credentials are forgotten and the error propagates: a session the
    caller could not record is not used. ``purpose`` is a free text copied into each
    SessionInfo (e.g. "remove root MFA device")."""

    def __init__(
        self,
        management: AwsContext,
        account_id: str,
        task_policy: str,
        duration: int,
        region: str | None,
        *,
        on_assume: Callable[[SessionInfo], None] | None = None,
        purpose: str | None = None,
        slot: CredentialSlot | None = None,
    ) -> None:
        if task_policy not in TASK_POLICIES:
            raise ParameterError([f"task policy {task_policy!r} is not one of {TASK_POLICIES}"])
        if not 0 < duration <= MAX_DURATION:
            raise ParameterError(
                [f"AssumeRoot duration must be 1..{MAX_DURATION} s, got {duration}"]
            )
        self.management = management
        self.account_id = account_id
        self.task_policy = task_policy
        self.duration = duration
        self.region = region or management.region
        self.access_key_id = ""
        self.expires_at: dt.datetime | None = None
        self.assume_request_id: str | None = None
        self.reassumed = 0
        self.on_assume = on_assume
        self.purpose = purpose
        self.sessions: list[SessionInfo] = []
        self._context: AwsContext | None = None
        self._slot = slot

    def __repr__(self) -> str:
        key = f"...{self.access_key_id[-4:]}" if self.access_key_id else "(none)"
        return (
            f"RootSession(account={self.account_id}, policy={self.task_policy_name}, "
            f"key={key}, expires={self.expires_at})"
        )

    @property
    def task_policy_name(self) -> str:
        return self.task_policy.rsplit("/", 1)[-1]

    def assume(self) -> None:
        """Call AssumeRoot on the regional STS endpoint; keep the credentials in memory only.
        Record the session in :attr:`sessions` and tell ``on_assume`` before returning."""
        sts = self.management.sts_regional(self.region)
        try:
            answer = sts.assume_root(
                TargetPrincipal=self.account_id,
                TaskPolicyArn={"arn": self.task_policy},
                DurationSeconds=self.duration,
            )
        except ClientError as err:
            raise from_client_error(err, "AssumeRoot", "sts:AssumeRoot") from err
        creds = answer["Credentials"]
        self.access_key_id = creds["AccessKeyId"]
        self.expires_at = creds["Expiration"]
        self.assume_request_id = answer.get("ResponseMetadata", {}).get("RequestId")
        keys = (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
        if self._slot is not None:
            self._context = self._slot.load(*keys)
        else:
            self._context = self.management.with_credentials(*keys)
        info = SessionInfo(
            access_key_id=self.access_key_id,
            request_id=self.assume_request_id,
            expires_at=_iso(self.expires_at),
            task_policy=self.task_policy_name,
            purpose=self.purpose,
            account_id=self.account_id,
            reassumed=self.reassumed,
            secret_fingerprints=(
                fingerprint(creds["SecretAccessKey"]),
                fingerprint(creds["SessionToken"]),
            ),
        )
        self.sessions.append(info)
        if self.on_assume is not None:
            try:
                self.on_assume(info)
            except BaseException:
                self._context = None  # not recorded by the caller: never used
                raise

    @property
    def aws(self) -> AwsContext:
        if self._context is None:
            self.assume()
        assert self._context is not None
        return self._context

    def client(self, service: str) -> Any:
        return self.aws.client(service)

    def run(self, fn: Callable[[AwsContext], T]) -> T:
        """Run ``fn`` with the session; on ExpiredToken re-assume once and run it again."""
        try:
            return fn(self.aws)
        except SessionExpiredError:
            if self.reassumed:
                raise
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in (
                "ExpiredToken",
                "ExpiredTokenException",
            ):
                raise
            if self.reassumed:
                raise
        self.reassumed += 1
        self._context = None
        self.assume()
        return fn(self.aws)

    def close(self) -> None:
        """Forget the credentials (AWS has no call to revoke an AssumeRoot session early)."""
        self._context = None
        if self._slot is not None:
            self._slot.clear()


@contextmanager
def assume_root(
    management: AwsContext,
    account_id: str,
    task_policy: str,
    duration: int = DEFAULT_DURATION,
    region: str | None = None,
    *,
    on_assume: Callable[[SessionInfo], None] | None = None,
    purpose: str | None = None,
    slot: CredentialSlot | None = None,
) -> Iterator[RootSession]:
    """``with assume_root(mgmt, "222233334444", DELETE) as root: root.client("iam")...``

    ``on_assume`` and ``purpose``: see :class:`RootSession`; ``slot``: the clients to reuse
    (:class:`~runbook_lib.aws.session.CredentialSlot`), blanked when the block ends."""
    session = RootSession(
        management,
        account_id,
        task_policy,
        duration,
        region,
        on_assume=on_assume,
        purpose=purpose,
        slot=slot,
    )
    try:
        session.assume()
        yield session
    finally:
        session.close()
