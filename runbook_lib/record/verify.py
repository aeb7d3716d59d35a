"""Checking a run record: :func:`verify` for a sealed one, :func:`check_integrity` before
continuing one.

:func:`verify` checks the events chain, every file against its latest file event and against
the manifest, the ledger's entry for the seal, and the seal's signature (``SHA256SUMS.sig``)
against a trust root :func:`trust_root` chooses: a given allowed_signers, else
``$RUNBOOK_ALLOWED_SIGNERS``, else the record's own ``trust/`` copy (and it says which). A copy
downloaded from the archive has no runs-dir ledger beside it and is checked against its own
``ledger-entries.jsonl`` (archived-copy mode). Every problem is named in the
:class:`VerifyReport`.

:func:`check_integrity` is for a run that may have been interrupted (no seal since its last
events): links, foreign owners, loose modes, an unsafe runs directory, broken chains, a
checkpoint manifest the ledger does not point at, and every file against its latest event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
from collections.abc import Collection
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SigningError
from .chain import ZERO_HASH, Chain, entry_hash, parse_line, read_chain
from .files import DIR_MODE, FILE_MODE, read_regular
from .layout import (
    ARCHIVE_FILES,
    EVENTS_FILE,
    LEDGER_ENTRIES_FILE,
    LEDGER_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    RUN_FILE,
    SUMS_FILE,
    SUMS_SIG_FILE,
    TRUST_FILE,
)
from .ledger import run_entries, runs_dir_problems
from .run import cached_digest, check_files, sums_bytes, walk_run
from .signing import SEAL_NAMESPACE
from .signing import verify as verify_signature

__all__ = [
    "ALLOWED_SIGNERS_ENV",
    "VerifyReport",
    "check_integrity",
    "trust_root",
    "verify",
]

#: your organisation's allowed_signers: verify() checks signatures against it when no file is
#: given (before falling back to the record's own copy)
ALLOWED_SIGNERS_ENV = "RUNBOOK_ALLOWED_SIGNERS"


def _tree_problems(run_dir: Path) -> list[str]:
    """Links, foreign owners and loose modes in ``run_dir`` (itself included); never follows."""
    uid = os.getuid()
    problems: list[str] = []

    def check(path: Path, rel: str, st: os.stat_result) -> bool:
        if stat.S_ISLNK(st.st_mode):
            problems.append(
                f"{rel}: a symbolic link (the record never follows links; remove it and find "
                "out who put it there)"
            )
            return False
        if st.st_uid != uid:
            problems.append(
                f"{rel}: owned by uid {st.st_uid}, not by you (uid {uid}): someone else wrote "
                "into the run"
            )
        if stat.S_ISDIR(st.st_mode):
            want = DIR_MODE
        elif stat.S_ISREG(st.st_mode):
            want = FILE_MODE
        else:
            problems.append(f"{rel}: neither a regular file nor a directory")
            return False
        mode = stat.S_IMODE(st.st_mode)
        if mode != want:
            fix = (
                f"; `chmod {want:o} {path}` fixes it"
                if st.st_uid == uid
                else "; it is not yours, so find out who made it before changing it"
            )
            problems.append(f"{rel}: mode {mode:04o}, should be {want:04o}{fix}")
        return stat.S_ISDIR(st.st_mode)

    def walk(directory: Path, prefix: str) -> None:
        try:
            children = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as err:
            problems.append(f"{prefix or directory}: cannot be listed ({err.strerror})")
            return
        for child in children:
            rel = f"{prefix}{child.name}"
            path = Path(child.path)
            if check(path, rel, child.stat(follow_symlinks=False)):
                walk(path, rel + "/")

    if check(run_dir, str(run_dir), os.lstat(run_dir)):
        walk(run_dir, "")
    return problems


@dataclass
class VerifyReport:
    """What :func:`verify` found. ``ok`` only if ``problems`` is empty.

    ``signer``: who signed the last seal (principal, fingerprint, key type) when the signature
    verified; ``trust``: which allowed_signers it was checked against; ``archived_copy``: the
    record was verified on its own (its ``ledger-entries.jsonl``, no runs-dir ledger)."""

    ok: bool
    problems: list[str]
    sealed: bool
    final: bool
    events: int
    signer: dict[str, str] | None = None
    trust: str = ""
    archived_copy: bool = False

    def __str__(self) -> str:
        state = (
            "sealed final" if self.final else "sealed (checkpoint)" if self.sealed else "unsealed"
        )
        head = f"{'OK' if self.ok else 'FAILED'}: {state}, {self.events} events"
        lines = [head]
        if self.signer:
            lines.append(
                f"  seal signed by {self.signer['principal']} ({self.signer['key_type']} key "
                f"{self.signer['fingerprint']})"
            )
        if self.trust:
            lines.append(f"  signatures checked against {self.trust}")
        if self.archived_copy:
            lines.append("  verified as an archived copy (its own ledger-entries.jsonl)")
        return "\n".join([*lines, *(f"  - {p}" for p in self.problems)])


def verify(run_dir: Path, allowed_signers: Path | None = None) -> VerifyReport:
    """Check a run's events chain, manifest, files, ledger entry and seal signature; name every
    problem.

    The ledger is the runs directory's ``ledger.jsonl`` beside the run; a copy downloaded from
    the archive has none, and is checked against its own ``ledger-entries.jsonl`` instead. The
    seal's signature is checked against ``allowed_signers`` (an auditor's own file), else
    ``$RUNBOOK_ALLOWED_SIGNERS``, else against the record's :data:`TRUST_FILE` (then it shows
    only that the record is consistent with the trust root it carries: say which, as
    :attr:`VerifyReport.trust` does)."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    if not run_dir.is_dir():
        return VerifyReport(False, [f"{run_dir}: not a directory"], False, False, 0)

    run_id = run_dir.name
    try:
        run = json.loads(read_regular(run_dir / RUN_FILE).decode("utf-8"))
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

    ledger_path = run_dir.parent / LEDGER_FILE
    archived = not os.path.lexists(ledger_path) and os.path.lexists(run_dir / LEDGER_ENTRIES_FILE)
    if not archived:
        problems.extend(
            f"{name}: belongs to an archived copy, not to a run in a runs directory (who put it "
            "there?)"
            for name in ARCHIVE_FILES
            if os.path.lexists(run_dir / name)
        )

    chain = read_chain(run_dir / EVENTS_FILE, EVENTS_FILE)
    problems.extend(chain.problems)
    head = chain.entries[-1].get("hash") if chain.entries else ZERO_HASH
    digests: dict[str, tuple[str, int]] = {}
    problems.extend(check_files(run_dir, chain.entries, digests=digests))

    sealed = final = False
    manifest_path = run_dir / MANIFEST_FILE
    manifest_sha: str | None = None
    manifest_raw = b""
    manifest: Any = None
    if not os.path.lexists(manifest_path):
        problems.append(f"{MANIFEST_FILE}: missing: the run is not sealed")
    else:
        try:
            manifest_raw = read_regular(manifest_path)
        except OSError:
            manifest_raw = b""
        manifest_sha = hashlib.sha256(manifest_raw).hexdigest()
        try:
            manifest = json.loads(manifest_raw.decode("utf-8"))
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            problems.append(f"{MANIFEST_FILE}: not a valid manifest")
            manifest = None
    signer: dict[str, str] | None = None
    trust = ""
    if manifest is not None:
        sealed = True
        final = manifest.get("final") is True
        problems.extend(
            _check_manifest(run_dir, run_id, manifest, len(chain.entries), head, digests, archived)
        )
        sig_problems, signer, trust = _check_signature(
            run_dir, manifest, manifest_sha or "", allowed_signers
        )
        problems.extend(sig_problems)

    if archived:
        ledger_problems, entry, previous = _check_ledger_entries(
            run_dir / LEDGER_ENTRIES_FILE, run_id
        )
        where = LEDGER_ENTRIES_FILE
    else:
        ledger_problems, entry, previous = run_entries(ledger_path, run_id)
        where = LEDGER_FILE
    problems.extend(ledger_problems)
    if manifest is not None:
        if entry is None:
            problems.append(f"{where}: no entry for run {run_id}: the seal is not recorded")
        else:
            problems.extend(_check_entry(manifest, manifest_sha, final, entry, previous, where))
    return VerifyReport(
        not problems, problems, sealed, final, len(chain.entries), signer, trust, archived
    )


