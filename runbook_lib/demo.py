"""``runbook demo``: the main job on the local sandbox.

Until the step notebooks land (the runbook issue), the demo starts the sandbox, shows the root
user's MFA state as an operator's read-only principal sees it through the AWS APIs, and stops.
"""

from __future__ import annotations

import sys

from .sandbox import sandbox_process


def run_demo(scenario: str = "standalone") -> int:
    with sandbox_process(scenario) as info:
        iam = info.client("iam")
        sts = info.client("sts")
        who = sts.get_caller_identity()
        summary = iam.get_account_summary()["SummaryMap"]
        devices = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]
        root_arn = f"arn:aws:iam::{info.target_account_id}:root"
        root_virtual = [
            d["SerialNumber"] for d in devices if d.get("User", {}).get("Arn") == root_arn
        ]
        print(f"sandbox      {info.scenario} at {info.endpoint}")
        print(f"caller       {who['Arn']}")
        print(f"account      {info.target_account_id}")
        print(f"root MFA     AccountMFAEnabled={summary.get('AccountMFAEnabled')}")
        print(f"root virtual {', '.join(root_virtual) or '(none)'}")
        print("the step notebooks are not there yet: nothing was changed", file=sys.stderr)
    return 0
