"""The WORM copy as an anchor the operator cannot rewrite.

``archive_run`` looks at what is archived before uploading: nothing -> upload; byte-identical
to the first version of every key -> upload nothing; anything else -> refuse, naming every
difference, with nothing uploaded. It also anchors the ledger's head. ``verify_against``
compares the local record with the archive's first versions, reports overwritten keys, files
only on one side, and ledger heads the local ledger no longer holds (a run deleted and the
ledger re-chained). The CLI: ``runbook verify RUN --against s3://...`` exits 0 / 1 / 2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.errors import ParameterError, PreconditionError
from runbook_lib.record.archive import LEDGER_HEADS_PREFIX, archive_run, verify_against
from runbook_lib.record.chain import canonical, entry_hash
from runbook_lib.record.layout import (
    LEDGER_ENTRIES_FILE,
    LEDGER_FILE,
    LEDGER_HEAD_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    SUMS_FILE,
    SUMS_SIG_FILE,
)
from runbook_lib.record.run import RunRecord
from runbook_lib.record.verify import verify
from runbook_sandbox import SandboxInfo
from tests import keys
from tests.keys import signer
from tests.sandbox.helpers import aws_cli

from .test_archive import BUCKET, REPO, RUN_ID, all_versions, context, make_run

DEST = f"s3://{BUCKET}/records"
OTHER_ID = "20261126T040000Z-0001"


def keys_and_versions(s3: Any) -> set[tuple[str, str]]:
    return {(v["Key"], v["VersionId"]) for v in all_versions(s3, BUCKET)}


def forged(tmp_path: Path, run_id: str = RUN_ID) -> Path:
    """A record with the same run id, made elsewhere, that says something else; it verifies."""
    record = RunRecord.create(
        tmp_path / "forger" / "runs", {"parameters": {"account_id": "123456789012"}}, run_id
    )
    record.append("step.started", "preflight")
    record.append("step.finished", "preflight", outcome="ok")
    record.write_json("snapshots/before.json", {"root_mfa": False, "devices": []})
    record.write_text("notebooks/99-extra.ipynb", json.dumps({"cells": [], "nbformat": 4}))
    record.seal(final=True, signer=signer())
    assert verify(record.path).ok
    return record.path


def rechain_without(runs: Path, run_id: str) -> None:
    """Delete a run and its ledger entries, and re-chain the ledger with the project's hashing:
    what someone who may write the runs dir can do."""
    shutil.rmtree(runs / run_id)
    entries = [json.loads(line) for line in (runs / LEDGER_FILE).read_text().splitlines()]
    prev, lines = "0" * 64, []
    for seq, entry in enumerate((e for e in entries if e["run_id"] != run_id), start=1):
        entry.update(seq=seq, prev=prev)
        entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
        lines.append(canonical(entry) + "\n")
    (runs / LEDGER_FILE).write_text("".join(lines))


@pytest.fixture
def s3(standalone: SandboxInfo) -> Any:
    client = standalone.client("s3")
    client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    return client


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def run_dir(runs: Path) -> Path:
    return make_run(runs).path


@pytest.fixture
def archived(standalone: SandboxInfo, s3: Any, run_dir: Path) -> dict[str, Any]:
    return archive_run(run_dir, DEST, 3, aws=context(standalone))


# --- archive: what is already there decides --------------------------------------------------


def test_first_archive_uploads_and_anchors_the_ledger_head(
    s3: Any, runs: Path, run_dir: Path, archived: dict[str, Any]
) -> None:
    assert archived["status"] == "archived"
    last = json.loads((runs / LEDGER_FILE).read_text().splitlines()[-1])
    head = archived["ledger_head"]
    assert (head["seq"], head["hash"]) == (last["seq"], last["hash"])
    assert (
        head["key"]
        == f"records/{LEDGER_HEADS_PREFIX}/{last['seq']:08d}-{last['hash']}-{RUN_ID}.json"
    )
    body = json.loads(s3.get_object(Bucket=BUCKET, Key=head["key"])["Body"].read())
    assert {k: body[k] for k in ("seq", "hash", "run_id")} == {
        "seq": last["seq"],
        "hash": last["hash"],
        "run_id": RUN_ID,
    }
    assert body["archived_at"].endswith("Z")
    per_run = s3.get_object(Bucket=BUCKET, Key=f"records/{RUN_ID}/{LEDGER_HEAD_FILE}")
    assert json.loads(per_run["Body"].read()) == body
    retention = s3.get_object_retention(Bucket=BUCKET, Key=head["key"])["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    keys = {key for key, _ in keys_and_versions(s3)}
    assert f"records/{RUN_ID}/{LOCK_FILE}" not in keys  # the lock file is never archived


def test_identical_re_archive_uploads_nothing_and_says_so(
    standalone: SandboxInfo, s3: Any, run_dir: Path, archived: dict[str, Any]
) -> None:
    before = keys_and_versions(s3)
    again = archive_run(run_dir, DEST + "/", 5, aws=context(standalone))
    assert again["status"] == "already archived, identical"
    assert again["uploaded"] == 0
    assert keys_and_versions(s3) == before
    # the anchors' retention was checked, and extended to what was asked this time
    assert again["retain_until"] > archived["retain_until"]
    for obj in again["objects"]:
        retention = s3.get_object_retention(
            Bucket=BUCKET, Key=obj["key"], VersionId=obj["version_id"]
        )["Retention"]
        assert retention["Mode"] == "COMPLIANCE"
        assert retention["RetainUntilDate"].isoformat().startswith(again["retain_until"][:16])
    assert {o["version_id"] for o in again["objects"]} <= {v for _, v in before}


def test_a_forged_record_is_refused_over_the_archived_one(
    standalone: SandboxInfo, s3: Any, tmp_path: Path, archived: dict[str, Any]
) -> None:
    before = keys_and_versions(s3)
    with pytest.raises(PreconditionError) as exc:
        archive_run(forged(tmp_path), DEST, 3, aws=context(standalone))
    text = str(exc.value)
    assert "Nothing was uploaded" in text
    assert "snapshots/before.json: differs from the archived copy" in text
    assert f"{MANIFEST_FILE}: differs from the archived copy" in text
    assert "notebooks/99-extra.ipynb: only in the local record" in text
    assert "notebooks/01-preflight.ipynb: only in the archive" in text
    assert keys_and_versions(s3) == before


def test_a_partial_archive_is_completed_when_its_manifest_matches(
    standalone: SandboxInfo, s3: Any, run_dir: Path, archived: dict[str, Any]
) -> None:
    """A failure part-way (the manifest goes first) is completed by archiving again."""
    gone = next(o for o in archived["objects"] if o["key"].endswith("snapshots/before.json"))
    standalone.control.advance_clock(3 * 86400 + 120)  # the lock has ended: simulate the gap
    s3.delete_object(Bucket=BUCKET, Key=gone["key"], VersionId=gone["version_id"])
    again = archive_run(run_dir, DEST, 10, aws=context(standalone))  # later than the clock
    assert again["status"] == "completed"
    assert again["uploaded"] == 1
    assert gone["key"] in {k for k, _ in keys_and_versions(s3)}


def test_an_archive_without_a_ledger_head_gets_one(
    standalone: SandboxInfo, s3: Any, run_dir: Path, archived: dict[str, Any]
) -> None:
    """An archive made before ledger heads were archived (simulated: the lock ended and the
    head objects were deleted) is completed with the ledger's head now."""
    standalone.control.advance_clock(3 * 86400 + 120)
    for obj in archived["objects"]:
        if obj["key"].endswith(LEDGER_HEAD_FILE) or f"/{LEDGER_HEADS_PREFIX}/" in obj["key"]:
            s3.delete_object(Bucket=BUCKET, Key=obj["key"], VersionId=obj["version_id"])
    again = archive_run(run_dir, DEST, 10, aws=context(standalone))
    assert (again["status"], again["uploaded"]) == ("completed", 2)
    assert again["ledger_head"] is not None
    assert verify_against(run_dir, DEST, aws=context(standalone)).ledger_heads