def _check_entry(
    manifest: dict[str, Any],
    manifest_sha: str | None,
    final: bool,
    entry: dict[str, Any],
    previous: dict[str, Any] | None,
    where: str,
) -> list[str]:
    """The manifest against the ledger's latest entry for its run (and the one before)."""
    problems: list[str] = []
    if entry.get("manifest_sha256") != manifest_sha:
        problems.append(
            f"{MANIFEST_FILE}: its sha256 differs from the ledger's latest entry for this run "
            f"({where} seq {entry.get('seq')}): the manifest was rewritten or replaced"
        )
    if entry.get("final") is not final:
        problems.append(
            f"{MANIFEST_FILE}: final={final} but the entry in {where} (seq {entry.get('seq')}) "
            f"says final={entry.get('final')}"
        )
    expected_prev = previous.get("manifest_sha256") if previous else None
    if manifest.get("previous_manifest_sha256") != expected_prev:
        problems.append(
            f"{MANIFEST_FILE}: previous_manifest_sha256 does not match the previous entry for "
            f"this run in {where}"
        )
    place = manifest.get("ledger")
    if place is not None and (
        not isinstance(place, dict)
        or place.get("seq") != entry.get("seq")
        or place.get("prev") != entry.get("prev")
    ):
        problems.append(
            f"{MANIFEST_FILE}: it was sealed as ledger entry {_seq_of(place)}, but {where} holds "
            f"it as entry {entry.get('seq')} after another entry: the ledger was rebuilt or "
            "the run moved into another runs directory"
        )
    if manifest.get("signer") and entry.get("signer") != manifest["signer"].get("fingerprint"):
        problems.append(
            f"{where}: the entry (seq {entry.get('seq')}) names another signer than {MANIFEST_FILE}"
        )
    return problems


