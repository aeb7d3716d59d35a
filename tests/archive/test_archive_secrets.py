"""archive_run scans every file before the first upload: a record sealed with a secret in it
(sealed before the seal scanned its files) is refused, naming the file and the kind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.errors import PreconditionError
from runbook_lib.record import run as record_module
from runbook_lib.record.archive import archive_run
from runbook_lib.record.run import RunRecord
from runbook_lib.record.secrets import fingerprint
from runbook_lib.record.verify import verify
from runbook_sandbox import SandboxInfo
from tests.keys import signer

from .test_archive import BUCKET, RUN_ID, all_versions, context, make_run

KEY = "OgM2kw5csjs3mWUnFNarRYnf8xx1nHv3FaDEW6rP"
TOKEN = "ZZlb1Ni+bp6WKegzs6UrJhStguD0oWH7l11GznpuT7EX/HjfOLc2IWGU1FL51WpIfPCF7s2mXFMYDPQg"


@pytest.fixture
def s3(standalone: SandboxInfo) -> Any:
    client = standalone.client("s3")
    client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    return client


def sealed_with_secret(runs: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> RunRecord:
    """A record sealed final the way the runbook sealed them before its seal scanned files: a
    notebook papermill wrote (with ``text`` in an output) taken in as it was."""
    record = RunRecord.create(runs, {"parameters": {"account_id": "123456789012"}}, RUN_ID)
    record.append(
        "session.assumed", "01", secret_fingerprints=[fingerprint(KEY), fingerprint(TOKEN)]
    )
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "source": "remove(step)",
                "outputs": [{"output_type": "stream", "name": "stderr", "text": [text]}],
                "execution_count": 1,
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (record.path / "notebooks").mkdir(mode=0o700)
    (record.path / "notebooks" / "01.ipynb").write_text(json.dumps(nb, indent=1))
    record.record_file("notebooks/01.ipynb")
    with monkeypatch.context() as m:
        m.setattr(record_module, "file_findings", lambda *a, **k: [])
        record.seal(final=True, signer=signer())
    assert verify(record.path).ok
    return record


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"<SessionToken>{TOKEN}</SessionToken>\n", "session-token"),
        (f"saved to /tmp/x_{KEY}_y\n", "secret-access-key"),  # only its fingerprint finds it
    ],
)
def test_a_record_with_a_secret_is_refused_and_nothing_uploaded(
    standalone: SandboxInfo,
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    kind: str,
) -> None:
    record = sealed_with_secret(tmp_path / "runs", monkeypatch, text)
    with pytest.raises(PreconditionError) as err:
        archive_run(record.path, f"s3://{BUCKET}", 30, aws=context(standalone))
    message = str(err.value)
    assert "Nothing was uploaded" in message
    assert f"notebooks/01.ipynb: {kind} (cell 0 (code) outputs[0] text:" in message
    assert KEY not in message and TOKEN not in message
    assert all_versions(s3, BUCKET) == []
    shutil.rmtree(record.path)  # not left behind for the session-wide scan


def test_a_clean_record_is_archived(standalone: SandboxInfo, s3: Any, tmp_path: Path) -> None:
    record = make_run(tmp_path / "runs")
    result = archive_run(record.path, f"s3://{BUCKET}", 30, aws=context(standalone))
    assert result["run_id"] == RUN_ID and result["objects"]