def test_a_write_between_the_check_and_the_upload_is_refused(
    standalone: SandboxInfo, s3: Any, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload is conditional (If-None-Match: *): a key someone wrote after the check is not
    overwritten; the archive stops and names it."""
    import runbook_lib.record.archive as archive

    real = archive._survey
    key = f"records/{RUN_ID}/events.jsonl"

    def survey_then_race(s3_: Any, bucket: str, prefix: str) -> Any:
        found = real(s3_, bucket, prefix)
        if prefix.endswith(f"{RUN_ID}/"):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"planted")
        return found

    monkeypatch.setattr(archive, "_survey", survey_then_race)
    with pytest.raises(PreconditionError, match=rf"{key}.*written by someone else"):
        archive_run(run_dir, DEST, 1, aws=context(standalone))
    assert [v for k, v in keys_and_versions(s3) if k == key].__len__() == 1
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"planted"


# --- verify against the archive ----------------------------------------------------------------


def test_an_intact_record_verifies_against_its_archive(
    standalone: SandboxInfo, run_dir: Path, archived: dict[str, Any]
) -> None:
    report = verify_against(run_dir, DEST, aws=context(standalone))
    assert report.ok, report.problems
    assert report.problems == []
    assert report.run_id == RUN_ID
    assert any(k["rel"] == "snapshots/before.json" for k in report.keys)
    assert len(report.ledger_heads) == 1 and report.ledger_heads[0]["in_local_ledger"]
    assert "intact" in str(report)
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True


def test_a_local_file_edited_after_archive_is_detected(
    standalone: SandboxInfo, run_dir: Path, archived: dict[str, Any]
) -> None:
    snapshot = run_dir / "snapshots" / "before.json"
    snapshot.write_text(snapshot.read_text().replace("true", "false"))
    report = verify_against(run_dir, DEST, aws=context(standalone))
    assert not report.ok
    assert report.problems == [
        "snapshots/before.json: the local file differs from the archived copy (its first version)"
    ]


def test_a_local_file_deleted_after_archive_is_detected(
    standalone: SandboxInfo, run_dir: Path, archived: dict[str, Any]
) -> None:
    (run_dir / "notebooks" / "01-preflight.ipynb").unlink()
    (run_dir / "snapshots" / "extra.json").write_text("{}")
    report = verify_against(run_dir, DEST, aws=context(standalone))
    assert not report.ok
    assert "notebooks/01-preflight.ipynb: only in the archive (deleted locally)" in report.problems
    assert "snapshots/extra.json: only in the local record (not archived)" in report.problems


def test_an_object_overwritten_in_the_archive_is_detected_and_compared_to_the_first(
    standalone: SandboxInfo, s3: Any, run_dir: Path, archived: dict[str, Any]
) -> None:
    """Someone with s3:PutObject writes a new version; the first version stays the anchor."""
    key = f"records/{RUN_ID}/snapshots/before.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"root_mfa": false}')
    report = verify_against(run_dir, DEST, aws=context(standalone))
    assert not report.ok
    overwritten = [p for p in report.problems if p.startswith("snapshots/before.json")]
    assert len(overwritten) == 2, report.problems
    assert "overwritten: 2 versions" in overwritten[0] and "first written" in overwritten[0]
    assert "latest version differs from the first" in overwritten[1]
    # the local file still matches the first version: no "local differs" problem
    assert not any("local file differs" in p for p in report.problems)


@pytest.mark.parametrize("deleted_first", [False, True])
def test_a_run_deleted_and_the_ledger_re_chained_is_detected(
    standalone: SandboxInfo, s3: Any, runs: Path, deleted_first: bool
) -> None:
    """Two runs archived; one is deleted with its ledger entries and the ledger re-chained. The
    archived ledger heads catch it; when the deleted run came first, the remaining run's own
    ledger lines changed too."""
    if deleted_first:
        other, run_dir = make_run(runs, OTHER_ID).path, make_run(runs).path
    else:
        run_dir, other = make_run(runs).path, make_run(runs, OTHER_ID).path
    archive_run(other, DEST, 1, aws=context(standalone))
    archive_run(run_dir, DEST, 1, aws=context(standalone))
    rechain_without(runs, OTHER_ID)
    # the local record alone tells only when the deleted run's entries came before its own
    # (its signed manifest names its place in the ledger); the archive tells in both cases
    local = verify(run_dir)
    assert local.ok is not deleted_first, local.problems
    if deleted_first:
        assert any("ledger was rebuilt" in p for p in local.problems), local.problems

    report = verify_against(run_dir, DEST, aws=context(standalone))
    assert not report.ok
    heads = [p for p in report.problems if p.startswith("ledger head")]
    assert heads and all("rewritten or a run was deleted" in p for p in heads)
    assert any(OTHER_ID in p for p in heads)
    entries = [p for p in report.problems if p.startswith(f"{LEDGER_ENTRIES_FILE}:")]
    assert len(entries) == (1 if deleted_first else 0)
    assert len(report.problems) == len(heads) + len(entries), report.problems


def test_verify_against_a_run_never_archived(
    standalone: SandboxInfo, s3: Any, run_dir: Path
) -> None:
    report = verify_against(run_dir, DEST, aws=context(standalone))
    assert not report.ok
    assert report.problems[0].startswith(
        f"nothing is archived under s3://{BUCKET}/records/{RUN_ID}/"
    )


def test_verify_against_refuses_bad_usage(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="must look like s3://"):
        verify_against(run_dir, "bucket/prefix")
    with pytest.raises(ParameterError, match="not a run directory"):
        verify_against(tmp_path / "nowhere", DEST)


# --- the CLI -------------------------------------------------------------------------------------


def _cli(info: SandboxInfo, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    keys = info.principals["admin"]
    env.update(
        AWS_ACCESS_KEY_ID=keys["access_key_id"],
        AWS_SECRET_ACCESS_KEY=keys["secret_access_key"],
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return subprocess.run(
        [sys.executable, "-m", "runbook_lib.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_verify_against_exit_codes(
    standalone: SandboxInfo, run_dir: Path, archived: dict[str, Any]
) -> None:
    url = ["--endpoint-url", standalone.endpoint]
    done = _cli(standalone, "verify", str(run_dir), "--against", DEST, *url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "intact" in done.stdout

    (run_dir / "snapshots" / "before.json").write_text("{}")
    done = _cli(standalone, "verify", str(run_dir), "--against", DEST, *url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "snapshots/before.json: the local file differs from the archived copy" in done.stdout

    done = _cli(standalone, "verify", str(run_dir), "--against", "not-s3/x", *url)
    assert done.returncode == 2
    assert "must look like s3://" in done.stderr and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1


def test_cli_archive_says_already_archived(
    standalone: SandboxInfo, s3: Any, run_dir: Path, archived: dict[str, Any]
) -> None:
    url = ["--endpoint-url", standalone.endpoint]
    done = _cli(standalone, "archive", str(run_dir), DEST, "--retain-days", "3", *url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "already archived, identical"
    assert "already archived, identical" in done.stderr


# --- the auditor's copy ------------------------------------------------------------------------


@pytest.mark.awscli
def test_the_copy_an_auditor_downloads_verifies_on_its_own_with_standard_tools(
    standalone: SandboxInfo, s3: Any, run_dir: Path, archived: dict[str, Any], tmp_path: Path
) -> None:
    """`aws s3 cp --recursive` of the archived run, as is: `runbook verify` says intact (an
    archived copy, on its own ledger entries), and the README's OpenSSH + coreutils procedure
    passes; one byte changed in the download is named by both."""
    copy = tmp_path / "audit" / RUN_ID
    got = aws_cli(
        standalone, "s3", "cp", "--recursive", f"s3://{BUCKET}/records/{RUN_ID}/", str(copy)
    )
    assert got.returncode == 0, got.stderr
    report = verify(copy)
    assert report.ok and report.archived_copy, report.problems
    assert report.signer and report.signer["principal"] == "olivia@example.com"

    principal = json.loads((copy / MANIFEST_FILE).read_text())["signer"]["principal"]
    signed = subprocess.run(
        [
            "ssh-keygen",
            "-Y",
            "verify",
            "-f",
            str(keys.allowed_signers()),
            "-I",
            principal,
            "-n",
            "seal@root-mfa-runbook",
            "-s",
            SUMS_SIG_FILE,
        ],
        input=(copy / SUMS_FILE).read_bytes(),
        cwd=copy,
        capture_output=True,
        check=False,
    )
    assert signed.returncode == 0, signed.stderr
    sums = subprocess.run(
        ["sha256sum", "--strict", "-c", SUMS_FILE],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sums.returncode == 0, sums.stdout + sums.stderr

    snapshot = copy / "snapshots" / "before.json"
    snapshot.write_text(snapshot.read_text().replace("virtual", "hardware"))
    assert any("snapshots/before.json" in p for p in verify(copy).problems)
    bad = subprocess.run(
        ["sha256sum", "-c", SUMS_FILE], cwd=copy, capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0 and "snapshots/before.json: FAILED" in bad.stdout
