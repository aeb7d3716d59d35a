"""`runbook archive` works with exactly policies/runbook-archive.json, `runbook verify --against`
with exactly policies/runbook-verify-archive.json (read only), and each fails closed without
each of its actions (the sandbox evaluates IAM actions; resources are not evaluated)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.aws.session import AwsContext
from runbook_lib.errors import AccessDeniedError, PreconditionError
from runbook_lib.record.archive import archive_run, verify_against
from runbook_sandbox import SandboxInfo

from .test_archive import BUCKET, POLICY, REPO, context, make_run

VERIFY_POLICY = REPO / "policies" / "runbook-verify-archive.json"


def _policy(path: Path = POLICY, without: str | None = None) -> dict[str, Any]:
    doc = json.loads(path.read_text().replace("BUCKET", BUCKET))
    for stmt in doc["Statement"]:
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        stmt["Action"] = [a for a in actions if a != without]
    doc["Statement"] = [s for s in doc["Statement"] if s["Action"]]
    return doc


def _principal(info: SandboxInfo, name: str, policy: dict[str, Any]) -> AwsContext:
    info.add_principal(name, info.target_account_id, [policy])
    return AwsContext(info.session(name), info.region, info.endpoint)


def _actions(path: Path = POLICY) -> list[str]:
    actions: list[str] = []
    for stmt in json.loads(path.read_text())["Statement"]:
        actions += stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
    return actions


def test_archive_succeeds_with_exactly_the_policy(standalone: SandboxInfo, tmp_path: Path) -> None:
    standalone.client("s3").create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    aws = _principal(standalone, "archiver", _policy())
    run_dir = make_run(tmp_path / "runs").path
    result = archive_run(run_dir, f"s3://{BUCKET}/records", 1, aws=aws)
    assert result["mode"] == "COMPLIANCE" and result["objects"]
    again = archive_run(run_dir, f"s3://{BUCKET}/records", 2, aws=aws)  # compares, extends
    assert again["status"] == "already archived, identical" and again["retention_extended"]


@pytest.mark.parametrize("missing", _actions())
def test_archive_fails_closed_without_each_action(
    standalone: SandboxInfo, tmp_path: Path, missing: str
) -> None:
    standalone.client("s3").create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    aws = _principal(standalone, "archiver", _policy(without=missing))
    with pytest.raises((AccessDeniedError, PreconditionError)) as exc:
        archive_run(make_run(tmp_path / "runs").path, f"s3://{BUCKET}/records", 1, aws=aws)
    assert missing in str(exc.value) or "AccessDenied" in str(exc.value)


def test_the_verify_policy_is_read_only() -> None:
    assert sorted(_actions(VERIFY_POLICY)) == [
        "s3:GetObjectRetention",
        "s3:GetObjectVersion",
        "s3:ListBucketVersions",
    ]
    import runbook_lib.record.archive as archive

    assert all(action in (archive.__doc__ or "") for action in _actions(VERIFY_POLICY))


@pytest.fixture
def archived_run(standalone: SandboxInfo, tmp_path: Path) -> Path:
    standalone.client("s3").create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    run_dir = make_run(tmp_path / "runs").path
    archive_run(run_dir, f"s3://{BUCKET}/records", 1, aws=context(standalone))
    return run_dir


def test_verify_against_succeeds_with_exactly_the_verify_policy(
    standalone: SandboxInfo, archived_run: Path
) -> None:
    aws = _principal(standalone, "auditor", _policy(VERIFY_POLICY))
    report = verify_against(archived_run, f"s3://{BUCKET}/records", aws=aws)
    assert report.ok, report.problems


@pytest.mark.parametrize("missing", _actions(VERIFY_POLICY))
def test_verify_against_fails_closed_without_each_action(
    standalone: SandboxInfo, archived_run: Path, missing: str
) -> None:
    aws = _principal(standalone, "auditor", _policy(VERIFY_POLICY, without=missing))
    with pytest.raises(AccessDeniedError) as exc:
        verify_against(archived_run, f"s3://{BUCKET}/records", aws=aws)
    assert missing in str(exc.value)
