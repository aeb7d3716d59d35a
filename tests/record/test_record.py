"""RunRecord: creation, events, run.json, files, sealing, modes, concurrency, list_runs."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook_lib.errors import RecordError, RunbookError, RunSealedError, SecretRefused
from runbook_lib.record.chain import entry_hash
from runbook_lib.record.layout import EVENTS_FILE, LEDGER_FILE, MANIFEST_FILE, RUN_FILE
from runbook_lib.record.ledger import list_runs
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import verify
from tests.keys import signer

from .helpers import FAKE_SECRET_KEY, FAKE_SEED, FAKE_SESSION_TOKEN, make_run


def test_round_trip_create_append_seal_verify(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    rec = RunRecord.create(runs, {"parameters": {"account_id": "123456789012"}})
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{4}", rec.run_id)
    assert rec.path == runs / rec.run_id and rec.runs_dir == runs

    run = rec.load_run()
    assert run["status"] == "running" and run["run_id"] == rec.run_id and run["created_at"]
    assert run["parameters"] == {"account_id": "123456789012"}

    ev = rec.append("step.started", "plan", n=1, note="é ✓ \u2028 line")
    assert set(ev) == {"seq", "time", "type", "step", "data", "prev", "hash"}
    assert ev["hash"] == entry_hash(ev)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", ev["time"])

    events = rec.events()
    assert [e["type"] for e in events] == ["run.created", "step.started"]
    assert events[0]["prev"] == "0" * 64 and events[1]["prev"] == events[0]["hash"]
    assert [e["seq"] for e in events] == [1, 2]
    assert events[1]["data"]["note"] == "é ✓ \u2028 line"

    report = verify(rec.path)
    assert not report.ok and not report.sealed and report.events == 2
    assert any("not sealed" in p for p in report.problems)

    manifest = rec.seal(signer=signer())
    assert manifest["final"] is True and manifest["previous_manifest_sha256"] is None
    assert manifest["events"] == {"count": 2, "head": events[1]["hash"]}
    assert set(manifest["files"]) == {RUN_FILE, EVENTS_FILE, "run.json.lock"}
    report = verify(rec.path)
    assert report.ok, report.problems
    assert report.sealed and report.final and report.events == 2

    again = RunRecord.open(rec.path)
    assert again.run_id == rec.run_id and again.sealed_final


def test_checkpoint_seals_chain_and_final_seal_refuses_more(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    first = rec.seal(final=False, signer=signer())
    assert verify(rec.path).ok and not rec.sealed_final
    rec.append("step.started", "verify")  # a resumed run continues after a checkpoint
    assert not verify(rec.path).ok  # events changed since the checkpoint seal
    rec.write_json("snapshots/after.json", {"mfa_devices": []})
    second = rec.seal(final=True, signer=signer())
    first_sha = json.loads((rec.runs_dir / LEDGER_FILE).read_text().splitlines()[0])
    assert second["previous_manifest_sha256"] == first_sha["manifest_sha256"]
    # the appended event and write_json's file.written
    assert first["events"]["count"] + 2 == second["events"]["count"]
    assert verify(rec.path).ok and rec.sealed_final

    before = (rec.path / EVENTS_FILE).read_bytes()
    with pytest.raises(RunSealedError, match="sealed"):
        rec.append("step.started", "late")
    with pytest.raises(RunSealedError, match="sealed"):
        RunRecord.open(rec.path).append("step.started", "late")
    with pytest.raises(RunSealedError, match="sealed"):
        rec.seal(final=True, signer=signer())
    with pytest.raises(RunSealedError, match="sealed"):
        rec.write_json("late.json", {})
    with pytest.raises(RunSealedError, match="sealed"):
        rec.update_run(status="tampered")
    assert (rec.path / EVENTS_FILE).read_bytes() == before
    assert not (rec.path / "late.json").exists()
    assert verify(rec.path).ok
    assert issubclass(RunSealedError, RecordError) and issubclass(RecordError, RunbookError)


def test_update_run_replaces_keys_and_merges_steps(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {"versions": {"a": 1, "b": 2}})
    rec.update_run(versions={"c": 3}, steps={"plan": {"status": "running", "started_at": "t1"}})
    rec.update_run(steps={"plan": {"status": "done", "ended_at": "t2"}, "gate": {"status": "x"}})
    run = rec.load_run()
    assert run["versions"] == {"c": 3}  # replaced, not merged
    assert run["steps"] == {
        "plan": {"status": "done", "started_at": "t1", "ended_at": "t2"},
        "gate": {"status": "x"},
    }
    with pytest.raises(RecordError):
        rec.update_run(run_id="other")
    assert not list(rec.path.glob(".*.tmp"))


def test_open_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(RecordError):
        RunRecord.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match="not a run directory"):
        RunRecord.open(tmp_path / "empty")
    rec = RunRecord.create(tmp_path / "runs", {})
    with pytest.raises(RecordError, match="already exists"):
        RunRecord.create(tmp_path / "runs", {}, run_id=rec.run_id)
    with pytest.raises(RecordError, match="Invalid run id"):
        RunRecord.create(tmp_path / "runs", {}, run_id="../escape")


@pytest.mark.parametrize(
    "relpath", ["../x.json", "/tmp/x.json", "a/../../x.json", MANIFEST_FILE, EVENTS_FILE, ""]
)
def test_write_json_refuses_paths_escaping_or_reserved(tmp_path: Path, relpath: str) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    with pytest.raises(RecordError, match="Refused path"):
        rec.write_json(relpath, {"a": 1})
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "runs" / "x.json").exists()


def test_write_json_refuses_symlinked_directory(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    outside = tmp_path / "outside"
    outside.mkdir()
    (rec.path / "snapshots").symlink_to(outside)
    with pytest.raises(RecordError, match="symbolic link"):
        rec.write_json("snapshots/before.json", {})
    assert list(outside.iterdir()) == []


@pytest.fixture(params=[0o000, 0o277], ids=["permissive-umask", "restrictive-umask"])
def umask(request: pytest.FixtureRequest) -> Iterator[None]:
    old = os.umask(request.param)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask")
def test_modes_are_0700_and_0600_whatever_the_umask(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    rec.write_json("deep/er/still.json", [1])
    rec.seal(final=False, signer=signer())
    rec.update_run(status="done")
    rec.seal(signer=signer())
    checked = 0
    for path in [tmp_path / "runs", *sorted((tmp_path / "runs").rglob("*"))]:
        mode = stat.S_IMODE(path.stat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        assert mode == want, f"{path}: {oct(mode)}"
        checked += 1
    assert checked >= 12
    assert (tmp_path / "runs" / LEDGER_FILE).is_file()


_WORKER = """
import sys
from pathlib import Path
from runbook_lib.record.run import RunRecord
rec = RunRecord.open(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    rec.append("load.tick", sys.argv[2], i=i)
"""


def test_concurrent_appends_from_two_processes_keep_one_chain(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    n = 200
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(rec.path), name, str(n)])
        for name in ("runner", "kernel")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    events = rec.events()
    assert len(events) == 1 + 2 * n
    assert [e["seq"] for e in events] == list(range(1, 2 * n + 2))
    for name in ("runner", "kernel"):
        assert [e["data"]["i"] for e in events if e["step"] == name] == list(range(n))
    rec.seal(signer=signer())
    report = verify(rec.path)
    assert report.ok, report.problems[:5]


def test_secret_in_append_is_refused_and_never_written(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    before = (rec.path / EVENTS_FILE).read_bytes()
    with pytest.raises(SecretRefused) as err:
        rec.append("action.assume_root", "remove", creds={"SecretAccessKey": FAKE_SECRET_KEY})
    assert "data.creds.SecretAccessKey" in str(err.value)
    assert FAKE_SECRET_KEY not in str(err.value)
    with pytest.raises(SecretRefused) as err:
        rec.append("action.assume_root", "remove", token=FAKE_SESSION_TOKEN)
    assert "data.token" in str(err.value) and FAKE_SESSION_TOKEN not in str(err.value)
    with pytest.raises(SecretRefused, match=r"data\.qr"):
        rec.append("human.confirmed", "bind", qr=f"otpauth://totp/AWS?secret={FAKE_SEED}")
    assert (rec.path / EVENTS_FILE).read_bytes() == before
    rec.append("action.assume_root", "remove", SecretAccessKey="<redacted>")  # fine


def test_secret_in_files_and_run_json_is_refused_and_never_written(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    with pytest.raises(SecretRefused) as err:
        rec.write_json(
            "snapshots/creds.json", {"Credentials": {"SessionToken": FAKE_SESSION_TOKEN}}
        )
    assert "Credentials.SessionToken" in str(err.value)
    assert FAKE_SESSION_TOKEN not in str(err.value)
    assert not (rec.path / "snapshots" / "creds.json").exists()
    with pytest.raises(SecretRefused):
        rec.write_text("notes.txt", f"aws_secret_access_key = {FAKE_SECRET_KEY}\n")
    assert not (rec.path / "notes.txt").exists()
    run_before = (rec.path / RUN_FILE).read_bytes()
    with pytest.raises(SecretRefused):
        rec.update_run(seed={"Base32StringSeed": FAKE_SEED})
    assert (rec.path / RUN_FILE).read_bytes() == run_before
    with pytest.raises(SecretRefused):
        RunRecord.create(tmp_path / "runs", {"SecretAccessKey": FAKE_SECRET_KEY}, run_id="r2")
    rec.known_secrets.add("correct-horse-battery")
    with pytest.raises(SecretRefused, match="known secret"):
        rec.append("note", None, text="pw correct-horse-battery")
    for path in (tmp_path / "runs").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert FAKE_SECRET_KEY not in text and FAKE_SESSION_TOKEN not in text
            assert FAKE_SEED not in text


def test_unserializable_data_is_a_record_error(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    with pytest.raises(RecordError, match="Cannot record"):
        rec.append("x", None, value=object())
    with pytest.raises(RecordError, match="Cannot record"):
        rec.append("x", None, value=float("nan"))
    assert len(rec.events()) == 1


def test_list_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    b = RunRecord.create(runs, {"parameters": {"account_id": "222222222222"}}, run_id="20261126T2")
    a = RunRecord.create(runs, {"parameters": {"account_id": "111111111111"}}, run_id="20261126T1")
    RunRecord.create(runs, {}, run_id="20261126T3")
    b.update_run(status="halted", halted_at="approve-removal")
    b.seal(final=False, signer=signer())
    (runs / "not-a-run").mkdir()
    (runs / "stray.txt").write_text("x")
    listed = list_runs(runs)
    assert [r["run_id"] for r in listed] == ["20261126T1", "20261126T2", "20261126T3"]
    assert listed[0]["account_id"] == "111111111111" and listed[0]["status"] == "running"
    assert listed[1] == {
        "run_id": "20261126T2",
        "account_id": "222222222222",
        "status": "halted",
        "halted_at": "approve-removal",
        "created_at": b.load_run()["created_at"],
    }
    assert listed[2]["account_id"] is None
    assert a.load_run()["created_at"] == listed[0]["created_at"]
    assert list_runs(tmp_path / "missing") == []
