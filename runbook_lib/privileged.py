"""Short privileged sessions as a member account's root user, through ``sts:AssumeRoot``.

A :class:`RootSession` holds temporary credentials for one task policy. It never prints them
(``repr`` shows the access key id's last four characters only), tracks their expiry, and
re-assumes once when AWS answers ``ExpiredToken``.

Permissions (management account or IAM delegated administrator): ``sts:AssumeRoot``, best
restricted with the ``sts:TaskPolicyArn`` condition (``policies/runbook-assume-root.json``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from .aws import AwsContext
from .errors import ParameterError, SessionExpiredError, from_client_error

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


class RootSession:
    """Temporary root credentials for one member account and one task policy."""

    def __init__(
        self,
        management: AwsContext,
        account_id: str,
        task_policy: str,
        duration: int,
        region: str | None,
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
        self._context: AwsContext | None = None

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
        """Call AssumeRoot on the regional STS endpoint; keep the credentials in memory only."""
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
        self._context = self.management.with_credentials(
            creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
        )

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


@contextmanager
def assume_root(
    management: AwsContext,
    account_id: str,
    task_policy: str,
    duration: int = DEFAULT_DURATION,
    region: str | None = None,
) -> Iterator[RootSession]:
    """``with assume_root(mgmt, "222233334444", DELETE) as root: root.client("iam")...``"""
    session = RootSession(management, account_id, task_policy, duration, region)
    session.assume()
    try:
        yield session
    finally:
        session.close()
