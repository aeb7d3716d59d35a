"""Leases, approvals, plan store and execution locks: across processes, runs dirs, crashes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook_lib import lease
from runbook_lib.errors import RunbookError, RunRefused
from runbook_lib.lease import (
    ApprovalConsumed,
    LeaseHeld,
    RunBusy,
    acquire,
    consume_approval,
    executing,
    holder,
    is_executing,
    load_plan,
    release,
    save_plan,
    state_dir,
)

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
DIGEST = "ab" * 32
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state directory per test (the real one is never touched)."""
    path = tmp_path / "state"
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(path))
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _files(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


# --- the state directory -------------------------------------------------------------------


def test_state_dir_location_env_then_xdg_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: Path
) -> None:
    assert state_dir() == state
    monkeypatch.delenv("RUNBOOK_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "root-mfa-runbook"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/xdg")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "root-mfa-runbook"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "root-mfa-runbook"


def test_state_dir_and_files_are_private_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / "a" / "b" / "state"
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(deep))
    old = os.umask(0)
    try:
        assert state_dir() == deep
        acquire(ACCOUNT, "run-1", tmp_path / "runs" / "run-1")
        consume_approval(DIGEST, "run-1")
        save_plan({"digest": DIGEST, "account_id": ACCOUNT})
        with executing("run-1"):
            pass
    finally:
        os.umask(old)
    for directory in (tmp_path / "a", tmp_path / "a" / "b", deep):
        assert _mode(directory) == 0o700, directory
    for name in ("leases", "approvals", "plans", "locks"):
        assert _mode(deep / name) == 0o700, name
    files = [p for p in deep.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {f"{ACCOUNT}.json", f"{DIGEST}.json", "run-1.lock"}
    for path in files:
        assert _mode(path) == 0o600, path


def test_symlinked_state_dir_is_refused_and_nothing_is_written_through_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(link))
    with pytest.raises(RunRefused, match="symbolic link") as err:
        acquire(ACCOUNT, "run-1", tmp_path / "run-1")
    assert str(link) in str(err.value)
    with pytest.raises(RunRefused):
        consume_approval(DIGEST, "run-1")
    with pytest.raises(RunRefused):
        save_plan({"digest": DIGEST})
    with pytest.raises(RunRefused), executing("run-1"):
        pass
    assert _files(target) == []


def test_symlinked_subdirectory_is_refused(tmp_path: Path, state: Path) -> None:
    state_dir()
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (state / "leases").symlink_to(target)
    with pytest.raises(RunRefused, match="symbolic link"):
        acquire(ACCOUNT, "run-1", tmp_path / "run-1")
    assert _files(target) == []


@pytest.mark.parametrize("mode", [0o770, 0o702, 0o777])
def test_group_or_other_writable_state_dir_is_refused(state: Path, mode: int) -> None:
    state.mkdir()
    os.chmod(state, mode)
    with pytest.raises(RunRefused, match="writable by its group or by others") as err:
        acquire(ACCOUNT, "run-1", state.parent / "run-1")
    assert f"chmod 700 {state}" in str(err.value)
    assert _files(state) == []


def test_group_writable_subdirectory_is_refused(state: Path) -> None:
    state_dir()
    (state / "approvals").mkdir(mode=0o700)
    os.chmod(state / "approvals", 0o770)
    with pytest.raises(RunRefused, match="chmod 700"):
        consume_approval(DIGEST, "run-1")
    assert _files(state / "approvals") == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown a directory to another uid")
def test_state_dir_owned_by_another_user_is_refused(state: Path) -> None:
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    with pytest.raises(RunRefused, match="owned by uid 65534") as err:
        acquire(ACCOUNT, "run-1", state.parent / "run-1")
    assert "ls -ld" in str(err.value)
    assert _files(state) == []


def test_state_dir_that_is_a_file_is_refused(state: Path) -> None:
    state.write_text("not a directory\n")
    with pytest.raises(RunRefused, match="not a directory"):
        state_dir()


# --- leases --------------------------------------------------------------------------------


