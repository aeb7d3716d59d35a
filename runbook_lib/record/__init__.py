"""The run record: the evidence a run leaves, and how it is checked.

============== ==============================================================
:mod:`.files`      the file discipline (atomic 0600 writes, fsync, staging)
:mod:`.run`        ``RunRecord``: hash-chained events, file events, run.json, seals,
                   the ledger, ``verify`` and ``check_integrity``
:mod:`.signing`    ``ssh-keygen -Y sign/verify``; the approval and seal namespaces
:mod:`.secrets`    what counts as a secret; the record refuses to write one
:mod:`.report`     the auditor's HTML page
:mod:`.archive`    the WORM anchor: a sealed record to S3 Object Lock, once
============== ==============================================================
"""
