"""Writes that fail (disk full, file too large, read-only) leave the record as it was.

A small tmpfs stands in for a full disk (mounting it needs root: skipped otherwise); EFBIG comes
from RLIMIT_FSIZE in a child process; failures after the event is written (fsync, putting the
file in place) are injected.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.errors import RecordError, RecordIOError
from runbook_lib.record.chain import read_chain
from runbook_lib.record.layout import EVENTS_FILE, LEDGER_FILE, MANIFEST_FILE, RUN_FILE
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import verify
from tests.keys import signer

from .helpers import events_path, make_run

NB = "notebooks/01-remove.ipynb"
TAIL = (
    ". The record is as it was before this write; fix the cause (free space, permissions), "
    "then resume the run."
)


def _mount(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs, unmounted afterwards."""
    if os.getuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir(mode=0o700)
    try:
        done = _mount(["-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mnt)])
    except FileNotFoundError:
        pytest.skip("no mount command")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        chunk = b"\0" * 65536
        while True:
            try:
                os.write(fd, chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
                if len(chunk) == 1:
                    return
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)


def snapshot(rec: RunRecord) -> dict[str, bytes]:
    """Every file under the runs dir (the filler aside), by path."""
    out: dict[str, bytes] = {}
    for path in sorted(rec.runs_dir.rglob("*")):
        if path.is_file() and path.name != "filler":
            out[str(path.relative_to(rec.runs_dir))] = path.read_bytes()
    return out


def assert_clean_failure(
    err: pytest.ExceptionInfo[RecordIOError], rec: RunRecord, code: int
) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert message == f"Could not write the run record {rec.path}: {os.strerror(code)}{TAIL}"
    assert isinstance(err.value.__cause__, OSError) and err.value.__cause__.errno == code
    assert err.value.errno == code and isinstance(err.value, RecordError)
    data = events_path(rec).read_bytes()
    assert data.endswith(b"\n")
    assert read_chain(events_path(rec), EVENTS_FILE).problems == []
    assert not [p for p in rec.runs_dir.rglob(".*.tmp")]


def test_disk_full_every_write_fails_cleanly_then_resumes(small_fs: Path) -> None:
    rec = make_run(small_fs / "runs")
    rec.seal(final=False, signer=signer())
    filler = small_fs / "filler"
    fill(filler)
    before = snapshot(rec)

    # big enough to need new pages: partly written, then ENOSPC; cut back to where it was
    with pytest.raises(RecordIOError) as err:
        rec.append("evidence.cloudtrail", "verify", events=["x" * 200] * 400)
    assert_clean_failure(err, rec, errno.ENOSPC)
    assert snapshot(rec) == before

    with pytest.raises(RecordIOError) as err:
        rec.write_json("snapshots/after.json", {"mfa_devices": []})
    assert_clean_failure(err, rec, errno.ENOSPC)
    with pytest.raises(RecordIOError) as err:
        rec.write_text(NB, "overwritten")
    assert_clean_failure(err, rec, errno.ENOSPC)
    with pytest.raises(RecordIOError) as err:
        rec.update_run(status="done")
    assert_clean_failure(err, rec, errno.ENOSPC)
    assert snapshot(rec) == before
    with pytest.raises(RecordIOError) as err:
        rec.seal(signer=signer())
    assert_clean_failure(err, rec, errno.ENOSPC)
    assert snapshot(rec) == before  # no ledger entry, the checkpoint's manifest untouched
    assert not rec.sealed_final

    filler.unlink()  # the operator frees space and resumes
    rec.append("run.resumed", None)
    rec.write_json("snapshots/after.json", {"mfa_devices": []})
    rec.update_run(status="done")
    rec.seal(signer=signer())
    report = verify(rec.path)
    assert report.ok, report.problems


def test_read_only_file_system_every_write_fails_cleanly(small_fs: Path) -> None:
    rec = make_run(small_fs / "runs")
    nb2 = rec.path / "notebooks" / "02-verify.ipynb"
    nb2.write_text("{}")
    os.chmod(nb2, 0o644)
    before = snapshot(rec)
    done = _mount(["-o", "remount,ro", str(small_fs)])
    assert done.returncode == 0, done.stderr
    try:
        calls: list[tuple[str, Any]] = [
            ("append", lambda: rec.append("step.started", "verify")),
            ("write_json", lambda: rec.write_json("snapshots/after.json", {})),
            ("write_text", lambda: rec.write_text("notes.txt", "x")),
            ("record_file", lambda: rec.record_file("notebooks/02-verify.ipynb")),
            ("move_aside", lambda: rec.move_aside(NB, "notebooks/01-remove.1.ipynb")),
            ("update_run", lambda: rec.update_run(status="done")),
            ("seal", lambda: rec.seal(signer=signer())),
        ]
        for name, call in calls:
            with pytest.raises(RecordIOError) as err:
                call()
            assert_clean_failure(err, rec, errno.EROFS)
            assert snapshot(rec) == before, name
        assert snapshot(rec) == before
    finally:
        assert _mount(["-o", "remount,rw", str(small_fs)]).returncode == 0
    rec.record_file("notebooks/02-verify.ipynb")
    rec.seal(signer=signer())
    assert verify(rec.path).ok


_EFBIG = """
import json, resource, signal, sys
from pathlib import Path
from runbook_lib.errors import RecordIOError
from runbook_lib.record.run import RunRecord
rec = RunRecord.open(Path(sys.argv[1]))
size = (rec.path / "events.jsonl").stat().st_size
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1000, resource.RLIM_INFINITY))
out = {}
try:
    rec.append("evidence.cloudtrail", "verify", blob="x" * 5000)
except RecordIOError as err:
    out = {"message": str(err), "errno": err.__cause__.errno}
out["size"] = (rec.path / "events.jsonl").stat().st_size
print(json.dumps(out))
"""


def test_file_too_large_is_cut_back_in_a_child_process(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    before = events_path(rec).read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", _EFBIG, str(rec.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out.get("errno") == errno.EFBIG, out
    assert out["message"] == f"Could not write the run record {rec.path}: File too large{TAIL}"
    assert out["size"] == len(before)
    assert events_path(rec).read_bytes() == before
    rec.append("evidence.cloudtrail", "verify", blob="x" * 5000)
    rec.seal(signer=signer())
    assert verify(rec.path).ok


# --- failures after the entry is written: it is taken back ------------------------------------


def test_fsync_failure_takes_the_written_line_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = make_run(tmp_path / "runs")
    before = events_path(rec).read_bytes()
    real_fsync = os.fsync
    calls: list[int] = []

    def failing_fsync(fd: int) -> None:
        # the line is in the file when fsync fails: it must not stay there
        if not calls and os.fstat(fd).st_size > len(before):
            calls.append(fd)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(RecordIOError) as err:
        rec.append("step.started", "verify")
    assert calls and "Input/output error" in str(err.value)
    assert events_path(rec).read_bytes() == before
    monkeypatch.undo()
    rec.append("step.started", "verify")
    rec.seal(signer=signer())
    assert verify(rec.path).ok


def _fail_for(monkeypatch: pytest.MonkeyPatch, name: str, suffix: str) -> list[str]:
    """Make ``os.<name>`` fail (ENOSPC) when its target ends with ``suffix``."""
    real = getattr(os, name)
    failed: list[str] = []

    def fake(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        if str(dst).endswith(suffix):
            failed.append(str(dst))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, name, fake)
    return failed


def test_file_not_put_in_place_takes_its_event_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = make_run(tmp_path / "runs")
    before = snapshot(rec)
    failed = _fail_for(monkeypatch, "replace", "snapshots/before.json")
    with pytest.raises(RecordIOError):
        rec.write_json("snapshots/before.json", {"mfa_devices": []})
    assert failed and snapshot(rec) == before
    assert not list((rec.path / "snapshots").glob(".*"))


def test_move_not_done_takes_its_event_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = make_run(tmp_path / "runs")
    before = snapshot(rec)
    failed = _fail_for(monkeypatch, "rename", "01-remove.1.ipynb")
    with pytest.raises(RecordIOError):
        rec.move_aside(NB, "notebooks/01-remove.1.ipynb")
    assert failed and snapshot(rec) == before


def test_manifest_not_put_in_place_takes_the_ledger_entry_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = make_run(tmp_path / "runs")
    rec.seal(final=False, signer=signer())
    before = snapshot(rec)
    assert LEDGER_FILE in before
    failed = _fail_for(monkeypatch, "replace", MANIFEST_FILE)
    with pytest.raises(RecordIOError):
        rec.seal(signer=signer())
    assert failed and snapshot(rec) == before
    assert not list(rec.path.glob(".*"))
    monkeypatch.undo()
    rec.seal(signer=signer())
    assert verify(rec.path).ok


def test_run_json_not_replaced_leaves_it_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = make_run(tmp_path / "runs")
    before = snapshot(rec)
    failed = _fail_for(monkeypatch, "replace", RUN_FILE)
    with pytest.raises(RecordIOError):
        rec.update_run(status="done")
    assert failed and snapshot(rec) == before
    assert not list(rec.path.glob(".*"))
