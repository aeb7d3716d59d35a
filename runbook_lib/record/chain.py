"""The hash chain: JSON lines, each entry carrying ``seq``, ``time``, ``prev`` (the previous
entry's hash) and ``hash`` (the sha256 of its canonical JSON without ``hash``), so editing,
deleting, inserting or reordering an entry breaks the chain. Both the run's events
(``events.jsonl``) and the runs directory's ledger (``ledger.jsonl``) are such chains.

:func:`append_chained` appends one entry under ``flock`` (a guard sees the chain first; a torn
last line is terminated; a failed write, fsync or commit is cut back); :func:`read_chain` reads
a chain leniently, naming every torn, edited, deleted, inserted or reordered entry.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import locked, read_fd, read_regular, write_all

__all__ = [
    "ZERO_HASH",
    "Chain",
    "Guard",
    "append_chained",
    "canonical",
    "entry_hash",
    "now",
    "parse_line",
    "read_chain",
]

ZERO_HASH = "0" * 64  # the prev of a chain's first entry
#: sees a chain's entries under its lock before an append; raising appends nothing
Guard = Callable[[list[dict[str, Any]]], None]


def now() -> str:
    """The time an entry is written: UTC, ISO 8601 to the microsecond."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def canonical(obj: Any) -> str:
    """The canonical JSON text that hashes are computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(entry: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``entry`` without its ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


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
            entry = parse_line(raw)
            if entry is not None:
                return entry
        buf = lines[0] + b"\n"  # lines[0] ended with a newline in the file
    return None


def parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    if isinstance(entry, dict) and isinstance(entry.get("hash"), str) and "seq" in entry:
        return entry
    return None


def append_chained(
    path: Path,
    body: dict[str, Any] | Callable[[int, str], dict[str, Any]],
    check: Callable[[dict[str, Any]], None] | None = None,
    *,
    guard: Guard | None = None,
    commit: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Append ``body`` + seq/time/prev/hash to the chain file at ``path``, under flock.

    ``body`` may be a function of the new entry's seq and prev hash (a seal's manifest names
    its place in the ledger, and is signed, before its entry is written). ``guard`` sees the
    chain's entries before anything is written; ``check`` sees the new entry.
    Either raising appends nothing. ``commit`` runs after the entry is written and fsynced,
    still under the lock (it puts the file the entry describes in place). If the write, the
    fsync or ``commit`` fails, the file is cut back to its size before the write: no torn line,
    no entry for a change that did not happen.
    """
    with locked(path) as fd:
        if guard is not None:
            guard(_parse_chain(read_fd(fd), path.name).entries)
        last = _last_entry(fd)
        seq = int(last["seq"]) + 1 if last else 1
        prev = last["hash"] if last else ZERO_HASH
        fields = body(seq, prev) if callable(body) else body
        entry = {"seq": seq, "time": now(), **fields, "prev": prev}
        entry["hash"] = entry_hash(entry)
        if check is not None:
            check(entry)
        size = os.fstat(fd).st_size
        try:
            write_all(fd, (canonical(entry) + "\n").encode("utf-8"))
            os.fsync(fd)
            if commit is not None:
                commit()
        except BaseException:
            with suppress(OSError):  # the original error is the one to report
                os.ftruncate(fd, size)
                os.fsync(fd)
            raise
    return entry


@dataclass
class Chain:
    """A chain file read leniently: parsed entries plus the problems found on the way."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # line number of each entry
    problems: list[str] = field(default_factory=list)


def read_chain(path: Path, name: str) -> Chain:
    try:
        raw = read_regular(path)
    except FileNotFoundError:
        return Chain(problems=[f"{name}: missing"])
    except OSError as err:
        why = "a symbolic link" if err.errno == errno.ELOOP else err.strerror or str(err)
        return Chain(problems=[f"{name}: not read ({why}); it must be a regular file"])
    return _parse_chain(raw, name)


def _parse_chain(raw: bytes, name: str) -> Chain:
    chain = Chain()
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
        entry = parse_line(line)
        if entry is None:
            what = "empty line" if not line.strip() else "not a valid entry (torn or edited)"
            chain.problems.append(f"{name} line {n}: {what}")
            continue
        chain.entries.append(entry)
        chain.lines.append(n)
    _check_links(chain, name)
    return chain


def _check_links(chain: Chain, name: str) -> None:
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
