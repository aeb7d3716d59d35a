"""Small helpers shared by the sandbox contract tests."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from runbook_lib.sandbox import SandboxInfo

AUDIT = "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials"
DELETE = "arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials"
CREATE_PASSWORD = "arn:aws:iam::aws:policy/root-task/IAMCreateRootUserPassword"


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def assume_root(
    info: SandboxInfo,
    policy: str,
    duration: int = 900,
    region: str = "us-east-1",
    target: str | None = None,
) -> dict[str, Any]:
    sts = info.client("sts", "org-admin", region=region)
    answer = sts.assume_root(
        TargetPrincipal=target or info.target_account_id,
        TaskPolicyArn={"arn": policy},
        DurationSeconds=duration,
    )
    return dict(answer["Credentials"])


def session_client(
    info: SandboxInfo, creds: dict[str, Any], service: str, region: str = "us-east-1"
) -> Any:
    """A boto3 client on AssumeRoot session credentials, retries off."""
    session: Any = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )
    return session.client(
        service,
        endpoint_url=info.endpoint,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def root_arn(info: SandboxInfo) -> str:
    return f"arn:aws:iam::{info.target_account_id}:root"


def root_virtual_serials(info: SandboxInfo, principal: str = "admin") -> list[str]:
    devices = info.client("iam", principal).list_virtual_mfa_devices(AssignmentStatus="Assigned")[
        "VirtualMFADevices"
    ]
    return [d["SerialNumber"] for d in devices if d.get("User", {}).get("Arn") == root_arn(info)]


def credential_report_root_row(info: SandboxInfo) -> dict[str, str]:
    iam = info.client("iam")
    while iam.generate_credential_report()["State"] != "COMPLETE":
        pass
    content = iam.get_credential_report()["Content"].decode()
    lines = content.strip().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        values = line.split(",")
        if values[0] == "<root_account>":
            return dict(zip(header, values, strict=True))
    raise AssertionError("no <root_account> row in the credential report")
