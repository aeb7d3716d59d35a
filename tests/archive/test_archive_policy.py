"""`runbook archive` works with exactly policies/runbook-archive.json, and fails closed without
each of its actions (the sandbox evaluates IAM actions; resources are not evaluated)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.archive import archive_run
from runbook_lib.aws import AwsContext
from runbook_lib.errors import AccessDeniedError, PreconditionError
from runbook_lib.sandbox import SandboxInfo

from .test_archive import BUCKET, POLICY, make_run


def _policy(without: str | None = None) -> dict[str, Any]:
    doc = json.loads(POLICY.read_text().replace("BUCKET", BUCKET))
    for stmt in doc["Statement"]:
        actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
        stmt["Action"] = [a for a in actions if a != without]
    doc["Statement"] = [s for s in doc["Statement"] if s["Action"]]
    return doc


def _archiver(info: SandboxInfo, name: str, policy: dict[str, Any]) -> AwsContext:
    info.add_principal(name, info.target_account_id, [policy])
    return AwsContext(info.session(name), info.region, info.endpoint)


def _actions() -> list[str]:
    actions: list[str] = []
    for stmt in json.loads(POLICY.read_text())["Statement"]:
        actions += stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
    return actions


def test_archive_succeeds_with_exactly_the_policy(standalone: SandboxInfo, tmp_path: Path) -> None:
    standalone.client("s3").create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    aws = _archiver(standalone, "archiver", _policy())
    result = archive_run(make_run(tmp_path / "runs").path, f"s3://{BUCKET}/records", 1, aws=aws)
    assert result["mode"] == "COMPLIANCE" and result["objects"]


@pytest.mark.parametrize("missing", _actions())
def test_archive_fails_closed_without_each_action(
    standalone: SandboxInfo, tmp_path: Path, missing: str
) -> None:
    standalone.client("s3").create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    aws = _archiver(standalone, "archiver", _policy(without=missing))
    with pytest.raises((AccessDeniedError, PreconditionError)) as exc:
        archive_run(make_run(tmp_path / "runs").path, f"s3://{BUCKET}/records", 1, aws=aws)
    assert missing in str(exc.value) or "AccessDenied" in str(exc.value)
