"""Authorization as IAM evaluates it, for the cases this procedure depends on.

* An ``sts:AssumeRoot`` session is bounded by its task policy, evaluated as AWS publishes it
  (:data:`TASK_POLICY_DOCUMENTS`, the default version v1 of each ``root-task`` managed policy:
  AWS Managed Policy reference, e.g. "IAMDeleteRootUserCredentials",
  https://docs.aws.amazon.com/aws-managed-policy/latest/reference/IAMDeleteRootUserCredentials.html;
  the text was read from the zoph-io/MAMIP mirror of AWS managed policies, the stored
  documentation having no copy). Each task policy is two (SQS: three) Deny statements: one
  denies every action but the task's (``NotAction``), answered "no session policy allows ...";
  one denies the task's IAM actions on any resource but the root user (``NotResource``
  ``arn:aws:iam::*:root``), answered "with an explicit deny in a session policy". So the session
  reaches the root user's own credentials and no IAM user's.
* An ``sts:AssumeRole`` session is evaluated against its role's IAM policies as they are in
  moto's IAM now (inline and attached managed policies; the permissions boundary, if any, must
  also allow), and against its session policies (``Policy``/``PolicyArns`` of AssumeRole), which
  must allow too. A role without policies may do nothing (but ``sts:GetCallerIdentity``).
* A principal created with ``policies`` (e.g. the least-privilege policies under ``policies/``) is
  evaluated like an identity-based policy: an explicit Deny wins, otherwise some Allow must match
  the action and its conditions. Resources of identity-based policies are not evaluated (the
  runbook's policies use ``*`` or the account's own ARNs); an unknown condition operator never
  matches, so it fails closed.

Principals without policies (the scenarios' administrators, the root user, IAM users created
through the IAM API) are unrestricted.

Undocumented, behind a switch (``World.task_policy_variant``, control route
``/_sandbox/task-policy-variant``): whether ``iam:DeleteVirtualMFADevice`` works in an
IAMDeleteRootUserCredentials session. The task policy lists the action, but its
``DenyDeletingRootUserCredentialsOnNonRootUserResource`` statement denies it on any resource
``NotResource: arn:aws:iam::*:root``, and the call names the device, whose ARN is
``arn:aws:iam::ACCOUNT:mfa/NAME`` ("For virtual MFA devices, the serial number is the same as the
ARN": IAM API reference, DeleteVirtualMFADevice). ``"deny"`` reads the policy literally: the
device's ARN is the resource, the explicit deny applies (AccessDenied). ``"allow"`` treats the
root user's device as a root credential (resource: the root user), so the call goes through.
The default is ``"allow"`` for now: the runbook deletes the device object after deactivating it
and would fail under ``"deny"``; ``"deny"``, the most restrictive reading, is to become the
default once the runbook copes with it.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any
from urllib.parse import unquote, urlparse

from ._protocol import AwsError, AwsRequest
from ._state import Principal, World

TASK_POLICY_VARIANTS = ("allow", "deny")
_ROOT_RESOURCE = "arn:aws:iam::*:root"


def _task_policy(task: list[str], non_root_sid: str | None) -> dict[str, Any]:
    """A root-task policy document: deny every other action; deny the IAM ones off the root."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "DenyAllOtherActionsOnAnyResource",
            "Effect": "Deny",
            "NotAction": task,
            "Resource": "*",
        }
    ]
    if non_root_sid:
        statements.append(
            {
                "Sid": non_root_sid,
                "Effect": "Deny",
                "Action": [a for a in task if a != "iam:GetAccountSummary"],
                "NotResource": _ROOT_RESOURCE,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


_DELETE_TASK = [
    "iam:DeleteAccessKey",
    "iam:DeleteSigningCertificate",
    "iam:DeleteLoginProfile",
    "iam:DeactivateMFADevice",
    "iam:DeleteVirtualMFADevice",
    "iam:ListAccessKeys",
    "iam:ListSigningCertificates",
    "iam:GetLoginProfile",
    "iam:ListMFADevices",
    "iam:GetUser",
    "iam:GetAccessKeyLastUsed",
]
_SQS_TASK = [
    "sqs:SetQueueAttributes",
    "sqs:GetQueueAttributes",
    "sqs:ListQueues",
    "sqs:GetQueueUrl",
]
_S3_TASK = [
    "s3:DeleteBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:GetBucketPolicy",
    "s3:ListAllMyBuckets",
]

# The five root task policies (v1, 2024-11-06), statement by statement as AWS publishes them.
TASK_POLICY_DOCUMENTS: dict[str, dict[str, Any]] = {
    "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials": _task_policy(
        [
            "iam:ListAccessKeys",
            "iam:ListSigningCertificates",
            "iam:GetLoginProfile",
            "iam:ListMFADevices",
            "iam:GetAccountSummary",
            "iam:GetUser",
            "iam:GetAccessKeyLastUsed",
        ],
        "DenyAuditingCredentialsOnNonRootUserResource",
    ),
    "arn:aws:iam::aws:policy/root-task/IAMCreateRootUserPassword": _task_policy(
        ["iam:CreateLoginProfile", "iam:GetLoginProfile"],
        "DenyCreatingPasswordOnNonRootUserResource",
    ),
    "arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials": _task_policy(
        _DELETE_TASK, "DenyDeletingRootUserCredentialsOnNonRootUserResource"
    ),
    "arn:aws:iam::aws:policy/root-task/S3UnlockBucketPolicy": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyAllOtherActionsOnAnyResource",
                "Effect": "Deny",
                "NotAction": _S3_TASK,
                "Resource": "*",
            },
            {
                "Sid": "DenyManagingBucketPolicyForNonRootCallers",
                "Effect": "Deny",
                "Action": _S3_TASK,
                "Resource": "*",
                "Condition": {"StringNotLike": {"aws:PrincipalArn": _ROOT_RESOURCE}},
            },
        ],
    },
    "arn:aws:iam::aws:policy/root-task/SQSUnlockQueuePolicy": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyAllOtherActionsOnAnyResource",
                "Effect": "Deny",
                "NotAction": _SQS_TASK,
                "Resource": "*",
            },
            {
                "Sid": "DenyGettingQueueAttributesOnNonOwnQueue",
                "Effect": "Deny",
                "Action": ["sqs:GetQueueAttributes"],
                "Resource": "arn:aws:sqs:*:*:*",
                "Condition": {
                    "StringNotEqualsIfExists": {"aws:ResourceAccount": ["${aws:PrincipalAccount}"]}
                },
            },
            {
                "Sid": "DenyActionsForNonRootUser",
                "Effect": "Deny",
                "Action": _SQS_TASK,
                "Resource": "*",
                "Condition": {"StringNotLike": {"aws:PrincipalArn": _ROOT_RESOURCE}},
            },
        ],
    },
}


