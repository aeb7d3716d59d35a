"""Reading the fleet (runbook_lib/fleet/probe.py) from the management account, against the
sandbox's fleet-N organization over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runbook_lib.fleet.probe import list_accounts, probe, read_organization
from runbook_lib.fleet.rules import RootCredentials
from runbook_sandbox import SandboxInfo
from tests.conftest import isolate_aws_env
from tests.lib.helpers import make_context


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_aws_env(tmp_path, monkeypatch)


@pytest.fixture
def fleet(sandbox_factory: Callable[[str], SandboxInfo]) -> SandboxInfo:
    return sandbox_factory("fleet-6")


def audit(info: SandboxInfo) -> dict[str, RootCredentials]:
    management = make_context(info, "org-admin")
    org = read_organization(management)
    return {a.id: probe(management, org, a, "us-east-1") for a in list_accounts(management)}


def test_every_account_is_listed_and_each_member_read_through_assume_root(
    fleet: SandboxInfo,
) -> None:
    found = audit(fleet)
    management = make_context(fleet, "org-admin")
    org = read_organization(management)
    assert org.centralised and len(found) == 7  # the management account and six members
    assert found[org.management_account_id].reach == "management-account"
    members = [c for c in found.values() if c.reach == "probed"]
    assert len(members) == 6
    kinds = sorted(tuple(sorted(d.kind for d in c.mfa_devices)) for c in members)
    # the fleet scenario's mix: none (x2: one with, one without a password), virtual (x2),
    # FIDO + virtual, hardware
    assert kinds == [(), (), ("fido", "virtual"), ("hardware",), ("virtual",), ("virtual",)]
    assert sorted(c.password for c in members) == [False, True, True, True, True, True]
    for creds in members:
        assert all(d.enable_date for d in creds.mfa_devices)
        state = fleet.control.state(creds.account_id)
        assert {d.serial for d in creds.mfa_devices} == {d["serial"] for d in state["devices"]}
        assert creds.password is state["has_password"]


def test_without_root_sessions_no_member_is_probed_and_each_says_why(fleet: SandboxInfo) -> None:
    fleet.client("iam", "org-admin").disable_organizations_root_sessions()
    found = audit(fleet)
    reaches = sorted(c.reach for c in found.values())
    assert reaches == ["features-disabled"] * 6 + ["management-account"]


def test_a_denied_assume_root_is_that_account_s_reach_not_the_audit_s_end(
    fleet: SandboxInfo,
) -> None:
    fleet.control.add_fault("deny", "AssumeRoot", count=1)
    found = audit(fleet)
    denied = [c for c in found.values() if c.reach == "access-denied"]
    assert len(denied) == 1
    assert denied[0].reach_detail is not None
    assert denied[0].reach_detail.startswith("AssumeRoot: AccessDenied, request id ")
    assert sum(c.reach == "probed" for c in found.values()) == 5


def test_the_fleet_s_long_term_keys_old_devices_and_suspended_accounts_are_read(
    sandbox_factory: Callable[[str], SandboxInfo],
) -> None:
    """fleet-14: member 7 (index 6) and 14 keep a root access key and a signing certificate,
    member 13 (index 12) has devices four years old, member 11 (index 10) is suspended."""
    info = sandbox_factory("fleet-14")
    found = audit(info)
    by_name = {c.name: c for c in found.values()}
    assert by_name["member-11"].reach == "suspended"
    assert by_name["member-11"].reach_detail == "SUSPENDED"
    for name in ("member-7", "member-14"):
        creds = by_name[name]
        state = info.control.state(creds.account_id)
        assert [k.id_suffix for k in creds.access_keys] == [
            key[-4:] for key in state["access_keys"]
        ]
        assert len(creds.access_keys) == 1 and creds.access_keys[0].active
        assert creds.signing_certificates_active == 1
    others = [c for n, c in by_name.items() if n not in ("member-7", "member-14")]
    assert not any(c.access_keys or c.signing_certificates_active for c in others)
    old = by_name["member-13"]
    assert old.mfa_devices and all(
        d.enable_date is not None and d.enable_date < "2024" for d in old.mfa_devices
    ), old.mfa_devices


def test_the_fleet_read_and_judged_gives_each_verdict_its_reason(
    sandbox_factory: Callable[[str], SandboxInfo],
) -> None:
    import datetime as dt

    from runbook_lib.fleet.rules import Verdict, judge

    info = sandbox_factory("fleet-14")
    now = dt.datetime.now(dt.UTC)
    judged = {c.name or c.account_id: judge(c, now) for c in audit(info).values()}
    assert judged["member-11"].verdict is Verdict.UNREACHABLE  # suspended
    unreachable = [j for j in judged.values() if j.verdict is Verdict.UNREACHABLE]
    assert len(unreachable) == 2  # and the management account
    keys = [f.rule.id for f in judged["member-7"].findings]
    assert keys[0] == "root-access-keys" and "member-root-credentials" in keys
    assert judged["member-5"].verdict is Verdict.OK  # no password, no device: as AWS advises
    # centralised members with a password: the password goes first, no MFA run is planned yet
    assert judged["member-2"].verdict is Verdict.ATTENTION
    # member-10 (index 9): the password deleted, a virtual device left: its removal is planned
    assert judged["member-10"].verdict is Verdict.CHANGE_MFA
    (planned,) = [f.runbook for f in judged["member-10"].findings if f.runbook]
    assert planned["method"] == "assume-root" and planned["rebind"] == "skip"
    planned_elsewhere = [
        name
        for name, j in judged.items()
        if name != "member-10" and any(f.runbook for f in j.findings)
    ]
    assert planned_elsewhere == []
