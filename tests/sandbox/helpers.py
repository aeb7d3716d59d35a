"""Small helpers shared by the sandbox contract tests."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from runbook_sandbox import SandboxInfo, boto_session

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
    session: Any = boto_session(
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


def with_unknown_key(info: SandboxInfo) -> SandboxInfo:
    """``info`` whose only principal, ``ghost``, signs with an access key the sandbox does not
    know."""
    ghost = {
        "account_id": info.target_account_id,
        "arn": "x",
        "access_key_id": "AKIAGHOSTGHOSTGHOST1",
        "secret_access_key": "x" * 40,
    }
    return SandboxInfo.from_json({**info.__dict__, "principals": {"ghost": ghost}})


def root_arn(info: SandboxInfo) -> str:
    return f"arn:aws:iam::{info.target_account_id}:root"


def root_virtual_serials(info: SandboxInfo, principal: str = "admin") -> list[str]:
    devices = info.client("iam", principal).list_virtual_mfa_devices(AssignmentStatus="Assigned")[
        "VirtualMFADevices"
    ]
    return [d["SerialNumber"] for d in devices if d.get("User", {}).get("Arn") == root_arn(info)]


def credential_report(info: SandboxInfo, timeout: float = 10.0) -> dict[str, Any]:
    """GenerateCredentialReport once, then GetCredentialReport until it is no longer
    ReportInProgress (as AWS documents the life cycle; nothing needs a second Generate)."""
    iam = info.client("iam")
    iam.generate_credential_report()
    deadline = time.monotonic() + timeout
    while True:
        try:
            return dict(iam.get_credential_report())
        except ClientError as err:
            if err.response["Error"]["Code"] != "ReportInProgress":
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def report_rows(info: SandboxInfo) -> list[dict[str, str]]:
    content = credential_report(info)["Content"].decode()
    return list(csv.DictReader(io.StringIO(content)))


def credential_report_root_row(info: SandboxInfo) -> dict[str, str]:
    content = credential_report(info)["Content"].decode()
    lines = content.strip().splitlines()
    header = lines[0].split(",")
    for line in lines[1:]:
        values = line.split(",")
        if values[0] == "<root_account>":
            return dict(zip(header, values, strict=True))
    raise AssertionError("no <root_account> row in the credential report")


def aws_cli(
    info: SandboxInfo, *args: str, secret: str | None = None, principal: str = "admin"
) -> subprocess.CompletedProcess[str]:
    """The AWS CLI (this interpreter's ``aws``) as a person runs it against the sandbox."""
    keys = info.principals[principal]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=keys["access_key_id"],
        AWS_SECRET_ACCESS_KEY=secret or keys["secret_access_key"],
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    aws = Path(sys.executable).parent / "aws"
    command = [str(aws), "--endpoint-url", info.endpoint, "--output", "json", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def aws_cli_json(info: SandboxInfo, *args: str) -> Any:
    proc = aws_cli(info, *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
