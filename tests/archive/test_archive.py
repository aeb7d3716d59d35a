"""archive_run against the sandbox over HTTP: a sealed record goes to S3 under COMPLIANCE Object
Lock, every object is there with the local bytes, and the archive cannot be deleted or its
retention shortened; refusals (bad input, unsealed or tampered record, bucket without Object Lock)
upload nothing; the CLI path works with credentials from the environment only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runbook_lib.aws.session import AwsContext
from runbook_lib.errors import ParameterError, PreconditionError, RunbookError
from runbook_lib.record.archive import LEDGER_ENTRIES_OBJECT, archive_run
from runbook_lib.record.layout import (
    LEDGER_FILE,
    LEDGER_HEAD_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    SEAL_FILES,
    SUMS_FILE,
    SUMS_SIG_FILE,
)
from runbook_lib.record.run import RunRecord
from runbook_sandbox import SandboxInfo
from tests.keys import signer

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "runbook-archive.json"
BUCKET = "run-archive"
PLAIN = "plain-bucket"
RUN_ID = "20261126T051500Z-3f9a"


# --- helpers ----------------------------------------------------------------------------------


def make_run(runs_dir: Path, run_id: str = RUN_ID, *, final: bool | None = True) -> RunRecord:
    """A run with a few events, a snapshot and a notebook; sealed final unless told otherwise
    (``final=None``: not sealed at all)."""
    record = RunRecord.create(runs_dir, {"parameters": {"account_id": "123456789012"}}, run_id)
    record.append("step.started", "preflight")
    record.append("step.finished", "preflight", outcome="ok")
    record.write_json("snapshots/before.json", {"root_mfa": True, "devices": ["virtual"]})
    record.write_text("notebooks/01-preflight.ipynb", json.dumps({"cells": [], "nbformat": 4}))
    if final is not None:
        record.seal(final=final, signer=signer())
    return record


def context(info: SandboxInfo) -> AwsContext:
    return AwsContext(info.session("admin"), info.region, info.endpoint)


def manifest_files(run_dir: Path) -> dict[str, Any]:
    files: dict[str, Any] = json.loads((run_dir / MANIFEST_FILE).read_text())["files"]
    return files


def all_versions(s3: Any, bucket: str) -> list[dict[str, Any]]:
    answer = s3.list_object_versions(Bucket=bucket)
    return list(answer.get("Versions", [])) + list(answer.get("DeleteMarkers", []))


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture
def s3(standalone: SandboxInfo) -> Any:
    client = standalone.client("s3")
    client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    client.create_bucket(Bucket=PLAIN)
    return client


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "runs").path


@pytest.fixture
def archived(standalone: SandboxInfo, s3: Any, run_dir: Path) -> dict[str, Any]:
    return archive_run(run_dir, f"s3://{BUCKET}/records", 3, aws=context(standalone))


# --- the happy path ---------------------------------------------------------------------------


def test_archive_uploads_every_file_under_compliance_lock(
    s3: Any, run_dir: Path, archived: dict[str, Any]
) -> None:
    files = manifest_files(run_dir)
    assert {"run.json", "events.jsonl", "snapshots/before.json", LOCK_FILE} <= set(files)
    expected = {f"records/{RUN_ID}/{rel}" for rel in files if rel != LOCK_FILE}
    expected |= {f"records/{RUN_ID}/{MANIFEST_FILE}", f"records/{RUN_ID}/{LEDGER_ENTRIES_OBJECT}"}
    expected |= {f"records/{RUN_ID}/{LEDGER_HEAD_FILE}", archived["ledger_head"]["key"]}
    expected |= {f"records/{RUN_ID}/{name}" for name in (SUMS_FILE, SUMS_SIG_FILE)}

    assert archived["run_id"] == RUN_ID
    assert (archived["bucket"], archived["prefix"], archived["mode"]) == (
        BUCKET,
        "records",
        "COMPLIANCE",
    )
    keys = [o["key"] for o in archived["objects"]]
    assert sorted(keys) == sorted(expected) and len(keys) == len(set(keys))
    stored = {v["Key"] for v in all_versions(s3, BUCKET)}
    assert stored == expected

    until = dt.datetime.fromisoformat(archived["retain_until"].replace("Z", "+00:00"))
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    assert soon - dt.timedelta(minutes=5) <= until <= soon
    for obj in archived["objects"]:
        retention = s3.get_object_retention(
            Bucket=BUCKET, Key=obj["key"], VersionId=obj["version_id"]
        )["Retention"]
        assert retention["Mode"] == "COMPLIANCE"
        assert retention["RetainUntilDate"] >= until
        got = s3.get_object(Bucket=BUCKET, Key=obj["key"], VersionId=obj["version_id"])
        body = got["Body"].read()
        assert len(body) == obj["size"]
        assert hashlib.sha256(body).hexdigest() == obj["sha256"] == got["Metadata"]["sha256"]
        rel = obj["key"].removeprefix(f"records/{RUN_ID}/")
        if rel in (LEDGER_ENTRIES_OBJECT, LEDGER_HEAD_FILE) or "ledger-heads/" in rel:
            continue
        assert body == (run_dir / rel).read_bytes(), rel
        if rel not in SEAL_FILES:  # the seal's own files are not in the manifest
            assert obj["sha256"] == files[rel]["sha256"]
    assert json.loads(json.dumps(archived)) == archived  # the CLI prints it as JSON


def test_ledger_entries_are_this_runs_lines_only(
    standalone: SandboxInfo, s3: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "20261126T040000Z-0001")  # another run's entries come first in the ledger
    rec = make_run(runs, RUN_ID, final=False)
    make_run(runs, "20261126T060000Z-0002")
    rec.append("step.started", "remove")
    rec.seal(final=True, signer=signer())  # two entries for this run, interleaved with the others'

    result = archive_run(rec.path, f"s3://{BUCKET}", 1, aws=context(standalone))

    assert result["prefix"] == ""
    ledger_lines = (runs / LEDGER_FILE).read_bytes().splitlines(keepends=True)
    mine = [line for line in ledger_lines if json.loads(line)["run_id"] == RUN_ID]
    assert len(mine) == 2 and len(ledger_lines) == 4
    body = s3.get_object(Bucket=BUCKET, Key=f"{RUN_ID}/{LEDGER_ENTRIES_OBJECT}")["Body"].read()
    assert body == b"".join(mine)
    manifest = (rec.path / MANIFEST_FILE).read_bytes()
    assert json.loads(mine[-1])["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()


# --- immutability ----------------------------------------------------------------------------


def test_archived_versions_cannot_be_deleted_or_their_retention_shortened(
    standalone: SandboxInfo, s3: Any, archived: dict[str, Any]
) -> None:
    for obj in archived["objects"]:
        key, version = obj["key"], obj["version_id"]
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version)
        assert error_code(exc) == "AccessDenied"
        with pytest.raises(ClientError) as exc:
            s3.delete_object(
                Bucket=BUCKET, Key=key, VersionId=version, BypassGovernanceRetention=True
            )
        assert error_code(exc) == "AccessDenied"
        with pytest.raises(ClientError) as exc:
            s3.put_object_retention(
                Bucket=BUCKET,
                Key=key,
                VersionId=version,
                Retention={
                    "Mode": "COMPLIANCE",
                    "RetainUntilDate": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
                },
            )
        assert error_code(exc) == "AccessDenied"
        with pytest.raises(ClientError) as exc:
            s3.put_object_retention(
                Bucket=BUCKET,
                Key=key,
                VersionId=version,
                Retention={
                    "Mode": "GOVERNANCE",
                    "RetainUntilDate": dt.datetime.now(dt.UTC) + dt.timedelta(days=10),
                },
                BypassGovernanceRetention=True,
            )
        assert error_code(exc) == "AccessDenied"
    answer = s3.delete_objects(
        Bucket=BUCKET,
        Delete={
            "Objects": [
                {"Key": o["key"], "VersionId": o["version_id"]} for o in archived["objects"]
            ]
        },
        BypassGovernanceRetention=True,
    )
    assert len(answer.get("Errors", [])) == len(archived["objects"])

    versions = {(v["Key"], v["VersionId"]) for v in all_versions(s3, BUCKET)}
    assert versions == {(o["key"], o["version_id"]) for o in archived["objects"]}
    for obj in archived["objects"]:
        got = s3.get_object_retention(Bucket=BUCKET, Key=obj["key"], VersionId=obj["version_id"])
        assert got["Retention"]["Mode"] == "COMPLIANCE"

    # The lock lasts as long as asked, no longer: 3 days later the versions can be deleted.
    standalone.control.advance_clock(3 * 86400 + 120)
    first = archived["objects"][0]
    s3.delete_object(Bucket=BUCKET, Key=first["key"], VersionId=first["version_id"])
    assert (first["key"], first["version_id"]) not in {
        (v["Key"], v["VersionId"]) for v in all_versions(s3, BUCKET)
    }


def test_re_archiving_the_same_record_adds_no_version_and_keeps_the_locked_ones(
    standalone: SandboxInfo, s3: Any, run_dir: Path, archived: dict[str, Any]
) -> None:
    again = archive_run(run_dir, f"s3://{BUCKET}/records/", 5, aws=context(standalone))

    assert again["status"] == "already archived, identical" and again["uploaded"] == 0
    old = {(o["key"], o["version_id"]) for o in archived["objects"]}
    assert {(v["Key"], v["VersionId"]) for v in all_versions(s3, BUCKET)} == old
    assert {(o["key"], o["version_id"]) for o in again["objects"]} <= old
    first = archived["objects"][0]
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=BUCKET, Key=first["key"], VersionId=first["version_id"])
    assert error_code(exc) == "AccessDenied"


# --- refusals --------------------------------------------------------------------------------


def _unsealed(runs: Path) -> tuple[Path, str]:
    return make_run(runs, final=None).path, "not sealed"


def _checkpoint(runs: Path) -> tuple[Path, str]:
    return make_run(runs, final=False).path, "checkpoint"


def _tampered_file(runs: Path) -> tuple[Path, str]:
    path = make_run(runs).path
    snapshot = path / "snapshots" / "before.json"
    snapshot.write_text(snapshot.read_text().replace("true", "false"))
    return path, "snapshots/before.json: changed since the seal"


def _rewritten_manifest(runs: Path) -> tuple[Path, str]:
    path = make_run(runs)
    (path.path / "events.jsonl").write_bytes(b"")
    manifest = json.loads((path.path / MANIFEST_FILE).read_text())
    manifest["files"]["events.jsonl"] = {"sha256": hashlib.sha256(b"").hexdigest(), "size": 0}
    (path.path / MANIFEST_FILE).write_text(json.dumps(manifest))
    return path.path, "differs from the ledger"


def _symlink_swapped(runs: Path) -> tuple[Path, str]:
    path = make_run(runs).path
    outside = runs.parent / "outside.json"
    outside.write_bytes((path / "snapshots" / "before.json").read_bytes())
    (path / "snapshots" / "before.json").unlink()
    (path / "snapshots" / "before.json").symlink_to(outside)
    return path, "snapshots/before.json: not a regular file"


def _not_a_run(runs: Path) -> tuple[Path, str]:
    (runs / "empty").mkdir(parents=True)
    return runs / "empty", "run.json: missing"


@pytest.mark.parametrize(
    "make",
    [_unsealed, _checkpoint, _tampered_file, _rewritten_manifest, _symlink_swapped, _not_a_run],
)
def test_a_record_not_sealed_final_or_not_verifying_is_refused_and_nothing_uploaded(
    standalone: SandboxInfo, s3: Any, tmp_path: Path, make: Any
) -> None:
    run_dir, problem = make(tmp_path / "runs")
    with pytest.raises(PreconditionError) as exc:
        archive_run(run_dir, f"s3://{BUCKET}/records", 1, aws=context(standalone))
    assert problem in str(exc.value)
    assert "Nothing was uploaded" in str(exc.value)
    assert all_versions(s3, BUCKET) == []


@pytest.mark.parametrize("bucket", [PLAIN, "no-such-bucket"])
def test_a_bucket_without_object_lock_is_refused(
    standalone: SandboxInfo, s3: Any, run_dir: Path, bucket: str
) -> None:
    with pytest.raises(PreconditionError) as exc:
        archive_run(run_dir, f"s3://{bucket}/records", 1, aws=context(standalone))
    text = str(exc.value)
    assert bucket in text and "--object-lock-enabled-for-bucket" in text
    assert all_versions(s3, PLAIN) == [] and all_versions(s3, BUCKET) == []


class _NoAws(AwsContext):
    """A context that fails the test if the archive reaches for AWS at all."""

    def __init__(self) -> None:
        pass

    def client(self, service: str, region: str | None = None) -> Any:
        raise AssertionError(f"bad input must be refused before any {service} client is built")


@pytest.mark.parametrize(
    ("destination", "retain_days", "needle"),
    [
        ("run-archive/records", 1, "must look like s3://"),
        ("https://run-archive.s3.amazonaws.com/x", 1, "must look like s3://"),
        ("s3://", 1, "no bucket name"),
        ("s3:///records", 1, "no bucket name"),
        ("s3://Run_Archive/records", 1, "bucket name 'Run_Archive' is not valid"),
        ("s3://ab", 1, "is not valid"),
        ("s3://192.168.1.10", 1, "not an IP address"),
        ("s3://run..archive", 1, "'..'"),
        ("s3://run-archive/a/../b", 1, "'..' segments"),
        ("s3://run-archive/a//b", 1, "empty"),
        ("s3://run-archive/records", 0, "between 1 and 36500"),
        ("s3://run-archive/records", -3, "between 1 and 36500"),
        ("s3://run-archive/records", 36501, "between 1 and 36500"),
        ("s3://run-archive/records", True, "whole number"),
    ],
)
def test_bad_parameters_are_refused_before_any_aws_call(
    run_dir: Path, destination: str, retain_days: Any, needle: str
) -> None:
    with pytest.raises(ParameterError) as exc:
        archive_run(run_dir, destination, retain_days, aws=_NoAws())
    assert needle in str(exc.value)


def test_every_parameter_problem_is_named_at_once(run_dir: Path) -> None:
    with pytest.raises(ParameterError) as exc:
        archive_run(run_dir, "s3://BAD/x/../y", 0, aws=_NoAws())
    assert len(exc.value.problems) == 3


def test_the_largest_retention_is_accepted(standalone: SandboxInfo, s3: Any, run_dir: Path) -> None:
    result = archive_run(run_dir, f"s3://{BUCKET}", 36500, aws=context(standalone))
    until = dt.datetime.fromisoformat(result["retain_until"].replace("Z", "+00:00"))
    assert (until - dt.datetime.now(dt.UTC)).days in (36499, 36500)
    obj = result["objects"][0]
    retention = s3.get_object_retention(Bucket=BUCKET, Key=obj["key"], VersionId=obj["version_id"])
    assert retention["Retention"]["RetainUntilDate"] == until


def test_a_retention_shorter_than_asked_is_detected(
    standalone: SandboxInfo, s3: Any, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The post-upload check really compares: a bucket answering an earlier date is caught."""
    real = AwsContext.client

    def client(self: AwsContext, service: str, region: str | None = None) -> Any:
        inner = real(self, service, region)

        def short(**kwargs: Any) -> Any:
            answer = inner.get_object_retention(**kwargs)
            answer["Retention"]["RetainUntilDate"] -= dt.timedelta(hours=1)
            return answer

        class Wrapped:
            def __getattr__(self, name: str) -> Any:
                return short if name == "get_object_retention" else getattr(inner, name)

        return Wrapped()

    monkeypatch.setattr(AwsContext, "client", client)
    with pytest.raises(RunbookError, match=rf"s3://{BUCKET}/{RUN_ID}/{MANIFEST_FILE} .*earlier"):
        archive_run(run_dir, f"s3://{BUCKET}", 2, aws=context(standalone))


