"""The runbook's errors: one tree, so a caller can catch exactly what it can handle.

::

    RunbookError                      anything the runbook itself refuses or detects
    ├── ParameterError                bad input; ``problems`` lists every one of them
    ├── SchemaError                   schema.py: the parameter schema contradicts the code
    ├── PreconditionError             AWS state forbids the step (nothing was changed)
    │   ├── AccountMismatchError      the credentials reach another account than expected
    │   ├── MethodNotAvailableError   e.g. assume-root on a standalone account
    │   └── AmbiguousDeviceError      several root MFA devices and none was named
    ├── GateNotApproved               a confirmation gate was not approved: the run halts
    ├── StepRefused                   procedure/lifecycle.py: a step may not start or finish now
    ├── RunRefused                    the run cannot start or continue (nothing was changed)
    │   ├── LeaseHeld                 lease.py: another run holds the account
    │   ├── ApprovalConsumed          lease.py: the approval was used by another run
    │   └── RunBusy                   lease.py: another process is executing the run
    ├── ApprovalError                 approval.py: a plan file or an approval cannot be used
    │   ├── PlanFileInvalid           approval.py: not a plan file, parts disagree, expired
    │   └── ApprovalRefused           approval.py: the approvals do not satisfy the policy
    ├── RecordError                   the run record refuses an operation, or is not sound
    │   ├── NotARunError              the directory is not a run directory
    │   ├── RunSealedError            the run is sealed final: nothing can be added
    │   ├── EvidenceExists            write-once evidence (or a move's target) exists
    │   ├── RecordIOError             a write failed (disk full, ...); the record is as it was
    │   └── SecretRefused             what was to be recorded looks like a secret
    ├── SigningError                  ssh-keygen missing, a key or allowed_signers unusable
    │   └── SignatureInvalid          a signature does not verify (says why)
    ├── PluginMissing                 plugins.py: the sandbox extra is not installed
    ├── AwsActionError                an AWS call failed (operation, code, request id, hint)
    │   ├── AccessDeniedError         the caller lacks a permission; ``hint`` names it
    │   ├── ThrottledError            still throttled after the SDK's retries
    │   └── SessionExpiredError       temporary credentials expired
    └── VerificationTimeout           AWS did not show the expected state in time

A class whose line names a module (``lease.py:``) is defined there, beside the code that raises
it and the data it carries; every other one is defined here. The record's errors
(:mod:`runbook_lib.record`) and the signing errors live here, so the record's modules share
them without importing one another for them.

Every error's message says what to do next. None carries a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

__all__ = [
    "AccessDeniedError",
    "AccountMismatchError",
    "AmbiguousDeviceError",
    "AwsActionError",
    "EvidenceExists",
    "GateNotApproved",
    "MethodNotAvailableError",
    "NotARunError",
    "ParameterError",
    "PreconditionError",
    "RecordError",
    "RecordIOError",
    "RunRefused",
    "RunSealedError",
    "RunbookError",
    "SecretRefused",
    "SessionExpiredError",
    "SignatureInvalid",
    "SigningError",
    "ThrottledError",
    "VerificationTimeout",
    "from_client_error",
]


class RunbookError(Exception):
    """Base of every error the runbook raises on purpose."""


class ParameterError(RunbookError):
    """Input that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} parameter problem(s); nothing was run:\n{lines}")


class PreconditionError(RunbookError):
    """The account's state does not allow this step; nothing was changed."""


class AccountMismatchError(PreconditionError):
    def __init__(self, expected: str, actual: str, caller_arn: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"The credentials reach account {actual} ({caller_arn}), but this run is for account "
            f"{expected}. Nothing was changed. Use a profile for account {expected}, or fix "
            "account_id in the parameters."
        )


class MethodNotAvailableError(PreconditionError):
    """The chosen removal method is not possible for this account."""


class AmbiguousDeviceError(PreconditionError):
    def __init__(self, serials: Sequence[str]) -> None:
        self.serials = list(serials)
        listing = "\n".join(f"  - {s}" for s in self.serials)
        super().__init__(
            f"The root user has {len(self.serials)} MFA devices; name the one to remove with "
            f"device_serial. Nothing was changed. Devices:\n{listing}"
        )


class GateNotApproved(RunbookError):
    """A confirmation gate was not approved, so the run halts before acting."""

    def __init__(self, gate: str, reason: str) -> None:
        self.gate = gate = str(gate)
        self.reason = reason
        super().__init__(f"Gate {gate!r} is not approved: {reason}. Nothing after it was run.")


