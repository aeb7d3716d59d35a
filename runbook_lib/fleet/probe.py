"""Reading the fleet: the organization's accounts, and one member's root credentials through
an audit-only AssumeRoot session. Collect only: judging is :mod:`.rules`.

Permissions, all in the management account (``policies/runbook-fleet-audit.json``):
``organizations:DescribeOrganization``, ``organizations:ListAccounts``,
``iam:ListOrganizationsFeatures``, ``sts:AssumeRoot`` with the
``IAMAuditRootUserCredentials`` task policy. Inside the session (the task policy allows
exactly these): ``iam:ListMFADevices``, ``iam:GetLoginProfile``, ``iam:ListAccessKeys``,
``iam:GetAccessKeyLastUsed``, ``iam:ListSigningCertificates``.

Each session is short (:data:`SESSION_SECONDS`), used for one account and forgotten; an
expired one is re-assumed once (:meth:`RootSession.run`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ..aws.identity import ROOT_FEATURES
from ..aws.privileged import AUDIT, assume_root
from ..aws.session import AwsContext, CredentialSlot, call, paginate
from ..aws.state import read_session_devices
from ..errors import AccessDeniedError, AwsActionError, ThrottledError, from_client_error
from .rules import AccessKey, MfaDevice, RootCredentials

#: AssumeRoot's shortest useful session for five reads (AWS allows 1..900 s)
SESSION_SECONDS = 300


@dataclass(frozen=True)
class Organization:
    id: str
    management_account_id: str
    features: frozenset[str]  # iam:ListOrganizationsFeatures

    @property
    def root_sessions(self) -> bool:
        """AssumeRoot works (the audit can read members)."""
        return "RootSessions" in self.features

    @property
    def centralised(self) -> bool:
        """Both root-access features: the runbook's assume-root method and AWS's
        no-root-credentials recommendation for members apply."""
        return all(feature in self.features for feature in ROOT_FEATURES)


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    status: str  # ACTIVE | SUSPENDED | PENDING_CLOSURE


def read_organization(management: AwsContext) -> Organization:
    org = call(
        management.client("organizations"),
        "describe_organization",
        "organizations:DescribeOrganization",
    )["Organization"]
    features = call(
        management.client("iam"), "list_organizations_features", "iam:ListOrganizationsFeatures"
    ).get("EnabledFeatures", [])
    return Organization(org["Id"], org["MasterAccountId"], frozenset(features))


def list_accounts(management: AwsContext) -> Iterator[Account]:
    """Every account of the organization, page by page (``ListAccounts``), in AWS's order."""
    client = management.client("organizations")
    for row in paginate(client, "list_accounts", "Accounts", "organizations:ListAccounts"):
        yield Account(row["Id"], row.get("Name", ""), row.get("Status", "ACTIVE"))


def probe(
    management: AwsContext,
    org: Organization,
    account: Account,
    region: str,
    slot: CredentialSlot | None = None,
) -> RootCredentials:
    """What the audit can know of ``account``'s root user. One account's AWS error becomes its
    ``reach`` (and its code and request id the detail), but for throttling still there after
    the SDK's retries (:class:`~runbook_lib.errors.ThrottledError`), which is raised: the
    caller backs off and reads the account again, so throttling slows an audit and loses
    nothing. ``slot``: the thread's clients, reused across accounts."""
    base: dict[str, Any] = {
        "account_id": account.id,
        "name": account.name,
        "status": account.status,
        "centralised": org.centralised,
    }
    if account.id == org.management_account_id:
        return RootCredentials(**base, reach="management-account")
    if account.status != "ACTIVE":
        return RootCredentials(**base, reach="suspended", reach_detail=account.status)
    if not org.root_sessions:
        return RootCredentials(**base, reach="features-disabled")
    try:
        with assume_root(
            management,
            account.id,
            AUDIT,
            SESSION_SECONDS,
            region,
            purpose="fleet audit",
            slot=slot,
        ) as root:
            devices = read_session_devices(root)
            return root.run(lambda aws: _read(aws, base, devices))
    except AccessDeniedError as err:
        return RootCredentials(**base, reach="access-denied", reach_detail=reach_detail(err))
    except ThrottledError:
        raise
    except AwsActionError as err:
        return RootCredentials(**base, reach="failed", reach_detail=reach_detail(err))


def _read(aws: AwsContext, base: dict[str, Any], devices: tuple[MfaDevice, ...]) -> RootCredentials:
    """What the audit session shows besides the MFA devices (aws.state reads those)."""
    iam = aws.client("iam")
    try:
        iam.get_login_profile()
        password = True
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "NoSuchEntity":
            raise from_client_error(err, "GetLoginProfile", "iam:GetLoginProfile") from err
        password = False
    keys = []
    for key in paginate(iam, "list_access_keys", "AccessKeyMetadata", "iam:ListAccessKeys"):
        used = call(
            iam,
            "get_access_key_last_used",
            "iam:GetAccessKeyLastUsed",
            AccessKeyId=key["AccessKeyId"],
        ).get("AccessKeyLastUsed", {})
        keys.append(
            AccessKey(
                key["AccessKeyId"][-4:],
                key.get("Status") == "Active",
                _iso(key.get("CreateDate")),
                _iso(used.get("LastUsedDate")),
            )
        )
    certificates = paginate(
        iam, "list_signing_certificates", "Certificates", "iam:ListSigningCertificates"
    )
    active_certificates = sum(1 for c in certificates if c.get("Status") == "Active")
    return RootCredentials(
        **base,
        password=password,
        mfa_devices=devices,
        access_keys=tuple(sorted(keys, key=lambda k: k.id_suffix)),
        signing_certificates_active=active_certificates,
    )


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value else None)


def reach_detail(err: AwsActionError) -> str:
    """What an account's reach note says of the AWS error: operation, code, request id."""
    return f"{err.operation}: {err.code}, request id {err.request_id or 'unknown'}"


def accounts_under(management: AwsContext, parents: tuple[str, ...]) -> set[str]:
    """The ids of every account under ``parents`` (OU or root ids), nested OUs included
    (``ListAccountsForParent``, ``ListOrganizationalUnitsForParent``, paginated)."""
    client = management.client("organizations")
    found: set[str] = set()
    queue, seen = list(parents), set(parents)
    while queue:
        parent = queue.pop()
        for row in paginate(
            client,
            "list_accounts_for_parent",
            "Accounts",
            "organizations:ListAccountsForParent",
            ParentId=parent,
        ):
            found.add(row["Id"])
        for unit in paginate(
            client,
            "list_organizational_units_for_parent",
            "OrganizationalUnits",
            "organizations:ListOrganizationalUnitsForParent",
            ParentId=parent,
        ):
            if unit["Id"] not in seen:
                seen.add(unit["Id"])
                queue.append(unit["Id"])
    return found
