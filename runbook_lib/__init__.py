"""root-mfa-runbook: an executable, auditable runbook for an AWS root user's MFA device.

The public surface (guarded by tests/test_exported_members.py). Modules are imported lazily so
that ``import runbook_lib`` stays cheap inside every notebook kernel and CLI call.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # errors
    "RunbookError": "errors",
    "ParameterError": "errors",
    "PreconditionError": "errors",
    "AccountMismatchError": "errors",
    "MethodNotAvailableError": "errors",
    "AmbiguousDeviceError": "errors",
    "GateNotApproved": "errors",
    "AwsActionError": "errors",
    "AccessDeniedError": "errors",
    "ThrottledError": "errors",
    "SessionExpiredError": "errors",
    "VerificationTimeout": "errors",
    # AWS access, identity, state, actions, evidence
    "AwsContext": "aws.session",
    "caller_identity": "aws.identity",
    "guard_account": "aws.identity",
    "account_context": "aws.identity",
    "removal_methods": "aws.identity",
    "assume_root": "aws.privileged",
    "RootSession": "aws.privileged",
    "RootMfaSnapshot": "aws.state",
    "collect_snapshot": "aws.state",
    "judge": "aws.state",
    "wait_for_device_removed": "aws.state",
    "wait_for_new_device": "aws.state",
    "remove_root_mfa_device": "aws.actions",
    "ActionResult": "aws.actions",
    "find_deactivation": "aws.evidence",
    "find_console_login": "aws.evidence",
    "find_enable": "aws.evidence",
    "find_assume_root": "aws.evidence",
    # the runbook
    "RunParameters": "params",
    "validate": "params",
    "make_plan": "plan",
    "Plan": "plan",
    "open_step": "procedure.context",
    "Step": "procedure.context",
    "RunRecord": "record.run",
    "verify": "record.verify",
    "run": "runner",
    "resume": "runner",
    "seal_run": "runner",
    "abandon": "runner",
    "RunRefused": "errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runbook_lib' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return __all__
