"""STS as the runbook meets it: who is calling, ``sts:AssumeRoot``, and ``sts:AssumeRole``.

AssumeRoot is called "as an IAM user or role" of the management account (IAM User Guide,
"Perform a privileged task on an AWS Organizations member account",
https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user-privileged-task.html), and
operators reach AWS through role sessions: ``role_arn`` + ``source_profile`` profiles, IAM
Identity Center (SSO) profiles, ``credential_process`` helpers. So the sandbox issues role
sessions as STS does (AssumeRole API reference,
https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html):

* the role must exist in moto's IAM and its trust policy must allow the caller (``Principal``
  ``AWS``: ``*``, the caller's account id or ``arn:aws:iam::ACCOUNT:root``, or the caller's ARN;
  conditions evaluated; an explicit Deny wins); otherwise AccessDenied "... is not authorized to
  perform: sts:AssumeRole on resource: ROLE_ARN". The caller's identity-based policies must
  allow ``sts:AssumeRole`` too (``_authz``; also where AWS would accept a trust policy naming the
  caller alone);
* ``DurationSeconds`` 900 up to the role's maximum session duration (default 3600), at most one
  hour when the caller is itself a role session (role chaining); default 3600; ``RoleSessionName``
  2 to 64 characters of ``[\\w+=,.@-]``; ``Policy`` (a JSON document) and ``PolicyArns`` (managed
  policies of the role's account) become session policies that bound the session;
* the answer: ``ASIA...`` keys, a session token (which carries its expiry: an expired session
  is dropped, and its calls are still answered ``ExpiredToken``), an expiry on the sandbox
  clock, and
  ``AssumedRoleUser`` ``{AssumedRoleId: ROLEID:SESSION, Arn: arn:aws:sts::ACCOUNT:
  assumed-role/ROLE/SESSION}`` (the role's path is not in that ARN). GetCallerIdentity answers
  the same ARN and user id; CloudTrail records the session as ``AssumedRole`` with its
  ``sessionIssuer`` (``_cloudtrail``).

``POST /_sandbox/roles`` creates a role for a test: in moto's IAM, with its policies inline and a
trust policy for ``trusted`` (default: the role's own account).

Not modelled: cross-account AssumeRole logged in the role's account as well, tags, transitive
session tags, ``SourceIdentity`` rules, MFA (``SerialNumber``/``TokenCode``), web identity and
SAML.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from typing import Any

from . import _authz
from ._protocol import AwsError, AwsRequest, Response, render_result
from ._registry import ControlRouteError, control_route, handles
from ._state import Principal, RoleSession, World, new_key_id, new_secret

MAX_ROOT_SESSION_SECONDS = 900
MIN_ROLE_SESSION_SECONDS = 900
DEFAULT_ROLE_SESSION_SECONDS = 3600
ROLE_CHAINING_MAX_SECONDS = 3600
# session tokens' sizes in bytes (base64: 80 and 120 characters, as the sandbox always issued)
ROOT_TOKEN_BYTES, ROLE_TOKEN_BYTES = 60, 90
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
ROOT_ARN = re.compile(r"arn:aws:iam::(\d{12}):root")
ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)")


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
    (not root; an IAM user or role session of the management account), centralised root sessions
    enabled, target (a member account of this organization, not the management account, named
    by its 12-digit id or its root principal ARN ``arn:aws:iam::ID:root``).
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
    if principal.kind not in ("iam-user", "assumed-role"):
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
        key_id = new_key_id("ASIA")
        session = Principal(
            name=sys.intern(f"assumed-root/{account_id}"),
            kind="assumed-root",
            account_id=account_id,
            arn=f"arn:aws:iam::{account_id}:root",
            access_key_id=key_id,
            secret_access_key=new_secret(),
            session_token=world.session_token(key_id, expires, ROOT_TOKEN_BYTES),
            expires_at=expires,
            task_policy_arn=sys.intern(policy_arn),  # one string for every session's ARN
            assumed_by_arn=principal.arn,
            assumed_by_account=principal.account_id,
        )
        session.user_id = account_id
        world.add_session(session)
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


# ---------------------------------------------------------------------------- AssumeRole
def _denied(principal: Principal, role_arn: str) -> AwsError:
    return AwsError(
        "AccessDenied",
        f"User: {principal.arn} is not authorized to perform: sts:AssumeRole on resource: "
        f"{role_arn}",
        403,
    )


def _trusted(principal: Principal, principals: Any) -> bool:
    """Whether a trust statement's ``Principal`` names the caller (AWS principals only)."""
    if principals == "*":
        return True
    if not isinstance(principals, dict):
        return False
    names = principals.get("AWS", [])
    names = names if isinstance(names, list) else [names]
    account_root = f"arn:aws:iam::{principal.account_id}:root"
    own = {principal.arn, principal.account_id, account_root, "*"}
    if principal.role is not None:
        own.add(principal.role.role_arn)
    return any(str(name) in own for name in names)


