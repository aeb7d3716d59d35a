"""Authorization as IAM evaluates it, for the two cases this procedure depends on.

* An ``sts:AssumeRoot`` session may call only the actions of its task policy; everything else is
  ``AccessDenied`` ("no session policy allows ...").
* A principal created with ``policies`` (e.g. the least-privilege policies under ``policies/``) is
  evaluated like an identity-based policy: an explicit Deny wins, otherwise some Allow must match
  the action and its conditions. Resources are not evaluated (the runbook's policies use ``*`` or
  the account's own ARNs); an unknown condition operator never matches, so it fails closed.

Principals without policies (the scenarios' administrators, the root user) are unrestricted.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from ._protocol import AwsError, AwsRequest
from ._state import ROOT_TASK_POLICIES, Principal, World

ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}


# S3 API operations whose IAM action has another name (the rest are the same)
S3_IAM_ACTIONS = {
    "HeadObject": "GetObject",
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "ListBuckets": "ListAllMyBuckets",
    "GetObjectLockConfiguration": "GetBucketObjectLockConfiguration",
    "PutObjectLockConfiguration": "PutBucketObjectLockConfiguration",
    "CopyObject": "PutObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
    "DeleteObjects": "DeleteObject",
}


def action_name(req: AwsRequest) -> str:
    """The IAM action a request needs (``s3:HeadObject`` needs ``s3:GetObject``, ...)."""
    action = req.action or req.method
    if req.service == "s3":
        if action == "DeleteObject" and req.params.get("VersionId"):
            return "s3:DeleteObjectVersion"
        if action in ("GetObject", "HeadObject") and req.params.get("VersionId"):
            return "s3:GetObjectVersion"
        action = S3_IAM_ACTIONS.get(action, action)
    return f"{req.service}:{action}"


def resource_for(req: AwsRequest, principal: Principal | None) -> str:
    account = principal.account_id if principal else "*"
    if req.service == "iam":
        user = req.params.get("UserName")
        if user:
            return f"arn:aws:iam::{account}:user/{user}"
        return f"arn:aws:iam::{account}:root"
    if req.service == "sts" and req.action == "AssumeRoot":
        target = str(req.params.get("TargetPrincipal", "*"))
        return target if target.startswith("arn:") else f"arn:aws:iam::{target}:root"
    return "*"


def access_denied(
    req: AwsRequest,
    principal: Principal | None,
    *,
    session: bool = False,
    injected: bool = False,
    action: str | None = None,
) -> AwsError:
    who = principal.arn if principal else "the caller"
    action = action or action_name(req)
    why = "no session policy" if session else "no identity-based policy"
    if injected:
        why = "an explicit deny in an identity-based policy"
        message = (
            f"User: {who} is not authorized to perform: {action} on resource: "
            f"{resource_for(req, principal)} because {why} denies the {action} action"
        )
    else:
        message = (
            f"User: {who} is not authorized to perform: {action} on resource: "
            f"{resource_for(req, principal)} because {why} allows the {action} action"
        )
    code = "AccessDeniedException" if req.protocol in ("json", "rest-json") else "AccessDenied"
    if req.protocol == "ec2":
        # "Client.UnauthorizedOperation" (EC2 API reference, "Troubleshooting API request errors")
        code, message = "UnauthorizedOperation", "You are not authorized to perform this "
        message += f"operation. User: {who} is not authorized to perform: {action}"
    elif req.protocol == "smithy-rpc-v2-cbor":
        code = "AccessDeniedException"
    return AwsError(code, message, 403)


def condition_values(req: AwsRequest, principal: Principal) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {
        "aws:principalaccount": [principal.account_id],
        "aws:principalarn": [principal.arn],
        "aws:requestedregion": [req.region],
    }
    if req.action == "AssumeRoot":
        arn = req.params.get("TaskPolicyArn.arn")
        if arn:
            values["sts:taskpolicyarn"] = [arn]
        if req.params.get("DurationSeconds"):
            values["sts:durationseconds"] = [str(req.params["DurationSeconds"])]
    return values


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _condition_matches(conditions: dict[str, Any], context: dict[str, list[str]]) -> bool:
    for operator, tests in conditions.items():
        op = operator.removesuffix("IfExists")
        if_exists = operator.endswith("IfExists")
        for key, expected in tests.items():
            actual = context.get(key.lower())
            wanted = _as_list(expected)
            if actual is None:
                if if_exists:
                    continue
                return False
            if op in ("StringEquals", "ArnEquals"):
                ok = any(a in wanted for a in actual)
            elif op in ("StringLike", "ArnLike"):
                ok = any(fnmatch.fnmatchcase(a, w) for a in actual for w in wanted)
            elif op == "NumericLessThanEquals":
                ok = all(float(a) <= float(wanted[0]) for a in actual)
            else:
                return False  # unknown operator: fail closed
            if not ok:
                return False
    return True


def _statement_applies(stmt: dict[str, Any], action: str, context: dict[str, list[str]]) -> bool:
    if "Action" in stmt:
        listed = any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _as_list(stmt["Action"]))
    else:
        listed = not any(
            fnmatch.fnmatch(action.lower(), a.lower()) for a in _as_list(stmt.get("NotAction"))
        )
    return listed and _condition_matches(stmt.get("Condition", {}), context)


def policies_allow(
    policies: list[dict[str, Any]], action: str, context: dict[str, list[str]]
) -> bool:
    allowed = False
    for policy in policies:
        statements = policy.get("Statement", [])
        for stmt in statements if isinstance(statements, list) else [statements]:
            if not _statement_applies(stmt, action, context):
                continue
            if stmt.get("Effect") == "Deny":
                return False
            if stmt.get("Effect") == "Allow":
                allowed = True
    return allowed


def authorize(world: World, req: AwsRequest, principal: Principal) -> None:
    """Raise AccessDenied in AWS's shape when ``principal`` may not make ``req``."""
    action = action_name(req)
    if action in ALWAYS_ALLOWED:
        return
    if principal.kind == "assumed-root":
        allowed = ROOT_TASK_POLICIES.get(principal.task_policy_arn or "", frozenset())
        if action not in allowed:
            raise access_denied(req, principal, session=True)
        if req.service == "iam" and req.params.get("UserName"):
            # the task policies reach the root user's own credentials only
            raise access_denied(req, principal, session=True)
        return
    if principal.policies is None:
        return
    needed = [action]
    if action == "s3:PutObject" and req.params.get("ObjectLockMode"):
        needed.append("s3:PutObjectRetention")  # AWS asks for both when the upload is locked
    context = condition_values(req, principal)
    for name in needed:
        if not policies_allow(principal.policies, name, context):
            raise access_denied(req, principal, action=name)
