"""End to end under the most restrictive reading of IAMDeleteRootUserCredentials.

Whether an AssumeRoot session with that task policy may call iam:DeleteVirtualMFADevice is not
documented: the policy lists the action, but its ``NotResource: arn:aws:iam::*:root`` Deny
statement, read literally, denies it on the device's ``arn:aws:iam::ACCOUNT:mfa/NAME`` (see
runbook_lib/sandbox/_authz.py). The sandbox offers both readings (``task_policy_variant``); its
default is ``allow`` until the runbook copes with ``deny``, which is to become the default.

Under ``deny`` the runbook today fails step 01-remove-device after a successful
DeactivateMFADevice: ``delete_virtual`` (default true) calls DeleteVirtualMFADevice and gets
AccessDenied. This test pins the behaviour the runbook should have (the run succeeds and the
record is final); it is expected to fail until then, and will report XPASS, failing the suite
(strict), the day the runbook copes: then make ``deny`` the sandbox default.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runbook_lib.record import verify

from .helpers import Env, run_info


@pytest.mark.xfail(
    strict=True,
    reason="runbook_lib/actions.py deletes the virtual device object after deactivating it; "
    "under the deny reading of IAMDeleteRootUserCredentials that is AccessDenied",
)
def test_member_assume_root_under_the_deny_variant(env_for: Callable[[str], Env]) -> None:
    env = env_for("member")
    env.info.control.set_task_policy_variant("deny")
    params = env.approved("assume-root")
    code, run_dir = env.run(params)
    assert code == 0, env.progress
    report = verify(run_dir)
    assert report.ok and report.final, report.problems
    assert run_info(run_dir)["status"] == "succeeded"