def _seq_of(place: Any) -> Any:
    return place.get("seq") if isinstance(place, dict) else place


def trust_root(run_dir: Path, allowed_signers: Path | None = None) -> tuple[Path, str]:
    """The allowed_signers a run's signatures are checked against, and how it was chosen:
    ``allowed_signers`` if given, else ``$RUNBOOK_ALLOWED_SIGNERS``, else the record's own
    :data:`TRUST_FILE`."""
    env = os.environ.get(ALLOWED_SIGNERS_ENV)
    if allowed_signers is not None:
        return Path(allowed_signers), f"{allowed_signers} (given)"
    if env:
        return Path(env), f"{env} (${ALLOWED_SIGNERS_ENV})"
    return Path(run_dir) / TRUST_FILE, f"the record's own {TRUST_FILE}"


def _check_signature(
    run_dir: Path, manifest: dict[str, Any], manifest_sha: str, allowed_signers: Path | None
) -> tuple[list[str], dict[str, str] | None, str]:
    """The seal's signature: SHA256SUMS lists exactly the manifest's files and manifest.json,
    and SHA256SUMS.sig is its signer's signature (allowed_signers, namespace seal@...)."""
    claimed = manifest.get("signer")
    if not isinstance(claimed, dict) or not isinstance(claimed.get("principal"), str):
        return (
            [
                f"{MANIFEST_FILE}: the seal is not signed: anyone able to run this code could "
                "have written it (seal again with the operator's key)"
            ],
            None,
            "",
        )
    problems: list[str] = []
    try:
        sums = read_regular(run_dir / SUMS_FILE)
    except OSError:
        return (
            [f"{SUMS_FILE}: missing or unreadable: the seal's signature cannot be checked"],
            None,
            "",
        )
    if sums != sums_bytes(manifest["files"], manifest_sha):
        problems.append(f"{SUMS_FILE}: does not list exactly the manifest's files and digests")
    try:
        signature = read_regular(run_dir / SUMS_SIG_FILE)
    except OSError:
        return (
            [*problems, f"{SUMS_SIG_FILE}: missing or unreadable: the seal is not signed"],
            None,
            "",
        )
    trust_path, trust = trust_root(run_dir, allowed_signers)
    try:
        trust_sha = hashlib.sha256(read_regular(trust_path)).hexdigest()
    except OSError:
        return (
            [
                *problems,
                f"{trust_path}: no allowed_signers to check the seal's signature against (pass "
                "--allowed-signers FILE)",
            ],
            None,
            trust,
        )
    trust += f", sha256 {trust_sha[:16]}…"
    at = None
    with suppress(TypeError, ValueError):
        at = dt.datetime.fromisoformat(str(manifest.get("sealed_at")))
    try:
        good = verify_signature(
            sums, signature, claimed["principal"], SEAL_NAMESPACE, trust_path, at=at
        )
    except SigningError as err:
        return [*problems, f"{SUMS_SIG_FILE}: {err}"], None, trust
    if good.fingerprint != claimed.get("fingerprint"):
        problems.append(
            f"{SUMS_SIG_FILE}: signed by key {good.fingerprint}, but {MANIFEST_FILE} names "
            f"{claimed.get('fingerprint')}"
        )
    return problems, {**claimed, "principal": good.principal, "key_type": good.key_type}, trust


