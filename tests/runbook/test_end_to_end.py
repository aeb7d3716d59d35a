"""End to end: every scenario x method, the six notebooks run by papermill on the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runbook_lib.record.secrets import scan_path
from runbook_lib.record.verify import verify

from .helpers import (
    STEP_NAMES,
    UUID_RE,
    Env,
    check_operator_text,
    code_occurrences,
    known_secrets,
    of_type,
    run_info,
)

CASES = [
    ("standalone", "console"),
    ("root-access-keys", "console"),
    ("management", "console"),
    ("member", "assume-root"),
    ("member", "console"),
    ("member-no-password", "assume-root"),
    pytest.param("fleet-3", "assume-root", marks=pytest.mark.slow),
]


def check_who(data: dict[str, object], env: Env) -> None:
    who = data["who"]
    assert isinstance(who, dict)
    assert who["os_user"] and who["host"]
    assert str(who["caller_arn"]).startswith(f"arn:aws:iam::{env.account}:")
    assert str(data["at"]).startswith("20")
    assert data["typed"]


def check_record_has_no_secrets(env: Env, run_dir: Path) -> None:
    keys, codes = known_secrets(env)
    assert keys and all(len(k) == 40 for k in keys)
    assert scan_path(run_dir, known=keys) == []
    assert code_occurrences(run_dir, codes) == []


@pytest.mark.parametrize(("scenario", "method"), CASES)
def test_whole_procedure(env_for: Callable[[str], Env], scenario: str, method: str) -> None:
    env = env_for(scenario)
    # a member whose root user has no password cannot bind a new device (preflight refuses
    # rebind: bind there, see test_failures); it keeps the account credential-less
    rebind = "skip" if scenario == "member-no-password" else "bind"
    params = env.approved(method, rebind=rebind)
    before = env.serials()
    code, run_dir = env.run(params)
    assert code == 0, env.progress

    # the record: sealed final, intact, every notebook executed, every step succeeded
    report = verify(run_dir)
    assert report.ok, report.problems
    assert report.final
    executed = sorted(p.stem for p in (run_dir / "notebooks").glob("*.ipynb"))
    assert executed == STEP_NAMES
    info = run_info(run_dir)
    assert info["status"] == "succeeded"
    assert info["halted_at"] is None
    assert {s: v["status"] for s, v in info["steps"].items()} == dict.fromkeys(
        STEP_NAMES, "succeeded"
    )
    removed = info["device"]
    assert removed in before

    # approvals: who, what (the digest typed), when
    approvals = {e["data"]["gate"]: e["data"] for e in of_type(run_dir, "gate.approved")}
    expected = {"risk-acknowledged", "remove-device"} | (
        {"skip-rebind"} if rebind == "skip" else set()
    )
    assert set(approvals) == expected
    for data in approvals.values():
        check_who(data, env)
        assert data["typed"] == "signed approvals by alice@example.com"
        assert data["approvers"] == ["alice@example.com"] and data["self_approved"] is False
        assert data["facts"]["account"] == env.account
    # console steps: a claim (the sandbox actor did it), then the API's verdict
    confirmed = {e["data"]["gate"]: e["data"] for e in of_type(run_dir, "human.claimed")}
    for data in confirmed.values():
        check_who(data, env)
        assert data["performed_by"] == "sandbox console actor"
    verified = {e["data"]["gate"] for e in of_type(run_dir, "human.verified")}
    assert verified == set(confirmed)
    assert not of_type(run_dir, "human.contradicted")

    # the removal and its evidence
    if method == "assume-root":
        action = of_type(run_dir, "action.remove-device")[-1]["data"]
        assert action["outcome"] == "removed"
        assert action["target"] == removed
        for op in ("AssumeRoot", "DeactivateMFADevice"):
            assert UUID_RE.match(action["request_ids"][op]), action["request_ids"]
        # every AssumeRoot session is on the record, the removal's and the audits'
        sessions = of_type(run_dir, "session.assumed")
        assert sessions and all(UUID_RE.match(a["data"]["request_id"]) for a in sessions)
        purposes = {s["data"]["purpose"] for s in sessions}
        assert purposes == {"remove root MFA device", "read every MFA device"}
        assert {s["data"]["access_key_id"] for s in sessions} >= {
            action["details"]["deactivated_by_access_key_id"]
        }
        assert "device-removed-in-console" not in confirmed
    else:
        assert "device-removed-in-console" in confirmed
    deactivation = of_type(run_dir, "evidence.deactivation")[-1]["data"]
    assert deactivation["found"] is True
    assert deactivation["event_ids"]

    after = env.serials()
    assert removed not in after

    if scenario == "member-no-password":
        # removal works; sign-in is explained as impossible without a password; skip recorded
        assert of_type(run_dir, "decision.no-root-password")
        assert of_type(run_dir, "decision.skip-rebind")
        assert not of_type(run_dir, "evidence.console-login")
        assert not of_type(run_dir, "evidence.enable")
        assert after == before - {removed}
    else:
        left = before - {removed}
        login = of_type(run_dir, "evidence.console-login")[-1]["data"]
        assert login["found"] is True
        assert login["expected_mfa_used"] is bool(left)
        assert any(f"MFAUsed={'Yes' if left else 'No'}" in f for f in login["facts"])
        enable = of_type(run_dir, "evidence.enable")[-1]["data"]
        assert enable["found"] is True
        new = after - before
        assert len(new) == 1
        (serial,) = new
        kinds = {d["serial"]: d["kind"] for d in env.devices()}
        assert kinds[serial] == "virtual"
        assert after == left | new
        assert of_type(run_dir, "verification.new-device")[-1]["data"]["new_devices"] == [serial]
        assert set(confirmed) >= {"signed-in-with-email-code", "new-device-bound-in-console"}

    summary = of_type(run_dir, "run.closed-out")[-1]["data"]
    assert summary["diff"]["removed"] == [removed]
    check_record_has_no_secrets(env, run_dir)
    check_operator_text(run_dir)


@pytest.mark.parametrize(
    ("scenario", "method"), [("standalone", "console"), ("member", "assume-root")]
)
def test_dry_run_has_its_own_status_and_changes_nothing(
    env_for: Callable[[str], Env], scenario: str, method: str
) -> None:
    """A dry run needs no approval, never suggests one, and ends as ``dry-run`` (not
    ``succeeded``), with what it saw printed: identity, account kind, every MFA signal."""
    env = env_for(scenario)
    params = env.params(method, dry_run=True)
    before = env.devices()
    code, run_dir = env.run(params)
    assert env.devices() == before, "a dry run removed a root MFA device"
    assert code == 0, env.progress
    report = verify(run_dir)
    assert report.ok and report.final, report.problems
    info = run_info(run_dir)
    assert info["status"] == "dry-run"
    assert info["dry_run"] is True
    assert not of_type(run_dir, "action.started")
    assert not of_type(run_dir, "gate.approved")
    assert not of_type(run_dir, "gate.halted")
    assert {e["step"] for e in of_type(run_dir, "step.skipped")} == {
        "01-remove-device",
        "02-verify-removal",
        "03-first-sign-in",
        "04-rebind",
    }
    out = "\n".join(env.progress)
    digest = info["plan_digest"]
    assert f"plan-{digest[:12]}" not in out and "--approve " not in out, "never approve a dry run"
    assert "resume" not in out and "dry_run=false" in out
    assert "DRY RUN" in env.progress[0] and "DRY RUN complete: nothing was changed" in out
    assert "run succeeded" not in out
    identity = of_type(run_dir, "observation.identity")[0]["data"]["arn"]
    assert f"caller        {identity}" in out
    assert "account kind  " in out and "AccountMFAEnabled" in out and "mfa_active" in out
    assert "virtual devices" in out and "devices (AssumeRoot session)" in out
    assert "DRY RUN: nothing was changed" in (run_dir / "report.html").read_text()


def test_a_dry_run_refuses_an_approval(env_for: Callable[[str], Env]) -> None:
    from runbook_lib.errors import ParameterError

    env = env_for("standalone")
    params = env.approved("console", dry_run=True)
    with pytest.raises(ParameterError, match="a dry run needs no approval"):
        env.run(params)
    assert not env.runs.exists() or run_dirs_of(env) == []


def run_dirs_of(env: Env) -> list[str]:
    from .helpers import run_dirs

    return run_dirs(env.runs)


def _variants() -> list[tuple[str, str]]:
    from runbook_sandbox._state import SWITCHES

    return [
        (name, choice)
        for name, (default, choices, _) in SWITCHES.items()
        for choice in choices
        if choice != default
    ]


@pytest.mark.parametrize(("switch", "variant"), _variants())
@pytest.mark.parametrize(
    ("scenario", "method"), [("standalone", "console"), ("member", "assume-root")]
)
def test_whole_procedure_under_every_undocumented_variant(
    env_for: Callable[[str], Env], scenario: str, method: str, switch: str, variant: str
) -> None:
    """Where AWS does not document a behaviour, the sandbox offers each plausible one (the
    defaults, the most restrictive, are what every other test runs under); the runbook must
    end well under each."""
    env = env_for(scenario)
    env.info.control.set_switch(switch, variant)
    assert env.info.control.switches()[switch] == variant
    before = env.serials()
    params = env.approved(method)
    code, run_dir = env.run(params)
    assert code == 0, env.progress
    report = verify(run_dir)
    assert report.ok and report.final, report.problems
    removed = run_info(run_dir)["device"]
    assert removed in before and removed not in env.serials()
    assert len(env.serials() - before) == 1  # the new device
    action = of_type(run_dir, "action.remove-device")
    if method == "assume-root" and switch != "delete-virtual-mfa-in-delete-session":
        # the default task-policy variant denies the delete: the object is left, and said so
        assert action[-1]["data"]["details"]["virtual_device_left"] == removed
        closed = of_type(run_dir, "run.closed-out")[-1]["data"]["diff"]
        assert closed["left_over_device_object"]["serial"] == removed


def test_skipping_the_rebind_records_the_mfa_registration_deadline(
    env_for: Callable[[str], Env],
) -> None:
    """IAM User Guide, "Multi-factor authentication for AWS account root user": root users must
    register MFA within 35 days of the first sign-in attempt without it. With rebind: skip the
    record states the date; the sandbox models the same window on its clock."""
    import datetime as dt

    env = env_for("standalone")
    code, run_dir = env.run(env.approved("console", rebind="skip"))
    assert code == 0, env.progress
    decided = of_type(run_dir, "decision.skip-rebind")[-1]["data"]
    deadline = decided["mfa_registration_deadline"]
    assert (
        deadline
        and "35 days" in decided["mfa_registration_rule"]
        and deadline in (decided["mfa_registration_rule"])
    )
    aws_side = env.info.control.state(env.account)["mfa_registration_deadline"]
    assert aws_side and dt.datetime.fromisoformat(aws_side).date().isoformat() == deadline
    assert verify(run_dir).ok
