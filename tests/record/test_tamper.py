"""verify(): every kind of tampering with a sealed run is detected and named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from runbook_lib.record.layout import MANIFEST_FILE
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import verify
from tests.keys import signer

from .helpers import dump, events_path, ledger_path, lines, make_run, rehash, write_lines


@pytest.fixture
def sealed(tmp_path: Path) -> RunRecord:
    rec = make_run(tmp_path / "runs")
    rec.seal(signer=signer())
    report = verify(rec.path)
    assert report.ok, report.problems  # the baseline every tamper case starts from
    return rec


def problems_with(rec: RunRecord, *words: str) -> list[str]:
    report = verify(rec.path)
    assert not report.ok
    hits = [p for p in report.problems if all(w in p for w in words)]
    assert hits, f"no problem mentions {words}: {report.problems}"
    return hits


def test_edited_event_data_is_named(sealed: RunRecord) -> None:
    path = events_path(sealed)
    old = lines(path)
    event = json.loads(old[2])
    event["data"]["who"] = "mallory@example.com"
    old[2] = dump(event)
    write_lines(path, old)
    problems_with(sealed, "events.jsonl seq 3", "edited")


def test_edited_event_with_recomputed_hash_breaks_the_next_link(sealed: RunRecord) -> None:
    path = events_path(sealed)
    old = lines(path)
    event = json.loads(old[2])
    event["data"]["who"] = "mallory@example.com"
    old[2] = dump(rehash(event))
    write_lines(path, old)
    problems_with(sealed, "events.jsonl seq 4", "prev does not match")
    problems_with(sealed, "events.jsonl", "changed since the seal")


def test_rewritten_chain_is_caught_by_the_manifest(sealed: RunRecord) -> None:
    path = events_path(sealed)
    events = [json.loads(line) for line in lines(path)]
    events[2]["data"]["who"] = "mallory@example.com"
    prev = "0" * 64
    for ev in events:
        ev["prev"] = prev
        ev.update(rehash(ev))
        prev = ev["hash"]
    write_lines(path, [dump(ev) for ev in events])
    problems_with(sealed, "events.head differs")


def test_deleted_event_is_named(sealed: RunRecord) -> None:
    path = events_path(sealed)
    old = lines(path)
    n = len(old)
    del old[2]
    write_lines(path, old)
    hits = problems_with(sealed, "events.jsonl seq 4", "seq 3 missing")
    assert "deleted" in hits[0]
    problems_with(sealed, f"events.count is {n} but events.jsonl holds {n - 1}")


def test_deleted_first_event_is_named(sealed: RunRecord) -> None:
    path = events_path(sealed)
    write_lines(path, lines(path)[1:])
    problems_with(sealed, "events.jsonl seq 2", "chain start")


def test_inserted_event_is_named(sealed: RunRecord) -> None:
    path = events_path(sealed)
    old = lines(path)
    second = json.loads(old[1])
    forged = rehash(
        {
            "seq": 3,
            "time": second["time"],
            "type": "gate.approved",
            "step": "remove",
            "data": {"who": "mallory"},
            "prev": second["hash"],
        }
    )
    old.insert(2, dump(forged))
    write_lines(path, old)
    hits = problems_with(sealed, "events.jsonl seq 3 (line 4)")
    assert "inserted" in hits[0] and "prev does not match" in hits[0]


def test_swapped_events_are_named(sealed: RunRecord) -> None:
    path = events_path(sealed)
    old = lines(path)
    old[2], old[3] = old[3], old[2]
    write_lines(path, old)
    problems_with(sealed, "events.jsonl seq 4 (line 3)")
    problems_with(sealed, "events.jsonl seq 3 (line 4)", "reordered")


def test_torn_last_line_is_its_own_problem_and_append_recovers(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    path = events_path(rec)
    n = len(rec.events())  # make_run's events
    whole = rec.append("step.started", "remove", note="about to be killed mid-write")
    data = path.read_bytes()
    cut = len(json.dumps(whole)) // 2
    path.write_bytes(data[:-cut])  # the process died half-way through writing the line
    hits = problems_with(rec, f"events.jsonl line {n + 1}", "torn last line")
    assert len(hits) == 1
    assert len(rec.events()) == n  # the torn event is not one

    after = rec.append("run.resumed", None)  # the torn fragment is closed off, not glued to
    assert after["seq"] == n + 1 and after["prev"] == rec.events()[-2]["hash"]
    assert path.read_bytes().count(b"\n") == n + 2
    rec.seal(signer=signer())
    report = verify(rec.path)
    assert [p for p in report.problems if f"line {n + 1}" in p] == [
        f"events.jsonl line {n + 1}: not a valid entry (torn or edited)"
    ]
    assert len(report.problems) == 1, report.problems


def test_changed_notebook_byte_is_named(sealed: RunRecord) -> None:
    nb = sealed.path / "notebooks" / "01-remove.ipynb"
    raw = bytearray(nb.read_bytes())
    raw[raw.index(b"123456789012")] = ord("9")
    nb.write_bytes(bytes(raw))
    problems_with(sealed, "notebooks/01-remove.ipynb", "changed")


def test_stray_file_is_named(sealed: RunRecord) -> None:
    (sealed.path / "snapshots" / "extra.json").write_text("{}")
    problems_with(sealed, "snapshots/extra.json", "not in the manifest")


def test_deleted_file_is_named(sealed: RunRecord) -> None:
    (sealed.path / "snapshots" / "before.json").unlink()
    problems_with(sealed, "snapshots/before.json", "missing")


def test_deleted_manifest_means_not_sealed(sealed: RunRecord) -> None:
    (sealed.path / MANIFEST_FILE).unlink()
    problems_with(sealed, "not sealed")


def test_manifest_rewritten_to_match_a_tampered_file_is_caught_by_the_ledger(
    sealed: RunRecord,
) -> None:
    before = sealed.path / "snapshots" / "before.json"
    before.write_text('{"mfa_devices": []}\n')
    manifest_path = sealed.path / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    data = before.read_bytes()
    manifest["files"]["snapshots/before.json"] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    report = verify(sealed.path)
    assert report.problems == [  # the ledger catches the manifest, the event chain the file,
        # and the signed SHA256SUMS no longer lists the manifest's digests
        "snapshots/before.json: differs from what the event chain recorded (edited)",
        "SHA256SUMS: does not list exactly the manifest's files and digests",
        next(p for p in report.problems if "ledger" in p and "rewritten" in p),
    ], report.problems


def test_edited_ledger_is_named(sealed: RunRecord) -> None:
    path = ledger_path(sealed)
    old = lines(path)
    entry = json.loads(old[0])
    entry["manifest_sha256"] = "f" * 64
    old[0] = dump(entry)
    write_lines(path, old)
    problems_with(sealed, "ledger.jsonl seq 1", "edited")
    problems_with(sealed, "differs from the ledger")


def test_deleted_ledger_entry_is_named(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    other = make_run(runs, run_id="20261126T000000Z-aaaa")
    other.seal(signer=signer())
    rec = make_run(runs)
    rec.seal(final=False, signer=signer())
    rec.seal(signer=signer())
    assert verify(rec.path).ok and verify(other.path).ok
    path = ledger_path(rec)
    old = lines(path)
    del old[1]  # this run's checkpoint entry
    write_lines(path, old)
    problems_with(rec, "ledger.jsonl seq 3", "seq 2 missing")
    problems_with(other, "ledger.jsonl seq 3")  # the ledger is shared: every run sees it


def test_manifest_of_another_run_is_named(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    a = make_run(runs, run_id="20261126T000000Z-aaaa")
    b = make_run(runs, run_id="20261126T000000Z-bbbb")
    a.seal(signer=signer())
    b.seal(signer=signer())
    (b.path / MANIFEST_FILE).write_bytes((a.path / MANIFEST_FILE).read_bytes())
    problems_with(b, "manifest.json", "run_id")
