"""Every file of a run is on the event chain: written, recorded, moved; checked by verify, seal."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from runbook_lib.errors import EvidenceExists, RecordError, RunSealedError
from runbook_lib.record import run as record_mod
from runbook_lib.record.layout import EVENTS_FILE, LEDGER_FILE, LOCK_FILE, MANIFEST_FILE, RUN_FILE
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import verify
from tests.keys import signer

from .helpers import NOTEBOOK, events_path, ledger_path, make_run

NB = "notebooks/01-remove.ipynb"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_events(rec: RunRecord) -> list[dict[str, object]]:
    return [e for e in rec.events() if str(e["type"]).startswith("file.")]


def state(rec: RunRecord) -> tuple[bytes, bytes, bool]:
    """What a refused operation must leave alone: events, ledger, manifest's existence."""
    ledger = ledger_path(rec)
    return (
        events_path(rec).read_bytes(),
        ledger.read_bytes() if ledger.exists() else b"",
        (rec.path / MANIFEST_FILE).exists(),
    )


def papermill_writes(rec: RunRecord, relpath: str, content: str, mode: int = 0o644) -> Path:
    """Someone else (papermill, JupyterLab) writes a file into the run, with its own mode."""
    path = rec.path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    os.chmod(path, mode)
    return path


# --- write_json / write_text ------------------------------------------------------------------