class RunRefused(RunbookError):
    """The run cannot start or continue (another run holds the account, a consumed approval, a
    sealed run, ...); nothing was changed."""


class RecordError(RunbookError):
    """The run record refuses an operation, or is not what it should be."""


class NotARunError(RecordError):
    """The directory is not a run directory."""


class RunSealedError(RecordError):
    """The run is sealed final: nothing can be added to it."""


class EvidenceExists(RecordError):
    """A write-once file (``once=True``) or a move's target already exists; nothing was written."""


class RecordIOError(RecordError):
    """Writing the record failed (disk full, file too large, read-only, permission denied).

    The record is as it was before the write; ``__cause__`` is the OSError, ``errno`` its errno.
    """

    def __init__(self, path: Path, error: OSError) -> None:
        self.path = path
        self.errno = error.errno
        reason = " ".join(str(error.strerror or error or type(error).__name__).split())
        super().__init__(
            f"Could not write the run record {path}: {reason}. The record is as it was before "
            "this write; fix the cause (free space, permissions), then resume the run."
        )


class SecretRefused(RecordError):
    """Something to be recorded looks like a secret; nothing was written.

    ``fields`` names where (``data.credentials.SecretAccessKey``), never the value.
    """

    def __init__(self, what: str, fields: list[str]) -> None:
        self.fields = fields
        listing = "; ".join(fields)
        super().__init__(
            f"Refused to record {what}: it looks like it holds a secret ({listing}). Nothing "
            "was written. Redact the value (record that it was set, not what it is) and retry."
        )


class SigningError(RunbookError):
    """ssh-keygen is missing, a key or an allowed_signers file cannot be used, signing failed."""


class SignatureInvalid(SigningError):
    """A signature does not verify: says why in one line (never prints key material)."""


class AwsActionError(RunbookError):
    """An AWS call failed. Carries what an auditor and an operator need, never the payload."""

    def __init__(
        self,
        operation: str,
        code: str,
        message: str,
        request_id: str | None,
        hint: str | None = None,
    ) -> None:
        self.operation = operation
        self.code = code
        self.aws_message = message
        self.request_id = request_id
        self.hint = hint
        text = f"{operation} failed: {code}: {message} (request id {request_id or 'unknown'})"
        if hint:
            text += f". {hint}"
        super().__init__(text)

    def with_hint(self, hint: str) -> AwsActionError:
        """The same error (same type) with another hint."""
        return type(self)(self.operation, self.code, self.aws_message, self.request_id, hint)


class AccessDeniedError(AwsActionError):
    """The caller lacks a permission; ``hint`` names the IAM action to grant."""


class ThrottledError(AwsActionError):
    """AWS kept throttling after the SDK's adaptive retries."""


class SessionExpiredError(AwsActionError):
    """Temporary credentials expired (an AssumeRoot session lasts at most 15 minutes)."""


class VerificationTimeout(RunbookError):
    """Polling for an expected state ran out of time. ``last`` is the last observation."""

    def __init__(self, what: str, timeout: float, last: Any = None, check: str = "") -> None:
        self.what = what
        self.timeout = timeout
        self.last = last
        text = f"Timed out after {timeout:.0f} s waiting for {what}."
        if check:
            text += f" {check}"
        super().__init__(text)


# "403"/"Forbidden": S3 answers HEAD requests without a body, so only the status is left
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403", "Forbidden"}
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "SlowDown",
    "RequestLimitExceeded",
}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}


def from_client_error(
    err: ClientError,
    operation: str,
    permission: str | None = None,
) -> AwsActionError:
    """Turn a botocore ClientError into the runbook's error, keeping code and request id.

    ``permission`` is the IAM action the call needs (e.g. ``iam:ListVirtualMFADevices``); on
    AccessDenied it becomes the hint.
    """
    error = err.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", ""))
    request_id = err.response.get("ResponseMetadata", {}).get("RequestId")
    if code in _DENIED:
        hint = (
            f"Grant {permission} to the caller (see `runbook policies`)"
            if permission
            else "The caller lacks a permission for this call"
        )
        return AccessDeniedError(operation, code, message, request_id, hint)
    if code in _THROTTLED:
        return ThrottledError(
            operation,
            code,
            message,
            request_id,
            "AWS is throttling this call; wait a minute and re-run the step",
        )
    if code in _EXPIRED:
        return SessionExpiredError(
            operation,
            code,
            message,
            request_id,
            "The temporary credentials expired; re-run the step to get a "
            "fresh session (refresh SSO with `aws sso login` if you use it)",
        )
    return AwsActionError(operation, code, message, request_id)
