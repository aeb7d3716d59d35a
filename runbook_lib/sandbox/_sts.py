"""STS as the runbook meets it: who is calling, and ``sts:AssumeRoot``."""

from __future__ import annotations

import datetime as dt
import re

from . import _authz
from ._protocol import AwsError, AwsRequest, Response, render_result
from ._server import handles
from ._state import Principal, World, new_key_id, new_secret

MAX_ROOT_SESSION_SECONDS = 900
ROOT_ARN = re.compile(r"arn:aws:iam::(\d{12}):root")


@handles("sts", "GetCallerIdentity")
def get_caller_identity(world: World, req: AwsRequest, principal: Principal) -> Response:
    if principal.kind in ("root", "assumed-root"):
        user_id = principal.account_id
    else:
        user_id = principal.user_id or principal.access_key_id
    return render_result(
        req, {"UserId": user_id, "Account": principal.account_id, "Arn": principal.arn}
    )


def _validation(message: str) -> AwsError:
    return AwsError("ValidationError", message, 400)


def target_account(target: str) -> str | None:
    """The account id of AssumeRoot's ``TargetPrincipal``: "The member account principal ARN or
    account ID" (STS API reference, AssumeRoot). None when it is neither."""
    if re.fullmatch(r"\d{12}", target):
        return target
    match = ROOT_ARN.fullmatch(target)
    return match.group(1) if match else None


@handles("sts", "AssumeRoot")
def assume_root(world: World, req: AwsRequest, principal: Principal) -> Response:
    """Every check AWS documents for AssumeRoot, then a short session as the member's root.

    Checked in order: duration (0..900), task policy (one of the five root-task ARNs), caller
    (not root; an IAM principal of the management account), centralised root sessions enabled,
    target (a member account of this organization, not the management account, named by its
    12-digit id or its root principal ARN ``arn:aws:iam::ID:root``).
    """
    target = str(req.params.get("TargetPrincipal", ""))
    policy_arn = str(req.params.get("TaskPolicyArn.arn", ""))
    raw_duration = req.params.get("DurationSeconds", str(MAX_ROOT_SESSION_SECONDS))
    try:
        duration = int(raw_duration)
    except ValueError as exc:
        raise _validation(f"Invalid value for DurationSeconds: {raw_duration}") from exc
    if duration > MAX_ROOT_SESSION_SECONDS or duration < 0:
        raise _validation(
            f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to "
            f"satisfy constraint: Member must have value less than or equal to "
            f"{MAX_ROOT_SESSION_SECONDS}"
        )
    if policy_arn not in _authz.TASK_POLICY_DOCUMENTS:
        raise _validation(
            f"The task policy ARN {policy_arn or '(none)'} is not a supported root task policy."
        )
    if principal.kind != "iam-user":
        raise AwsError(
            "AccessDenied",
            f"User: {principal.arn} is not authorized to perform: sts:AssumeRoot: "
            "root user credentials cannot call AssumeRoot",
            403,
        )
    account_id = target_account(target)
    resource = f"arn:aws:iam::{account_id or target}:root"
    with world.lock:
        management = world.management_account_id
        if management is None or principal.account_id != management:
            raise AwsError(
                "AccessDenied",
                f"User: {principal.arn} is not authorized to perform: sts:AssumeRoot on resource: "
                f"{resource} because the caller is not in the management account "
                "or a delegated administrator account for centralized root access",
                403,
            )
        if "RootSessions" not in world.org_features:
            raise AwsError(
                "AccessDenied",
                f"User: {principal.arn} is not authorized to perform: sts:AssumeRoot on resource: "
                f"{resource} because centralized root sessions "
                "(RootSessions) are not enabled for the organization",
                403,
            )
        if account_id is None:
            raise _validation(
                "TargetPrincipal must be a member account's 12-digit id or its principal ARN "
                f"(arn:aws:iam::ACCOUNT_ID:root), got {target!r}."
            )
        account = world.account(account_id)
        if account is None or account.kind != "member":
            raise AwsError(
                "AccessDenied",
                f"User: {principal.arn} is not authorized to perform: sts:AssumeRoot on resource: "
                f"{resource} because the target is not a member account of the organization",
                403,
            )
        now = world.clock.now()
        expires = (now + dt.timedelta(seconds=duration)).replace(microsecond=0)
        session = Principal(
            name=f"assumed-root/{account_id}",
            kind="assumed-root",
            account_id=account_id,
            arn=f"arn:aws:iam::{account_id}:root",
            access_key_id=new_key_id("ASIA"),
            secret_access_key=new_secret(),
            session_token=new_secret() + new_secret(),
            expires_at=expires,
            task_policy_arn=policy_arn,
            assumed_by_arn=principal.arn,
            assumed_by_account=principal.account_id,
        )
        session.user_id = account_id
        world.principals[session.access_key_id] = session
        world.principals_by_request[req.request_id] = session
    return render_result(
        req,
        {
            "Credentials": {
                "AccessKeyId": session.access_key_id,
                "SecretAccessKey": session.secret_access_key,
                "SessionToken": session.session_token,
                "Expiration": expires,
            },
            "SourceIdentity": None,
        },
    )
