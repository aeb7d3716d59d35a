"""End to end with role-based profiles, as operators run it: the whole member procedure with
``method: assume-root`` where ``management_profile`` is a role profile (``role_arn`` +
``source_profile``) in the management account and ``profile`` a ``credential_process`` profile
handing out a role session in the member account, shaped as IAM Identity Center (SSO) sessions
are (an ``AWSReservedSSO_...`` role under ``/aws-reserved/sso.amazonaws.com/``).

The roles carry exactly the least-privilege policies of ``policies/``. AWS documents AssumeRoot
as called by "an IAM user or role" of the management account (IAM User Guide, "Perform a
privileged task on an AWS Organizations member account",
https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user-privileged-task.html); the profile
kinds are the AWS CLI's ("Use an IAM role in the AWS CLI",
https://docs.aws.amazon.com/cli/latest/userguide/cli-roles.html; "Source credentials with an
external process",
https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-sourcing-external.html).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from runbook_lib.record.verify import verify

# the SSO-shaped role and the credential_process helper the sandbox's own tests use
from tests.sandbox.test_role_sessions import CREDENTIAL_PROCESS, OPERATOR, SSO_PATH, SSO_ROLE

from .helpers import REPO, STEP_NAMES, Env, of_type, run_info


def _policy(name: str) -> dict[str, object]:
    return dict(json.loads((REPO / "policies" / name).read_text()))


def _add_profiles(env: Env, tmp: Path) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """The two roles, and their profiles appended to the run's AWS config file."""
    info = env.info
    management = info.principals["org-admin"]["account_id"]
    operator_role = info.control.add_role(
        "runbook-root-operator", management, [_policy("runbook-assume-root.json")]
    )
    reader_role = info.control.add_role(
        SSO_ROLE, env.account, [_policy("runbook-reader.json")], path=SSO_PATH
    )
    script = tmp / "sso_credentials.py"
    script.write_text(CREDENTIAL_PROCESS)
    reader = (
        f"{sys.executable} {script} {env.profiles['admin']} {reader_role['arn']} {OPERATOR} "
        f"{info.endpoint}"
    )
    config = Path(os.environ["AWS_CONFIG_FILE"])
    config.write_text(
        config.read_text()
        + "\n[profile root-operator]\n"
        + f"role_arn = {operator_role['arn']}\n"
        + f"source_profile = {env.profiles['org-admin']}\n"
        + "region = us-east-1\n"
        + f"endpoint_url = {info.endpoint}\n"
        + "\n[profile sso-reader]\n"
        + f"credential_process = {reader}\n"
        # the sandbox's console actor (sandbox_actor) reads the control token from the profile
        + f"sandbox_control_token = {env.info.control_token}\n"
        + "region = us-east-1\n"
    )
    return "root-operator", "sso-reader", operator_role, reader_role


def test_member_assume_root_with_role_profiles(
    env_for: Callable[[str], Env], tmp_path: Path
) -> None:
    env = env_for("member")
    management_profile, profile, operator_role, reader_role = _add_profiles(env, tmp_path)
    params = env.approved("assume-root", profile=profile, management_profile=management_profile)
    before = env.serials()

    code, run_dir = env.run(params)
    assert code == 0, env.progress

    report = verify(run_dir)
    assert report.ok and report.final, report.problems
    info = run_info(run_dir)
    assert info["status"] == "succeeded"
    assert {s: v["status"] for s, v in info["steps"].items()} == dict.fromkeys(
        STEP_NAMES, "succeeded"
    )
    removed = info["device"]
    assert removed in before and removed not in env.serials()

    # the run knew who it was: the SSO-shaped role session in the member account
    identity = of_type(run_dir, "observation.identity")[0]["data"]["arn"]
    assert identity == f"arn:aws:sts::{env.account}:assumed-role/{SSO_ROLE}/{OPERATOR}"
    # the removal went through AssumeRoot called by the management account's role session
    action = of_type(run_dir, "action.remove-device")[-1]["data"]
    assert action["outcome"] == "removed"
    assert of_type(run_dir, "evidence.deactivation")[-1]["data"]["found"] is True

    env.info.control.set_lookup_rate(0)
    ct = env.info.client("cloudtrail", "org-admin")
    events = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "AssumeRoot"}]
    )["Events"]
    callers = {json.loads(e["CloudTrailEvent"])["userIdentity"]["arn"] for e in events}
    assert callers and all(
        c.startswith(f"arn:aws:sts::{operator_role['account_id']}:assumed-role/")
        and "/runbook-root-operator/" in c
        for c in callers
    ), callers
    assert reader_role["arn"].endswith(f"{SSO_PATH}{SSO_ROLE}")
