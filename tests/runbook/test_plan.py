"""The plan and its digest: what a batch approval is bound to."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from runbook_lib import lease
from runbook_lib.params import validate
from runbook_lib.plan import PACKAGE_DIR, PlanIdentity, make_plan
from runbook_lib.runner import plan_for
from tests import keys
from tests.conftest import configure_profiles

from .helpers import cli, edit_cell

BASE = {
    "account_id": "123456789012",
    "change_ticket": "CHG-1234",
    "method": "console",
    "profile": "sandbox-admin",
    "dry_run": False,
    "operator_key": str(keys.key("operator")),
    "allowed_signers": str(keys.allowed_signers()),
}


@pytest.fixture(autouse=True)
def _profiles(_isolated_env: None) -> None:
    """The profiles these plans name, configured (with made-up keys: nothing is called)."""
    configure_profiles("sandbox-admin", "m", "mgmt")


IDENTITY = PlanIdentity(
    "0123456789abcdef", "2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00"
)


def digest(raw: dict[str, object]) -> str:
    """The digest of ``raw`` under one fixed plan identity."""
    return make_plan(validate(raw), IDENTITY).digest


def test_cli_plan_prints_digest_and_gates(tmp_path: Path) -> None:
    file = tmp_path / "params.yml"
    file.write_text(json.dumps(BASE))
    result = cli("plan", "-f", str(file), "-p", "rebind=skip", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    found = re.search(r"^plan digest\s+([0-9a-f]{64})$", out, re.M)
    assert found
    expected = found.group(1)
    # the plan is stored under its digest, and these parameters with its identity make it
    stored = lease.load_plan(expected)
    assert stored is not None and stored["digest"] == expected
    identity = PlanIdentity.from_dict(stored["identity"])
    assert make_plan(validate({**BASE, "rebind": "skip"}), identity).digest == expected
    assert f"plan id       {identity.plan_id}" in out and identity.expires_at in out
    assert "approve with: runbook approve PLAN_FILE --key KEY" in out
    assert "operator      olivia@example.com" in out and "four eyes" in out
    gates = re.findall(r"^  (\d\d-[a-z-]+)\s+([a-z-]+)\s+(approved by|confirmed by)", out, re.M)
    assert [(step, gate) for step, gate, _ in gates] == [
        ("00-preflight", "risk-acknowledged"),
        ("01-remove-device", "remove-device"),
        ("01-remove-device", "device-removed-in-console"),
        ("03-first-sign-in", "signed-in-with-email-code"),
        ("04-rebind", "skip-rebind"),
    ]
    assert "confirmed by -p confirm=[device-removed-in-console]" in out
    for step in ("00-preflight", "05-close-out"):
        assert step in out


def test_dry_run_plan_has_no_gate_and_says_so(tmp_path: Path) -> None:
    _, plan = plan_for({**BASE, "dry_run": True})
    assert [g.name for g in plan.gates] == []
    _, plan = plan_for({**BASE, "method": "assume-root", "management_profile": "m"})
    assert "device-removed-in-console" not in [g.name for g in plan.gates]
    file = tmp_path / "params.yml"
    file.write_text(json.dumps({**BASE, "dry_run": True}))
    result = cli("plan", "-f", str(file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("DRY RUN: this plan looks and records; it changes nothing")
    assert "--approve" not in result.stdout


def test_every_plan_is_a_new_plan_with_an_expiry() -> None:
    """Two plans of the same parameters differ (an approval names one plan), and a plan
    expires: an approval is not a standing permission."""
    first, second = plan_for(BASE)[1], plan_for(BASE)[1]
    assert first.digest != second.digest
    assert first.identity.plan_id != second.identity.plan_id
    assert not first.identity.expired()
    expired = PlanIdentity("00", "2020-01-01T00:00:00+00:00", "2020-01-02T00:00:00+00:00")
    assert expired.expired()
    assert make_plan(validate(BASE), expired).digest != make_plan(validate(BASE), IDENTITY).digest


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("change_ticket", "CHG-9999"),
        ("method", "assume-root"),
        ("dry_run", True),
        ("rebind", "skip"),
        ("device_serial", "arn:aws:iam::123456789012:mfa/other"),
        ("profile", "someone-else"),
        ("endpoint_url", "http://127.0.0.1:1"),
        ("verify_timeout", 121),
        ("sandbox_actor", True),
    ],
)
def test_digest_changes_with_a_parameter(name: str, value: object) -> None:
    raw = {**BASE, "management_profile": "mgmt"}
    assert digest(raw) != digest({**raw, name: value})


def test_digest_changes_with_the_target_account() -> None:
    assert digest(BASE) != digest({**BASE, "account_id": "210987654321"})


def test_digest_ignores_approval_confirmations_and_run_dir() -> None:
    base = digest(BASE)
    assert digest({**BASE, "approvals": ["a.approval"]}) == base
    assert digest({**BASE, "confirm": ["device-removed-in-console"]}) == base
    assert digest({**BASE, "run_dir": "runs/somewhere"}) == base


def test_digest_is_stable() -> None:
    assert digest(BASE) == digest(dict(reversed(list(BASE.items()))))


def test_digest_changes_with_a_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "notebooks"
    shutil.copytree(PACKAGE_DIR.parent / "notebooks", copy)
    monkeypatch.setenv("RUNBOOK_NOTEBOOKS", str(copy))
    same = digest(BASE)
    monkeypatch.delenv("RUNBOOK_NOTEBOOKS")
    assert same == digest(BASE)  # an identical copy is the same plan
    monkeypatch.setenv("RUNBOOK_NOTEBOOKS", str(copy))
    edit_cell(copy / "03-first-sign-in.ipynb")
    changed = make_plan(validate(BASE), IDENTITY)
    assert changed.digest != same
    monkeypatch.delenv("RUNBOOK_NOTEBOOKS")
    original = make_plan(validate(BASE), IDENTITY)
    assert [s for s in original.notebooks if original.notebooks[s] != changed.notebooks[s]] == [
        "03-first-sign-in"
    ]
