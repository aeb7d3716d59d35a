"""Who is calling, which account is acted on, and which removal methods that account allows.

Collect (:func:`caller_identity`, :func:`account_context`), then judge (:func:`guard_account`,
:func:`removal_methods`): the judging functions make no AWS calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from botocore.exceptions import ClientError

from ..errors import AccountMismatchError, MethodNotAvailableError, from_client_error
from .session import AwsContext, call

AccountKind = Literal["standalone", "management", "member", "unknown"]
ROOT_FEATURES = ("RootCredentialsManagement", "RootSessions")
ACCOUNT_ID = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class CallerIdentity:
    arn: str
    account_id: str
    user_id: str

    @property
    def is_root(self) -> bool:
        return self.arn == f"arn:aws:iam::{self.account_id}:root"


def caller_identity(aws: AwsContext) -> CallerIdentity:
    """``sts:GetCallerIdentity`` (needs no permission)."""
    answer = call(aws.client("sts"), "get_caller_identity")
    return CallerIdentity(answer["Arn"], answer["Account"], answer["UserId"])


def guard_account(identity: CallerIdentity, expected_account_id: str) -> None:
    """Stop before any change when the credentials reach another account than the run's."""
    if identity.account_id != expected_account_id:
        raise AccountMismatchError(expected_account_id, identity.account_id, identity.arn)


@dataclass(frozen=True)
class AccountContext:
    """What kind of account the target is and what centralised root access allows."""

    account_id: str
    kind: AccountKind
    organization_id: str | None = None
    management_account_id: str | None = None
    # None: not known (no management-account credentials to ask with)
    root_features: frozenset[str] | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def centralised_root_access(self) -> bool:
        return self.root_features is not None and all(
            f in self.root_features for f in ROOT_FEATURES
        )


def account_context(
    target: AwsContext, account_id: str, management: AwsContext | None = None
) -> AccountContext:
    """Classify ``account_id`` from inside it, and ask the management account for features.

    Permissions: ``organizations:DescribeOrganization`` in the target account;
    ``iam:ListOrganizationsFeatures`` with the management credentials (optional).
    """
    notes: list[str] = []
    try:
        org = target.client("organizations").describe_organization()["Organization"]
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code == "AWSOrganizationsNotInUseException":
            return AccountContext(
                account_id,
                "standalone",
                root_features=frozenset(),
                notes=("The account is not in an organization.",),
            )
        if code in ("AccessDeniedException", "AccessDenied"):
            notes.append(
                "organizations:DescribeOrganization was denied; the account kind is "
                "unknown, so only the console method is offered."
            )
            return AccountContext(account_id, "unknown", notes=tuple(notes))
        raise from_client_error(
            err, "DescribeOrganization", "organizations:DescribeOrganization"
        ) from err
    management_id = org["MasterAccountId"]
    kind: AccountKind = "management" if management_id == account_id else "member"
    features: frozenset[str] | None = None
    if management is not None:
        answer = call(
            management.client("iam"), "list_organizations_features", "iam:ListOrganizationsFeatures"
        )
        features = frozenset(answer.get("EnabledFeatures", []))
    else:
        notes.append(
            "No management-account credentials were given, so centralised root "
            "access could not be checked."
        )
    return AccountContext(account_id, kind, org["Id"], management_id, features, tuple(notes))


def removal_methods(ctx: AccountContext) -> list[str]:
    """The ways the root MFA device can be removed: the console always; AssumeRoot only for a
    member account whose organization enabled both root-access features."""
    methods = ["console"]
    if ctx.kind == "member" and ctx.centralised_root_access:
        methods.append("assume-root")
    return methods


def require_method(ctx: AccountContext, method: str) -> None:
    """Refuse a method the account does not allow, saying why and what to do instead."""
    if method in removal_methods(ctx):
        return
    if method != "assume-root":
        raise MethodNotAvailableError(f"Unknown removal method {method!r}; use console.")
    if ctx.kind != "member":
        why = {
            "standalone": "a standalone account",
            "management": "the management account",
            "unknown": "an account of unknown kind",
        }[ctx.kind]
        raise MethodNotAvailableError(
            f"assume-root is not possible for {why}: AWS allows AssumeRoot only on member "
            "accounts of an organization. Use method=console (the root user signs in)."
        )
    missing = [f for f in ROOT_FEATURES if ctx.root_features is None or f not in ctx.root_features]
    raise MethodNotAvailableError(
        "assume-root needs centralised root access in the organization; missing: "
        + ", ".join(missing)
        + ". Enable it in the management account (IAM > Root access "
        "management) or pass management_profile so it can be checked; or use method=console."
    )
