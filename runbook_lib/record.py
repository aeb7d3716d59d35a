"""The run record: a tamper-evident, append-only account of one runbook run.

Layout (every directory 0700, every file 0600, whatever the umask)::

    runs/                       runs_dir
    ├── ledger.jsonl            one hash-chained entry per seal, for every run
    └── 20261126T051500Z-3f9a/  one run
        ├── run.json            parameters, status, steps (rewritten atomically)
        ├── run.json.lock       lock file for run.json and seals (empty)
        ├── events.jsonl        hash-chained events, append-only
        ├── snapshots/...       anything written with write_json / write_text
        └── manifest.json       sha256 and size of every other file, written by seal()

Each event's ``hash`` is the sha256 of its canonical JSON without ``hash``, and its ``prev`` is
the previous event's hash, so editing, deleting, inserting or reordering an event breaks the
chain. ``seal()`` lists every file with its digest in ``manifest.json`` and appends the
manifest's digest to the ledger, itself a chain, in the runs directory: rewriting a manifest to
match a tampered file leaves the ledger pointing at the old one. :func:`verify` checks all of it
and names every problem.

Two processes (the runner and the notebook kernel) write to one run: appends hold ``flock`` on
the events file, run.json updates and seals hold it on ``run.json.lock``.

Nothing that looks like a secret is written: events, run.json and files are scanned with
:func:`runbook_lib.secrets_scan.find_secrets` first, and refused with :class:`SecretRefused`
naming the field, never the value.

What this does not protect against: someone who can rewrite the ledger from its first entry.
Anchor the ledger's last hash somewhere they cannot write (a WORM bucket, the change ticket).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import RunbookError
from .secrets_scan import find_secrets

__all__ = [
    "EVENTS_FILE",
    "LEDGER_FILE",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "RUN_FILE",
    "NotARunError",
    "RecordError",
    "RunRecord",
    "RunSealedError",
    "SecretRefused",
    "VerifyReport",
    "list_runs",
    "verify",
]

RUN_FILE = "run.json"
EVENTS_FILE = "events.jsonl"
MANIFEST_FILE = "manifest.json"
LEDGER_FILE = "ledger.jsonl"  # in the runs dir, beside the run dirs
LOCK_FILE = "run.json.lock"

ZERO_HASH = "0" * 64
DIR_MODE = 0o700
FILE_MODE = 0o600
_RESERVED = {RUN_FILE, EVENTS_FILE, MANIFEST_FILE, LOCK_FILE}
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class RecordError(RunbookError):
    """The run record refuses an operation, or is not what it should be."""


class NotARunError(RecordError):
    """The directory is not a run directory."""


class RunSealedError(RecordError):
    """The run is sealed final: nothing can be added to it."""


class SecretRefused(RecordError):
    """Something to be recorded looks like a secret; nothing was written.

    ``fields`` names where (``data.credentials.SecretAccessKey``), never the value.
    """

    def __init__(self, what: str, fields: list[str]) -> None:
        self.fields = fields
        listing = "; ".join(fields)
        super().__init__(
            f"Refused to record {what}: it looks like it holds a secret ({listing}). Nothing "
            "was written. Redact the value (record that it was set, not what it is) and retry."
        )


# --- JSON, hashing, files ---------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _plain(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (datetimes and paths become strings), or RecordError."""
    try:
        return json.loads(json.dumps(value, default=_default, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise RecordError(f"Cannot record {what}: {err}") from err


def canonical(obj: Any) -> str:
    """The canonical JSON text that hashes are computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(entry: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``entry`` without its ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdir(path: Path) -> bool:
    """Create ``path`` 0700 (whatever the umask); True if it was created here."""
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        if not path.is_dir() or path.is_symlink():
            raise RecordError(f"{path} exists and is not a directory") from None
        return False
    os.chmod(path, DIR_MODE)
    return True


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``; mode 0600."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd != -1:
            os.close(fd)
        with _suppress_missing():
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@contextmanager
def _suppress_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600 if missing); yields the fd.

    The fd is opened with O_APPEND, so it can be written to as the append-only file itself.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def _scan(obj: Any, what: str, known: set[str]) -> None:
    """Raise SecretRefused if the serialized ``obj`` holds a secret, naming the field paths."""
    text = canonical(obj)
    if not find_secrets(text, known):
        return
    fields: list[str] = []
    for path, leaf in _leaves(obj, ""):
        for finding in find_secrets(leaf, known):
            fields.append(f"{path or '(value)'}: {_strip_location(finding)}")
    if not fields:  # only visible across fields
        fields = [f"(whole {what}): {_strip_location(f)}" for f in find_secrets(text, known)]
    raise SecretRefused(what, fields)


def _strip_location(finding: str) -> str:
    return re.sub(r" at line \d+, col \d+$", "", finding)


def _leaves(obj: Any, path: str, key: str | None = None) -> Iterator[tuple[str, str]]:
    """(field path, ``"key": value`` text) for every scalar in ``obj`` (keys included)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            sub = f"{path}.{k}" if path else str(k)
            yield from _leaves(v, sub, str(k))
        if not obj and key is not None:
            yield path, json.dumps(key, ensure_ascii=False)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]", key)
        if not obj and key is not None:
            yield path, json.dumps(key, ensure_ascii=False)
    else:
        value = json.dumps(obj, ensure_ascii=False)
        yield path, value if key is None else f"{json.dumps(key, ensure_ascii=False)}: {value}"


# --- hash-chained JSON lines (events and ledger) ----------------------------------------------


def _last_entry(fd: int) -> dict[str, Any] | None:
    """The last parseable entry of the chain file open at ``fd``.

    A torn last line (no newline: a writer killed mid-write) is terminated with a newline, so the
    next entry starts on its own line; the fragment stays in the file for verify() to report.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    if os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")
        size += 1
    pos, buf = size, b""
    while pos > 0:
        step = min(1 << 16, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        lines = buf.split(b"\n")
        # lines[-1] is b"" (file ends with a newline); lines[0] may be partial unless pos == 0
        complete = lines[1:-1] if pos > 0 else lines[:-1]
        for raw in reversed(complete):
            entry = _parse_line(raw)
            if entry is not None:
                return entry
        buf = lines[0] + b"\n"  # lines[0] ended with a newline in the file
    return None


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    if isinstance(entry, dict) and isinstance(entry.get("hash"), str) and "seq" in entry:
        return entry
    return None


def _append_chained(
    path: Path,
    body: dict[str, Any],
    check: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Append ``body`` + seq/time/prev/hash to the chain file at ``path``, under flock."""
    with _locked(path) as fd:
        last = _last_entry(fd)
        seq = int(last["seq"]) + 1 if last else 1
        entry = {"seq": seq, "time": _now(), **body, "prev": last["hash"] if last else ZERO_HASH}
        entry["hash"] = entry_hash(entry)
        if check is not None:
            check(entry)
        data = (canonical(entry) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    return entry


@dataclass
class _Chain:
    """A chain file read leniently: parsed entries plus the problems found on the way."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # line number of each entry
    problems: list[str] = field(default_factory=list)


def _read_chain(path: Path, name: str) -> _Chain:
    chain = _Chain()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        chain.problems.append(f"{name}: missing")
        return chain
    parts = raw.split(b"\n")
    torn = parts[-1] != b""
    for n, line in enumerate(parts, start=1):
        last = n == len(parts)
        if last and not torn:
            break
        if last and torn:
            chain.problems.append(
                f"{name} line {n}: torn last line ({len(line)} bytes, no newline): "
                "a writer was killed mid-write; that entry is incomplete"
            )
            break
        entry = _parse_line(line)
        if entry is None:
            what = "empty line" if not line.strip() else "not a valid entry (torn or edited)"
            chain.problems.append(f"{name} line {n}: {what}")
            continue
        chain.entries.append(entry)
        chain.lines.append(n)
    _check_links(chain, name)
    return chain


def _check_links(chain: _Chain, name: str) -> None:
    """Add a problem for every entry whose hash, prev or seq is wrong, naming its seq."""
    prev_hash = ZERO_HASH
    expected = 1
    seen: dict[Any, int] = {}
    for entry, line in zip(chain.entries, chain.lines, strict=True):
        seq = entry.get("seq")
        issues: list[str] = []
        if entry_hash(entry) != entry.get("hash"):
            issues.append("hash does not match its content (edited)")
        if entry.get("prev") != prev_hash:
            if prev_hash == ZERO_HASH:
                issues.append("prev is not the chain start (entries before it were deleted)")
            else:
                issues.append(
                    "prev does not match the hash of the entry before it "
                    "(an entry was deleted, inserted or reordered here)"
                )
        if isinstance(seq, int) and not isinstance(seq, bool):
            if seq > expected:
                gap = str(expected) if seq == expected + 1 else f"{expected}..{seq - 1}"
                issues.append(f"seq {gap} missing before it (deleted or reordered)")
            elif seq < expected:
                issues.append(f"out of order: seq {expected} expected here (inserted or reordered)")
            if seq in seen:
                issues.append(f"seq {seq} already at line {seen[seq]} (inserted or duplicated)")
            seen.setdefault(seq, line)
            expected = seq + 1
        else:
            issues.append("seq is not an integer")
            expected += 1
        if issues:
            chain.problems.append(f"{name} seq {seq} (line {line}): " + "; ".join(issues))
        prev_hash = str(entry.get("hash"))


# --- the run record ---------------------------------------------------------------------------


def new_run_id() -> str:
    """A sortable run id: UTC time to the second and 4 random hex digits."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


class RunRecord:
    """One run's directory. Create with :meth:`create`, reopen with :meth:`open`.

    ``known_secrets``: exact strings (e.g. a seed this process generated) refused in anything
    recorded, on top of the patterns of :mod:`runbook_lib.secrets_scan`.
    """

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.runs_dir = self.path.parent
        self.known_secrets: set[str] = set()

    def __repr__(self) -> str:
        return f"RunRecord({str(self.path)!r})"

    @property
    def _events_path(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def ledger_path(self) -> Path:
        return self.runs_dir / LEDGER_FILE

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def create(cls, runs_dir: Path, run: dict[str, Any], run_id: str | None = None) -> RunRecord:
        """Create ``runs_dir/<run_id>/`` with run.json and the first event, ``run.created``."""
        run_id = run_id or new_run_id()
        if not _RUN_ID.fullmatch(run_id):
            raise RecordError(f"Invalid run id {run_id!r}: use letters, digits, '.', '_', '-'")
        runs_dir = Path(runs_dir)
        if not runs_dir.exists():
            runs_dir.parent.mkdir(parents=True, exist_ok=True)
        _mkdir(runs_dir)
        run_dir = runs_dir / run_id
        if not _mkdir(run_dir):
            raise RecordError(f"Run directory {run_dir} already exists; use a new run id")
        record = cls(run_dir, run_id)
        doc = _plain({**run, "run_id": run_id, "created_at": _now(), "status": "running"}, "run")
        _scan(doc, "run.json", record.known_secrets)
        _atomic_write(run_dir / RUN_FILE, _json_bytes(doc))
        with _locked(run_dir / LOCK_FILE):
            pass
        record.append("run.created", None, run_id=run_id)
        _fsync_dir(run_dir)
        return record

    @classmethod
    def open(cls, run_dir: Path) -> RunRecord:
        """Reopen an existing run directory (RecordError if it is not one)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise NotARunError(f"{run_dir} is not a directory")
        for name in (RUN_FILE, EVENTS_FILE):
            if not (run_dir / name).is_file():
                raise NotARunError(f"{run_dir} is not a run directory: no {name}")
        try:
            run = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise NotARunError(f"{run_dir / RUN_FILE} is unreadable: {err}") from err
        run_id = run.get("run_id") if isinstance(run, dict) else None
        if not isinstance(run_id, str):
            raise NotARunError(f"{run_dir / RUN_FILE} has no run_id")
        if run_id != run_dir.name:
            raise NotARunError(f"{run_dir} holds run {run_id!r}; the directory name differs")
        return cls(run_dir, run_id)

    # -- events ---------------------------------------------------------------------------------

    def append(self, type: str, step: str | None = None, **data: Any) -> dict[str, Any]:
        """Append one event and return it. Refused if it holds a secret or the run is final."""
        if not type or not isinstance(type, str):
            raise RecordError("An event needs a type, e.g. 'step.started'")
        body = {"type": type, "step": step, "data": _plain(data, f"event {type!r}")}

        def check(entry: dict[str, Any]) -> None:
            if self.sealed_final:
                raise RunSealedError(
                    f"Run {self.run_id} is sealed final; event {type!r} was not recorded"
                )
            _scan(entry, f"event {type!r}", self.known_secrets)

        return _append_chained(self._events_path, body, check)

    def events(self) -> list[dict[str, Any]]:
        """Every parseable event in file order. Torn or edited lines are skipped here; verify()
        reports them."""
        return _read_chain(self._events_path, EVENTS_FILE).entries

    # -- run.json -------------------------------------------------------------------------------

    def load_run(self) -> dict[str, Any]:
        try:
            run = json.loads((self.path / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RecordError(f"{self.path / RUN_FILE} is unreadable: {err}") from err
        if not isinstance(run, dict):
            raise RecordError(f"{self.path / RUN_FILE} does not hold an object")
        return run

    def update_run(self, **changes: Any) -> dict[str, Any]:
        """Change run.json and return the new content.

        Top-level keys are replaced (nested dicts too), except ``steps``: its entries are merged
        per step name, and a step's own fields are merged into what is recorded for it (so
        ``steps={"remove": {"status": "done"}}`` keeps ``remove``'s ``started_at``).
        """
        for key in ("run_id", "created_at"):
            if key in changes:
                raise RecordError(f"run.json's {key} cannot be changed")
        changes = _plain(changes, "run.json changes")
        with _locked(self.path / LOCK_FILE):
            self._refuse_if_final("run.json was not changed")
            run = self.load_run()
            for key, value in changes.items():
                if key == "steps" and isinstance(value, dict):
                    steps = run.get("steps")
                    steps = dict(steps) if isinstance(steps, dict) else {}
                    for name, fields in value.items():
                        old = steps.get(name)
                        if isinstance(old, dict) and isinstance(fields, dict):
                            steps[name] = {**old, **fields}
                        else:
                            steps[name] = fields
                    run["steps"] = steps
                else:
                    run[key] = value
            _scan(run, "run.json", self.known_secrets)
            _atomic_write(self.path / RUN_FILE, _json_bytes(run))
        return run

    # -- other files ----------------------------------------------------------------------------

    def write_json(self, relpath: str, obj: Any) -> Path:
        """Write ``obj`` as JSON to ``relpath`` inside the run dir (atomic, 0600)."""
        doc = _plain(obj, relpath)
        _scan(doc, relpath, self.known_secrets)
        return self._write_file(relpath, _json_bytes(doc))

    def write_text(self, relpath: str, text: str) -> Path:
        """Write ``text`` (UTF-8) to ``relpath`` inside the run dir (atomic, 0600)."""
        findings = find_secrets(text, self.known_secrets)
        if findings:
            raise SecretRefused(relpath, findings)
        return self._write_file(relpath, text.encode("utf-8"))

    def _write_file(self, relpath: str, data: bytes) -> Path:
        parts = self._safe_parts(relpath)
        with _locked(self.path / LOCK_FILE):
            self._refuse_if_final(f"{relpath} was not written")
            parent = self.path
            for part in parts[:-1]:
                parent = parent / part
                if parent.is_symlink():
                    raise RecordError(f"Refused to write {relpath}: {part} is a symbolic link")
                _mkdir(parent)
            target = parent / parts[-1]
            if target.is_symlink() or (target.exists() and not target.is_file()):
                raise RecordError(f"Refused to write {relpath}: not a regular file")
            _atomic_write(target, data)
        return target

    @staticmethod
    def _safe_parts(relpath: str) -> list[str]:
        pure = PurePosixPath(relpath)
        parts = list(pure.parts)
        if (
            not parts
            or pure.is_absolute()
            or "\\" in relpath
            or any(p in ("", ".", "..") for p in parts)
        ):
            raise RecordError(f"Refused path {relpath!r}: it must stay inside the run directory")
        if len(parts) == 1 and parts[0] in _RESERVED:
            raise RecordError(f"Refused path {relpath!r}: the record itself manages that file")
        return parts

    # -- sealing --------------------------------------------------------------------------------

    @property
    def sealed_final(self) -> bool:
        """True once a final seal was written; the run then refuses appends and writes."""
        try:
            manifest = json.loads((self.path / MANIFEST_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return True  # unreadable manifest: refuse rather than write over evidence
        return isinstance(manifest, dict) and manifest.get("final") is True

    def _refuse_if_final(self, what: str) -> None:
        if self.sealed_final:
            raise RunSealedError(f"Run {self.run_id} is sealed final; {what}")

    def seal(self, final: bool = True) -> dict[str, Any]:
        """Write manifest.json and chain its digest into the ledger; return the manifest.

        A run can be sealed several times (checkpoints); after a final seal nothing more can be
        appended, written or sealed.
        """
        with _locked(self.path / LOCK_FILE), _locked(self._events_path):
            self._refuse_if_final("it cannot be sealed again")
            manifest_path = self.path / MANIFEST_FILE
            previous: str | None = None
            if manifest_path.exists():
                previous = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
            chain = _read_chain(self._events_path, EVENTS_FILE)
            manifest = {
                "run_id": self.run_id,
                "sealed_at": _now(),
                "final": bool(final),
                "files": _file_digests(self.path),
                "events": {
                    "count": len(chain.entries),
                    "head": chain.entries[-1]["hash"] if chain.entries else ZERO_HASH,
                },
                "previous_manifest_sha256": previous,
            }
            data = _json_bytes(manifest)
            # Ledger first: a crash between the two leaves a ledger entry without its manifest,
            # which verify() reports and a new seal repairs (the reverse would block it).
            _append_chained(
                self.ledger_path,
                {
                    "run_id": self.run_id,
                    "manifest_sha256": hashlib.sha256(data).hexdigest(),
                    "final": bool(final),
                },
            )
            _atomic_write(manifest_path, data)
        return manifest


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _walk(run_dir: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) for every entry below ``run_dir``, sorted, not following
    symbolic links; the top-level manifest.json is left out."""
    for dirpath, dirnames, filenames in os.walk(run_dir):
        dirnames.sort()
        base = Path(dirpath)
        names = sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]
        for name in names:
            path = base / name
            rel = path.relative_to(run_dir).as_posix()
            if rel != MANIFEST_FILE:
                yield rel, path


def _file_digests(run_dir: Path) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for rel, path in _walk(run_dir):
        if path.is_symlink() or not path.is_file():
            continue
        sha, size = _sha256_file(path)
        files[rel] = {"sha256": sha, "size": size}
    return dict(sorted(files.items()))


# --- verification -----------------------------------------------------------------------------


@dataclass
class VerifyReport:
    """What :func:`verify` found. ``ok`` only if ``problems`` is empty."""

    ok: bool
    problems: list[str]
    sealed: bool
    final: bool
    events: int

    def __str__(self) -> str:
        state = (
            "sealed final" if self.final else "sealed (checkpoint)" if self.sealed else "unsealed"
        )
        head = f"{'OK' if self.ok else 'FAILED'}: {state}, {self.events} events"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


def verify(run_dir: Path) -> VerifyReport:
    """Check a run's events chain, manifest, files and ledger entry; name every problem."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    if not run_dir.is_dir():
        return VerifyReport(False, [f"{run_dir}: not a directory"], False, False, 0)

    run_id = run_dir.name
    try:
        run = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
        if isinstance(run, dict) and isinstance(run.get("run_id"), str):
            run_id = run["run_id"]
            if run_id != run_dir.name:
                problems.append(f"{RUN_FILE}: run_id {run_id!r} differs from the directory name")
        else:
            problems.append(f"{RUN_FILE}: no run_id")
    except FileNotFoundError:
        problems.append(f"{RUN_FILE}: missing")
    except (OSError, ValueError):
        problems.append(f"{RUN_FILE}: not valid JSON")

    chain = _read_chain(run_dir / EVENTS_FILE, EVENTS_FILE)
    problems.extend(chain.problems)
    head = chain.entries[-1].get("hash") if chain.entries else ZERO_HASH

    sealed = final = False
    manifest_path = run_dir / MANIFEST_FILE
    manifest_sha: str | None = None
    manifest: Any = None
    if not manifest_path.exists():
        problems.append(f"{MANIFEST_FILE}: missing: the run is not sealed")
    else:
        raw = manifest_path.read_bytes()
        manifest_sha = hashlib.sha256(raw).hexdigest()
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            problems.append(f"{MANIFEST_FILE}: not a valid manifest")
            manifest = None
    if manifest is not None:
        sealed = True
        final = manifest.get("final") is True
        problems.extend(_check_manifest(run_dir, run_id, manifest, len(chain.entries), head))

    ledger_problems, entry, previous = _check_ledger(run_dir.parent / LEDGER_FILE, run_id)
    problems.extend(ledger_problems)
    if manifest is not None:
        if entry is None:
            problems.append(f"{LEDGER_FILE}: no entry for run {run_id}: the seal is not recorded")
        else:
            if entry.get("manifest_sha256") != manifest_sha:
                problems.append(
                    f"{MANIFEST_FILE}: its sha256 differs from the ledger's latest entry for this "
                    f"run (ledger seq {entry.get('seq')}): the manifest was rewritten or replaced"
                )
            if entry.get("final") is not final:
                problems.append(
                    f"{MANIFEST_FILE}: final={final} but the ledger entry (seq "
                    f"{entry.get('seq')}) says final={entry.get('final')}"
                )
            expected_prev = previous.get("manifest_sha256") if previous else None
            if manifest.get("previous_manifest_sha256") != expected_prev:
                problems.append(
                    f"{MANIFEST_FILE}: previous_manifest_sha256 does not match the ledger's "
                    "previous entry for this run"
                )
    return VerifyReport(not problems, problems, sealed, final, len(chain.entries))


def _check_manifest(
    run_dir: Path, run_id: str, manifest: dict[str, Any], count: int, head: Any
) -> list[str]:
    problems: list[str] = []
    if manifest.get("run_id") != run_id:
        problems.append(f"{MANIFEST_FILE}: run_id {manifest.get('run_id')!r} is not {run_id!r}")
    listed: dict[str, Any] = manifest["files"]
    present: set[str] = set()
    for rel, path in _walk(run_dir):
        present.add(rel)
        if path.is_symlink() or not path.is_file():
            problems.append(f"{rel}: not a regular file")
        elif rel not in listed:
            problems.append(f"{rel}: not in the manifest (added after the seal)")
    for rel, meta in sorted(listed.items()):
        path = run_dir / rel
        if rel not in present or not path.is_file():
            problems.append(f"{rel}: missing (listed in the manifest)")
            continue
        if path.is_symlink():
            continue
        sha, size = _sha256_file(path)
        if not isinstance(meta, dict) or meta.get("sha256") != sha or meta.get("size") != size:
            problems.append(f"{rel}: changed since the seal (sha256 or size differs)")
    events = manifest.get("events")
    if not isinstance(events, dict):
        problems.append(f"{MANIFEST_FILE}: no events summary")
    else:
        if events.get("count") != count:
            problems.append(
                f"{MANIFEST_FILE}: events.count is {events.get('count')} but "
                f"{EVENTS_FILE} holds {count} events"
            )
        if events.get("head") != head:
            problems.append(
                f"{MANIFEST_FILE}: events.head differs from the last event's hash in {EVENTS_FILE}"
            )
    return problems


def _check_ledger(
    ledger: Path, run_id: str
) -> tuple[list[str], dict[str, Any] | None, dict[str, Any] | None]:
    """Ledger problems, this run's latest entry and the one before it."""
    if not ledger.exists():
        return [], None, None
    chain = _read_chain(ledger, LEDGER_FILE)
    mine = [e for e in chain.entries if e.get("run_id") == run_id]
    latest = mine[-1] if mine else None
    previous = mine[-2] if len(mine) > 1 else None
    return chain.problems, latest, previous


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """One summary per run directory in ``runs_dir``, sorted by run id.

    Entries that are not run directories (the ledger, stray files, directories without
    run.json) are skipped; a run whose run.json cannot be read is listed as ``unreadable``.
    """
    runs_dir = Path(runs_dir)
    out: list[dict[str, Any]] = []
    try:
        children = list(runs_dir.iterdir())
    except FileNotFoundError:
        return out
    except NotADirectoryError as err:
        raise RecordError(f"{runs_dir} is not a directory") from err
    for child in children:
        if child.is_symlink() or not child.is_dir() or not (child / RUN_FILE).is_file():
            continue
        try:
            run = json.loads((child / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            run = None
        if not isinstance(run, dict):
            out.append(
                {
                    "run_id": child.name,
                    "account_id": None,
                    "status": "unreadable",
                    "halted_at": None,
                    "created_at": None,
                }
            )
            continue
        params = run.get("parameters")
        out.append(
            {
                "run_id": run.get("run_id", child.name),
                "account_id": params.get("account_id") if isinstance(params, dict) else None,
                "status": run.get("status"),
                "halted_at": run.get("halted_at"),
                "created_at": run.get("created_at"),
            }
        )
    return sorted(out, key=lambda r: str(r["run_id"]))
