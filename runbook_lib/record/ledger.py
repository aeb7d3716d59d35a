"""The runs directory and its ledger: ``ledger.jsonl``, one hash-chained entry per seal
(checkpoint or final) of every run in the directory.

Each entry names its run, the sha256 of the manifest it seals, whether the seal is final and the
signer's key; a run's manifest names its entry (seq, prev), so rewriting a manifest, or moving a
run into another runs directory, disagrees with the ledger. :func:`append_seal` is the ledger's
one writer (under the ledger file's ``flock``); :func:`run_entries` reads a run's entries back
(its chain checked), :func:`split_ledger` a run's lines byte for byte and the ledger's head (its
last entry), leniently, as the archive copies them; :func:`runs_dir_problems` says why a runs
directory is not safe to keep runs in; :func:`list_runs` summarises the runs it holds.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import RecordError
from .chain import append_chained, read_chain
from .layout import LEDGER_FILE, RUN_FILE

__all__ = [
    "append_seal",
    "list_runs",
    "parse_entry",
    "run_entries",
    "runs_dir_problems",
    "split_ledger",
]


def append_seal(
    ledger: Path, body: Callable[[int, str], dict[str, Any]], commit: Callable[[], None]
) -> dict[str, Any]:
    """Append a seal's entry to ``ledger`` under its lock: ``body`` makes the entry from its
    seq and the previous entry's hash (the manifest names its place), ``commit`` puts the seal
    files in place before the lock is released; if it fails, the entry is cut off again."""
    return append_chained(ledger, body, commit=commit)


def runs_dir_problems(runs_dir: Path) -> list[str]:
    """Why ``runs_dir`` (if it exists) is not safe to keep runs in: a sentence per problem."""
    try:
        st = os.lstat(runs_dir)
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(st.st_mode):
        return [
            f"the runs directory {runs_dir} is a symbolic link: check where it points and who "
            "controls that, then use the real directory (a link can redirect every run and the "
            "ledger)"
        ]
    if not stat.S_ISDIR(st.st_mode):
        return [f"the runs directory {runs_dir} is not a directory"]
    problems: list[str] = []
    uid = os.getuid()
    if st.st_uid != uid:
        problems.append(
            f"the runs directory {runs_dir} is owned by uid {st.st_uid}, not by you (uid {uid}): "
            "check who controls it, and keep runs in a directory of your own (`chmod 700 DIR`)"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        problems.append(
            f"the runs directory {runs_dir} is group- or other-writable (mode {mode:04o}), so "
            "others could add, replace or delete runs and the ledger: check who else can write "
            f"there, then `chmod 700 {runs_dir}`"
        )
    return problems


def run_entries(
    ledger: Path, run_id: str
) -> tuple[list[str], dict[str, Any] | None, dict[str, Any] | None]:
    """Ledger problems, this run's latest entry and the one before it."""
    if not ledger.exists():
        return [], None, None
    chain = read_chain(ledger, LEDGER_FILE)
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


def split_ledger(
    raw: bytes, run_id: str
) -> tuple[bytes, dict[str, Any] | None, dict[str, Any] | None]:
    """(this run's lines, its last entry, the ledger's last entry), read leniently."""
    mine: list[bytes] = []
    last: dict[str, Any] | None = None
    head: dict[str, Any] | None = None
    for line in raw.splitlines(keepends=True):
        entry = parse_entry(line)
        if entry is None:
            continue  # verify() judges the ledger; torn lines belong to no run
        head = entry
        if entry.get("run_id") == run_id:
            mine.append(line if line.endswith(b"\n") else line + b"\n")
            last = entry
    return b"".join(mine), last, head


def parse_entry(line: bytes) -> dict[str, Any] | None:
    """A ledger line as an entry (an object with ``seq`` and ``hash``), else None; the hashes
    are not checked here (:func:`run_entries` and ``verify`` do)."""
    try:
        entry = json.loads(line.decode("utf-8"))
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and "seq" in entry and "hash" in entry else None
