"""check_integrity(): what is wrong with a run about to be continued or sealed, a sentence each."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runbook_lib.record.layout import MANIFEST_FILE, RUN_FILE
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import check_integrity
from tests.keys import signer

from .helpers import dump, events_path, ledger_path, lines, make_run, rehash, write_lines

NB = "notebooks/01-remove.ipynb"
OTHER_UID = 54321

needs_root = pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")


def only(problems: list[str], *words: str) -> str:
    """The one problem, naming every word; fails listing them all otherwise."""
    hits = [p for p in problems if all(w in p for w in words)]
    assert len(hits) == 1, f"want one problem with {words}: {problems}"
    return hits[0]


@pytest.fixture
def rec(tmp_path: Path) -> RunRecord:
    rec = make_run(tmp_path / "runs")
    assert check_integrity(rec.path) == []
    return rec


def test_clean_runs_have_no_problems_at_every_stage(rec: RunRecord) -> None:
    rec.seal(final=False, signer=signer())
    assert check_integrity(rec.path) == []
    rec.append("run.resumed", None)  # events after the checkpoint are normal for a resumed run
    rec.write_text("report.html", "<p>later</p>")
    assert check_integrity(rec.path) == []
    rec.seal(signer=signer())
    assert check_integrity(rec.path) == []


def test_symlinked_run_dir_is_not_followed(rec: RunRecord, tmp_path: Path) -> None:
    link = tmp_path / "runs" / "link-to-run"
    link.symlink_to(rec.path)
    problems = check_integrity(link)
    assert problems == [only(problems, str(link), "symbolic link", "not followed")]


def test_symlinks_inside_the_run_are_named(rec: RunRecord, tmp_path: Path) -> None:
    (tmp_path / "outside.json").write_text("{}")
    (rec.path / "snapshots" / "after.json").symlink_to(tmp_path / "outside.json")
    (rec.path / "elsewhere").symlink_to(tmp_path)
    problems = check_integrity(rec.path)
    only(problems, "snapshots/after.json", "symbolic link")
    only(problems, "elsewhere", "symbolic link")
    assert len(problems) == 2, problems


def test_loose_modes_are_named_with_the_chmod_that_fixes_them(rec: RunRecord) -> None:
    os.chmod(rec.path / "snapshots", 0o755)
    os.chmod(rec.path / "snapshots" / "before.json", 0o644)
    os.chmod(rec.path, 0o750)
    problems = check_integrity(rec.path)
    d = only(problems, "snapshots: mode 0755, should be 0700")
    assert f"`chmod 700 {rec.path / 'snapshots'}`" in d
    f = only(problems, "snapshots/before.json: mode 0644, should be 0600")
    assert f"`chmod 600 {rec.path / 'snapshots' / 'before.json'}`" in f
    only(problems, f"{rec.path}: mode 0750, should be 0700", "chmod 700")
    assert len(problems) == 3, problems
    os.chmod(rec.path / "snapshots", 0o700)
    os.chmod(rec.path / "snapshots" / "before.json", 0o600)
    os.chmod(rec.path, 0o700)
    assert check_integrity(rec.path) == []


@needs_root
def test_foreign_owners_are_named_and_chmod_is_not_offered_for_their_files(
    rec: RunRecord,
) -> None:
    nb = rec.path / NB
    os.chown(nb, OTHER_UID, -1)
    os.chmod(nb, 0o644)
    os.chown(rec.path / "snapshots", OTHER_UID, -1)
    problems = check_integrity(rec.path)
    only(problems, NB, f"owned by uid {OTHER_UID}", "not by you")
    only(problems, "snapshots:", f"owned by uid {OTHER_UID}")
    mode = only(problems, NB, "mode 0644")
    assert "chmod" not in mode and "not yours" in mode
    assert len(problems) == 3, problems


def test_unsafe_runs_dir_is_named(rec: RunRecord, tmp_path: Path) -> None:
    os.chmod(rec.runs_dir, 0o777)
    problems = check_integrity(rec.path)
    text = only(problems, "runs directory", "group- or other-writable", "0777")
    assert f"`chmod 700 {rec.runs_dir}`" in text
    os.chmod(rec.runs_dir, 0o755)  # readable by others is fine, writable is not
    assert check_integrity(rec.path) == []

    link = tmp_path / "runs-link"
    link.symlink_to(rec.runs_dir)
    problems = check_integrity(link / rec.run_id)
    only(problems, "runs directory", str(link), "symbolic link")


@needs_root
def test_runs_dir_of_another_user_is_named(rec: RunRecord) -> None:
    os.chown(rec.runs_dir, OTHER_UID, -1)
    problems = check_integrity(rec.path)
    assert problems == [only(problems, "runs directory", f"owned by uid {OTHER_UID}")]


def test_broken_events_chain_is_named(rec: RunRecord) -> None:
    path = events_path(rec)
    old = lines(path)
    event = json.loads(old[2])
    event["data"]["who"] = "mallory@example.com"
    old[2] = dump(event)
    write_lines(path, old)
    problems = check_integrity(rec.path)
    assert problems == [only(problems, "events.jsonl seq 3", "edited")]


def test_broken_ledger_chain_is_named(rec: RunRecord) -> None:
    rec.seal(final=False, signer=signer())
    path = ledger_path(rec)
    entry = json.loads(lines(path)[0])
    entry["final"] = True
    write_lines(path, [dump(entry)])
    problems = check_integrity(rec.path)
    only(problems, "ledger.jsonl seq 1", "edited")


def test_manifest_the_ledger_does_not_point_at_is_named(rec: RunRecord) -> None:
    rec.seal(final=False, signer=signer())
    manifest_path = rec.path / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["sealed_at"] = "2026-01-01T00:00:00+00:00"
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    problems = check_integrity(rec.path)
    assert problems == [only(problems, "manifest.json", "ledger's latest entry", "rewritten")]


def test_manifest_without_a_ledger_entry_is_named(rec: RunRecord) -> None:
    rec.seal(final=False, signer=signer())
    ledger_path(rec).unlink()
    problems = check_integrity(rec.path)
    assert problems == [only(problems, "ledger.jsonl", "no entry for run", rec.run_id)]


def test_events_rewritten_before_the_checkpoint_are_named(rec: RunRecord) -> None:
    """A chain rewritten from the start links up and its files still match, but the checkpoint's
    events.head no longer names its event."""
    rec.seal(final=False, signer=signer())
    rec.append("run.resumed", None)
    path = events_path(rec)
    events = [json.loads(line) for line in lines(path)]
    events[2]["data"]["who"] = "mallory@example.com"
    prev = "0" * 64
    for ev in events:
        ev["prev"] = prev
        ev.update(rehash(ev))
        prev = ev["hash"]
    write_lines(path, [dump(ev) for ev in events])
    problems = check_integrity(rec.path)
    text = only(problems, "manifest.json: events.head is not the hash of event 7")
    assert "rewritten" in text
    assert len(problems) == 1, problems


def test_events_deleted_before_the_checkpoint_are_named(rec: RunRecord) -> None:
    rec.seal(final=False, signer=signer())
    path = events_path(rec)
    write_lines(path, lines(path)[:-2])
    problems = check_integrity(rec.path)
    only(problems, "manifest.json", "no event 7", "deleted")


def test_files_against_the_chain_and_allow_unrecorded(rec: RunRecord) -> None:
    rec.seal(final=False, signer=signer())
    (rec.path / "notebooks" / "02-verify.ipynb").write_text("{}")  # papermill, not recorded
    os.chmod(rec.path / "notebooks" / "02-verify.ipynb", 0o600)
    (rec.path / NB).write_text("{}")  # edited
    (rec.path / "snapshots" / "before.json").unlink()  # deleted
    problems = check_integrity(rec.path)
    assert sorted(problems) == [
        only(problems, NB, "differs from what the event chain recorded (edited)"),
        only(problems, "notebooks/02-verify.ipynb", "not recorded in the event chain"),
        only(problems, "snapshots/before.json", "missing", "event chain recorded it"),
    ]
    # the notebooks of the steps about to be re-executed
    allowed = check_integrity(rec.path, allow_unrecorded=[NB, "notebooks/02-verify.ipynb"])
    assert allowed == [only(problems, "snapshots/before.json", "missing")]
    # allowing a file does not excuse a link or a loose mode
    os.chmod(rec.path / NB, 0o644)
    allowed = check_integrity(rec.path, allow_unrecorded=(NB, "snapshots/before.json"))
    assert len(allowed) == 2, allowed
    only(allowed, "notebooks/02-verify.ipynb", "not recorded")
    only(allowed, NB, "mode 0644, should be 0600")


def test_missing_or_odd_run_dir(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir(mode=0o700)
    problems = check_integrity(tmp_path / "runs" / "nope")
    assert problems == [only(problems, "nope", "cannot be read")]
    rec = RunRecord.create(tmp_path / "runs", {})
    os.mkfifo(rec.path / "pipe", 0o600)
    problems = check_integrity(rec.path)
    only(problems, "pipe", "neither a regular file nor a directory")
    (rec.path / "pipe").unlink()
    (rec.path / RUN_FILE).unlink()
    (rec.path / RUN_FILE).symlink_to(tmp_path / "elsewhere.json")
    problems = check_integrity(rec.path)
    only(problems, "run.json", "symbolic link")