def test_writes_append_file_written_with_digest_size_and_step(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    path = rec.write_json("snapshots/before.json", {"mfa_devices": []}, step="preflight")
    text_path = rec.write_text("notes/a.txt", "héllo\n")
    events = file_events(rec)
    assert [e["type"] for e in events] == ["file.written", "file.written"]
    data = path.read_bytes()
    assert events[0]["step"] == "preflight"
    assert events[0]["data"] == {
        "path": "snapshots/before.json",
        "sha256": sha(data),
        "size": len(data),
    }
    raw = text_path.read_bytes()
    assert events[1]["step"] is None
    assert events[1]["data"] == {"path": "notes/a.txt", "sha256": sha(raw), "size": len(raw)}
    assert events[1]["prev"] == events[0]["hash"]


def test_relpath_is_recorded_normalized(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    rec.write_text("snapshots/./x.txt", "x")
    assert file_events(rec)[0]["data"]["path"] == "snapshots/x.txt"  # type: ignore[index]
    rec.seal(signer=signer())
    assert verify(rec.path).ok, verify(rec.path).problems


def test_rewriting_a_file_records_each_version_and_verifies(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    rec.write_text("report.html", "<p>one</p>")
    rec.seal(final=False, signer=signer())
    rec.write_text("report.html", "<p>two, longer</p>")
    rec.seal(signer=signer())
    assert len(file_events(rec)) == 2
    report = verify(rec.path)
    assert report.ok, report.problems


def test_once_refuses_an_existing_file_and_writes_nothing(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    first = rec.write_json("snapshots/before.json", {"mfa_devices": ["a"]}, once=True)
    content = first.read_bytes()
    before = state(rec)
    with pytest.raises(EvidenceExists) as err:
        rec.write_json("snapshots/before.json", {"mfa_devices": []}, once=True)
    assert "snapshots/before.json" in str(err.value) and "write-once" in str(err.value)
    with pytest.raises(EvidenceExists, match="write-once"):
        rec.write_text("snapshots/before.json", "{}", once=True)
    assert isinstance(err.value, RecordError)
    assert first.read_bytes() == content and state(rec) == before
    assert not list(first.parent.glob(".*.tmp"))
    # a file put there by someone else is evidence too
    papermill_writes(rec, "snapshots/other.json", "{}")
    with pytest.raises(EvidenceExists, match="snapshots/other.json"):
        rec.write_json("snapshots/other.json", {"x": 1}, once=True)
    assert (rec.path / "snapshots/other.json").read_text() == "{}"
    assert state(rec) == before


def test_once_refuses_a_recorded_file_that_was_deleted(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    path = rec.write_json("snapshots/before.json", {"mfa_devices": ["a"]}, once=True)
    path.unlink()  # deleting evidence must not free its name
    before = state(rec)
    with pytest.raises(EvidenceExists, match="missing"):
        rec.write_json("snapshots/before.json", {"mfa_devices": []}, once=True)
    assert not path.exists() and state(rec) == before


def test_write_without_once_overwrites_and_a_new_name_with_once_is_fine(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    rec.write_json("summary.json", {"a": 1})
    rec.write_json("summary.json", {"a": 2})
    assert json.loads((rec.path / "summary.json").read_text()) == {"a": 2}
    rec.write_json("new/deep/once.json", {"b": 1}, once=True)
    assert [e["data"]["path"] for e in file_events(rec)] == [  # type: ignore[index]
        "summary.json",
        "summary.json",
        "new/deep/once.json",
    ]


# --- record_file ------------------------------------------------------------------------------


def test_record_file_tightens_mode_and_appends_file_recorded(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    path = papermill_writes(rec, NB, json.dumps(NOTEBOOK), mode=0o664)
    event = rec.record_file(NB, step="remove")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert event["type"] == "file.recorded" and event["step"] == "remove"
    assert event["data"] == {"path": NB, "sha256": sha(data), "size": len(data)}
    assert rec.events()[-1] == event
    rec.seal(signer=signer())
    report = verify(rec.path)
    assert report.ok, report.problems


def test_record_file_refuses_a_symlink_and_leaves_its_target_alone(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    outside = tmp_path / "outside.txt"
    outside.write_text("not evidence")
    os.chmod(outside, 0o644)
    (rec.path / "notebooks").mkdir()
    (rec.path / NB).symlink_to(outside)
    before = state(rec)
    with pytest.raises(RecordError, match="symbolic link"):
        rec.record_file(NB)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
    assert state(rec) == before


def test_record_file_refuses_a_symlinked_directory(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "01-remove.ipynb").write_text("{}")
    os.chmod(outside / "01-remove.ipynb", 0o644)
    (rec.path / "notebooks").symlink_to(outside)
    before = state(rec)
    with pytest.raises(RecordError, match="notebooks is a symbolic link"):
        rec.record_file(NB)
    assert stat.S_IMODE((outside / "01-remove.ipynb").stat().st_mode) == 0o644
    assert state(rec) == before


def test_record_file_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    (rec.path / "adir").mkdir()
    os.mkfifo(rec.path / "fifo")
    before = state(rec)
    for relpath in ("adir", "fifo"):
        with pytest.raises(RecordError, match="not a regular file"):
            rec.record_file(relpath)
    with pytest.raises(RecordError, match="does not exist"):
        rec.record_file("notebooks/missing.ipynb")
    assert state(rec) == before


@pytest.mark.parametrize(
    "relpath",
    [
        "../outside.txt",
        "/etc/passwd",
        "a/../../outside.txt",
        RUN_FILE,
        EVENTS_FILE,
        MANIFEST_FILE,
        LOCK_FILE,
        "",
    ],
)
def test_record_file_refuses_paths_outside_and_the_records_own(
    tmp_path: Path, relpath: str
) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    (tmp_path / "runs" / "outside.txt").write_text("x")
    before = state(rec)
    with pytest.raises(RecordError, match="Refused path"):
        rec.record_file(relpath)
    assert state(rec) == before


def test_record_file_is_refused_after_the_final_seal(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    rec.seal(signer=signer())
    path = papermill_writes(rec, NB, "{}", mode=0o644)
    with pytest.raises(RunSealedError):
        rec.record_file(NB)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # nothing done to it


# --- move_aside -------------------------------------------------------------------------------


def test_move_aside_keeps_the_earlier_attempt_and_verifies(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    papermill_writes(rec, NB, '{"attempt": 1}')
    recorded = rec.record_file(NB, step="remove")
    event = rec.move_aside(NB, "notebooks/attempts/01-remove.1.ipynb", step="remove")
    assert not (rec.path / NB).exists()
    moved = rec.path / "notebooks/attempts/01-remove.1.ipynb"
    assert moved.read_text() == '{"attempt": 1}'
    assert event["type"] == "file.moved" and event["step"] == "remove"
    assert event["data"] == {
        "from": NB,
        "to": "notebooks/attempts/01-remove.1.ipynb",
        "sha256": recorded["data"]["sha256"],
    }
    papermill_writes(rec, NB, '{"attempt": 2}')  # the re-execution writes the old name again
    rec.record_file(NB, step="remove")
    rec.seal(signer=signer())
    report = verify(rec.path)
    assert report.ok, report.problems
    # the moved-aside file is still guarded under its new name
    moved.write_text('{"attempt": 0}')
    assert (
        "notebooks/attempts/01-remove.1.ipynb: differs from what the event chain recorded "
        "(edited)" in verify(rec.path).problems
    )


def test_move_aside_refuses_an_existing_target(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    rec.write_text("notebooks/01-remove.1.ipynb", "{}")
    before = state(rec)
    with pytest.raises(EvidenceExists, match="already exists"):
        rec.move_aside(NB, "notebooks/01-remove.1.ipynb")
    assert (rec.path / NB).exists() and state(rec) == before
    assert (rec.path / "notebooks/01-remove.1.ipynb").read_text() == "{}"
    with pytest.raises(RecordError, match="onto itself"):
        rec.move_aside(NB, "notebooks/./01-remove.ipynb")


def test_move_aside_refuses_unrecorded_and_edited_files(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    papermill_writes(rec, "notebooks/stray.ipynb", "{}")
    before = state(rec)
    with pytest.raises(RecordError, match="not recorded in the event chain"):
        rec.move_aside("notebooks/stray.ipynb", "notebooks/stray.1.ipynb")
    (rec.path / NB).write_text("edited")  # moving it would launder the edit
    with pytest.raises(RecordError, match="differs from what the event chain recorded"):
        rec.move_aside(NB, "notebooks/01-remove.1.ipynb")
    assert (rec.path / NB).read_text() == "edited"
    assert not (rec.path / "notebooks/01-remove.1.ipynb").exists()
    assert state(rec) == before
    with pytest.raises(RecordError, match="Refused path"):
        rec.move_aside(NB, "../escaped.ipynb")
    with pytest.raises(RecordError, match="Refused path"):
        rec.move_aside(NB, EVENTS_FILE)
    assert state(rec) == before


# --- verify() and seal() against the chain ----------------------------------------------------


def test_verify_names_files_that_disagree_with_the_chain_even_if_the_manifest_agrees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest made over tampered files (as seal() did before it checked the chain) does
    not make them verify: the chain still says what was written."""
    rec = make_run(tmp_path / "runs")
    (rec.path / "snapshots/before.json").write_text('{"mfa_devices": []}\n')
    (rec.path / "snapshots/planted.json").write_text("{}")
    (rec.path / NB).unlink()
    monkeypatch.setattr(record_mod, "check_files", lambda *a, **k: [])
    rec.seal(signer=signer())
    monkeypatch.undo()
    report = verify(rec.path)
    assert sorted(report.problems) == [
        "notebooks/01-remove.ipynb: missing, though the event chain recorded it (seq 7, "
        "file.written) and no file.moved took it away (deleted or moved behind the record's "
        "back)",
        "snapshots/before.json: differs from what the event chain recorded (edited)",
        "snapshots/planted.json: not recorded in the event chain (added outside the record)",
    ], report.problems


def test_checkpoint_then_edit_then_reseal_is_caught(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    rec.seal(final=False, signer=signer())
    assert verify(rec.path).ok
    (rec.path / "snapshots/before.json").write_text('{"mfa_devices": []}\n')
    before = state(rec)
    manifest = (rec.path / MANIFEST_FILE).read_bytes()
    with pytest.raises(RecordError) as err:
        rec.seal(final=False, signer=signer())
    assert "snapshots/before.json: differs from what the event chain recorded" in str(err.value)
    assert "Nothing was written" in str(err.value)
    assert state(rec) == before and (rec.path / MANIFEST_FILE).read_bytes() == manifest
    report = verify(rec.path)
    assert "snapshots/before.json: differs from what the event chain recorded (edited)" in (
        report.problems
    )


@pytest.mark.parametrize("final", [True, False])
def test_seal_refuses_every_disagreement_and_names_each_file(tmp_path: Path, final: bool) -> None:
    rec = make_run(tmp_path / "runs")
    papermill_writes(rec, "notebooks/02-verify.ipynb", "{}")  # executed, never recorded
    (rec.path / "snapshots/before.json").write_text("{}")  # edited
    (rec.path / NB).unlink()  # deleted
    (rec.path / "link").symlink_to(tmp_path)  # not a file at all
    before = state(rec)
    with pytest.raises(RecordError) as err:
        rec.seal(final=final, signer=signer())
    message = str(err.value)
    for name in ("notebooks/02-verify.ipynb", "snapshots/before.json", NB, "link"):
        assert name in message
    assert "no ledger entry, no manifest" in message
    assert state(rec) == before
    assert not (rec.path / MANIFEST_FILE).exists() and not (rec.runs_dir / LEDGER_FILE).exists()

    # put right through the record, the run seals and verifies
    (rec.path / "link").unlink()
    rec.record_file("notebooks/02-verify.ipynb")
    rec.write_json("snapshots/before.json", {"mfa_devices": []})
    rec.write_text(NB, json.dumps(NOTEBOOK))
    rec.seal(final=final, signer=signer())
    report = verify(rec.path)
    assert report.ok, report.problems


def test_an_event_claiming_a_file_is_refused_from_append(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    papermill_writes(rec, "planted.json", "{}")
    before = state(rec)
    data = (rec.path / "planted.json").read_bytes()
    for kind in ("file.written", "file.recorded", "file.moved", "run.created"):
        with pytest.raises(RecordError, match="record's own"):
            rec.append(kind, None, path="planted.json", sha256=sha(data), size=len(data))
    assert state(rec) == before


def test_malformed_file_events_are_named(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    # bypass append's refusal the way a forged (but correctly chained) event would
    rec._append("file.written", None, {"path": "x.json"})
    rec._append("file.moved", None, {"from": "x.json"})
    problems = verify(rec.path).problems
    assert "events.jsonl seq 2: file.written without path, sha256 and size" in problems
    assert "events.jsonl seq 3: file.moved without from, to and sha256" in problems