def _check_manifest(
    run_dir: Path,
    run_id: str,
    manifest: dict[str, Any],
    count: int,
    head: Any,
    digests: dict[str, tuple[str, int]],
    archived: bool = False,
) -> list[str]:
    """The files and events against the manifest (links and the like: :func:`check_files`).
    An archived copy also holds the archive's ledger files, which no manifest lists."""
    problems: list[str] = []
    if manifest.get("run_id") != run_id:
        problems.append(f"{MANIFEST_FILE}: run_id {manifest.get('run_id')!r} is not {run_id!r}")
    listed: dict[str, Any] = manifest["files"]
    present: set[str] = set()
    for rel, path in walk_run(run_dir):
        present.add(rel)
        if path.is_symlink() or not path.is_file():
            continue  # named by check_files
        if rel not in listed and not (archived and rel in ARCHIVE_FILES):
            problems.append(f"{rel}: not in the manifest (added after the seal)")
    for rel, meta in sorted(listed.items()):
        path = run_dir / rel
        if archived and rel == LOCK_FILE:
            continue  # the archive does not keep the (empty) lock file
        if rel not in present or not path.is_file():
            problems.append(f"{rel}: missing (listed in the manifest)")
            continue
        if path.is_symlink():
            continue
        sha, size = cached_digest(digests, rel, path)
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


def _check_ledger_entries(
    path: Path, run_id: str
) -> tuple[list[str], dict[str, Any] | None, dict[str, Any] | None]:
    """An archived copy's ledger lines (only this run's, so not linked to each other): each
    entry's own hash, its run, increasing seq; the latest entry and the one before it."""
    try:
        raw = read_regular(path)
    except OSError:
        return [f"{LEDGER_ENTRIES_FILE}: unreadable"], None, None
    problems: list[str] = []
    mine: list[dict[str, Any]] = []
    for number, line in enumerate(raw.splitlines(), 1):
        entry = parse_line(line)
        if entry is None:
            problems.append(f"{LEDGER_ENTRIES_FILE}: line {number} is not a ledger entry")
            continue
        if entry_hash({k: v for k, v in entry.items() if k != "hash"}) != entry["hash"]:
            problems.append(f"{LEDGER_ENTRIES_FILE}: line {number}: its hash does not match")
        if entry.get("run_id") != run_id:
            problems.append(f"{LEDGER_ENTRIES_FILE}: line {number} is another run's entry")
            continue
        if mine and not int(entry.get("seq", 0)) > int(mine[-1].get("seq", 0)):
            problems.append(f"{LEDGER_ENTRIES_FILE}: line {number}: seq does not increase")
        mine.append(entry)
    latest = mine[-1] if mine else None
    previous = mine[-2] if len(mine) > 1 else None
    return problems, latest, previous


