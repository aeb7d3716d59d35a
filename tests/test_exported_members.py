"""The public surface of runbook_lib is what __all__ says, and every name resolves."""

from __future__ import annotations

import runbook_lib

EXPECTED = {
    "__version__",
    "AccessDeniedError",
    "AccountMismatchError",
    "ActionResult",
    "AmbiguousDeviceError",
    "AwsActionError",
    "AwsContext",
    "GateNotApproved",
    "MethodNotAvailableError",
    "ParameterError",
    "Plan",
    "PreconditionError",
    "RootMfaSnapshot",
    "RootSession",
    "RunRefused",
    "RunParameters",
    "RunRecord",
    "RunbookError",
    "SessionExpiredError",
    "Step",
    "ThrottledError",
    "VerificationTimeout",
    "abandon",
    "account_context",
    "assume_root",
    "caller_identity",
    "collect_snapshot",
    "find_assume_root",
    "find_console_login",
    "find_deactivation",
    "find_enable",
    "guard_account",
    "judge",
    "make_plan",
    "open_step",
    "remove_root_mfa_device",
    "removal_methods",
    "resume",
    "run",
    "seal_run",
    "validate",
    "verify",
    "wait_for_device_removed",
    "wait_for_new_device",
}


def test_all_is_the_public_surface() -> None:
    assert set(runbook_lib.__all__) == EXPECTED


def test_every_exported_name_resolves() -> None:
    for name in runbook_lib.__all__:
        assert getattr(runbook_lib, name) is not None, name


def test_errors_share_one_base() -> None:
    for name in runbook_lib.__all__:
        value = getattr(runbook_lib, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, runbook_lib.RunbookError), name