def _trust_allows(role: Any, principal: Principal, req: AwsRequest) -> bool:
    document = _authz._document(role.assume_role_policy_document) or {}
    context = _authz.condition_values(req, principal)
    allowed = False
    for stmt in _authz._statements(document):
        actions = stmt.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        if not _trusted(principal, stmt.get("Principal")):
            continue
        unknown = stmt.get("Effect") == "Deny"
        if not _authz._condition_matches(stmt.get("Condition", {}), context, unknown=unknown):
            continue
        if stmt.get("Effect") == "Deny":
            return False
        allowed = allowed or stmt.get("Effect") == "Allow"
    return allowed


def _session_policies(req: AwsRequest, account_id: str) -> tuple[dict[str, Any], ...]:
    out: list[dict[str, Any]] = []
    inline = req.params.get("Policy")
    if inline:
        document = _authz._document(inline)
        if document is None:
            raise AwsError("MalformedPolicyDocument", "The policy is not valid JSON.", 400)
        out.append(document)
    arns = [
        v for k, v in sorted(req.params.items()) if re.fullmatch(r"PolicyArns\.member\.\d+\.arn", k)
    ]
    if arns:
        from moto.iam.models import iam_backends

        managed = iam_backends[account_id]["aws"].managed_policies
        for arn in arns:
            policy = managed.get(arn)
            document = _authz._managed_document(policy) if policy is not None else None
            if document is None:
                raise AwsError("InvalidParameterValue", f"Policy {arn} does not exist.", 400)
            out.append(document)
    return tuple(out)


