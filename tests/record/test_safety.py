"""Directories and links: an unsafe runs dir is refused before anything is made, links are
never written through, and new directories are 0700 whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook_lib.errors import RecordError
from runbook_lib.record.layout import EVENTS_FILE, LEDGER_FILE, LOCK_FILE, RUN_FILE
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import verify
from tests.keys import signer

from .helpers import make_run

OTHER_UID = 54321


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# --- create -----------------------------------------------------------------------------------


def test_create_refuses_a_symlinked_runs_dir_before_creating_anything(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "runs").symlink_to(real)
    with pytest.raises(RecordError) as err:
        RunRecord.create(tmp_path / "runs", {}, run_id="r1")
    assert "symbolic link" in str(err.value) and str(tmp_path / "runs") in str(err.value)
    assert "Nothing was created" in str(err.value)
    assert tree(real) == []


@pytest.mark.parametrize("loose", [0o777, 0o770, 0o702, 0o1777], ids=oct)
def test_create_refuses_a_group_or_other_writable_runs_dir(tmp_path: Path, loose: int) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    os.chmod(runs, loose)
    with pytest.raises(RecordError) as err:
        RunRecord.create(runs, {}, run_id="r1")
    message = str(err.value)
    assert "group- or other-writable" in message and f"`chmod 700 {runs}`" in message
    assert f"mode {loose:04o}" in message
    assert tree(runs) == [] and mode(runs) == loose  # nothing made, nothing "fixed"


def test_create_accepts_a_runs_dir_others_can_only_read(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    os.chmod(runs, 0o755)
    rec = RunRecord.create(runs, {}, run_id="r1")
    assert mode(rec.path) == 0o700


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")
def test_create_refuses_a_runs_dir_of_another_user(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o700)
    os.chown(runs, OTHER_UID, -1)
    with pytest.raises(RecordError) as err:
        RunRecord.create(runs, {}, run_id="r1")
    assert f"owned by uid {OTHER_UID}" in str(err.value) and "chmod 700" in str(err.value)
    assert tree(runs) == []


def test_create_refuses_a_runs_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("x")
    with pytest.raises(RecordError, match="not a directory"):
        RunRecord.create(tmp_path / "runs", {}, run_id="r1")


@pytest.mark.usefixtures("open_umask")
def test_new_runs_dir_and_its_parents_are_0700_under_umask_000(tmp_path: Path) -> None:
    top = tmp_path / "top"
    runs = top / "deep" / "runs"
    rec = make_run(runs)
    rec.seal(signer=signer())
    for path in (top, top / "deep", runs, rec.path, rec.path / "snapshots"):
        assert mode(path) == 0o700, f"{path}: {oct(mode(path))}"
    files = [p for p in runs.rglob("*") if p.is_file()]
    assert len(files) >= 7
    for path in files:
        assert mode(path) == 0o600, f"{path}: {oct(mode(path))}"


# --- open -------------------------------------------------------------------------------------


def test_open_refuses_a_symlinked_run_dir(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {}, run_id="r1")
    (tmp_path / "alias").symlink_to(rec.path)
    with pytest.raises(RecordError, match="symbolic link"):
        RunRecord.open(tmp_path / "alias")


@pytest.mark.parametrize("name", [RUN_FILE, EVENTS_FILE])
def test_open_refuses_symlinked_run_json_or_events(tmp_path: Path, name: str) -> None:
    rec = RunRecord.create(tmp_path / "runs", {}, run_id="r1")
    moved = tmp_path / f"moved-{name}"
    os.rename(rec.path / name, moved)
    (rec.path / name).symlink_to(moved)
    with pytest.raises(RecordError, match=f"its {name} is a symbolic link"):
        RunRecord.open(rec.path)


# --- planted links are never written through --------------------------------------------------


def plant(rec: RunRecord, path: Path, outside: Path) -> bytes:
    """Replace ``path`` with a symbolic link to ``outside`` (a copy of it); its bytes."""
    data = path.read_bytes() if path.exists() else b""
    outside.write_bytes(data)
    path.unlink(missing_ok=True)
    path.symlink_to(outside)
    return data


def test_append_through_a_planted_events_link_is_refused(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    outside = tmp_path / "outside.jsonl"
    data = plant(rec, rec.path / EVENTS_FILE, outside)
    with pytest.raises(RecordError, match="symbolic link"):
        rec.append("step.started", "verify")
    with pytest.raises(RecordError, match="symbolic link"):
        rec.write_json("snapshots/after.json", {})
    with pytest.raises(RecordError, match="symbolic link"):
        rec.seal(signer=signer())
    assert outside.read_bytes() == data
    assert not (rec.path / "snapshots" / "after.json").exists()
    assert any("symbolic link" in p for p in verify(rec.path).problems)


def test_writes_through_a_planted_lock_link_are_refused(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    outside = tmp_path / "outside.lock"
    plant(rec, rec.path / LOCK_FILE, outside)
    os.chmod(outside, 0o644)
    for call in (
        lambda: rec.update_run(status="x"),
        lambda: rec.write_text("notes.txt", "x"),
        lambda: rec.seal(signer=signer()),
    ):
        with pytest.raises(RecordError, match="symbolic link"):
            call()
    assert mode(outside) == 0o644  # not even chmod-ed through the link
    assert rec.load_run()["status"] == "running"


def test_seal_through_a_planted_ledger_link_is_refused(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    outside = tmp_path / "outside-ledger.jsonl"
    plant(rec, rec.runs_dir / LEDGER_FILE, outside)
    with pytest.raises(RecordError, match="symbolic link"):
        rec.seal(signer=signer())
    assert outside.read_bytes() == b""
    assert not (rec.path / "manifest.json").exists()


def test_a_fifo_planted_as_the_events_file_is_refused(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    (rec.path / EVENTS_FILE).unlink()
    os.mkfifo(rec.path / EVENTS_FILE, 0o600)
    with pytest.raises(RecordError, match="not a regular file"):
        rec.append("step.started", "verify")
