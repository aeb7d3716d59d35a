"""The record and secrets it did not write: fingerprints from the events, redaction of files
others wrote (record_file(redact=True), every seal), refusal when its own files hold one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.errors import RecordError, SecretRefused
from runbook_lib.record.layout import EVENTS_FILE
from runbook_lib.record.run import RunRecord
from runbook_lib.record.secrets import fingerprint, scan_path
from runbook_lib.record.verify import verify
from tests.keys import signer

from .test_secrets_scan import KEY_ID, SANDBOX_KEY, SANDBOX_TOKEN, debug_log_notebook

RUN_ID = "20261126T051500Z-3f9a"
NOTEBOOK = "notebooks/01-remove-device.ipynb"


def events_of(rec: RunRecord, type_: str) -> list[dict[str, Any]]:
    return [e for e in rec.events() if e["type"] == type_]


def session_run(tmp_path: Path) -> RunRecord:
    """A run that assumed a session: its fingerprints are on the record, never the secrets."""
    rec = RunRecord.create(
        tmp_path / "runs", {"parameters": {"account_id": "123456789012"}}, RUN_ID
    )
    rec.append(
        "session.assumed",
        "01-remove-device",
        access_key_id=KEY_ID,
        secret_fingerprints=[fingerprint(SANDBOX_KEY), fingerprint(SANDBOX_TOKEN)],
    )
    return rec


def write_notebook(rec: RunRecord, rel: str = NOTEBOOK) -> Path:
    """What papermill does: a file written into the run by someone else."""
    path = rec.path / rel
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(json.dumps(debug_log_notebook(), indent=1))
    return path


def test_fingerprints_are_read_from_the_events(tmp_path: Path) -> None:
    rec = session_run(tmp_path)
    assert rec.secret_fingerprints() == {fingerprint(SANDBOX_KEY), fingerprint(SANDBOX_TOKEN)}
    rec.append("credentials.fingerprinted", secret_fingerprints=[fingerprint("x" * 40)])
    assert fingerprint("x" * 40) in rec.secret_fingerprints()
    assert RunRecord.open(rec.path).secret_fingerprints() == rec.secret_fingerprints()
    # what the record writes is checked against them: a credential the run handled is refused
    # where no pattern would see it
    with pytest.raises(SecretRefused, match="this run handled"):
        rec.append("note", None, text=f"saved to /tmp/x_{SANDBOX_KEY}_y")
    with pytest.raises(SecretRefused):
        rec.write_text("notes.txt", f"kept in ~/.cache/x_{SANDBOX_TOKEN}.bak\n")


def test_record_file_redacts_then_records(tmp_path: Path) -> None:
    rec = session_run(tmp_path)
    path = write_notebook(rec)
    event = rec.record_file(NOTEBOOK, step="01-remove-device", redact=True)
    text = path.read_text()
    assert SANDBOX_KEY not in text and SANDBOX_TOKEN not in text
    assert "[REDACTED session-token]" in text and "[REDACTED secret-access-key]" in text
    redacted = events_of(rec, "secret.redacted")
    assert [(e["data"]["kind"], e["data"]["count"]) for e in redacted] == [
        ("secret-access-key", 1),
        ("session-token", 3),
    ]
    assert all(e["data"]["path"] == NOTEBOOK and e["step"] == "01-remove-device" for e in redacted)
    assert all(w.startswith("cell 1 (code) outputs[") for e in redacted for w in e["data"]["where"])
    # the recorded digest is the redacted file's; the events came first
    assert event["seq"] == redacted[-1]["seq"] + 1
    assert event["data"]["size"] == path.stat().st_size
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    rec.seal(signer=signer())
    assert verify(rec.path).ok
    assert scan_path(rec.path, fingerprints=rec.secret_fingerprints()) == []
    for file in rec.path.rglob("*"):
        if file.is_file():
            assert SANDBOX_KEY not in file.read_text() and SANDBOX_TOKEN not in file.read_text()


def test_record_file_without_redact_takes_the_file_as_it_is(tmp_path: Path) -> None:
    rec = session_run(tmp_path)
    path = write_notebook(rec)
    before = path.read_bytes()
    rec.record_file(NOTEBOOK)
    assert path.read_bytes() == before
    assert events_of(rec, "secret.redacted") == []
    shutil.rmtree(rec.path)  # a record with a secret must not be left behind


def test_seal_redacts_files_others_wrote(tmp_path: Path) -> None:
    """A notebook recorded without redaction (an older runner, JupyterLab's save, abandon) is
    redacted and recorded again by the seal: the sealed record holds no secret."""
    rec = session_run(tmp_path)
    write_notebook(rec)
    rec.record_file(NOTEBOOK, step="01-remove-device")
    write_notebook(rec, "notebooks/attempts/01-remove-device.attempt-1.ipynb")
    rec.record_file("notebooks/attempts/01-remove-device.attempt-1.ipynb")
    rec.move_aside(
        "notebooks/attempts/01-remove-device.attempt-1.ipynb",
        "notebooks/attempts/kept.ipynb",
    )
    manifest = rec.seal(final=False, signer=signer())
    assert verify(rec.path).ok
    assert scan_path(rec.path, fingerprints=rec.secret_fingerprints()) == []
    redacted = events_of(rec, "secret.redacted")
    assert {e["data"]["path"] for e in redacted} == {NOTEBOOK, "notebooks/attempts/kept.ipynb"}
    assert {e["step"] for e in redacted if e["data"]["path"] == NOTEBOOK} == {"01-remove-device"}
    recorded = [e["data"]["path"] for e in events_of(rec, "file.recorded")]
    assert recorded.count(NOTEBOOK) == 2
    assert "[REDACTED" in (rec.path / NOTEBOOK).read_text()
    assert manifest["files"][NOTEBOOK]["size"] == (rec.path / NOTEBOOK).stat().st_size
    rec.seal(signer=signer())  # nothing left to redact: no new event
    assert len(events_of(rec, "secret.redacted")) == len(redacted)


def test_seal_refuses_when_a_file_the_record_wrote_holds_a_secret(tmp_path: Path) -> None:
    """A secret the record wrote itself (here: before its fingerprint was on the record, where
    no pattern saw it) is a bug: the seal refuses and writes nothing."""
    rec = RunRecord.create(tmp_path / "runs", {}, RUN_ID)
    rec.append("note", None, text=f"saved to /tmp/x_{SANDBOX_KEY}_y")
    rec.write_text("notes.txt", f"see /tmp/x_{SANDBOX_KEY}_y\n")
    rec.append("credentials.fingerprinted", secret_fingerprints=[fingerprint(SANDBOX_KEY)])
    events = (rec.path / EVENTS_FILE).read_bytes()
    with pytest.raises(RecordError, match="files the record wrote itself") as err:
        rec.seal(signer=signer())
    message = str(err.value)
    assert (
        "events.jsonl: secret-access-key" in message and "notes.txt: secret-access-key" in message
    )
    assert SANDBOX_KEY not in message
    assert (rec.path / EVENTS_FILE).read_bytes() == events
    assert not (rec.path / "manifest.json").exists()
    shutil.rmtree(rec.path)


def test_seal_leaves_a_tampered_file_to_the_integrity_check(tmp_path: Path) -> None:
    rec = session_run(tmp_path)
    write_notebook(rec)
    rec.record_file(NOTEBOOK)
    nb = rec.path / NOTEBOOK
    nb.write_text(nb.read_text() + " ")  # edited behind the record's back
    with pytest.raises(RecordError, match="differs from what the event chain recorded"):
        rec.seal(signer=signer())
    assert events_of(rec, "secret.redacted") == []
    shutil.rmtree(rec.path)


def test_nobody_else_appends_secret_redacted(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {}, RUN_ID)
    with pytest.raises(RecordError, match="the record's own"):
        rec.append("secret.redacted", None, path="x", kind="session-token", count=1)


def test_a_bare_20_character_base32_seed_is_refused(tmp_path: Path) -> None:
    rec = RunRecord.create(tmp_path / "runs", {}, RUN_ID)
    with pytest.raises(SecretRefused, match=r"data\.value: authenticator app's secret key"):
        rec.append("note", None, value="JBSWY3DPEHPK3PXPJBSW")
    rec.append("note", None, value="ASIAGOMW77UFZRPVNPGI")  # an access key id is fine


def test_redaction_of_a_text_file_others_wrote(tmp_path: Path) -> None:
    rec = session_run(tmp_path)
    path = rec.path / "notebooks" / "stray.log"
    path.parent.mkdir(mode=0o700)
    path.write_text(f"x-amz-security-token:{SANDBOX_TOKEN}\nok\n")
    os.chmod(path, 0o644)
    rec.record_file("notebooks/stray.log", redact=True)
    assert path.read_text() == "x-amz-security-token:[REDACTED session-token]\nok\n"
