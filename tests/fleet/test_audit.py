"""The fleet audit end to end (runbook_lib/fleet/audit.py) against the sandbox's fleet-N
organization over HTTP: the sealed record, its order whatever the concurrency, resume after an
interruption, throttling that slows it and loses nothing, refusals that leave nothing behind."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.errors import ParameterError, RunRefused
from runbook_lib.fleet import audit as fleet_audit
from runbook_lib.fleet.audit import Backoff, Progress, audit, iter_rows, resume
from runbook_lib.fleet.params import validate_fleet
from runbook_lib.fleet.rules import judge
from runbook_lib.record.run import RunRecord
from runbook_lib.record.secrets import find_secrets
from runbook_lib.record.verify import verify
from tests import keys

from .conftest import Fleet

FleetFor = Callable[[str], Fleet]


def parts_digest(run_dir: Path) -> list[tuple[str, str]]:
    return [
        (p.name, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted((run_dir / "accounts").iterdir())
    ]


def interrupted(fleet: Fleet, params: Any, after: int) -> Path:
    """Audit until ``after`` accounts are done, then Ctrl-C (KeyboardInterrupt); the record."""

    def stop(progress: Progress) -> None:
        if progress.done == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audit(params, fleet.runs, on_progress=stop)
    (run_dir,) = [p for p in fleet.runs.iterdir() if p.is_dir()]
    return run_dir


def test_an_audit_reads_every_account_judges_it_and_seals_a_record_that_verifies(
    fleet_for: FleetFor,
) -> None:
    fleet = fleet_for("fleet-14")
    seen: list[Progress] = []
    result = audit(validate_fleet(fleet.raw()), fleet.runs, on_progress=seen.append)
    report = verify(result.path, keys.allowed_signers())
    assert report.ok, report.problems
    assert report.signer and report.signer["principal"] == keys.PRINCIPALS["operator"]
    record = RunRecord.open(result.path)
    rows = list(iter_rows(record))
    ids = [creds.account_id for creds, _ in rows]
    assert ids == sorted(ids) and len(ids) == 15  # the management account and 14 members
    assert seen[-1].done == seen[-1].total == 15 and seen[-1].failed == 0
    assert result.counts == {v: sum(j.verdict.value == v for _, j in rows) for v in result.counts}
    info = record.created_info()
    assert info["kind"] == "fleet-audit" and info["organization_id"].startswith("o-")
    for name in ("findings.csv", "findings.json", "report.html", "trust/allowed_signers"):
        assert (result.path / name).is_file(), name
    # the snapshot is what AWS holds: each member's devices as the sandbox has them
    for creds, judgement in rows:
        if creds.reach == "probed":
            state = fleet.info.control.state(creds.account_id)
            assert {d.serial for d in creds.mfa_devices} == {d["serial"] for d in state["devices"]}
        started = next(e for e in record.events() if e["type"] == "fleet.started")
        assert judgement.verdict == judge(creds, _judged_at(started), 1095, "us-east-1").verdict
    # nothing that looks like a secret anywhere in the record (the sessions' keys included)
    for path in result.path.rglob("*"):
        if path.is_file() and not path.name.endswith(".sig"):
            assert not find_secrets(path.read_text(errors="replace")), path


def _judged_at(started: dict[str, Any]) -> Any:
    import datetime as dt

    return dt.datetime.fromisoformat(started["data"]["judged_at"].replace("Z", "+00:00"))


def test_the_record_is_the_same_byte_for_byte_at_any_concurrency(
    fleet_for: FleetFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet_audit, "PART_SIZE", 4)
    fleet = fleet_for("fleet-14")
    one = audit(validate_fleet(fleet.raw(workers=1)), fleet.runs)
    many = audit(validate_fleet(fleet.raw(workers=8)), fleet.runs)
    two_processes = audit(validate_fleet(fleet.raw(workers=4, processes=2)), fleet.runs)
    assert len(parts_digest(one.path)) == 4  # 15 accounts, 4 a part
    assert parts_digest(one.path) == parts_digest(many.path) == parts_digest(two_processes.path)


def test_an_interrupted_audit_resumes_without_reading_the_accounts_it_has(
    fleet_for: FleetFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet_audit, "PART_SIZE", 4)
    fleet = fleet_for("fleet-14")
    params = validate_fleet(fleet.raw(workers=2))
    run_dir = interrupted(fleet, params, 9)
    record = RunRecord.open(run_dir)
    assert not record.sealed_final
    done = [c.account_id for c, _ in iter_rows(record)]
    assert len(done) == 8  # two parts written; the ninth account's part was not
    assert not verify(run_dir, keys.allowed_signers()).ok  # not sealed: not evidence yet

    read: list[str] = []
    real_probe = fleet_audit.probe

    def counting(management: Any, org: Any, account: Any, *args: Any) -> Any:
        read.append(account.id)
        return real_probe(management, org, account, *args)

    monkeypatch.setattr(fleet_audit, "probe", counting)
    result = resume(run_dir)
    assert not set(read) & set(done) and len(read) == 15 - 8
    assert verify(result.path, keys.allowed_signers()).ok
    monkeypatch.setattr(fleet_audit, "probe", real_probe)
    whole = audit(params, fleet.runs)
    # the resumed record holds what an uninterrupted audit holds, in the same parts
    assert parts_digest(result.path) == parts_digest(whole.path)
    events = [e["type"] for e in RunRecord.open(run_dir).events()]
    assert events.count("fleet.resumed") == 1
    with pytest.raises(RunRefused, match="finished and sealed"):
        resume(run_dir)


def test_a_part_changed_before_resume_is_named_and_nothing_is_read(
    fleet_for: FleetFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet_audit, "PART_SIZE", 4)
    fleet = fleet_for("fleet-14")
    run_dir = interrupted(fleet, validate_fleet(fleet.raw(workers=1)), 5)
    part = run_dir / "accounts" / "part-00001.jsonl"
    lines = part.read_text().splitlines(keepends=True)
    doc = json.loads(lines[0])
    doc["judgement"]["verdict"] = "ok"
    doc["account"]["mfa_devices"] = []
    part.write_text(json.dumps(doc) + "\n" + "".join(lines[1:]))
    before = (run_dir / "events.jsonl").read_bytes()
    with pytest.raises(RunRefused, match="accounts/part-00001.jsonl"):
        resume(run_dir)
    assert (run_dir / "events.jsonl").read_bytes() == before


def test_throttling_past_the_sdk_s_retries_slows_the_audit_and_loses_nothing(
    fleet_for: FleetFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOK_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RUNBOOK_RETRY_MODE", "standard")  # no client-side rate limit: fast
    monkeypatch.setattr(fleet_audit, "Backoff", lambda: Backoff(base=0.01, cap=0.05))
    fleet = fleet_for("fleet-14")
    # ten throttled answers: with two attempts a call, five accounts' reads run out of retries
    fleet.info.control.add_fault("throttle", "ListMFADevices", count=10)
    seen: list[Progress] = []
    result = audit(validate_fleet(fleet.raw(workers=2)), fleet.runs, on_progress=seen.append)
    rows = list(iter_rows(RunRecord.open(result.path)))
    assert [c.reach for c, _ in rows].count("failed") == 0
    assert sum(c.reach == "probed" for c, _ in rows) == 13  # 14 members, one suspended
    assert seen[-1].throttled >= 4


def test_throttling_that_never_ends_is_the_account_s_failure_not_the_audit_s(
    fleet_for: FleetFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOK_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("RUNBOOK_RETRY_MODE", "standard")
    monkeypatch.setattr(fleet_audit, "Backoff", lambda: Backoff(base=0.001, cap=0.002))
    fleet = fleet_for("fleet-3")
    fleet.info.control.add_fault("throttle", "GetLoginProfile", count=fleet_audit.THROTTLE_ROUNDS)
    result = audit(validate_fleet(fleet.raw(workers=1)), fleet.runs)
    rows = list(iter_rows(RunRecord.open(result.path)))
    failed = [c for c, _ in rows if c.reach == "failed"]
    assert len(failed) == 1
    assert failed[0].reach_detail and "Throttling" in failed[0].reach_detail
    assert f"after {fleet_audit.THROTTLE_ROUNDS} back-offs" in failed[0].reach_detail
    assert verify(result.path, keys.allowed_signers()).ok


def test_accounts_and_organizational_units_narrow_the_audit(fleet_for: FleetFor) -> None:
    fleet = fleet_for("fleet-6")
    iam = fleet.info.client("organizations", "org-admin")
    members = sorted(a["Id"] for a in iam.list_accounts()["Accounts"])
    picked = members[2:4]
    result = audit(validate_fleet(fleet.raw(accounts=picked[::-1])), fleet.runs)
    assert [c.account_id for c, _ in iter_rows(result.record)] == picked
    root = iam.list_roots()["Roots"][0]["Id"]
    everything = audit(validate_fleet(fleet.raw(organizational_units=[root])), fleet.runs)
    assert len(list(iter_rows(everything.record))) == len(members)


def test_an_account_outside_the_organization_is_refused_before_anything_is_recorded(
    fleet_for: FleetFor,
) -> None:
    fleet = fleet_for("fleet-3")
    with pytest.raises(ParameterError, match="not in the organization: 999999999999"):
        audit(validate_fleet(fleet.raw(accounts=["999999999999"])), fleet.runs)
    assert not fleet.runs.exists() or not any(p.is_dir() for p in fleet.runs.iterdir())


def test_an_operator_key_allowed_signers_does_not_list_is_refused_first(
    fleet_for: FleetFor,
) -> None:
    fleet = fleet_for("fleet-3")
    raw = {**fleet.raw(), "operator_key": str(keys.key("mallory"))}
    with pytest.raises(ParameterError, match="does not list your key"):
        audit(validate_fleet(raw), fleet.runs)
    assert not fleet.runs.exists()


def test_backoff_pauses_every_worker_and_doubles_while_throttling_goes_on() -> None:
    import time

    backoff = Backoff(base=0.02, cap=0.08)
    for _ in range(5):
        backoff.throttled()
    start = time.monotonic()
    backoff.wait()
    assert time.monotonic() - start <= 0.2
    assert backoff.events == 5
    backoff.succeeded()
    assert backoff._streak == 0


def test_a_session_that_expires_mid_account_is_assumed_again_and_the_account_read(
    fleet_for: FleetFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbook_lib.fleet import probe as fleet_probe

    fleet = fleet_for("fleet-3")
    real_read = fleet_probe._read
    expired: list[str] = []

    def expiring(aws: Any, base: dict[str, Any], devices: Any) -> Any:
        if not expired:  # the first account's session runs out before its second read
            expired.append(base["account_id"])
            fleet.info.control.advance_clock(fleet_probe.SESSION_SECONDS + 1)
        return real_read(aws, base, devices)

    from runbook_lib.aws.privileged import RootSession

    assumed: list[str] = []
    real_assume = RootSession.assume

    def counting(session: RootSession) -> None:
        assumed.append(session.account_id)
        real_assume(session)

    monkeypatch.setattr(fleet_probe, "_read", expiring)
    monkeypatch.setattr(RootSession, "assume", counting)
    result = audit(validate_fleet(fleet.raw(workers=1)), fleet.runs)
    rows = {c.account_id: c for c, _ in iter_rows(result.record)}
    assert rows[expired[0]].reach == "probed" and rows[expired[0]].password is not None
    assert sum(c.reach == "probed" for c in rows.values()) == 3
    # one session per account, and the first account's again after it expired
    assert sorted(assumed) == sorted([*rows.keys() - {"111111111111"}, expired[0]])


def test_an_audit_being_resumed_elsewhere_is_not_resumed_twice(
    fleet_for: FleetFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbook_lib import lease

    monkeypatch.setattr(fleet_audit, "PART_SIZE", 2)
    fleet = fleet_for("fleet-3")
    run_dir = interrupted(fleet, validate_fleet(fleet.raw(workers=1)), 3)
    before = (run_dir / "events.jsonl").read_bytes()
    with lease.executing(run_dir.name), pytest.raises(lease.RunBusy):
        resume(run_dir)
    assert (run_dir / "events.jsonl").read_bytes() == before


def test_a_throttled_fleet_is_audited_whole_and_its_record_is_the_unthrottled_one(
    fleet_for: FleetFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fleet-N-throttled: every 4th AssumeRoot and every 3rd ListMFADevices is throttled."""
    monkeypatch.setenv("RUNBOOK_RETRY_MODE", "standard")  # the SDK's back-off, no rate limit
    monkeypatch.setattr(fleet_audit, "Backoff", lambda: Backoff(base=0.01, cap=0.05))
    fleet = fleet_for("fleet-14-throttled")
    throttled = audit(validate_fleet(fleet.raw(workers=4)), fleet.runs)
    fired = sum(f["fired"] for f in fleet.info.control.faults())
    assert fired >= 8  # 13 AssumeRoot and 13 ListMFADevices calls at least
    fleet.info.control.clear_faults()
    calm = audit(validate_fleet(fleet.raw(workers=4)), fleet.runs)
    assert [c.reach for c, _ in iter_rows(throttled.record)].count("failed") == 0
    assert parts_digest(throttled.path) == parts_digest(calm.path)
    assert verify(throttled.path, keys.allowed_signers()).ok


