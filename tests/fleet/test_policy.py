"""policies/runbook-fleet-audit.json is all the fleet audit needs in the management account,
and each of its actions is needed (the sandbox evaluates a principal's identity policies as
IAM does); it allows only the audit task, never the delete one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from runbook_lib.aws import privileged
from runbook_lib.errors import AccessDeniedError
from runbook_lib.fleet.probe import accounts_under, list_accounts, probe, read_organization
from runbook_sandbox import SandboxInfo
from tests.lib.helpers import MANAGEMENT_ID, load_policy, make_context
from tests.lib.test_policies import actions_of, without

POLICY = "runbook-fleet-audit.json"


def auditor(info: SandboxInfo, policy: dict[str, Any]) -> Any:
    info.add_principal("fleet-auditor", MANAGEMENT_ID, [policy])
    return make_context(info, "fleet-auditor")


def audit_everything(management: Any, root_id: str) -> list[str]:
    org = read_organization(management)
    accounts = list(list_accounts(management))
    assert accounts_under(management, (root_id,)) == {a.id for a in accounts}
    return [probe(management, org, a, "us-east-1").reach for a in accounts]


@pytest.fixture
def fleet(sandbox_factory: Callable[[str], SandboxInfo]) -> SandboxInfo:
    return sandbox_factory("fleet-4")


def root_id(info: SandboxInfo) -> str:
    return str(info.client("organizations", "org-admin").list_roots()["Roots"][0]["Id"])


def test_the_policy_is_enough_for_the_whole_audit(fleet: SandboxInfo) -> None:
    reaches = audit_everything(auditor(fleet, load_policy(POLICY)), root_id(fleet))
    assert sorted(reaches) == ["management-account"] + ["probed"] * 4


@pytest.mark.parametrize("action", actions_of(load_policy(POLICY)))
def test_each_action_is_needed(fleet: SandboxInfo, action: str) -> None:
    management = auditor(fleet, without(load_policy(POLICY), action))
    if action == "sts:AssumeRoot":
        assert "access-denied" in audit_everything(management, root_id(fleet))
        return
    with pytest.raises(AccessDeniedError) as err:
        audit_everything(management, root_id(fleet))
    assert err.value.operation == action.split(":")[1]


def test_the_delete_task_is_refused_to_the_auditor(fleet: SandboxInfo) -> None:
    management = auditor(fleet, load_policy(POLICY))
    member = next(a.id for a in list_accounts(management) if a.id != MANAGEMENT_ID)
    with (
        pytest.raises(AccessDeniedError),
        privileged.assume_root(management, member, privileged.DELETE),
    ):
        pytest.fail("the session must not start")
