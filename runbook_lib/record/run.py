"""``RunRecord``: one run's directory, a tamper-evident, append-only account of one runbook run:
its events, the files on the event chain, run.json, and its seals.

The files and their layout: :mod:`.layout`. The events are a hash chain (:mod:`.chain`): each
event's ``hash`` is the sha256 of its canonical JSON without ``hash``, and its ``prev`` is the
previous event's hash, so editing, deleting, inserting or reordering an event breaks the chain.
Seals go into the runs directory's ledger (:mod:`.ledger`); checking a record is
:mod:`.verify`'s (``verify``, ``check_integrity``). The first event, ``run.created``, carries
what the run was created with (:meth:`RunRecord.created_info`): the chain, not the rewritable
run.json, is the authority on it.

Every file the record holds is on the chain too. ``write_json`` / ``write_text`` append
``file.written`` (path, sha256, size) as they write (``once=True`` refuses to overwrite
evidence); a file someone else wrote into the run (an executed notebook) is taken in with
``record_file`` (``file.recorded``), and an earlier attempt's file is kept under a new name with
``move_aside`` (``file.moved``). So between seals too, a file added, edited or deleted behind
the record's back disagrees with the chain: :func:`~.verify.verify` names it, ``seal()`` refuses
to seal over it, and :func:`~.verify.check_integrity` (run it before continuing a run that may
have been interrupted) names it along with links, foreign owners, loose modes and rewritten
events.

``seal()`` lists every file with its digest in ``manifest.json`` and appends the manifest's
digest to the ledger, itself a chain, in the runs directory: rewriting a manifest to match a
tampered file leaves the ledger pointing at the old one. The seal is signed: the manifest names
its signer and its ledger entry (seq, previous hash), and ``SHA256SUMS.sig`` is the signer's SSH
signature of ``SHA256SUMS``, so re-chaining events, manifest and ledger together, or moving the
run into another ledger, needs the signer's key. :func:`~.verify.verify` checks all of it
(against a given allowed_signers, ``$RUNBOOK_ALLOWED_SIGNERS`` or the record's own ``trust/``
copy) and names every problem; a copy downloaded from the archive verifies against its own
``ledger-entries.jsonl``.

Two processes (the runner and the notebook kernel) write to one run: appends hold ``flock`` on
the events file, run.json updates, file writes and seals hold it on ``run.json.lock`` (then the
events file). ``append(..., guard=)`` checks the chain and appends under one lock. The events,
lock and ledger files are opened with O_NOFOLLOW, and a run directory, its run.json or
events.jsonl being a symbolic link is refused, so a planted link is never written through.

A write that fails (disk full, file too large, read-only, permission) raises
:class:`RecordIOError` and leaves the record as it was: a half-written event is cut off, a
temporary file removed, a ledger entry whose manifest could not be put in place taken back.

Nothing that looks like a secret is written: events, run.json and files are scanned with
:func:`runbook_lib.record.secrets.find_secrets` first (its patterns, plus the sha256 fingerprints
of the credentials the run handled, from the events' ``secret_fingerprints``), and refused
with :class:`SecretRefused` naming the field, never the value. A file someone else wrote is
taken in with ``record_file(..., redact=True)``: what is found in it is replaced by a marker
(``[REDACTED session-token]``) in place, atomically, and ``secret.redacted`` (path, kind,
count; never the value) goes on the chain before ``file.recorded``. ``seal()`` scans every file
first: externally written ones are redacted and recorded again, and a finding in a file the
record wrote itself (a bug) refuses the seal.

What this does not protect against: the signer's own key (they can re-seal); the events chain
and the files rewritten together after the last seal (check_integrity sees only what disagrees
with the chain; the next seal would sign it); a process killed between an event and its file
(the next check names the file); another user with write access to the runs directory's
parents; root. Anchor the record and the ledger's head somewhere they cannot write
(:mod:`runbook_lib.record.archive`: a WORM bucket).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TextIO, cast

from ..errors import (
    EvidenceExists,
    NotARunError,
    RecordError,
    RecordIOError,
    RunSealedError,
    SecretRefused,
    SigningError,
)
from .chain import (
    ZERO_HASH,
    Guard,
    append_chained,
    canonical,
    entry_hash,
    now,
    parse_line,
    read_chain,
)
from .files import (
    FILE_MODE,
    atomic_write,
    fsync_dir,
    json_bytes,
    locked,
    make_dir,
    make_dirs,
    open_nofollow,
    read_regular,
    sha256_fd,
    sha256_file,
    stage,
    unlink_quietly,
    write_all,
)
from .layout import (
    EVENTS_FILE,
    LEDGER_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    RESERVED,
    RUN_FILE,
    SEAL_FILES,
    SUMS_FILE,
    SUMS_SIG_FILE,
)
from .ledger import append_seal, runs_dir_problems
from .secrets import file_findings, find_secrets, fingerprints_in_events, redact_file
from .signing import SEAL_NAMESPACE, Signer

__all__ = [
    "FILE_MOVED",
    "FILE_RECORDED",
    "FILE_WRITTEN",
    "RUN_CREATED",
    "SECRET_REDACTED",
    "RunRecord",
    "cached_digest",
    "check_files",
    "new_run_id",
    "sums_bytes",
    "walk_run",
]


# the record's own files: never written through write_json & co., not on the file chain
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

RUN_CREATED = "run.created"
FILE_WRITTEN = "file.written"
FILE_RECORDED = "file.recorded"
FILE_MOVED = "file.moved"
SECRET_REDACTED = "secret.redacted"
_FILE_EVENTS = {FILE_WRITTEN, FILE_RECORDED, FILE_MOVED}
_OWN_EVENTS = _FILE_EVENTS | {RUN_CREATED, SECRET_REDACTED}  # only the record appends these


# --- JSON ------------------------------------------------------------------------------------


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


def _scan(obj: Any, what: str, known: set[str], fingerprints: Collection[str] = ()) -> None:
    """Raise SecretRefused if the serialized ``obj`` holds a secret, naming the field paths."""
    text = canonical(obj)
    if not find_secrets(text, known, fingerprints):
        return
    fields: list[str] = []
    for path, leaf in _leaves(obj, ""):
        for finding in find_secrets(leaf, known, fingerprints):
            fields.append(f"{path or '(value)'}: {_strip_location(finding)}")
    if not fields:  # only visible across fields
        fields = [
            f"(whole {what}): {_strip_location(f)}" for f in find_secrets(text, known, fingerprints)
        ]
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


# --- files on the event chain -----------------------------------------------------------------


@dataclass
class _FileState:
    """What the event chain last said about one file."""

    sha256: str
    size: int | None  # None after a move whose source the chain never described
    seq: Any
    type: str


def _file_states(entries: Sequence[dict[str, Any]]) -> tuple[dict[str, _FileState], list[str]]:
    """Each file's latest state per the chain's file events, and malformed file events."""
    states: dict[str, _FileState] = {}
    problems: list[str] = []
    for entry in entries:
        kind = entry.get("type")
        if kind not in _FILE_EVENTS:
            continue
        seq = entry.get("seq")
        data = entry.get("data")
        data = data if isinstance(data, dict) else {}
        sha = data.get("sha256")
        if kind == FILE_MOVED:
            src, dst = data.get("from"), data.get("to")
            if not (isinstance(src, str) and isinstance(dst, str) and isinstance(sha, str)):
                problems.append(f"{EVENTS_FILE} seq {seq}: {kind} without from, to and sha256")
                continue
            old = states.pop(src, None)
            states[dst] = _FileState(sha, old.size if old else None, seq, str(kind))
            continue
        rel, size = data.get("path"), data.get("size")
        if not (
            isinstance(rel, str)
            and isinstance(sha, str)
            and isinstance(size, int)
            and not isinstance(size, bool)
        ):
            problems.append(f"{EVENTS_FILE} seq {seq}: {kind} without path, sha256 and size")
            continue
        states[rel] = _FileState(sha, size, seq, str(kind))
    return states, problems


def check_files(
    run_dir: Path,
    entries: Sequence[dict[str, Any]],
    skip: Collection[str] = (),
    *,
    report_irregular: bool = True,
    digests: dict[str, tuple[str, int]] | None = None,
) -> list[str]:
    """Every file of the run (the record's own four aside) against its latest file event."""
    states, problems = _file_states(entries)
    digests = {} if digests is None else digests
    present: set[str] = set()
    for rel, path in walk_run(run_dir):
        irregular = path.is_symlink() or not path.is_file()
        if irregular and report_irregular:
            problems.append(f"{rel}: not a regular file")
        if rel in RESERVED:
            continue
        present.add(rel)
        if irregular or rel in skip:
            continue
        state = states.get(rel)
        if state is None:
            problems.append(f"{rel}: not recorded in the event chain (added outside the record)")
            continue
        sha, size = cached_digest(digests, rel, path)
        if sha != state.sha256 or (state.size is not None and size != state.size):
            problems.append(f"{rel}: differs from what the event chain recorded (edited)")
    for rel, state in sorted(states.items()):
        if rel not in present and rel not in skip:
            problems.append(
                f"{rel}: missing, though the event chain recorded it (seq {state.seq}, "
                f"{state.type}) and no file.moved took it away (deleted or moved behind the "
                "record's back)"
            )
    return problems


def cached_digest(cache: dict[str, tuple[str, int]], rel: str, path: Path) -> tuple[str, int]:
    """(sha256, size) of ``path``, read once per ``cache`` (verify checks a file twice)."""
    if rel not in cache:
        cache[rel] = sha256_file(path)
    return cache[rel]


# --- the run record ---------------------------------------------------------------------------

STREAM_CHUNK = 1 << 20
"""Characters :meth:`RunRecord.streamed` collects before it scans and writes them."""


class _ScanningSink(io.TextIOBase):
    """The text file :meth:`RunRecord.streamed` hands out: a temporary file beside the
    target (0600), written a chunk of whole lines at a time after the chunk is scanned."""

    def __init__(self, target: Path, scan: Callable[[str], list[str]], rel: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.fchmod(fd, FILE_MODE)
        self.fd, self.tmp, self.rel, self.scan = fd, Path(tmp), rel, scan
        self.pending: list[str] = []
        self.pending_chars = 0
        self.size = 0
        self._hash = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending.append(text)
        self.pending_chars += len(text)
        if self.pending_chars >= STREAM_CHUNK:
            joined = "".join(self.pending)
            cut = joined.rfind("\n") + 1
            if cut:
                self._emit(joined[:cut])
                joined = joined[cut:]
            self.pending, self.pending_chars = [joined], len(joined)
        return len(text)

    def _emit(self, text: str) -> None:
        found = self.scan(text)
        if found:
            raise SecretRefused(self.rel, found)
        data = text.encode("utf-8")
        self._hash.update(data)
        self.size += len(data)
        write_all(self.fd, data)

    def finish(self) -> None:
        self._emit("".join(self.pending))
        self.pending = []
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1

    def abandon(self) -> None:
        if self.fd >= 0:
            with suppress(OSError):
                os.close(self.fd)
            self.fd = -1
        unlink_quietly(self.tmp)


def new_run_id() -> str:
    """A sortable run id: UTC time to the second and 4 random hex digits."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


class RunRecord:
    """One run's directory. Create with :meth:`create`, reopen with :meth:`open`.

    ``known_secrets``: exact strings (e.g. a seed this process generated) refused in anything
    recorded, on top of the patterns of :mod:`runbook_lib.record.secrets`.
    """

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.runs_dir = self.path.parent
        self.known_secrets: set[str] = set()
        self._fingerprints: tuple[int, int, frozenset[str]] = (-1, 0, frozenset())
        # files this object wrote as text and scanned whole: relpath -> (sha256, what they
        # were scanned against); seal() need not scan them again while both still hold
        self._scanned: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {}

    def __repr__(self) -> str:
        return f"RunRecord({str(self.path)!r})"

    @property
    def _events_path(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def ledger_path(self) -> Path:
        return self.runs_dir / LEDGER_FILE

    @contextmanager
    def _io_errors(self, passthrough: Sequence[BaseException] = ()) -> Iterator[None]:
        """OSError (disk full, EFBIG, EROFS, EACCES) as RecordIOError; a caller's own errors
        (``passthrough``: what a guard raised) as they are."""
        try:
            yield
        except OSError as err:
            if any(err is p for p in passthrough):
                raise
            raise RecordIOError(self.path, err) from err

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def create(cls, runs_dir: Path, run: dict[str, Any], run_id: str | None = None) -> RunRecord:
        """Create ``runs_dir/<run_id>/`` with run.json and the first event, ``run.created``,
        whose data holds what run.json was created with (less ``status``).

        ``runs_dir`` must be yours, not a symbolic link and not group/other-writable; it is
        checked before anything is created. A new one (and its missing parents) is made 0700.
        """
        run_id = run_id or new_run_id()
        if not _RUN_ID.fullmatch(run_id):
            raise RecordError(f"Invalid run id {run_id!r}: use letters, digits, '.', '_', '-'")
        runs_dir = Path(runs_dir)
        unsafe = runs_dir_problems(runs_dir)
        if unsafe:
            raise RecordError(
                "Refused to create a run: " + "; ".join(unsafe) + ". Nothing was created."
            )
        doc = _plain({**run, "run_id": run_id, "created_at": now(), "status": "running"}, "run")
        record = cls(runs_dir / run_id, run_id)
        _scan(doc, "run.json", record.known_secrets)
        make_dirs(runs_dir)
        run_dir = runs_dir / run_id
        if not make_dir(run_dir):
            raise RecordError(f"Run directory {run_dir} already exists; use a new run id")
        atomic_write(run_dir / RUN_FILE, json_bytes(doc))
        with locked(run_dir / LOCK_FILE):
            pass
        info = {k: v for k, v in doc.items() if k != "status"}
        record._append(RUN_CREATED, None, {"run_id": run_id, "info": info})
        fsync_dir(run_dir)
        return record

    @classmethod
    def open(cls, run_dir: Path) -> RunRecord:
        """Reopen an existing run directory (RecordError if it is not one, or if it, its
        run.json or its events.jsonl is a symbolic link)."""
        run_dir = Path(run_dir)
        try:
            st = os.lstat(run_dir)
        except OSError:
            raise NotARunError(f"{run_dir} is not a directory") from None
        if stat.S_ISLNK(st.st_mode):
            raise RecordError(
                f"Refused to open {run_dir}: it is a symbolic link; open the real run directory "
                "(check where the link points and who made it)"
            )
        if not stat.S_ISDIR(st.st_mode):
            raise NotARunError(f"{run_dir} is not a directory")
        for name in (RUN_FILE, EVENTS_FILE):
            try:
                mode = os.lstat(run_dir / name).st_mode
            except OSError:
                raise NotARunError(f"{run_dir} is not a run directory: no {name}") from None
            if stat.S_ISLNK(mode):
                raise RecordError(
                    f"Refused to open {run_dir}: its {name} is a symbolic link (the record never "
                    "writes through one; find out who replaced the file)"
                )
            if not stat.S_ISREG(mode):
                raise NotARunError(f"{run_dir} is not a run directory: no {name}")
        try:
            run = json.loads(read_regular(run_dir / RUN_FILE).decode("utf-8"))
        except (OSError, ValueError) as err:
            raise NotARunError(f"{run_dir / RUN_FILE} is unreadable: {err}") from err
        run_id = run.get("run_id") if isinstance(run, dict) else None
        if not isinstance(run_id, str):
            raise NotARunError(f"{run_dir / RUN_FILE} has no run_id")
        if run_id != run_dir.name:
            raise NotARunError(f"{run_dir} holds run {run_id!r}; the directory name differs")
        return cls(run_dir, run_id)

    # -- events ---------------------------------------------------------------------------------

    def append(
        self,
        type: str,
        step: str | None = None,
        *,
        guard: Guard | None = None,
        **data: Any,
    ) -> dict[str, Any]:
        """Append one event and return it. Refused if it holds a secret or the run is final.

        ``guard``, if given, is called with the chain's current entries under the events lock,
        before anything is written; if it raises, nothing is appended and its exception
        propagates as it is. That makes check-and-append atomic across processes ("start step
        01 only if 00 finished"). The guard must not write to this record (it would wait for
        its own lock). A ``guard=`` that is not callable is event data, as it always was.

        The record's own event types (``run.created``, ``file.*``) are refused here: they are
        appended by :meth:`create`, :meth:`write_json`, :meth:`record_file` & co.
        """
        if not type or not isinstance(type, str):
            raise RecordError("An event needs a type, e.g. 'step.started'")
        if type in _OWN_EVENTS:
            raise RecordError(
                f"Event type {type!r} is the record's own: create(), write_json(), write_text(), "
                "record_file() and move_aside() append it, with the digest they computed"
            )
        if guard is not None and not callable(guard):
            data = {"guard": guard, **data}
            guard = None
        raised: list[BaseException] = []
        checked: Guard | None = None
        if guard is not None:
            user_guard = guard

            def checked(entries: list[dict[str, Any]]) -> None:
                try:
                    user_guard(entries)
                except BaseException as err:
                    raised.append(err)
                    raise

        with self._io_errors(raised):
            return self._append(type, step, data, guard=checked)

    def _append(
        self,
        type: str,
        step: str | None,
        data: dict[str, Any],
        *,
        guard: Guard | None = None,
        commit: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        body = {"type": type, "step": step, "data": _plain(data, f"event {type!r}")}

        def check(entry: dict[str, Any]) -> None:
            if self.sealed_final:
                raise RunSealedError(
                    f"Run {self.run_id} is sealed final; event {type!r} was not recorded"
                )
            _scan(entry, f"event {type!r}", self.known_secrets, self.secret_fingerprints())

        return append_chained(self._events_path, body, check, guard=guard, commit=commit)

    def events(self) -> list[dict[str, Any]]:
        """Every parseable event in file order. Torn or edited lines are skipped here; verify()
        reports them."""
        return read_chain(self._events_path, EVENTS_FILE).entries

    def created_info(self) -> dict[str, Any]:
        """What the run was created with, from the first event (``run.created``): run.json as
        it was at creation, less ``status``. RecordError if the first event is not an intact
        ``run.created``."""
        entries = self.events()
        first = entries[0] if entries else None
        if (
            first is None
            or first.get("type") != RUN_CREATED
            or first.get("seq") != 1
            or first.get("prev") != ZERO_HASH
            or entry_hash(first) != first.get("hash")
        ):
            raise RecordError(
                f"{self._events_path}: the first event is not an intact {RUN_CREATED}, so what "
                f"the run was created with cannot be read from the chain; run `runbook verify "
                f"{self.path}`"
            )
        data = first.get("data")
        info = data.get("info") if isinstance(data, dict) else None
        if not isinstance(info, dict):
            raise RecordError(
                f"{self._events_path}: {RUN_CREATED} carries no creation info (a record made "
                "before the chain held it)"
            )
        return info

    # -- run.json -------------------------------------------------------------------------------

    def load_run(self) -> dict[str, Any]:
        try:
            run = json.loads(read_regular(self.path / RUN_FILE).decode("utf-8"))
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
        with self._io_errors(), locked(self.path / LOCK_FILE):
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
            _scan(run, "run.json", self.known_secrets, self.secret_fingerprints())
            atomic_write(self.path / RUN_FILE, json_bytes(run))
        return run

    # -- other files: each on the event chain ---------------------------------------------------

    def write_json(
        self, relpath: str, obj: Any, *, step: str | None = None, once: bool = False
    ) -> Path:
        """Write ``obj`` as JSON to ``relpath`` inside the run dir (atomic, 0600) and append
        ``file.written`` (path, sha256, size). ``once``: EvidenceExists if it already exists."""
        doc = _plain(obj, relpath)
        _scan(doc, relpath, self.known_secrets, self.secret_fingerprints())
        return self._write_file(relpath, json_bytes(doc), step, once)

    def write_text(
        self, relpath: str, text: str, *, step: str | None = None, once: bool = False
    ) -> Path:
        """Write ``text`` (UTF-8) to ``relpath`` inside the run dir (atomic, 0600) and append
        ``file.written``. ``once``: EvidenceExists if it already exists."""
        fingerprints = self.secret_fingerprints()
        findings = find_secrets(text, self.known_secrets, fingerprints)
        if findings:
            raise SecretRefused(relpath, findings)
        data = text.encode("utf-8")
        target = self._write_file(relpath, data, step, once)
        self._remember_scan(relpath, hashlib.sha256(data).hexdigest(), fingerprints)
        return target

    def _write_file(self, relpath: str, data: bytes, step: str | None, once: bool) -> Path:
        rel = "/".join(self._safe_parts(relpath))
        with self._io_errors(), locked(self.path / LOCK_FILE):
            target = self._target_locked(relpath, once)
            tmp = stage(target, data)
            try:
                self._append(
                    FILE_WRITTEN,
                    step,
                    {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)},
                    commit=lambda: os.replace(tmp, target),
                )
            except BaseException:
                unlink_quietly(tmp)
                raise
            fsync_dir(target.parent)
        return target

    def _target_locked(self, relpath: str, once: bool) -> Path:
        """Where ``relpath`` is to be written (parents made), the run.json lock held: refused
        for a final run, an existing file when ``once``, anything but a regular file."""
        parts = self._safe_parts(relpath)
        rel = "/".join(parts)
        self._refuse_if_final(f"{relpath} was not written")
        if once:
            self._refuse_existing(rel, self.path.joinpath(*parts), f"write {rel}")
        target = self._make_parents(relpath, parts) / parts[-1]
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise RecordError(f"Refused to write {relpath}: not a regular file")
        return target

    @contextmanager
    def streamed(
        self, relpath: str, *, step: str | None = None, once: bool = False
    ) -> Iterator[TextIO]:
        """``with record.streamed("findings.json", once=True) as out: out.write(...)``: a
        large file written as it is produced, never held whole in memory; on leaving the block
        it is put in place and ``file.written`` appended, exactly as :meth:`write_text` does.

        Every :data:`STREAM_CHUNK` characters (cut after a newline: give it lines) the text is
        scanned for secrets; a finding raises :class:`SecretRefused` and nothing is written,
        as does any error in the block (the temporary file is removed). The run.json lock is
        held throughout: the block must not write to this record."""
        rel = "/".join(self._safe_parts(relpath))
        with self._io_errors(), locked(self.path / LOCK_FILE):
            target = self._target_locked(relpath, once)
            fingerprints = self.secret_fingerprints()
            sink = _ScanningSink(
                target, lambda text: find_secrets(text, self.known_secrets, fingerprints), rel
            )
            try:
                yield cast(TextIO, sink)
                sink.finish()
                self._append(
                    FILE_WRITTEN,
                    step,
                    {"path": rel, "sha256": sink.sha256, "size": sink.size},
                    commit=lambda: os.replace(sink.tmp, target),
                )
            except BaseException:
                sink.abandon()
                raise
            fsync_dir(target.parent)
        self._remember_scan(relpath, sink.sha256, fingerprints)

    def _remember_scan(self, relpath: str, sha256: str, fingerprints: frozenset[str]) -> None:
        rel = "/".join(self._safe_parts(relpath))
        if not rel.endswith(".ipynb"):  # a notebook's seal-time scan reads it as JSON
            self._scanned[rel] = (sha256, frozenset(self.known_secrets), fingerprints)

    def record_file(
        self, relpath: str, *, step: str | None = None, redact: bool = False
    ) -> dict[str, Any]:
        """Take a file someone else wrote into the run dir (papermill's executed notebook,
        JupyterLab's saves) onto the chain: chmod it 0600 and append ``file.recorded`` (path,
        sha256, size); return that event. Refused for a symbolic link, anything but a regular
        file, or a path outside the run dir.

        ``redact``: scan it first (the run's fingerprints and the patterns), replace what is
        found with a marker, atomically, and append one ``secret.redacted`` (path, kind, count,
        where; never the value) per kind found. Without it the file is taken as it is; the next
        ``seal()`` redacts it."""
        parts = self._safe_parts(relpath)
        rel = "/".join(parts)
        with self._io_errors(), locked(self.path / LOCK_FILE):
            self._refuse_if_final(f"{rel} was not recorded")
            path = self._existing_file(rel, parts, "record")
            return self._record_locked(rel, path, step, redact)

    def _record_locked(
        self, rel: str, path: Path, step: str | None, redact: bool
    ) -> dict[str, Any]:
        """record_file's work, the run.json lock held."""
        if redact:
            self._redact_locked(rel, path, step)
        fd = open_nofollow(path, os.O_RDONLY, "record")
        try:
            os.fchmod(fd, FILE_MODE)
            sha, size = sha256_fd(fd)
        finally:
            os.close(fd)
        return self._append(FILE_RECORDED, step, {"path": rel, "sha256": sha, "size": size})

    # -- secrets in files -----------------------------------------------------------------------

    def secret_fingerprints(self) -> frozenset[str]:
        """The sha256 fingerprints of every credential the run handled: each event's
        ``secret_fingerprints`` (``session.assumed``, ``credentials.fingerprinted``). Only what
        was appended since the last call is read."""
        try:
            st = os.lstat(self._events_path)
        except OSError:
            return self._fingerprints[2]
        inode, offset, known = self._fingerprints
        if inode != st.st_ino or st.st_size < offset:
            inode, offset, known = st.st_ino, 0, frozenset()
        if st.st_size > offset:
            with suppress(OSError):
                fd = open_nofollow(self._events_path, os.O_RDONLY, "read")
                try:
                    new = os.pread(fd, st.st_size - offset, offset)
                finally:
                    os.close(fd)
                complete = new[: new.rfind(b"\n") + 1]  # a line being written waits
                entries = [e for e in map(parse_line, complete.splitlines()) if e is not None]
                known = known | fingerprints_in_events(entries)
                offset += len(complete)
        self._fingerprints = (inode, offset, known)
        return known

    def _redact_locked(self, rel: str, path: Path, step: str | None) -> bool:
        """Redact what looks like a secret in ``rel`` in place (atomically) and append one
        ``secret.redacted`` per kind; True if anything was. The run.json lock is held."""
        raw = read_regular(path)
        new, found = redact_file(raw, rel, self.known_secrets, self.secret_fingerprints())
        if not found:
            return False
        counts: dict[str, list[str]] = {}
        for located in found:
            counts.setdefault(located.finding.kind, []).append(located.where)
        tmp = stage(path, new)
        try:
            for i, (kind, where) in enumerate(sorted(counts.items())):
                self._append(
                    SECRET_REDACTED,
                    step,
                    {
                        "path": rel,
                        "kind": kind,
                        "count": len(where),
                        "where": sorted({w for w in where if w})[:20],
                    },
                    commit=(lambda: os.replace(tmp, path)) if i == 0 else None,
                )
        except BaseException:
            unlink_quietly(tmp)
            raise
        fsync_dir(path.parent)
        return True

    @contextmanager
    def _secrets_cleared(self) -> Iterator[None]:
        """Before a seal (the run.json lock held, not yet the events lock): scan every file.
        Files others wrote (file.recorded, file.moved) are redacted and recorded again; a
        finding in one the record wrote itself (run.json, events.jsonl, write_json/write_text)
        refuses the seal: the record refuses secrets when it writes, so that is a bug. Files
        that disagree with the chain are left to the seal's own check."""
        if self.sealed_final:
            yield
            return
        entries = self.events()
        states, _ = _file_states(entries)
        steps = {
            e["data"].get("path") or e["data"].get("to"): e.get("step")
            for e in entries
            if e.get("type") in _FILE_EVENTS and isinstance(e.get("data"), dict)
        }
        fingerprints = self.secret_fingerprints()
        own: list[str] = []
        external: list[tuple[str, Path]] = []
        for rel, path in walk_run(self.path):
            if rel == LOCK_FILE or path.is_symlink() or not path.is_file():
                continue
            cached = self._scanned.get(rel)
            if cached is not None and cached == (
                sha256_file(path)[0],  # hashed as it is read: a large file is not held whole
                frozenset(self.known_secrets),
                fingerprints,
            ):
                continue  # this object wrote exactly these bytes, scanned against the same
            raw = read_regular(path)
            found = file_findings(raw, rel, self.known_secrets, fingerprints)
            if not found:
                continue
            state = states.get(rel)
            if rel in RESERVED or (state is not None and state.type == FILE_WRITTEN):
                kinds = sorted({f.finding.kind for f in found})
                own.append(f"{rel}: {', '.join(kinds)} ({found[0]})")
            elif state is not None and hashlib.sha256(raw).hexdigest() == state.sha256:
                external.append((rel, path))
        if own:
            raise RecordError(
                f"Refused to seal run {self.run_id}: files the record wrote itself hold what "
                "looks like a secret: " + "; ".join(own) + ". Nothing was written. The record "
                "refuses secrets when it writes them, so this is a bug (or the file was edited): "
                "report it, and do not archive or share this run."
            )
        for rel, path in external:
            self._redact_locked(rel, path, steps.get(rel))
            self._record_locked(rel, path, steps.get(rel), redact=False)
        yield

    def move_aside(
        self, relpath: str, new_relpath: str, *, step: str | None = None
    ) -> dict[str, Any]:
        """Rename a recorded file to ``new_relpath`` inside the run dir (e.g. to keep an earlier
        attempt's notebook rather than overwrite it) and append ``file.moved`` (from, to,
        sha256); return that event. Refused if the file is not on the chain or differs from it
        (a move must not launder an edit), or if ``new_relpath`` exists (EvidenceExists)."""
        parts = self._safe_parts(relpath)
        new_parts = self._safe_parts(new_relpath)
        rel, new_rel = "/".join(parts), "/".join(new_parts)
        if rel == new_rel:
            raise RecordError(f"Refused to move {rel} onto itself")
        with self._io_errors(), locked(self.path / LOCK_FILE):
            self._refuse_if_final(f"{rel} was not moved")
            source = self._existing_file(rel, parts, "move")
            state = _file_states(self.events())[0].get(rel)
            if state is None:
                raise RecordError(
                    f"Refused to move {rel}: it is not recorded in the event chain (record it "
                    "with record_file first, or find out who put it there)"
                )
            sha, size = sha256_file(source)
            if sha != state.sha256 or (state.size is not None and size != state.size):
                raise RecordError(
                    f"Refused to move {rel}: it differs from what the event chain recorded "
                    f"(seq {state.seq}); moving it would hide the edit"
                )
            self._refuse_existing(
                new_rel, self.path.joinpath(*new_parts), f"move {rel} to {new_rel}"
            )
            target = self._make_parents(new_relpath, new_parts) / new_parts[-1]
            event = self._append(
                FILE_MOVED,
                step,
                {"from": rel, "to": new_rel, "sha256": sha},
                commit=lambda: os.rename(source, target),
            )
            fsync_dir(target.parent)
            if source.parent != target.parent:
                fsync_dir(source.parent)
        return event

    def _refuse_existing(self, rel: str, target: Path, what: str) -> None:
        """EvidenceExists if ``rel`` exists, or the chain says it should (deleted evidence)."""
        if os.path.lexists(target):
            raise EvidenceExists(
                f"Refused to {what}: {rel} already exists and evidence is write-once. Nothing "
                "was written."
            )
        state = _file_states(self.events())[0].get(rel)
        if state is not None:
            raise EvidenceExists(
                f"Refused to {what}: the event chain recorded {rel} (seq {state.seq}) and "
                "evidence is write-once; it is missing from the run directory (deleted?). "
                "Nothing was written."
            )

    def _make_parents(self, relpath: str, parts: list[str]) -> Path:
        parent = self.path
        for part in parts[:-1]:
            parent = parent / part
            if parent.is_symlink():
                raise RecordError(f"Refused to write {relpath}: {part} is a symbolic link")
            make_dir(parent)
        return parent

    def _existing_file(self, rel: str, parts: list[str], what: str) -> Path:
        """The regular file at ``rel``, reached through real directories only."""
        path = self.path
        for i, part in enumerate(parts):
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                raise RecordError(f"Refused to {what} {rel}: it does not exist") from None
            if stat.S_ISLNK(mode):
                raise RecordError(f"Refused to {what} {rel}: {part} is a symbolic link")
            last = i == len(parts) - 1
            if last and not stat.S_ISREG(mode):
                raise RecordError(f"Refused to {what} {rel}: not a regular file")
            if not last and not stat.S_ISDIR(mode):
                raise RecordError(f"Refused to {what} {rel}: {part} is not a directory")
        return path

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
        if len(parts) == 1 and parts[0] in RESERVED:
            raise RecordError(f"Refused path {relpath!r}: the record itself manages that file")
        return parts

    # -- sealing --------------------------------------------------------------------------------

    @property
    def sealed_final(self) -> bool:
        """True once a final seal was written; the run then refuses appends and writes."""
        try:
            manifest = json.loads(read_regular(self.path / MANIFEST_FILE).decode("utf-8"))
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return True  # unreadable manifest: refuse rather than write over evidence
        return isinstance(manifest, dict) and manifest.get("final") is True

    def _refuse_if_final(self, what: str) -> None:
        if self.sealed_final:
            raise RunSealedError(f"Run {self.run_id} is sealed final; {what}")

    def seal(self, final: bool = True, signer: Signer | None = None) -> dict[str, Any]:
        """Write manifest.json, SHA256SUMS and its signature, chain the manifest's digest into
        the ledger; return the manifest.

        The manifest names its signer and its place in the ledger (seq, previous entry's hash),
        and ``SHA256SUMS`` (every file, manifest.json included, in ``sha256sum -c`` format) is
        signed by ``signer`` (:data:`~runbook_lib.record.signing.SEAL_NAMESPACE`): without the key,
        a record cannot be re-chained or moved into another ledger undetected. A seal without
        a signer is written but :func:`~.verify.verify` reports it (tests of the record
        mechanics only).

        A run can be sealed several times (checkpoints); after a final seal nothing more can be
        appended, written or sealed. Refused (nothing written) while any file disagrees with
        the event chain: added, edited or deleted outside the record. Every file is scanned
        for secrets first: see :meth:`_secrets_cleared`.
        """
        with (
            self._io_errors(),
            locked(self.path / LOCK_FILE),
            self._secrets_cleared(),  # redacts files others wrote; appends events
            locked(self._events_path),
        ):
            self._refuse_if_final("it cannot be sealed again")
            chain = read_chain(self._events_path, EVENTS_FILE)
            disagree = check_files(self.path, chain.entries)
            if disagree:
                raise RecordError(
                    f"Refused to seal run {self.run_id}: {len(disagree)} file problem(s) against "
                    "the event chain: " + "; ".join(disagree) + ". Nothing was written (no "
                    "ledger entry, no manifest). Take files others wrote in with record_file(); "
                    "find out who changed or removed the others."
                )
            manifest_path = self.path / MANIFEST_FILE
            previous: str | None = None
            if os.path.lexists(manifest_path):
                previous = hashlib.sha256(read_regular(manifest_path)).hexdigest()
            files = _file_digests(self.path)
            staged: list[tuple[Path, Path]] = []
            sealed: dict[str, Any] = {}

            def body(seq: int, prev: str) -> dict[str, Any]:
                # under the ledger's lock: the manifest names the entry it will be
                manifest = {
                    "run_id": self.run_id,
                    "sealed_at": now(),
                    "final": bool(final),
                    "files": files,
                    "events": {
                        "count": len(chain.entries),
                        "head": chain.entries[-1]["hash"] if chain.entries else ZERO_HASH,
                    },
                    "previous_manifest_sha256": previous,
                    "ledger": {"seq": seq, "prev": prev},
                    "signer": signer.describe() if signer else None,
                }
                data = json_bytes(manifest)
                sums = sums_bytes(files, hashlib.sha256(data).hexdigest())
                outputs = [(manifest_path, data), (self.path / SUMS_FILE, sums)]
                if signer is not None:
                    try:
                        signature = signer.sign(sums, SEAL_NAMESPACE)
                    except SigningError as err:
                        raise RecordError(
                            f"Refused to seal run {self.run_id}: {err}. Nothing was written."
                        ) from err
                    outputs.append((self.path / SUMS_SIG_FILE, signature))
                for target, content in outputs:
                    staged.append((stage(target, content), target))
                sealed.update(manifest)
                return {
                    "run_id": self.run_id,
                    "manifest_sha256": hashlib.sha256(data).hexdigest(),
                    "final": bool(final),
                    "signer": signer.key.fingerprint if signer else None,
                }

            def commit() -> None:
                # the signature and the sums first: manifest.json in place means "sealed". If
                # one cannot be put in place, those already replaced are put back as they were.
                done: list[tuple[Path, Path | None]] = []
                try:
                    for tmp, target in reversed(staged):
                        backup: Path | None = None
                        if os.path.lexists(target):
                            backup = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
                            os.link(target, backup, follow_symlinks=False)
                        done.append((target, backup))
                        os.replace(tmp, target)
                    if signer is None:
                        unlink_quietly(self.path / SUMS_SIG_FILE)
                except BaseException:
                    for target, backup in reversed(done):
                        with suppress(OSError):
                            if backup is not None:
                                os.replace(backup, target)
                            else:
                                os.unlink(target)
                    raise
                finally:
                    for _, backup in done:
                        if backup is not None:
                            unlink_quietly(backup)

            # The seal files are staged first and put in place only once the ledger entry is
            # written, under the ledger's lock; if that fails the entry is cut off again. A
            # crash between the two leaves a ledger entry without its manifest, which verify()
            # reports and a new seal repairs (the reverse would block it).
            try:
                append_seal(self.ledger_path, body, commit)
            except BaseException:
                for tmp, _ in staged:
                    unlink_quietly(tmp)
                raise
            fsync_dir(self.path)
        return sealed


def sums_bytes(files: dict[str, dict[str, Any]], manifest_sha256: str) -> bytes:
    """SHA256SUMS: ``sha256sum`` lines (coreutils format, names escaped as it escapes them) for
    every file in ``files`` (but the empty lock file, which an archived copy does not hold)
    and manifest.json, sorted by name."""
    rows = {rel: str(meta["sha256"]) for rel, meta in files.items() if rel != LOCK_FILE}
    rows[MANIFEST_FILE] = manifest_sha256
    out = []
    for rel in sorted(rows):
        if "\\" in rel or "\n" in rel or "\r" in rel:
            name = rel.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            out.append(f"\\{rows[rel]}  {name}\n")
        else:
            out.append(f"{rows[rel]}  {rel}\n")
    return "".join(out).encode("utf-8")


def walk_run(run_dir: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) for every entry below ``run_dir``, sorted, not following
    symbolic links; the seal's own files (manifest.json, SHA256SUMS, its signature) are left
    out."""
    for dirpath, dirnames, filenames in os.walk(run_dir):
        dirnames.sort()
        base = Path(dirpath)
        names = sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]
        for name in names:
            path = base / name
            rel = path.relative_to(run_dir).as_posix()
            if rel not in SEAL_FILES:
                yield rel, path


def _file_digests(run_dir: Path) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for rel, path in walk_run(run_dir):
        if path.is_symlink() or not path.is_file():
            continue
        sha, size = sha256_file(path)
        files[rel] = {"sha256": sha, "size": size}
    return dict(sorted(files.items()))
