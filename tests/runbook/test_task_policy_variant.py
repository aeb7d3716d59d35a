"""End to end under the most restrictive reading of IAMDeleteRootUserCredentials.

Whether an AssumeRoot session with that task policy may call iam:DeleteVirtualMFADevice is not
documented: the policy lists the action, but its ``NotResource: arn:aws:iam::*:root`` Deny
statement, read literally, denies it on the device's ``arn:aws:iam::ACCOUNT:mfa/NAME`` (see
runbook_sandbox/_authz.py). The sandbox offers both readings (the switch
``delete-virtual-mfa-in-delete-session``, also ``set_task_policy_variant``); ``deny``, the most
restrictive, is the default.

Under ``deny`` the deactivation is the change: the removal succeeds, the unassigned device
object is left, and the record says so (``virtual_device_left``, the close-out's diff).
"""

from __future__ import annotations

from collections.abc import Callable

from runbook_lib.record.verify import verify

from .helpers import Env, of_type, run_info


def test_member_assume_root_under_the_deny_variant(env_for: Callable[[str], Env]) -> None:
    env = env_for("member")
    env.info.control.set_task_policy_variant("deny")
    params = env.approved("assume-root")
    code, run_dir = env.run(params)
    assert code == 0, env.progress
    report = verify(run_dir)
    assert report.ok and report.final, report.problems
    assert run_info(run_dir)["status"] == "succeeded"
    action = of_type(run_dir, "action.remove-device")[-1]["data"]
    assert action["details"]["virtual_device_left"] == params["device_serial"]
    assert "IAMDeleteRootUserCredentials" in action["details"]["virtual_device_left_note"]
