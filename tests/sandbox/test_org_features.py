"""Contract: the Organizations root-access features (IAM ListOrganizationsFeatures & co.)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from runbook_sandbox import SandboxInfo

from .helpers import error_code


def test_management_lists_both_features(member: SandboxInfo) -> None:
    answer = member.client("iam", "org-admin").list_organizations_features()
    assert sorted(answer["EnabledFeatures"]) == ["RootCredentialsManagement", "RootSessions"]
    org = member.client("organizations", "org-admin").describe_organization()["Organization"]
    assert answer["OrganizationId"] == org["Id"]


def test_member_account_is_not_management(member: SandboxInfo) -> None:
    iam = member.client("iam", "admin")
    with pytest.raises(ClientError) as exc:
        iam.list_organizations_features()
    assert error_code(exc) == "AccountNotManagementOrDelegatedAdministratorException"
    with pytest.raises(ClientError) as exc:
        iam.enable_organizations_root_sessions()
    assert error_code(exc) == "CallerIsNotManagementAccountException"


def test_standalone_has_no_organization(standalone: SandboxInfo) -> None:
    with pytest.raises(ClientError) as exc:
        standalone.client("iam").list_organizations_features()
    assert error_code(exc) == "OrganizationNotFoundException"


def test_disable_and_enable_round_trip(member: SandboxInfo) -> None:
    iam = member.client("iam", "org-admin")
    assert iam.disable_organizations_root_credentials_management()["EnabledFeatures"] == [
        "RootSessions"
    ]
    assert iam.disable_organizations_root_sessions()["EnabledFeatures"] == []
    assert iam.list_organizations_features()["EnabledFeatures"] == []
    iam.enable_organizations_root_credentials_management()
    assert iam.list_organizations_features()["EnabledFeatures"] == ["RootCredentialsManagement"]


def test_trusted_access_for_iam_is_required(member: SandboxInfo) -> None:
    orgs = member.client("organizations", "org-admin")
    principals = [
        s["ServicePrincipal"]
        for s in orgs.list_aws_service_access_for_organization()["EnabledServicePrincipals"]
    ]
    assert "iam.amazonaws.com" in principals
    orgs.disable_aws_service_access(ServicePrincipal="iam.amazonaws.com")
    with pytest.raises(ClientError) as exc:
        member.client("iam", "org-admin").enable_organizations_root_sessions()
    assert error_code(exc) == "ServiceAccessNotEnabledException"


def test_member_sees_its_organization(member: SandboxInfo) -> None:
    org = member.client("organizations", "admin").describe_organization()["Organization"]
    assert org["MasterAccountId"] == member.principals["org-admin"]["account_id"]
    assert org["FeatureSet"] == "ALL"