def test_acquire_release_and_idempotent_acquire(tmp_path: Path, state: Path) -> None:
    run_dir = tmp_path / "runs" / "run-1"
    assert holder(ACCOUNT) is None
    got = acquire(ACCOUNT, "run-1", run_dir)
    assert set(got) == {"account_id", "run_id", "run_dir", "since", "os_user", "host", "pid"}
    assert got["account_id"] == ACCOUNT and got["run_id"] == "run-1"
    assert got["run_dir"] == str(run_dir.resolve()) and got["pid"] == os.getpid()
    assert holder(ACCOUNT) == got
    assert json.loads((state / "leases" / f"{ACCOUNT}.json").read_text()) == got
    assert acquire(ACCOUNT, "run-1", run_dir) == got  # resume: same run, same lease
    assert acquire(OTHER_ACCOUNT, "run-2", tmp_path / "runs" / "run-2")["run_id"] == "run-2"
    assert release(ACCOUNT, "run-1") is True
    assert holder(ACCOUNT) is None
    assert not (state / "leases" / f"{ACCOUNT}.json").exists()
    assert release(ACCOUNT, "run-1") is False
    assert acquire(ACCOUNT, "run-3", tmp_path / "runs" / "run-3")["run_id"] == "run-3"
    assert holder(OTHER_ACCOUNT) is not None


def test_relative_run_dir_is_recorded_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert acquire(ACCOUNT, "run-1", Path("runs/run-1"))["run_dir"] == str(
        (tmp_path / "runs" / "run-1").resolve()
    )


def test_second_run_is_refused_naming_the_holder_even_from_another_runs_dir(
    tmp_path: Path,
) -> None:
    first = acquire(ACCOUNT, "20261126T051500Z-3f9a", tmp_path / "runs-a" / "first")
    with pytest.raises(LeaseHeld) as err:
        acquire(ACCOUNT, "20261127T090000Z-77aa", tmp_path / "runs-b" / "second")
    message = str(err.value)
    assert isinstance(err.value, RunRefused) and isinstance(err.value, RunbookError)
    assert err.value.holder == first
    assert "Account 123456789012 is leased to run 20261126T051500Z-3f9a" in message
    assert first["run_dir"] in message and first["since"] in message
    assert f"{first['os_user']}@{first['host']}" in message
    assert f"runbook resume {first['run_dir']}" in message
    assert f'runbook abandon {first["run_dir"]} --reason "..."' in message
    assert message.endswith("Nothing was changed.")
    assert holder(ACCOUNT) == first


def test_release_by_the_wrong_run_is_refused(tmp_path: Path) -> None:
    first = acquire(ACCOUNT, "run-1", tmp_path / "run-1")
    assert release(ACCOUNT, "run-2") is False
    assert holder(ACCOUNT) == first
    assert release(OTHER_ACCOUNT, "run-1") is False
    with pytest.raises(LeaseHeld):
        acquire(ACCOUNT, "run-2", tmp_path / "run-2")


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"null",
        b"[]",
        b"\xff\xfe",
        b'{"account_id": "210987654321", "run_id": "run-9"}',  # another account's lease
        b'{"account_id": "123456789012", "run_id": "../x"}',
        b'{"account_id": "123456789012"}',
    ],
)
def test_corrupt_lease_file_counts_as_held(tmp_path: Path, state: Path, content: bytes) -> None:
    state_dir()
    (state / "leases").mkdir(mode=0o700)
    path = state / "leases" / f"{ACCOUNT}.json"
    path.write_bytes(content)
    with pytest.raises(LeaseHeld, match="unreadable lease file") as err:
        acquire(ACCOUNT, "run-1", tmp_path / "run-1")
    assert "inspect it, then remove it by hand" in str(err.value)
    assert str(path) in str(err.value)
    found = holder(ACCOUNT)
    assert found is not None and found["run_id"] is None and found["unreadable"]
    assert release(ACCOUNT, "run-1") is False
    assert path.read_bytes() == content


