"""Account leases, single-use approvals, a plan store and per-run execution locks.

Why: removing a root user's MFA device is one procedure per account, and AWS has no lock on a
root user: nothing stops two runs from driving the same account at once, each seeing state the
other is about to change. The flock that ``runner.account_lock`` took in each runs dir only
covered a process while it executed, and only within one runs dir. The threats it missed:

- a careless operator starting a second run on an account whose first run is still open;
- the same operator (or a colleague on the same login) using two runs dirs, each with its own
  lock;
- a run halted at a gate and forgotten for days: it held nothing while halted, so a new run
  could start, and resuming the old one then acted on an account that had moved on;
- a second run reusing an approval given for another run's plan.

What this module keeps, all in one per-user state directory (:func:`state_dir`) that every runs
dir of the OS user shares (every directory 0700, every file 0600, whatever the umask)::

    ~/.local/state/root-mfa-runbook/    $RUNBOOK_STATE_DIR, or $XDG_STATE_HOME/root-mfa-runbook
    ├── leases/<account_id>.json        who holds the account: run id, run dir, since, user@host
    ├── leases/.lock                    flock serializing acquire and release (empty)
    ├── approvals/<digest>.json         which run used an approval, and when (created once)
    ├── plans/<digest>.json             the plan ``runbook plan`` wrote, for ``run --approval``
    └── locks/<run_id>.lock             flock held while a process executes the run

- A **lease** per AWS account is held from the creation of a run until the run is sealed final
  or abandoned, across processes and across runs dirs. It is a file, not a lock held by a
  process: it survives the process that took it (a halted run keeps its account), and is
  removed only by :func:`release` naming the same run. A lease file that cannot be read counts
  as held: when in doubt, refuse.
- An **approval** (of a plan digest; the signed approval files are checked by
  :mod:`runbook_lib.approval`) is consumed by the first run that uses it, with an exclusive
  create: a second run with the same approval is refused; the same run may present it again
  (``resume``).
- The **plan store** keeps each plan under its digest, so ``runbook run --approval FILE`` runs
  exactly the plan that was approved, not one recomputed later.
- An **execution lock** per run (an flock, so the kernel drops it when the process dies) lets
  only one process execute a run at a time.

What this does not protect against:

- Other machines, or other state directories. The state is per OS user (``$HOME``) unless
  ``RUNBOOK_STATE_DIR`` points several logins at one directory, and that directory must be
  owned by the user running the runbook and not group- or other-writable, so in practice only
  logins of the same uid (a shared break-glass account, ``sudo -u``) can share it. Nothing here
  coordinates across machines: two operators on two laptops can still act on one account. Use
  the change ticket for that, and check CloudTrail (step 02 does).
- Anyone who can write the state directory (the user, root): they can delete a lease or an
  approval. The run records and their ledger are the evidence, not these files.
- Network file systems whose ``flock`` is not shared between clients.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import pwd
import re
import shlex
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import RunRefused
from .record.files import atomic_write as _atomic_write
from .record.files import fsync_dir as _fsync_dir
from .record.files import json_bytes as _json_bytes
from .record.files import write_all as _write_all

__all__ = [
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
]

APP_NAME = "root-mfa-runbook"
STATE_DIR_ENV = "RUNBOOK_STATE_DIR"
DIR_MODE = 0o700
FILE_MODE = 0o600
SUBDIRS = ("leases", "approvals", "plans", "locks")

# ASCII only: \d would accept other scripts' digits ("１２３…"), and fullmatch refuses a trailing
# newline that $ would let through. Every name that becomes a file name is checked against one.
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"[0-9a-f]{64}")

_MAX_FILE = 1 << 20  # larger than any lease, approval or plan
_LOCK_GRACE = 0.25  # s: how long executing() waits out an is_executing() probe


class LeaseHeld(RunRefused):
    """Another run holds the account's lease. ``holder`` is its lease record; for a lease file
    that cannot be read it is ``{"account_id", "run_id": None, "unreadable": "<why>"}``."""

    def __init__(self, account_id: str, holder: dict[str, Any]) -> None:
        self.account_id = account_id
        self.holder = dict(holder)
        if holder.get("unreadable"):
            message = (
                f"Account {account_id} counts as leased: unreadable lease file "
                f"{holder['unreadable']}; inspect it, then remove it by hand if no run holds the "
                "account. Nothing was changed."
            )
        else:
            run_dir = str(holder.get("run_dir", "unknown"))
            quoted = shlex.quote(run_dir)
            message = (
                f"Account {account_id} is leased to run {holder.get('run_id')} ({run_dir}, since "
                f"{holder.get('since', 'unknown')}, by {holder.get('os_user', 'unknown')}@"
                f"{holder.get('host', 'unknown')}). One run per account: finish it (runbook "
                f'resume {quoted}), or release it with: runbook abandon {quoted} --reason "...". '
                "Nothing was changed."
            )
        super().__init__(message)


class ApprovalConsumed(RunRefused):
    """The approval was already used by another run. ``record`` is the consumption record; for
    a file that cannot be read it is ``{"digest", "run_id": None, "unreadable": "<why>"}``."""

    def __init__(self, digest: str, record: dict[str, Any]) -> None:
        self.digest = digest
        self.record = dict(record)
        if record.get("unreadable"):
            message = (
                f"Approval {digest[:12]}… counts as used: unreadable approval file "
                f"{record['unreadable']}; inspect it, then remove it by hand if no run used it, "
                "or plan again (runbook plan). Nothing was changed."
            )
        else:
            message = (
                f"Approval {digest[:12]}… was already used by run {record.get('run_id')} at "
                f"{record.get('at', 'unknown')}. An approval approves one run: plan again "
                "(runbook plan) and have the new plan approved. Nothing was changed."
            )
        super().__init__(message)


class RunBusy(RunRefused):
    """Another process is executing the run now. ``info`` is what it wrote into the lock file
    (``pid``, ``since``, ``os_user``, ``host``), empty if it had not written it yet."""

    def __init__(self, run_id: str, info: dict[str, Any]) -> None:
        self.run_id = run_id
        self.info = dict(info)
        super().__init__(
            f"Run {run_id} is being executed by another process (pid "
            f"{info.get('pid', 'unknown')} since {info.get('since', 'unknown')}); wait for it "
            "to end. Nothing was changed."
        )


class _Unreadable(Exception):
    """A state file exists but is not what it should be (internal: callers fail closed)."""


# --- validation ----------------------------------------------------------------------------


def _check(value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"invalid {what}: {value!r} (expected {pattern.pattern})")
    return value


def _check_account(account_id: object) -> str:
    return _check(account_id, _ACCOUNT_ID, "account id (12 ASCII digits)")


def _check_run_id(run_id: object) -> str:
    return _check(run_id, _RUN_ID, "run id")


def _check_digest(digest: object) -> str:
    return _check(digest, _DIGEST, "plan digest (64 lowercase hex digits)")


# --- the state directory -------------------------------------------------------------------


def _configured_dir() -> Path:
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(os.path.abspath(os.path.expanduser(explicit)))
    xdg = os.environ.get("XDG_STATE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is to be ignored
        return Path(xdg) / APP_NAME
    try:
        home = Path.home()
    except RuntimeError as err:
        raise RunRefused(
            f"Cannot find the home directory for the runbook's state: set {STATE_DIR_ENV}. "
            "Nothing was changed."
        ) from err
    return home / ".local" / "state" / APP_NAME


def _make_dir(path: Path) -> None:
    """Create ``path`` and any missing parents 0700 (whatever the umask); existing ones are
    left as they are (and checked by the caller)."""
    missing: list[Path] = []
    current = path
    while not os.path.lexists(current) and current.parent != current:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue  # made by a concurrent process; checked below like any existing one
        except OSError as err:
            raise RunRefused(
                f"Cannot create the runbook's state directory {directory}: {err.strerror}. "
                f"Check that its parent exists and is writable, or set {STATE_DIR_ENV}. "
                "Nothing was changed."
            ) from err
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, DIR_MODE)
        finally:
            os.close(fd)


def _check_dir(path: Path) -> None:
    """Refuse a state directory that is a symlink, not a directory, someone else's, or
    writable by others: whoever can write it can forge or delete leases and approvals."""
    try:
        st = os.lstat(path)
    except OSError as err:
        raise RunRefused(
            f"Cannot use the runbook's state directory {path}: {err.strerror}. Check "
            f"`ls -ld {shlex.quote(str(path))}`. Nothing was changed."
        ) from err
    quoted = shlex.quote(str(path))
    if stat.S_ISLNK(st.st_mode):
        problem = (
            f"is a symbolic link; point {STATE_DIR_ENV} at a real directory, or replace the "
            "link with a directory"
        )
    elif not stat.S_ISDIR(st.st_mode):
        problem = f"is not a directory; move it away, or set {STATE_DIR_ENV}"
    elif st.st_uid != os.getuid():
        problem = (
            f"is owned by uid {st.st_uid}, not by you (uid {os.getuid()}); use a directory of "
            f"your own (set {STATE_DIR_ENV}), or if it is yours: chown {os.getuid()} {quoted}"
        )
    elif st.st_mode & 0o022:
        problem = (
            f"is writable by its group or by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"check who else can write it, then: chmod 700 {quoted}"
        )
    else:
        return
    raise RunRefused(
        f"Refused the runbook's state directory {path}: it {problem} (check `ls -ld {quoted}`). "
        "Nothing was changed."
    )


def state_dir() -> Path:
    """The per-user state directory shared by every runs dir of this OS user.

    ``$RUNBOOK_STATE_DIR`` if set, else ``$XDG_STATE_HOME/root-mfa-runbook``, else
    ``~/.local/state/root-mfa-runbook``; created 0700 (with any missing parents) whatever the
    umask. Refused (:class:`RunRefused`) if it is a symbolic link, not owned by this user, or
    group- or other-writable. Checked on every call: it is cheap, and a lease is only as
    trustworthy as the directory holding it.
    """
    path = _configured_dir()
    _make_dir(path)
    _check_dir(path)
    return path


def _subdir(name: str) -> Path:
    path = state_dir() / name
    _make_dir(path)
    _check_dir(path)
    return path


# --- files ---------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _os_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid{os.getuid()}"


def _create_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` 0600 with ``data``; FileExistsError if it exists (O_CREAT | O_EXCL).

    Callers hold the directory's flock, so no reader sees the file half written; if writing
    fails the file is removed again, since the caller then refuses to go on.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        _write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    _fsync_dir(path.parent)


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None only if there is no such file.

    :class:`_Unreadable` for anything else that is not a JSON object: a symlink, a FIFO, a
    truncated write, ``null``. Callers treat that as "taken", never as "free".
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise _Unreadable(f"{path} ({err.strerror})") from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Unreadable(f"{path} (not a regular file)")
        if st.st_size > _MAX_FILE:
            raise _Unreadable(f"{path} ({st.st_size} bytes: too large)")
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError as err:
        raise _Unreadable(f"{path} ({err.strerror})") from err
    finally:
        os.close(fd)
    try:
        value = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError as err:
        raise _Unreadable(f"{path} (not valid JSON)") from err
    if not isinstance(value, dict):
        raise _Unreadable(f"{path} (not a JSON object)")
    return value


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    """Hold an exclusive, blocking ``flock`` on ``path`` (created 0600 if missing)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


