"""The names of the run record's files: a runs directory, its ledger, and each run's directory.

Every directory 0700, every file 0600, whatever the umask::

    runs/                       runs_dir: yours, not group/other-writable, not a symlink
    ├── ledger.jsonl            one hash-chained entry per seal, for every run
    └── 20261126T051500Z-3f9a/  one run
        ├── run.json            parameters, status, steps (rewritten atomically)
        ├── run.json.lock       lock file for run.json, files and seals (empty)
        ├── events.jsonl        hash-chained events, append-only
        ├── snapshots/...       evidence: write_json / write_text, each on the event chain
        ├── notebooks/...       written by papermill or JupyterLab, then record_file()
        ├── manifest.json       sha256 and size of every other file, its signer and its place
        │                       in the ledger, written by seal()
        ├── SHA256SUMS          the same digests (and manifest.json's) for ``sha256sum -c``
        └── SHA256SUMS.sig      the sealer's SSH signature of SHA256SUMS (signing.SEAL_NAMESPACE)

A copy downloaded from the archive (:mod:`runbook_lib.record.archive`) also holds
``ledger-entries.jsonl`` (this run's ledger lines) and ``ledger-head.json`` (the ledger's last
entry when it was archived), and no ``run.json.lock``.
"""

from __future__ import annotations

__all__ = [
    "ARCHIVE_FILES",
    "EVENTS_FILE",
    "LEDGER_ENTRIES_FILE",
    "LEDGER_FILE",
    "LEDGER_HEAD_FILE",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "RESERVED",
    "RUN_FILE",
    "SEAL_FILES",
    "SUMS_FILE",
    "SUMS_SIG_FILE",
    "TRUST_FILE",
]

RUN_FILE = "run.json"
EVENTS_FILE = "events.jsonl"
MANIFEST_FILE = "manifest.json"
LEDGER_FILE = "ledger.jsonl"  # in the runs dir, beside the run dirs
LOCK_FILE = "run.json.lock"
SUMS_FILE = "SHA256SUMS"  # `sha256sum -c` list of every file, manifest.json included
SUMS_SIG_FILE = "SHA256SUMS.sig"  # the operator's SSH signature of SHA256SUMS
SEAL_FILES = (MANIFEST_FILE, SUMS_FILE, SUMS_SIG_FILE)  # written by seal(), not in the manifest
# an archived copy of a run (runbook_lib.record.archive) also holds, beside the seal files:
LEDGER_ENTRIES_FILE = "ledger-entries.jsonl"  # this run's lines of the runs dir's ledger
LEDGER_HEAD_FILE = "ledger-head.json"  # the ledger's last entry (seq, hash) when archived
TRUST_FILE = "trust/allowed_signers"  # who may sign this run's approvals and seals
# the record's own files: never written through write_json & co., not on the file chain
RESERVED = {RUN_FILE, EVENTS_FILE, LOCK_FILE, *SEAL_FILES, LEDGER_ENTRIES_FILE, LEDGER_HEAD_FILE}
# an archived copy's own files, which no manifest lists
ARCHIVE_FILES = (LEDGER_ENTRIES_FILE, LEDGER_HEAD_FILE)
