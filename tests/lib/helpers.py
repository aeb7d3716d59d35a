"""Helpers for the runbook library's tests (the fixtures live in conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from runbook_lib.aws.session import AwsContext
from runbook_sandbox import SandboxInfo

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
MANAGEMENT_ID = "111111111111"
STANDALONE_ID = "123456789012"


class ContextFactory(Protocol):
    def __call__(
        self,
        info: SandboxInfo,
        principal: str = "admin",
        *,
        region: str = "us-east-1",
        max_attempts: int | None = None,
    ) -> AwsContext: ...


def make_context(
    info: SandboxInfo,
    principal: str = "admin",
    *,
    region: str = "us-east-1",
    max_attempts: int | None = None,
) -> AwsContext:
    """An AwsContext for a sandbox principal, built the way the runbook builds one."""
    keys = info.principals[principal]
    ctx = AwsContext.from_profile(
        None,
        region,
        info.endpoint,
        aws_access_key_id=keys["access_key_id"],
        aws_secret_access_key=keys["secret_access_key"],
    )
    if max_attempts is not None:
        ctx.max_attempts = max_attempts
    return ctx


def load_policy(name: str) -> dict[str, Any]:
    return dict(json.loads((POLICIES / name).read_text()))


def serials(info: SandboxInfo, account_id: str | None = None) -> dict[str, str]:
    """kind -> serial of the root user's devices, from the sandbox's true state."""
    state = info.control.state(account_id or info.target_account_id)
    return {d["kind"]: d["serial"] for d in state["devices"]}


def root_state(info: SandboxInfo, account_id: str | None = None) -> dict[str, Any]:
    return info.control.state(account_id or info.target_account_id)


def raw_events(
    info: SandboxInfo, principal: str, event_name: str, region: str = "us-east-1"
) -> list[dict[str, Any]]:
    """CloudTrail records as the sandbox stores them (not redacted); for counting only."""
    client = info.client(
        "cloudtrail",
        principal,
        region=region,
        retries={"mode": "standard", "total_max_attempts": 6},
    )
    answer = client.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": event_name}]
    )
    return [json.loads(e["CloudTrailEvent"]) for e in answer["Events"]]


def assert_not_leaked(text: str, secret: str, label: str) -> None:
    """Fail without ever showing the secret in pytest's output."""
    assert secret, f"{label}: no secret to look for"
    if secret in text:
        pytest.fail(f"{label} appears in the text (value not shown)", pytrace=False)


SandboxGetter = Callable[[str], SandboxInfo]