def test_lease_that_is_a_symlink_counts_as_held(tmp_path: Path, state: Path) -> None:
    state_dir()
    (state / "leases").mkdir(mode=0o700)
    decoy = tmp_path / "decoy.json"
    decoy.write_text(json.dumps({"account_id": ACCOUNT, "run_id": "run-1"}))
    (state / "leases" / f"{ACCOUNT}.json").symlink_to(decoy)
    with pytest.raises(LeaseHeld, match="unreadable lease file"):
        acquire(ACCOUNT, "run-1", tmp_path / "run-1")


_ACQUIRE_AND_EXIT = """
import sys
from pathlib import Path
from runbook_lib.lease import acquire
acquire(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
"""


def test_lease_survives_the_process_that_took_it(tmp_path: Path) -> None:
    proc = _python(_ACQUIRE_AND_EXIT, ACCOUNT, "run-child", str(tmp_path / "run-child"))
    _finish(proc)
    with pytest.raises(LeaseHeld, match="run-child") as err:
        acquire(ACCOUNT, "run-parent", tmp_path / "run-parent")
    assert err.value.holder["pid"] == proc.pid
    assert err.value.holder["run_dir"] == str((tmp_path / "run-child").resolve())
    assert acquire(ACCOUNT, "run-child", tmp_path / "run-child")["pid"] == proc.pid


_RACER = """
import sys, time
from pathlib import Path
from runbook_lib import lease
kind, me, go, keys = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
while not go.exists():
    time.sleep(0.001)
for key in keys:
    try:
        if kind == "lease":
            lease.acquire(key, me, Path("/tmp") / me)
        else:
            lease.consume_approval(key, me)
        print("won", key, flush=True)
    except (lease.LeaseHeld, lease.ApprovalConsumed):
        print("lost", key, flush=True)
"""


def _race(tmp_path: Path, kind: str, keys: list[str], racers: int = 4) -> dict[str, list[str]]:
    """Start ``racers`` processes that claim every key in the same order; key -> winners."""
    go = tmp_path / f"go-{kind}"
    procs = {
        f"racer-{i}": _python(_RACER, kind, f"racer-{i}", str(go), *keys) for i in range(racers)
    }
    time.sleep(0.3)  # let them all start and spin on the go file
    go.touch()
    winners: dict[str, list[str]] = {key: [] for key in keys}
    for name, proc in procs.items():
        lines = _finish(proc).splitlines()
        assert len(lines) == len(keys), (name, lines[:5])
        for line in lines:
            outcome, key = line.split()
            if outcome == "won":
                winners[key].append(name)
    return winners


def test_processes_racing_for_one_account_exactly_one_wins(tmp_path: Path) -> None:
    accounts = [f"{100000000000 + i}" for i in range(150)]
    winners = _race(tmp_path, "lease", accounts)
    for account, won in winners.items():
        assert len(won) == 1, (account, won)
        found = holder(account)
        assert found is not None and found["run_id"] == won[0]


# --- approvals -----------------------------------------------------------------------------


def test_approval_is_single_use_per_run(state: Path) -> None:
    first = consume_approval(DIGEST, "run-1")
    assert set(first) == {"digest", "run_id", "at"}
    assert first["digest"] == DIGEST and first["run_id"] == "run-1"
    assert consume_approval(DIGEST, "run-1") == first  # the same run presents it again
    with pytest.raises(ApprovalConsumed) as err:
        consume_approval(DIGEST, "run-2")
    message = str(err.value)
    assert isinstance(err.value, RunRefused)
    assert err.value.record == first
    assert f"Approval {DIGEST[:12]}… was already used by run run-1 at {first['at']}" in message
    assert "runbook plan" in message and message.endswith("Nothing was changed.")
    assert json.loads((state / "approvals" / f"{DIGEST}.json").read_text()) == first
    assert consume_approval("cd" * 32, "run-2")["run_id"] == "run-2"  # another plan: fine


