"""The chain as the authority: run.created carries the creation info; guarded appends."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.errors import RecordError
from runbook_lib.record.layout import EVENTS_FILE, RUN_FILE
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import verify
from tests.keys import signer

from .helpers import dump, events_path, lines, make_run, rehash, write_lines

INFO = {
    "parameters": {"account_id": "123456789012", "method": "assume-root"},
    "operator": "alice@example.com",
    "versions": {"runbook": "0.1.0"},
}


# --- run.created carries what the run was created with ----------------------------------------


def test_run_created_carries_the_creation_info(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", INFO, run_id="r1")
    at_creation = json.loads((rec.path / RUN_FILE).read_text())
    first = rec.events()[0]
    assert first["type"] == "run.created" and first["seq"] == 1
    expected = {k: v for k, v in at_creation.items() if k != "status"}
    assert first["data"] == {"run_id": "r1", "info": expected}
    assert expected["parameters"] == INFO["parameters"] and expected["created_at"]
    assert "status" not in first["data"]["info"]
    assert rec.created_info() == expected


def test_created_info_is_the_chains_not_run_jsons(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", INFO, run_id="r1")
    original = rec.created_info()
    rec.update_run(parameters={"account_id": "999999999999"}, status="halted")
    run_path = rec.path / RUN_FILE
    doc = json.loads(run_path.read_text())
    doc["operator"] = "mallory@example.com"  # run.json rewritten behind the record's back
    run_path.write_text(json.dumps(doc))
    assert RunRecord.open(rec.path).created_info() == original
    assert original["operator"] == "alice@example.com"
    assert original["parameters"]["account_id"] == "123456789012"


def test_created_info_refuses_a_chain_without_an_intact_first_event(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    path = events_path(rec)
    old = lines(path)

    write_lines(path, old[1:])  # first event deleted
    with pytest.raises(RecordError, match="first event is not an intact run.created"):
        rec.created_info()

    first = json.loads(old[0])
    first["data"]["info"]["operator"] = "mallory@example.com"
    write_lines(path, [dump(first), *old[1:]])  # edited, hash left as it was
    with pytest.raises(RecordError, match="not an intact run.created"):
        rec.created_info()

    other = rehash({**json.loads(old[1]), "seq": 1, "prev": "0" * 64})
    write_lines(path, [dump(other), *old[2:]])  # a valid first event of another type
    with pytest.raises(RecordError, match="not an intact run.created"):
        rec.created_info()

    first = json.loads(old[0])
    first["data"] = {"run_id": rec.run_id}  # as records made before the info was carried
    write_lines(path, [dump(rehash(first)), *old[1:]])
    with pytest.raises(RecordError, match="carries no creation info"):
        rec.created_info()


# --- guarded appends --------------------------------------------------------------------------


class NotYet(Exception):
    pass


def only_after(step: str) -> Any:
    def guard(entries: list[dict[str, Any]]) -> None:
        if not any(e["type"] == "step.finished" and e["step"] == step for e in entries):
            raise NotYet(f"{step} has not finished")

    return guard


def test_guard_sees_the_current_entries_and_the_event_is_appended(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    seen: list[list[dict[str, Any]]] = []
    before = rec.events()
    event = rec.append("step.started", "01", guard=seen.append, note="go")
    assert seen == [before]
    assert event["data"] == {"note": "go"}  # the guard is not event data
    assert rec.events() == [*before, event]


def test_a_guard_that_raises_appends_nothing_and_its_error_propagates(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    before = events_path(rec).read_bytes()
    with pytest.raises(NotYet, match="00 has not finished"):
        rec.append("step.started", "01", guard=only_after("00"))
    assert events_path(rec).read_bytes() == before

    def disk_check(entries: list[dict[str, Any]]) -> None:
        raise OSError(errno.ENOSPC, "the caller's own check")

    with pytest.raises(OSError, match="the caller's own check") as err:
        rec.append("step.started", "01", guard=disk_check)
    assert type(err.value) is OSError  # not turned into RecordIOError
    assert events_path(rec).read_bytes() == before

    rec.append("step.finished", "00")
    rec.append("step.started", "01", guard=only_after("00"))
    assert [e["step"] for e in rec.events()[-2:]] == ["00", "01"]


def test_a_guard_on_a_torn_chain_sees_the_whole_entries_only(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    path = events_path(rec)
    n = len(rec.events())
    path.write_bytes(path.read_bytes() + b'{"seq": 99, "half')
    seen: list[int] = []
    rec.append("run.resumed", None, guard=lambda entries: seen.append(len(entries)))
    assert seen == [n]


_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("locked")
else:
    print("free")
"""


def test_the_guard_runs_under_the_events_lock(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    seen: list[str] = []

    def probe(entries: list[dict[str, Any]]) -> None:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, str(rec.path / EVENTS_FILE)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        seen.append(out.stdout.strip())

    rec.append("step.started", "01", guard=probe)
    fd = os.open(rec.path / EVENTS_FILE, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after the append
    finally:
        os.close(fd)
    assert seen == ["locked"]


_RACER = """
import sys
from pathlib import Path
from runbook_lib.record.run import RunRecord

class Taken(Exception):
    pass

def first_start(entries):
    if any(e["type"] == "step.started" and e["step"] == "01" for e in entries):
        raise Taken

rec = RunRecord.open(Path(sys.argv[1]))
try:
    rec.append("step.started", "01", guard=first_start, worker=sys.argv[2])
except Taken:
    print("refused")
else:
    print("started")
"""


def test_check_and_append_is_atomic_across_processes(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(rec.path), str(i)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert results == ["refused"] * 7 + ["started"]
    starts = [e for e in rec.events() if e["type"] == "step.started" and e["step"] == "01"]
    assert len(starts) == 1
    rec.seal(signer=signer())
    assert verify(rec.path).ok


def test_a_data_field_named_guard_is_still_event_data(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {})
    event = rec.append("gate.approved", "remove", guard="two-person rule", who="alice")
    assert event["data"] == {"guard": "two-person rule", "who": "alice"}
    assert rec.append("x.y", None, guard=0)["data"] == {"guard": 0}