def check_integrity(run_dir: Path, allow_unrecorded: Collection[str] = ()) -> list[str]:
    """What is wrong with a run that is to be continued or sealed; [] when all is well.

    For a run that may have been interrupted (no seal since its last events), where
    :func:`verify`'s manifest check does not apply yet: symbolic links (never followed), entries
    not owned by you, directories not 0700 and files not 0600, an unsafe runs directory, broken
    events or ledger chains, a manifest the ledger does not point at or whose events were
    rewritten after it, and every file against its latest file event, except the relpaths in
    ``allow_unrecorded`` (e.g. the notebook of a step about to be re-executed).
    """
    run_dir = Path(run_dir)
    problems = runs_dir_problems(run_dir.parent)
    try:
        st = os.lstat(run_dir)
    except OSError as err:
        return [*problems, f"{run_dir}: cannot be read ({err.strerror})"]
    if stat.S_ISLNK(st.st_mode):
        return [
            *problems,
            f"{run_dir}: a symbolic link, not a run directory (it is not followed; use the real "
            "directory and find out who made the link)",
        ]
    if not stat.S_ISDIR(st.st_mode):
        return [*problems, f"{run_dir}: not a directory"]
    problems.extend(_tree_problems(run_dir))

    chain = read_chain(run_dir / EVENTS_FILE, EVENTS_FILE)
    problems.extend(chain.problems)
    run_id = run_dir.name
    ledger_problems, latest, _ = run_entries(run_dir.parent / LEDGER_FILE, run_id)
    problems.extend(ledger_problems)

    manifest_path = run_dir / MANIFEST_FILE
    if os.path.lexists(manifest_path):
        problems.extend(_check_checkpoint(manifest_path, run_id, chain, latest))
    problems.extend(
        check_files(run_dir, chain.entries, set(allow_unrecorded), report_irregular=False)
    )
    return problems


def _check_checkpoint(
    manifest_path: Path, run_id: str, chain: Chain, latest: dict[str, Any] | None
) -> list[str]:
    """The last seal's manifest against the ledger, and the events it sealed against the chain."""
    try:
        raw = read_regular(manifest_path)
        manifest = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError):
        return [f"{MANIFEST_FILE}: unreadable or not valid JSON"]
    problems: list[str] = []
    if latest is None:
        problems.append(f"{LEDGER_FILE}: no entry for run {run_id}: the seal is not recorded")
    elif latest.get("manifest_sha256") != hashlib.sha256(raw).hexdigest():
        problems.append(
            f"{MANIFEST_FILE}: its sha256 differs from the ledger's latest entry for this run "
            f"(ledger seq {latest.get('seq')}): the manifest was rewritten or replaced"
        )
    events = manifest.get("events") if isinstance(manifest, dict) else None
    if not isinstance(events, dict):
        return [*problems, f"{MANIFEST_FILE}: no valid events summary"]
    count = events.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return [*problems, f"{MANIFEST_FILE}: no valid events summary"]
    by_seq = {e.get("seq"): e for e in chain.entries}
    sealed = by_seq.get(count)
    if count and sealed is None:
        problems.append(
            f"{MANIFEST_FILE}: the seal covered {count} events but {EVENTS_FILE} has no event "
            f"{count} (events before the checkpoint were deleted)"
        )
    elif (sealed["hash"] if sealed else ZERO_HASH) != events.get("head"):
        problems.append(
            f"{MANIFEST_FILE}: events.head is not the hash of event {count} in {EVENTS_FILE}: "
            "events before the checkpoint were rewritten"
        )
    return problems