@pytest.mark.parametrize("content", [b"", b"{", b"null", b'{"digest": "x", "run_id": "run-1"}'])
def test_unreadable_approval_counts_as_used(state: Path, content: bytes) -> None:
    state_dir()
    (state / "approvals").mkdir(mode=0o700)
    path = state / "approvals" / f"{DIGEST}.json"
    path.write_bytes(content)
    with pytest.raises(ApprovalConsumed, match="unreadable approval file"):
        consume_approval(DIGEST, "run-1")
    assert path.read_bytes() == content


def test_processes_racing_to_consume_one_approval_exactly_one_wins(tmp_path: Path) -> None:
    digests = [f"{i:064x}" for i in range(150)]
    winners = _race(tmp_path, "approval", digests)
    for digest, won in winners.items():
        assert len(won) == 1, (digest, won)
        assert consume_approval(digest, won[0])["run_id"] == won[0]


# --- validation ----------------------------------------------------------------------------

BAD_ACCOUNTS = [
    "../x",
    "１２３４５６７８９０１２",  # full-width digits: \d would take them
    "١٢٣٤٥٦٧٨٩٠١٢",  # Arabic-Indic digits
    "12345678901",
    "1234567890123",
    "123456789012\n",
    " 123456789012",
    "12345678901x",
    "",
    "../123456789012",
    123456789012,
]
BAD_RUN_IDS = ["../x", "..", ".hidden", "-x", "a/b", "a\\b", "", "a" * 129, "run\n", "ｒun", "a b"]
BAD_DIGESTS = [
    "AB" * 32,
    "ab" * 31,
    "ab" * 33,
    "１" * 64,
    "../" + "a" * 61,
    "g" * 64,
    "ab" * 32 + "\n",
    "",
]


@pytest.mark.parametrize("account_id", BAD_ACCOUNTS)
def test_invalid_account_id_is_rejected(tmp_path: Path, state: Path, account_id: Any) -> None:
    with pytest.raises(ValueError, match="account id"):
        acquire(account_id, "run-1", tmp_path / "run-1")
    with pytest.raises(ValueError):
        holder(account_id)
    with pytest.raises(ValueError):
        release(account_id, "run-1")
    assert not state.exists() or not [p for p in state.rglob("*") if p.is_file()]


@pytest.mark.parametrize("run_id", BAD_RUN_IDS)
def test_invalid_run_id_is_rejected(tmp_path: Path, state: Path, run_id: str) -> None:
    with pytest.raises(ValueError, match="run id"):
        acquire(ACCOUNT, run_id, tmp_path / "run-1")
    with pytest.raises(ValueError):
        release(ACCOUNT, run_id)
    with pytest.raises(ValueError):
        consume_approval(DIGEST, run_id)
    with pytest.raises(ValueError), executing(run_id):
        pass
    with pytest.raises(ValueError):
        is_executing(run_id)
    assert not state.exists() or not [p for p in state.rglob("*") if p.is_file()]


def test_longest_run_id_is_accepted(tmp_path: Path) -> None:
    run_id = "a" * 128
    assert acquire(ACCOUNT, run_id, tmp_path / "r")["run_id"] == run_id


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_invalid_digest_is_rejected(state: Path, digest: str) -> None:
    with pytest.raises(ValueError, match="digest"):
        consume_approval(digest, "run-1")
    with pytest.raises(ValueError):
        save_plan({"digest": digest})
    with pytest.raises(ValueError):
        load_plan(digest)
    assert not state.exists() or not [p for p in state.rglob("*") if p.is_file()]


# --- plans ---------------------------------------------------------------------------------


def _plan(**extra: Any) -> dict[str, Any]:
    return {
        "digest": DIGEST,
        "account_id": ACCOUNT,
        "parameters": {"account_id": ACCOUNT, "method": "console"},
        "notebooks": {"00-preflight": "0" * 64},
        "library": {"version": "0.1.0", "sha256": "1" * 64},
        "gates": [{"name": "risk", "step": "00-preflight"}],
        **extra,
    }