# --- the CLI ----------------------------------------------------------------------------------


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
        [sys.executable, "-m", "runbook_lib.cli", "archive", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_archives_with_credentials_from_the_environment(
    standalone: SandboxInfo, s3: Any, run_dir: Path
) -> None:
    done = _cli(
        standalone,
        str(run_dir),
        f"s3://{BUCKET}/cli",
        "--retain-days",
        "1",
        "--endpoint-url",
        standalone.endpoint,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["run_id"] == RUN_ID and result["mode"] == "COMPLIANCE"
    keys = {v["Key"] for v in all_versions(s3, BUCKET)}
    assert keys == {o["key"] for o in result["objects"]}
    assert f"cli/{RUN_ID}/snapshots/before.json" in keys
    secret = standalone.principals["admin"]["secret_access_key"]
    assert secret not in done.stdout + done.stderr


def test_cli_bad_destination_exits_2(standalone: SandboxInfo, s3: Any, run_dir: Path) -> None:
    done = _cli(
        standalone,
        str(run_dir),
        "bucket-without-scheme/prefix",
        "--retain-days",
        "1",
        "--endpoint-url",
        standalone.endpoint,
    )
    assert done.returncode == 2, done.stderr
    assert "must look like s3://" in done.stderr and done.stdout == ""
    assert all_versions(s3, BUCKET) == []


# --- the policy -------------------------------------------------------------------------------


def test_archive_policy_allows_exactly_the_documented_actions() -> None:
    policy = json.loads(POLICY.read_text())
    grants: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            grants.setdefault(action, set()).add(statement["Resource"])
    assert grants == {
        "s3:GetBucketObjectLockConfiguration": {"arn:aws:s3:::BUCKET"},
        "s3:ListBucketVersions": {"arn:aws:s3:::BUCKET"},
        "s3:PutObject": {"arn:aws:s3:::BUCKET/*"},
        "s3:PutObjectRetention": {"arn:aws:s3:::BUCKET/*"},
        "s3:GetObjectRetention": {"arn:aws:s3:::BUCKET/*"},
        "s3:GetObjectVersion": {"arn:aws:s3:::BUCKET/*"},
    }
    import runbook_lib.record.archive as archive

    assert all(action in (archive.__doc__ or "") for action in grants)