def task_policy_actions(policy_arn: str) -> frozenset[str]:
    """The actions a root task policy leaves to its session (its ``NotAction`` list)."""
    document = TASK_POLICY_DOCUMENTS.get(policy_arn)
    if document is None:
        return frozenset()
    first = document["Statement"][0]
    return frozenset(first["NotAction"])


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
    """The resource ARN a request acts on, as far as the sandbox's policies need it."""
    account = principal.account_id if principal else "*"
    if req.service == "iam":
        if req.action == "DeleteVirtualMFADevice" and req.params.get("SerialNumber"):
            serial = str(req.params["SerialNumber"])
            return serial if serial.startswith("arn:") else f"arn:aws:iam::{account}:mfa/{serial}"
        user = req.params.get("UserName")
        if user:
            return f"arn:aws:iam::{account}:user/{user}"
        return f"arn:aws:iam::{account}:root"
    if req.service == "sts" and req.action == "AssumeRoot":
        target = str(req.params.get("TargetPrincipal", "*"))
        return target if target.startswith("arn:") else f"arn:aws:iam::{target}:root"
    if req.service == "sts" and req.action == "AssumeRole":
        return str(req.params.get("RoleArn", "*"))
    if req.service == "s3" and req.params.get("Bucket"):
        return f"arn:aws:s3:::{req.params['Bucket']}"
    if req.service == "sqs":
        queue = _queue(req)
        if queue:
            return f"arn:aws:sqs:{req.region}:{queue[0]}:{queue[1]}"
    return "*"


def _queue(req: AwsRequest) -> tuple[str, str] | None:
    """(account, name) of the queue an SQS request names by its QueueUrl."""
    url = req.params.get("QueueUrl")
    if not url:
        return None
    parts = [p for p in urlparse(str(url)).path.split("/") if p]
    return (parts[-2], parts[-1]) if len(parts) >= 2 else None