@handles("sts", "AssumeRole")
def assume_role(world: World, req: AwsRequest, principal: Principal) -> Response:
    role_arn = str(req.params.get("RoleArn", ""))
    session_name = str(req.params.get("RoleSessionName", ""))
    if not SESSION_NAME.fullmatch(session_name):
        raise _validation(
            f"1 validation error detected: Value '{session_name}' at 'roleSessionName' failed "
            "to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
            " and have length between 2 and 64"
        )
    match = ROLE_ARN.fullmatch(role_arn)
    if principal.kind in ("root", "assumed-root"):
        raise AwsError(
            "AccessDenied",
            f"User: {principal.arn} is not authorized to perform: sts:AssumeRole on resource: "
            f"{role_arn}: roles may not be assumed by root accounts",
            403,
        )
    if match is None:
        raise _validation(f"{role_arn!r} is not a valid role ARN.")
    account_id = match.group(1)
    role = _authz.find_role(account_id, role_arn)
    if role is None or not _trust_allows(role, principal, req):
        raise _denied(principal, role_arn)
    chained = principal.kind == "assumed-role"
    maximum = ROLE_CHAINING_MAX_SECONDS if chained else int(role.max_session_duration or 3600)
    raw = req.params.get("DurationSeconds", str(DEFAULT_ROLE_SESSION_SECONDS))
    try:
        duration = int(raw)
    except ValueError as exc:
        raise _validation(f"Invalid value for DurationSeconds: {raw}") from exc
    if duration < MIN_ROLE_SESSION_SECONDS:
        raise _validation(
            f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to "
            "satisfy constraint: Member must have value greater than or equal to 900"
        )
    if duration > maximum:
        why = (
            "the 1 hour session limit for roles assumed by role chaining"
            if chained
            else "the MaxSessionDuration set for this role"
        )
        raise _validation(f"The requested DurationSeconds exceeds {why}.")
    policies = _session_policies(req, account_id)
    now = world.clock.now()
    expires = (now + dt.timedelta(seconds=duration)).replace(microsecond=0)
    key_id = new_key_id("ASIA")
    session = Principal(
        name=f"assumed-role/{role.name}/{session_name}",
        kind="assumed-role",
        account_id=account_id,
        arn=f"arn:aws:sts::{account_id}:assumed-role/{role.name}/{session_name}",
        access_key_id=key_id,
        secret_access_key=new_secret(),
        session_token=world.session_token(key_id, expires, ROLE_TOKEN_BYTES),
        user_id=f"{role.id}:{session_name}",
        expires_at=expires,
        assumed_by_arn=principal.arn,
        assumed_by_account=principal.account_id,
        role=RoleSession(
            role_arn=role.arn,
            role_name=role.name,
            role_id=role.id,
            session_name=session_name,
            issued_at=now,
            source_arn=principal.arn,
            session_policies=policies,
        ),
    )
    with world.lock:
        world.add_session(session)
        world.principals_by_request[req.request_id] = session
    result: dict[str, Any] = {
        "Credentials": {
            "AccessKeyId": session.access_key_id,
            "SecretAccessKey": session.secret_access_key,
            "SessionToken": session.session_token,
            "Expiration": expires,
        },
        "AssumedRoleUser": {"AssumedRoleId": session.user_id, "Arn": session.arn},
    }
    if policies:
        result["PackedPolicySize"] = min(100, sum(len(json.dumps(p)) for p in policies) // 20)
    if req.params.get("SourceIdentity"):
        result["SourceIdentity"] = req.params["SourceIdentity"]
    return render_result(req, result)


@handles(
    "sts",
    "GetSessionToken",
    "GetFederationToken",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
)
def other_credentials(world: World, req: AwsRequest, principal: Principal) -> Response:
    """Moto would hand out keys the sandbox then refuses: say so instead."""
    raise AwsError(
        "NotImplemented",
        f"The root-mfa-runbook sandbox does not implement sts:{req.action}; it issues "
        "credentials through AssumeRole and AssumeRoot only.",
        501,
        sender=False,
    )


# ---------------------------------------------------------------------------- control: roles
@control_route("POST", "roles")
def create_role(world: World, data: dict[str, Any]) -> dict[str, Any]:
    """An IAM role in moto's IAM, with ``policies`` inline, trusting ``trusted`` (principal ARNs
    or account ids; default the role's own account), for tests and scenarios."""
    from moto.iam.models import iam_backends

    account_id = str(data["account_id"])
    name = str(data["name"])
    if world.account(account_id) is None:
        raise ControlRouteError(404, "NoSuchAccount", f"no account {account_id} in this scenario")
    trusted = data.get("trusted") or [f"arn:aws:iam::{account_id}:root"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": list(trusted)}, "Action": "sts:AssumeRole"}
        ],
    }
    backend = iam_backends[account_id]["aws"]
    try:
        role = backend.create_role(
            role_name=name,
            assume_role_policy_document=json.dumps(trust),
            path=str(data.get("path") or "/"),
            permissions_boundary=None,
            description="created by the root-mfa-runbook sandbox control API",
            tags=[],
            max_session_duration=str(data.get("max_session_duration") or 3600),
            linked_service=None,
        )
        for index, policy in enumerate(data.get("policies") or []):
            backend.put_role_policy(name, f"policy-{index + 1}", json.dumps(policy))
    except Exception as exc:  # noqa: BLE001 - moto's IAM errors (e.g. EntityAlreadyExists)
        raise ControlRouteError(409, type(exc).__name__, str(exc)) from exc
    return {"arn": role.arn, "name": role.name, "role_id": role.id, "account_id": account_id}