def test_plan_store_round_trip(state: Path) -> None:
    assert load_plan(DIGEST) is None
    path = save_plan(_plan())
    assert path == state / "plans" / f"{DIGEST}.json"
    assert _mode(path) == 0o600
    assert load_plan(DIGEST) == _plan()
    assert save_plan(_plan()) == path  # the same plan again: a no-op


def test_plan_store_refuses_a_different_plan_under_the_same_digest() -> None:
    save_plan(_plan())
    with pytest.raises(RunRefused, match="different plan") as err:
        save_plan(_plan(gates=[]))
    assert DIGEST[:12] in str(err.value)
    assert load_plan(DIGEST) == _plan()


def test_unreadable_or_misfiled_plan_is_refused(state: Path) -> None:
    save_plan(_plan())
    path = state / "plans" / f"{DIGEST}.json"
    path.write_text("{truncated")
    with pytest.raises(RunRefused, match="Unreadable plan file"):
        load_plan(DIGEST)
    with pytest.raises(RunRefused, match="Unreadable plan file"):
        save_plan(_plan())
    path.write_text(json.dumps(_plan(digest="cd" * 32)))
    with pytest.raises(RunRefused, match="names digest"):
        load_plan(DIGEST)


def test_plan_that_is_not_json_data_is_rejected() -> None:
    with pytest.raises(ValueError, match="not plain JSON"):
        save_plan(_plan(bad={1, 2}))
    with pytest.raises(ValueError):
        save_plan({"account_id": ACCOUNT})  # no digest


# --- execution locks -----------------------------------------------------------------------

_HOLD = """
import sys, time
from runbook_lib.lease import executing
with executing(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder_process() -> Iterator[subprocess.Popen[str]]:
    """A process that executes run-1 until it is killed."""
    proc = _python(_HOLD, "run-1")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def test_executing_is_exclusive_across_processes_and_released_on_sigkill(
    holder_process: subprocess.Popen[str],
) -> None:
    assert is_executing("run-1") is True
    assert is_executing("run-1") is True  # probing does not take the lock
    assert is_executing("run-2") is False
    with pytest.raises(RunBusy) as err, executing("run-1"):
        pytest.fail("entered a run another process executes")
    message = str(err.value)
    assert isinstance(err.value, RunRefused)
    assert f"Run run-1 is being executed by another process (pid {holder_process.pid} since" in (
        message
    )
    assert "wait for it to end" in message
    assert err.value.info["pid"] == holder_process.pid
    with executing("run-2"):  # another run: independent
        assert is_executing("run-2")

    os.kill(holder_process.pid, signal.SIGKILL)
    holder_process.wait(timeout=30)
    assert is_executing("run-1") is False
    with executing("run-1"):
        assert is_executing("run-1") is True
    assert is_executing("run-1") is False


def test_executing_is_not_reentrant_and_releases_on_exceptions() -> None:
    assert is_executing("run-1") is False
    with executing("run-1"):
        with pytest.raises(RunBusy, match=f"pid {os.getpid()}"), executing("run-1"):
            pass
    with pytest.raises(KeyError), executing("run-1"):
        raise KeyError("boom")
    assert is_executing("run-1") is False


def test_lease_module_exports() -> None:
    assert set(lease.__all__) == {
        "ApprovalConsumed",
        "LeaseHeld",
        "RunBusy",
        "acquire",
        "consume_approval",
        "executing",
        "give_back_approval",
        "holder",
        "is_executing",
        "load_plan",
        "release",
        "save_plan",
        "state_dir",
    }
    for name in lease.__all__:
        assert getattr(lease, name) is not None


def test_an_approval_is_given_back_only_by_the_run_that_used_it() -> None:
    digest = "b" * 64
    lease.consume_approval(digest, "run-a")
    assert lease.give_back_approval(digest, "run-b") is False  # not its approval
    with pytest.raises(lease.ApprovalConsumed):
        lease.consume_approval(digest, "run-b")
    assert lease.give_back_approval(digest, "run-a") is True
    assert lease.give_back_approval(digest, "run-a") is False  # nothing left to give back
    assert lease.consume_approval(digest, "run-b")["run_id"] == "run-b"