@pytest.mark.parametrize("variant", ["features-off", "credentials-only"])
def test_without_root_sessions_every_member_says_so_and_nothing_is_assumed(
    fleet_for: FleetFor, variant: str
) -> None:
    fleet = fleet_for(f"fleet-4-{variant}")
    result = audit(validate_fleet(fleet.raw()), fleet.runs)
    reaches = sorted(c.reach for c, _ in iter_rows(result.record))
    assert reaches == ["features-disabled"] * 4 + ["management-account"]
    assert result.counts["unreachable"] == 5
    assert verify(result.path, keys.allowed_signers()).ok


def test_resume_refuses_what_is_not_an_interrupted_audit_of_this_organization(
    fleet_for: FleetFor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from runbook_lib.fleet.probe import Organization
    from tests.record.helpers import make_run

    plain = make_run(tmp_path / "other-runs")  # a record, but not a fleet audit
    with pytest.raises(RunRefused, match="is not a fleet audit"):
        resume(plain.path)
    monkeypatch.setattr(fleet_audit, "PART_SIZE", 2)
    fleet = fleet_for("fleet-3")
    run_dir = interrupted(fleet, validate_fleet(fleet.raw(workers=1)), 2)
    before = (run_dir / "events.jsonl").read_bytes()
    elsewhere = Organization("o-another", "999999999999", frozenset({"RootSessions"}))
    monkeypatch.setattr(fleet_audit, "read_organization", lambda management: elsewhere)
    with pytest.raises(RunRefused, match="reaches organization o-another, not the audit's"):
        resume(run_dir)
    assert (run_dir / "events.jsonl").read_bytes() == before


def test_outputs_are_refused_when_the_rules_no_longer_give_the_recorded_verdicts(
    fleet_for: FleetFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runbook_lib.fleet.rules import Judgement, Verdict

    fleet = fleet_for("fleet-3")
    result = audit(validate_fleet(fleet.raw(workers=1)), fleet.runs)
    monkeypatch.setattr(
        fleet_audit, "judge", lambda creds, *a: Judgement(creds.account_id, Verdict.OK)
    )
    with pytest.raises(RunRefused, match="the part says .*, the rules say ok"):
        list(fleet_audit.judged_rows(result.record))