def access_denied(
    req: AwsRequest,
    principal: Principal | None,
    *,
    session: bool = False,
    injected: bool = False,
    explicit: bool = False,
    action: str | None = None,
    resource: str | None = None,
) -> AwsError:
    who = principal.arn if principal else "the caller"
    action = action or action_name(req)
    resource = resource or resource_for(req, principal)
    if injected:
        why = "an explicit deny in an identity-based policy"
        message = (
            f"User: {who} is not authorized to perform: {action} on resource: "
            f"{resource} because {why} denies the {action} action"
        )
    elif explicit:
        kind = "a session policy" if session else "an identity-based policy"
        message = (
            f"User: {who} is not authorized to perform: {action} on resource: {resource} "
            f"with an explicit deny in {kind}"
        )
    else:
        why = "no session policy" if session else "no identity-based policy"
        message = (
            f"User: {who} is not authorized to perform: {action} on resource: "
            f"{resource} because {why} allows the {action} action"
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
    """The request context keys (lower case) the sandbox's policies look at. For a role
    session ``aws:PrincipalArn`` is the role's ARN, as IAM documents it."""
    arn = principal.role.role_arn if principal.role is not None else principal.arn
    values: dict[str, list[str]] = {
        "aws:principalaccount": [principal.account_id],
        "aws:principalarn": [arn],
        "aws:requestedregion": [req.region],
    }
    if req.action == "AssumeRoot":
        task = req.params.get("TaskPolicyArn.arn")
        if task:
            values["sts:taskpolicyarn"] = [str(task)]
        if req.params.get("DurationSeconds"):
            values["sts:durationseconds"] = [str(req.params["DurationSeconds"])]
    if req.action == "AssumeRole" and req.params.get("ExternalId"):
        values["sts:externalid"] = [str(req.params["ExternalId"])]
    if req.service == "sqs":
        queue = _queue(req)
        if queue:
            values["aws:resourceaccount"] = [queue[0]]
    return values


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _substitute(value: str, context: dict[str, list[str]]) -> str:
    """Policy variables (``${aws:PrincipalAccount}``) replaced by their single values."""
    while "${" in value:
        head, _, rest = value.partition("${")
        name, _, tail = rest.partition("}")
        found = context.get(name.lower())
        value = head + (found[0] if found else "") + tail
    return value


_POSITIVE = {
    "StringEquals": lambda a, w: a == w,
    "ArnEquals": lambda a, w: a == w,
    "StringLike": fnmatch.fnmatchcase,
    "ArnLike": fnmatch.fnmatchcase,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "ArnNotEquals": "ArnEquals",
    "StringNotLike": "StringLike",
    "ArnNotLike": "ArnLike",
}


def _condition_matches(
    conditions: dict[str, Any], context: dict[str, list[str]], *, unknown: bool = False
) -> bool:
    """Whether every condition holds. A negated operator holds when the key is absent (IAM's
    rule); ``...IfExists`` holds when it is absent. An operator the sandbox does not know
    yields ``unknown``: False for an Allow, True for a Deny, so both fail closed."""
    for operator, tests in conditions.items():
        op = operator.removesuffix("IfExists")
        if_exists = operator.endswith("IfExists")
        for key, expected in tests.items():
            actual = context.get(key.lower())
            wanted = [_substitute(w, context) for w in _as_list(expected)]
            if actual is None:
                if if_exists or op in _NEGATED:
                    continue
                if op not in _POSITIVE and op != "NumericLessThanEquals":
                    return unknown
                return False
            if op in _POSITIVE:
                test = _POSITIVE[op]
                ok = any(test(a, w) for a in actual for w in wanted)
            elif op in _NEGATED:
                test = _POSITIVE[_NEGATED[op]]
                ok = not any(test(a, w) for a in actual for w in wanted)
            elif op == "NumericLessThanEquals":
                ok = all(float(a) <= float(wanted[0]) for a in actual)
            else:
                return unknown
            if not ok:
                return False
    return True


def _listed(patterns: Any, value: str, *, case: bool) -> bool:
    if case:
        return any(fnmatch.fnmatchcase(value, p) for p in _as_list(patterns))
    return any(fnmatch.fnmatch(value.lower(), p.lower()) for p in _as_list(patterns))


def _statement_applies(
    stmt: dict[str, Any],
    action: str,
    context: dict[str, list[str]],
    resource: str | None = None,
) -> bool:
    """Whether ``stmt`` covers ``action`` (and ``resource``, when given) under ``context``."""
    if "Action" in stmt:
        listed = _listed(stmt["Action"], action, case=False)
    else:
        listed = not _listed(stmt.get("NotAction"), action, case=False)
    if not listed:
        return False
    if resource is not None:
        if "Resource" in stmt and not _listed(stmt["Resource"], resource, case=True):
            return False
        if "NotResource" in stmt and _listed(stmt["NotResource"], resource, case=True):
            return False
    unknown = stmt.get("Effect") == "Deny"
    return _condition_matches(stmt.get("Condition", {}), context, unknown=unknown)


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def policies_allow(
    policies: list[dict[str, Any]], action: str, context: dict[str, list[str]]
) -> bool:
    allowed = False
    for policy in policies:
        for stmt in _statements(policy):
            if not _statement_applies(stmt, action, context):
                continue
            if stmt.get("Effect") == "Deny":
                return False
            if stmt.get("Effect") == "Allow":
                allowed = True
    return allowed


def denying_statement(
    policy: dict[str, Any], action: str, resource: str, context: dict[str, list[str]]
) -> dict[str, Any] | None:
    """The first Deny statement of ``policy`` that covers ``action`` on ``resource``."""
    for stmt in _statements(policy):
        if stmt.get("Effect") == "Deny" and _statement_applies(stmt, action, context, resource):
            return stmt
    return None


# ---------------------------------------------------------------------------- role policies
def _document(raw: Any) -> dict[str, Any] | None:
    if isinstance(raw, dict):
        return raw
    for text in (str(raw), unquote(str(raw))):
        try:
            parsed = json.loads(text)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            return parsed
    return None


def _managed_document(policy: Any) -> dict[str, Any] | None:
    versions = getattr(policy, "versions", [])
    default = next((v for v in versions if getattr(v, "is_default", False)), None)
    return _document(default.document) if default is not None else None


def find_role(account_id: str, role_arn: str) -> Any:
    """The role in moto's IAM (None when it does not exist, or no longer)."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["aws"]
    return next((r for r in list(backend.roles.values()) if r.arn == role_arn), None)


def role_policies(principal: Principal) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(identity-based policies, permissions boundary) of a role session's role, read now."""
    assert principal.role is not None
    role = find_role(principal.account_id, principal.role.role_arn)
    if role is None:
        return [], None
    documents = [_document(doc) for doc in list(role.policies.values())]
    documents += [_managed_document(p) for p in list(role.managed_policies.values())]
    boundary = None
    if getattr(role, "permissions_boundary_arn", None):
        from moto.iam.models import iam_backends

        managed = iam_backends[principal.account_id]["aws"].managed_policies
        found = managed.get(role.permissions_boundary_arn)
        boundary = _managed_document(found) if found is not None else {"Statement": []}
    return [d for d in documents if d is not None], boundary


# ---------------------------------------------------------------------------- decisions
def _authorize_task(world: World, req: AwsRequest, principal: Principal, action: str) -> None:
    """An AssumeRoot session: its task policy's Deny statements, evaluated with resources."""
    policy = TASK_POLICY_DOCUMENTS.get(principal.task_policy_arn or "")
    if policy is None or action not in task_policy_actions(principal.task_policy_arn or ""):
        raise access_denied(req, principal, session=True)
    resource = resource_for(req, principal)
    if action == "iam:DeleteVirtualMFADevice" and world.task_policy_variant == "allow":
        # the root user's own virtual device counted as one of its credentials
        resource = f"arn:aws:iam::{principal.account_id}:root"
    context = condition_values(req, principal)
    if denying_statement(policy, action, resource, context) is not None:
        raise access_denied(
            req, principal, session=True, explicit=True, resource=resource_for(req, principal)
        )


def authorize(world: World, req: AwsRequest, principal: Principal) -> None:
    """Raise AccessDenied in AWS's shape when ``principal`` may not make ``req``."""
    action = action_name(req)
    if action in ALWAYS_ALLOWED:
        return
    if principal.kind == "assumed-root":
        _authorize_task(world, req, principal, action)
        return
    boundary: dict[str, Any] | None = None
    session_policies: list[dict[str, Any]] = []
    if principal.role is not None:
        policies, boundary = role_policies(principal)
        session_policies = list(principal.role.session_policies)
    elif principal.policies is None:
        return
    else:
        policies = principal.policies
    needed = [action]
    if action == "s3:PutObject" and req.params.get("ObjectLockMode"):
        needed.append("s3:PutObjectRetention")  # AWS asks for both when the upload is locked
    context = condition_values(req, principal)
    for name in needed:
        if not policies_allow(policies, name, context):
            raise access_denied(req, principal, action=name)
        if boundary is not None and not policies_allow([boundary], name, context):
            raise access_denied(req, principal, action=name)
        if session_policies and not policies_allow(session_policies, name, context):
            raise access_denied(req, principal, session=True, action=name)