# --- leases --------------------------------------------------------------------------------


def _read_lease(path: Path, account_id: str) -> dict[str, Any] | None:
    """The lease in ``path`` (None if there is none); an unreadable one as a marker record."""
    try:
        lease = _read_json(path)
    except _Unreadable as err:
        return {"account_id": account_id, "run_id": None, "unreadable": str(err)}
    if lease is None:
        return None
    run_id = lease.get("run_id")
    if lease.get("account_id") != account_id or not (
        isinstance(run_id, str) and _RUN_ID.fullmatch(run_id)
    ):
        why = f"{path} (does not name account {account_id} and a valid run id)"
        return {"account_id": account_id, "run_id": None, "unreadable": why}
    return lease


def acquire(account_id: str, run_id: str, run_dir: Path) -> dict[str, Any]:
    """Take the lease on ``account_id`` for ``run_id``; return the lease record.

    Held from the creation of a run until it is sealed final or abandoned (:func:`release`),
    across processes and across runs dirs. Taking it again for the same run returns the
    existing record unchanged (``resume``). Raises :class:`LeaseHeld` if another run holds it,
    or if the lease file cannot be read (fail closed); ValueError for an account id that is
    not 12 ASCII digits or an unsafe run id.
    """
    _check_account(account_id)
    _check_run_id(run_id)
    leases = _subdir("leases")
    path = leases / f"{account_id}.json"
    with _locked(leases / ".lock"):
        current = _read_lease(path, account_id)
        if current is not None:
            if current.get("run_id") == run_id:
                return current
            raise LeaseHeld(account_id, current)
        lease: dict[str, Any] = {
            "account_id": account_id,
            "run_id": run_id,
            "run_dir": str(Path(run_dir).resolve()),
            "since": _now(),
            "os_user": _os_user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        _atomic_write(path, _json_bytes(lease))
    return lease


def holder(account_id: str) -> dict[str, Any] | None:
    """The lease record on ``account_id``, or None if no run holds it.

    An unreadable lease file is returned as ``{"account_id", "run_id": None, "unreadable"}``:
    it is held, by no run that can be named.
    """
    _check_account(account_id)
    return _read_lease(_subdir("leases") / f"{account_id}.json", account_id)


def release(account_id: str, run_id: str) -> bool:
    """Remove the lease on ``account_id`` if ``run_id`` holds it; True if it was removed.

    False if another run holds it, no run does, or the lease file cannot be read (that one is
    removed by hand, after looking at it): a run can only give up what it holds.
    """
    _check_account(account_id)
    _check_run_id(run_id)
    leases = _subdir("leases")
    path = leases / f"{account_id}.json"
    with _locked(leases / ".lock"):
        current = _read_lease(path, account_id)
        if current is None or current.get("run_id") != run_id:
            return False
        os.unlink(path)
        _fsync_dir(leases)
    return True


# --- approvals -----------------------------------------------------------------------------


def _existing_approval(path: Path, digest: str, run_id: str) -> dict[str, Any] | None:
    """The consumption record if ``run_id`` made it, None if there is none; else raise."""
    try:
        record = _read_json(path)
    except _Unreadable as err:
        unreadable = {"digest": digest, "run_id": None, "unreadable": str(err)}
        raise ApprovalConsumed(digest, unreadable) from err
    if record is None:
        return None
    used_by = record.get("run_id")
    if record.get("digest") != digest or not (
        isinstance(used_by, str) and _RUN_ID.fullmatch(used_by)
    ):
        why = f"{path} (does not name digest {digest[:12]}… and a valid run id)"
        raise ApprovalConsumed(digest, {"digest": digest, "run_id": None, "unreadable": why})
    if used_by != run_id:
        raise ApprovalConsumed(digest, record)
    return record


def consume_approval(digest: str, run_id: str) -> dict[str, Any]:
    """Use the approval ``digest`` for ``run_id``, once; return ``{digest, run_id, at}``.

    The first run to present an approval consumes it (an exclusive create); the same run may
    present it again and gets the existing record. Raises :class:`ApprovalConsumed` if another
    run used it (or the record cannot be read); ValueError for a digest that is not 64
    lowercase hex digits or an unsafe run id.
    """
    _check_digest(digest)
    _check_run_id(run_id)
    approvals = _subdir("approvals")
    path = approvals / f"{digest}.json"
    with _locked(approvals / ".lock"):
        existing = _existing_approval(path, digest, run_id)
        if existing is not None:
            return existing
        record: dict[str, Any] = {"digest": digest, "run_id": run_id, "at": _now()}
        try:
            _create_exclusive(path, _json_bytes(record))
        except FileExistsError:  # written by something that ignores the lock
            existing = _existing_approval(path, digest, run_id)
            if existing is None:
                raise
            return existing
    return record


def give_back_approval(digest: str, run_id: str) -> bool:
    """Undo :func:`consume_approval` for a run that could not be created: remove the record
    only if ``run_id`` made it (False otherwise, or if there is none)."""
    _check_digest(digest)
    _check_run_id(run_id)
    approvals = _subdir("approvals")
    path = approvals / f"{digest}.json"
    with _locked(approvals / ".lock"):
        try:
            existing = _existing_approval(path, digest, run_id)
        except ApprovalConsumed:
            return False
        if existing is None:
            return False
        path.unlink()
        _fsync_dir(approvals)
    return True


# --- plans ---------------------------------------------------------------------------------


def save_plan(plan: dict[str, Any]) -> Path:
    """Store ``plan`` (a ``Plan.to_dict()``) under its ``digest``; return the file's path.

    Saving the same plan again is a no-op; a different plan under the same digest is refused
    (:class:`RunRefused`): a digest names one plan, and an approval given for it must run
    exactly that plan.
    """
    if not isinstance(plan, dict):
        raise ValueError(f"a plan is a dict, not {type(plan).__name__}")
    digest = _check_digest(plan.get("digest"))
    try:
        data = _json_bytes(plan)
        wanted = json.loads(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"plan {digest[:12]}… is not plain JSON data: {err}") from err
    plans = _subdir("plans")
    path = plans / f"{digest}.json"
    with _locked(plans / ".lock"):
        try:
            existing = _read_json(path)
        except _Unreadable as err:
            raise RunRefused(
                f"Unreadable plan file {err}; inspect it, then remove it by hand and plan again "
                "(runbook plan). Nothing was changed."
            ) from err
        if existing is not None:
            if existing == wanted:
                return path
            raise RunRefused(
                f"The plan store already holds a different plan for digest {digest[:12]}… "
                f"({path}); a digest names one plan. Inspect both, and remove the stored one by "
                "hand only if it is wrong. Nothing was changed."
            )
        _atomic_write(path, data)
    return path


def load_plan(digest: str) -> dict[str, Any] | None:
    """The plan stored under ``digest``, or None if there is none.

    :class:`RunRefused` if the file cannot be read or names another digest.
    """
    _check_digest(digest)
    path = _subdir("plans") / f"{digest}.json"
    try:
        plan = _read_json(path)
    except _Unreadable as err:
        raise RunRefused(
            f"Unreadable plan file {err}; inspect it, then remove it by hand and plan again "
            "(runbook plan). Nothing was changed."
        ) from err
    if plan is not None and plan.get("digest") != digest:
        raise RunRefused(
            f"The plan file {path} names digest {plan.get('digest')!r}, not its own name; "
            "inspect it, then remove it by hand and plan again (runbook plan). Nothing was "
            "changed."
        )
    return plan


# --- execution locks -----------------------------------------------------------------------


def _lock_info(fd: int) -> dict[str, Any]:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


@contextmanager
def executing(run_id: str) -> Iterator[None]:
    """Hold the run's execution lock while the block runs: one executing process per run.

    A non-blocking ``flock`` on ``locks/<run_id>.lock``, so the kernel releases it when the
    process ends, however it ends. Raises :class:`RunBusy` if another process holds it (also
    another ``executing`` of the same run in this process: it is not re-entrant). The lock
    file's descriptor is close-on-exec; a child made with a bare ``fork`` would still share it.
    """
    _check_run_id(run_id)
    path = _subdir("locks") / f"{run_id}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as err:
        raise RunRefused(
            f"Cannot open the execution lock {path}: {err.strerror}; inspect it. Nothing was "
            "changed."
        ) from err
    try:
        os.fchmod(fd, FILE_MODE)
        deadline = time.monotonic() + _LOCK_GRACE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:  # not an is_executing() probe: a holder
                    raise RunBusy(run_id, _lock_info(fd)) from None
                time.sleep(0.01)
        info = {
            "run_id": run_id,
            "pid": os.getpid(),
            "since": _now(),
            "os_user": _os_user(),
            "host": socket.gethostname(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, _json_bytes(info), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the lock


def is_executing(run_id: str) -> bool:
    """True if a process holds the run's execution lock now (a live process, by construction:
    the kernel drops the lock of a dead one)."""
    _check_run_id(run_id)
    path = _subdir("locks") / f"{run_id}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        # shared: two probes do not see each other as executors
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
