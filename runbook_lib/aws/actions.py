"""Actions that change AWS. Each is dry-run by default, idempotent, verified afterwards, and
returns an :class:`ActionResult` with the AWS request ids for the run record.

Only one action exists, because AWS offers only one: removing a member account's root MFA device
through ``sts:AssumeRoot``. Binding a root MFA device has no API (``EnableMFADevice`` needs a
``UserName``); the runbook guides it in the console and verifies it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

from ..errors import AccessDeniedError, AmbiguousDeviceError, from_client_error
from .privileged import DEFAULT_DURATION, DELETE, RootSession, SessionInfo, assume_root
from .session import AwsContext, request_id
from .state import device_kind, read_session_devices, wait_for_device_removed

Outcome = Literal["planned", "removed", "already-absent"]

PURPOSE = "remove root MFA device"


@dataclass
class ActionResult:
    action: str
    account_id: str
    target: str | None
    dry_run: bool
    outcome: Outcome
    request_ids: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_device(serials: list[str], wanted: str | None) -> str | None:
    """The device to act on: the named one (None if it is not there), or the only one.
    Several devices and none named: refuse."""
    if wanted:
        return wanted if wanted in serials else None
    if len(serials) == 1:
        return serials[0]
    if not serials:
        return None
    raise AmbiguousDeviceError(serials)


def remove_root_mfa_device(
    management: AwsContext,
    account_id: str,
    device_serial: str | None,
    *,
    dry_run: bool = True,
    delete_virtual: bool = False,
    region: str | None = None,
    duration: int = DEFAULT_DURATION,
    verify_timeout: float = 120.0,
    target_reader: AwsContext | None = None,
    on_session: Callable[[SessionInfo], None] | None = None,
) -> ActionResult:
    """Remove a member account's root MFA device through AssumeRoot.

    Steps: AssumeRoot with ``IAMDeleteRootUserCredentials`` (shortest useful duration) →
    ``ListMFADevices`` (choose and check the device) → ``DeactivateMFADevice`` without
    ``UserName`` → optionally ``DeleteVirtualMFADevice`` (virtual devices only) → poll until
    the device is gone.

    IAM permissions: in the management account (or the IAM delegated administrator)
    ``sts:AssumeRoot`` with ``sts:TaskPolicyArn`` = IAMDeleteRootUserCredentials; the task
    policy itself grants ``iam:ListMFADevices``, ``iam:DeactivateMFADevice`` and
    ``iam:DeleteVirtualMFADevice`` in the member. ``target_reader`` (optional, a read-only
    principal in the member) adds ``iam:ListVirtualMFADevices`` and ``iam:GetAccountSummary``
    to the verification.

    ``dry_run`` (the default) stops after listing: nothing is changed. A device that is already
    gone is reported as ``already-absent``, not as an error.

    Sessions: the session is re-assumed once if it expires (``ExpiredToken``), so one run may
    use two AssumeRoot sessions with different access keys. ``on_session`` is called with the
    :class:`~runbook_lib.aws.privileged.SessionInfo` of each one right after AssumeRoot answers and
    before the session is used: write it to the run record there, so that after a crash the
    record still names every key whose CloudTrail events may show the deactivation. In the
    result (access key ids are not secrets; they find a session's events in CloudTrail):

    * ``details["sessions"]``: ``SessionInfo.to_dict()`` of every session used, in order;
    * ``details["deactivated_by_access_key_id"]``: the key of the session whose
      ``DeactivateMFADevice`` succeeded (None if it was not called or found the device
      already gone);
    * ``details["session_access_key_id"]``: the key of the session that called
      ``DeactivateMFADevice`` (when it was not called: the last session's key).

    ``request_ids["AssumeRoot"]`` stays the first session's request id; every session's is in
    ``details["sessions"]``.

    To find the deactivation in CloudTrail, look for an event made by any of the sessions'
    keys (``evidence.find_deactivation(..., access_key_ids=...)``).
    """
    result = ActionResult("remove-root-mfa-device", account_id, device_serial, dry_run, "planned")
    with assume_root(
        management, account_id, DELETE, duration, region, on_assume=on_session, purpose=PURPOSE
    ) as root:
        _remove(root, result, target_reader, verify_timeout, delete_virtual)
        _record_sessions(root, result)
    return result


def _record_sessions(root: RootSession, result: ActionResult) -> None:
    """Every session used (each with its AssumeRoot request id)."""
    result.details["sessions"] = [s.to_dict() for s in root.sessions]
    if "deactivated_by_access_key_id" not in result.details:  # DeactivateMFADevice not called
        result.details["session_access_key_id"] = root.access_key_id
        result.details["deactivated_by_access_key_id"] = None


def _remove(
    root: RootSession,
    result: ActionResult,
    target_reader: AwsContext | None,
    verify_timeout: float,
    delete_virtual: bool,
) -> ActionResult:
    account_id, device_serial, dry_run = result.account_id, result.target, result.dry_run
    result.request_ids["AssumeRoot"] = root.assume_request_id or ""
    # an access key id is not a secret; it finds the session's events in CloudTrail
    result.details["session_access_key_id"] = root.access_key_id
    serials = [d.serial for d in read_session_devices(root)]
    result.details["devices_before"] = serials
    chosen = choose_device(serials, device_serial)
    if chosen is None:
        result.outcome = "already-absent"
        result.details["note"] = (
            "The named device is not assigned to the root user; nothing to remove."
            if device_serial
            else "The root user has no MFA device; nothing to remove."
        )
        if (
            not dry_run
            and delete_virtual
            and device_serial
            and device_kind(device_serial) == "virtual"
        ):
            # a re-run after a failed delete: the device object may still exist
            result.details["virtual_device_deleted"] = _delete_virtual(root, device_serial, result)
        return result
    result.target = chosen
    result.details["kind"] = device_kind(chosen)
    if dry_run:
        result.details["note"] = "Dry run: DeactivateMFADevice was not called."
        return result
    result.request_ids.update(_deactivate(root, chosen, result))
    if delete_virtual and device_kind(chosen) == "virtual":
        result.details["virtual_device_deleted"] = _delete_virtual(root, chosen, result)
    verified = wait_for_device_removed(
        target_reader or root.aws, account_id, chosen, session=root, timeout=verify_timeout
    )
    result.details["devices_after"] = sorted(verified.known_serials())
    result.outcome = "removed"
    return result


def _deactivate(root: RootSession, serial: str, result: ActionResult) -> dict[str, str]:
    """DeactivateMFADevice in the current session (re-assumed once on ExpiredToken). Records
    the key of the session that made the call: the CloudTrail event carries that key."""

    def deactivate(aws: AwsContext) -> dict[str, str]:
        caller = root.access_key_id  # ``run`` hands over the context of this session
        result.details["session_access_key_id"] = caller
        try:
            answer = aws.client("iam").deactivate_mfa_device(SerialNumber=serial)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code == "NoSuchEntity":  # removed meanwhile (e.g. in the console): idempotent
                result.details["deactivated_by_access_key_id"] = None
                return {"DeactivateMFADevice": "already-absent"}
            if code in ("ExpiredToken", "ExpiredTokenException"):
                raise
            raise from_client_error(err, "DeactivateMFADevice", "iam:DeactivateMFADevice") from err
        result.details["deactivated_by_access_key_id"] = caller
        return {"DeactivateMFADevice": request_id(answer) or ""}

    return root.run(deactivate)


LEFT_OVER_NOTE = (
    "The AssumeRoot task policy IAMDeleteRootUserCredentials did not allow "
    "DeleteVirtualMFADevice on the device (AWS documents the policy's actions on the root user "
    "only): the device is deactivated, so it no longer protects or signs in anyone, but its "
    "unassigned object remains in the account. Delete it from an IAM principal allowed "
    "iam:DeleteVirtualMFADevice, or leave it; when binding a new device, give it another name."
)


def _delete_virtual(root: RootSession, serial: str, result: ActionResult) -> str:
    """Delete the (deactivated) virtual device object. The deactivation is the change; this
    is tidying. AccessDenied (the task policy may not cover the device's ARN: AWS does not
    document it) leaves the unassigned object, recorded and explained, and the action still
    succeeds. Other failures are raised: the device is already deactivated, and re-running the
    step deletes the left-over object."""

    def delete(_: AwsContext) -> str:
        try:
            answer = root.client("iam").delete_virtual_mfa_device(SerialNumber=serial)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code"))
            if code == "NoSuchEntity":
                return "already-deleted"
            if code in ("ExpiredToken", "ExpiredTokenException"):
                raise
            failure = from_client_error(err, "DeleteVirtualMFADevice", "iam:DeleteVirtualMFADevice")
            if isinstance(failure, AccessDeniedError):
                result.details["virtual_device_left"] = serial
                result.details["virtual_device_left_note"] = LEFT_OVER_NOTE
                result.request_ids["DeleteVirtualMFADevice"] = failure.request_id or ""
                return "left (AccessDenied in the task-policy session)"
            if code == "DeleteConflict":
                hint = (
                    "The device was deactivated but IAM still sees it assigned (eventual "
                    "consistency). Re-run the step in a minute: it deletes the left-over "
                    "device object."
                )
            else:
                hint = (
                    f"{failure.hint}. The device itself was already deactivated; "
                    "re-running the step deletes the left-over device object."
                )
            raise failure.with_hint(hint) from err
        result.request_ids["DeleteVirtualMFADevice"] = request_id(answer) or ""
        return "deleted"

    return root.run(delete)
