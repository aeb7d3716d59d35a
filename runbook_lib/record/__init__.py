"""The run record: the evidence a run leaves, and how it is checked.

================== ==========================================================
:mod:`.layout`     the names of the record's files (runs dir, ledger, run dir)
:mod:`.files`      the file discipline (atomic 0600 writes, no-follow reads, flock)
:mod:`.chain`      the hash chain: entry hashing, chained appends, lenient reads
:mod:`.ledger`     the runs dir and its ledger: seal entries, ``list_runs``
:mod:`.secrets`    what counts as a secret; the record refuses to write one
:mod:`.signing`    ``ssh-keygen -Y sign/verify``; the approval and seal namespaces
:mod:`.run`        ``RunRecord``: events, file events, run.json, seals
:mod:`.verify`     ``verify`` (a sealed record, or an archived copy), ``trust_root``,
                   ``check_integrity`` (before continuing a run)
:mod:`.report`     the auditor's HTML page
:mod:`.archive`    the WORM anchor: a sealed record to S3 Object Lock, once
================== ==========================================================

Each module imports only modules above it here (tests/test_architecture.py finds any import
circle); the record's errors are in :mod:`runbook_lib.errors`.
"""
