"""RunRecord.streamed: a large file written as it is produced, scanned a chunk at a time, on the
chain like write_text's; refused whole (nothing left behind) for a secret in any chunk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runbook_lib.errors import EvidenceExists, RunSealedError, SecretRefused
from runbook_lib.record import run as run_module
from runbook_lib.record.verify import check_integrity
from tests.keys import signer

from .helpers import FAKE_SESSION_TOKEN, make_run


def test_a_streamed_file_is_on_the_chain_like_a_written_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module, "STREAM_CHUNK", 64)  # many chunks
    rec = make_run(tmp_path / "runs")
    text = "".join(f"account {i:04d},ok\n" for i in range(500))
    with rec.streamed("out/findings.csv", once=True) as out:
        for line in text.splitlines(keepends=True):
            out.write(line)
    path = rec.path / "out" / "findings.csv"
    assert path.read_text() == text and oct(path.stat().st_mode & 0o777) == "0o600"
    event = [e for e in rec.events() if e["type"] == "file.written"][-1]
    assert event["data"] == {
        "path": "out/findings.csv",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "size": len(text.encode()),
    }
    assert check_integrity(rec.path) == []
    assert not list(path.parent.glob(".*.tmp"))
    with pytest.raises(EvidenceExists), rec.streamed("out/findings.csv", once=True) as out:
        out.write("again\n")
    assert path.read_text() == text


def test_a_secret_in_a_later_chunk_refuses_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module, "STREAM_CHUNK", 64)
    rec = make_run(tmp_path / "runs")
    before = (rec.path / "events.jsonl").read_bytes()
    with pytest.raises(SecretRefused) as err, rec.streamed("findings.json") as out:
        for i in range(50):
            out.write(f'{{"n": {i}}}\n')
        out.write(f'{{"token": "{FAKE_SESSION_TOKEN}"}}\n')
        for i in range(50):
            out.write(f'{{"n": {i}}}\n')
    assert FAKE_SESSION_TOKEN not in str(err.value)
    assert not (rec.path / "findings.json").exists()
    assert not list(rec.path.glob(".*.tmp"))
    assert (rec.path / "events.jsonl").read_bytes() == before


def test_an_error_in_the_block_leaves_nothing_and_a_final_record_refuses(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    with pytest.raises(ZeroDivisionError), rec.streamed("report.html") as out:
        out.write("<html>\n")
        _ = 1 / 0
    assert not (rec.path / "report.html").exists() and not list(rec.path.glob(".*.tmp"))
    rec.seal(final=True, signer=signer())
    with pytest.raises(RunSealedError), rec.streamed("late.txt") as out:
        out.write("late\n")
    assert not (rec.path / "late.txt").exists()


def test_the_seal_scans_again_what_changed_since_this_record_wrote_it(tmp_path: Path) -> None:
    """seal() skips a file this object wrote and scanned, only while its bytes and what it
    was scanned against are unchanged: an edit, or a secret learned since, is scanned."""
    from runbook_lib.errors import RecordError

    rec = make_run(tmp_path / "runs")
    rec.write_text("notes.txt", "harmless\n")
    with rec.streamed("big.txt") as out:
        out.write("also harmless\n")
    (rec.path / "big.txt").write_text(f"token: {FAKE_SESSION_TOKEN}\n")  # behind its back
    with pytest.raises(RecordError, match="big.txt"):
        rec.seal(final=True, signer=signer())
    (rec.path / "big.txt").write_text("also harmless\n")
    rec.known_secrets.add("harmless")  # learned after the write
    with pytest.raises(RecordError, match="notes.txt"):
        rec.seal(final=True, signer=signer())
