"""00 · Preflight: the warning, who is calling, which account, the root MFA state before (and
a recorded warning when the root user still has access keys or signing certificates), the
device, whether the plan can end well, and the risk acknowledgement. Changes nothing.

Every fact is recorded once: re-running a cell returns what the run already recorded, so a
careless "Run All" can neither replace the before-state nor choose another device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..aws.actions import choose_device
from ..aws.identity import (
    account_context,
    caller_identity,
    guard_account,
    removal_methods,
    require_method,
)
from ..aws.state import (
    RootMfaSnapshot,
    device_kind,
    root_credential_findings,
    start_credential_report,
)
from ..errors import PreconditionError
from ..params import RunParameters
from .common import audit_snapshot, record_snapshot
from .facts import RunFacts
from .vocabulary import Event, Gate

if TYPE_CHECKING:
    from .context import Step

# The procedure's warning (docs/procedure.md, step 0), in the post's language and in English
# (our wording).
PROCEDURE_WARNING = (
    "警告：移除 root 使用者的 MFA 裝置是高風險的變更，AWS 並不建議。"
    "root 使用者掌控帳號內的所有資源；其密碼一旦外洩，後果可能非常嚴重。\n"
    "Warning: removing the root user's MFA is a high-risk operation that AWS advises against. "
    "The root user has full control of every resource in the account; if its password or "
    "account details leak, the damage can be severe."
)
NO_PASSWORD_OPTIONS = (
    "This member account's root user has no password (centralised root access removed it), so "
    "nobody can sign in as root and bind a device. The choice is yours, not the runbook's:\n"
    "  a) keep the account credential-less (AWS's recommendation for members): plan again "
    "with rebind: skip; privileged root tasks go through sts:AssumeRoot from the management "
    "account;\n"
    "  b) restore root sign-in first: from the management account, AssumeRoot with "
    "IAMCreateRootUserPassword and call CreateLoginProfile, then the owner of the root "
    "mailbox uses 'Forgot password' and signs in; then plan this runbook again."
)
NO_PASSWORD_CONSOLE = (
    "The root user has no password, so nobody can sign in to the console as root to remove the "
    "device. Use method assume-root (a member account with centralised root access), or "
    "restore root sign-in first (see option b above)."
)


def _reused(step: Step, type: str) -> dict[str, Any] | None:
    data = step.recorded(type)
    if data is not None:
        data["note"] = "recorded earlier in this run (facts are written once)"
    return data


def _refuse(step: Step, check: str, reason: str) -> PreconditionError:
    step.log(Event.PRECONDITION_FAILED, check=check, reason=reason)
    return PreconditionError(
        reason if reason.endswith("changed.") else reason + " Nothing was changed."
    )


def identity(step: Step) -> dict[str, Any]:
    """Who is calling, and is it the account this run is for? Stops before any change."""
    done = _reused(step, Event.OBSERVATION_IDENTITY)
    if done is not None:
        return done
    who = caller_identity(step.target)
    try:
        guard_account(who, step.params.account_id)
    except PreconditionError as err:
        step.log(Event.PRECONDITION_FAILED, check="account guard", reason=str(err))
        raise
    step.log(Event.OBSERVATION_IDENTITY, arn=who.arn, account_id=who.account_id)
    # the right account: IAM may build the credential report that state() reads meanwhile
    start_credential_report(step.target)
    return {"arn": who.arn, "account_id": who.account_id, "expected account": "matches"}


def account(step: Step) -> dict[str, Any]:
    """Account kind, centralised root access, and the removal methods it allows."""
    done = _reused(step, Event.OBSERVATION_ACCOUNT)
    if done is not None:
        return done
    ctx = account_context(step.target, step.params.account_id, step.management)
    methods = removal_methods(ctx)
    if step.management is not None:
        mgmt = caller_identity(step.management)
        step.log(Event.OBSERVATION_MANAGEMENT, arn=mgmt.arn, account_id=mgmt.account_id)
        if ctx.management_account_id and mgmt.account_id != ctx.management_account_id:
            raise _refuse(
                step,
                "management account",
                f"management_profile reaches account {mgmt.account_id}, but the "
                f"organization's management account is {ctx.management_account_id}.",
            )
    try:
        require_method(ctx, step.params.method)
    except PreconditionError as err:
        step.log(Event.PRECONDITION_FAILED, check="removal method", reason=str(err))
        raise
    data = {
        "kind": ctx.kind,
        "organization_id": ctx.organization_id,
        "management_account_id": ctx.management_account_id,
        "root_features": sorted(ctx.root_features) if ctx.root_features is not None else None,
        "centralised": ctx.centralised_root_access,
        "methods": methods,
        "notes": list(ctx.notes),
    }
    step.log(Event.OBSERVATION_ACCOUNT, **data)
    return data


ROOT_CREDENTIALS_ADVICE = (
    "AWS advises against long-term root credentials and the CIS AWS Foundations Benchmark "
    "asks for no root access key: delete them (console, as root: Security credentials -> "
    "Access keys / X.509 certificates; a member account with centralised root access: "
    "AssumeRoot with IAMDeleteRootUserCredentials, then DeleteAccessKey / "
    "DeleteSigningCertificate). This run continues: it is a warning, not a halt."
)
ROOT_CREDENTIALS_REFERENCES = (
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/root-user-best-practices.html",
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user_manage_add-key.html",
    "CIS AWS Foundations Benchmark: ensure no 'root' user account access key exists",
)


def state(step: Step) -> dict[str, Any]:
    """The root user's MFA state before the change, from every signal; and a warning (never a
    halt) when the root user still has active access keys or signing certificates."""
    existing = step.facts.snapshot("before")
    if existing is not None:
        shown: dict[str, Any] = {"snapshot": existing.to_dict(), "note": "recorded earlier"}
        snap = existing
    else:
        snap = audit_snapshot(step, root_credentials=True)
        shown = record_snapshot(step, "before", snap)
    warning = root_credentials_warning(step, snap)
    if warning:
        print(f"WARNING: {warning['text']}\n")  # first in the cell's output, as plain text
    return shown


def root_credentials_warning(step: Step, snap: RootMfaSnapshot) -> dict[str, Any] | None:
    """The warning about long-term root credentials the before-state shows (every signal:
    GetAccountSummary, the credential report's root row, an audit session's listings),
    recorded once as ``warning.root-credentials``; None when there are none."""
    findings = root_credential_findings(snap)
    if not findings:
        return None
    recorded = step.recorded(Event.WARNING_ROOT_CREDENTIALS)
    if recorded is not None:
        return recorded
    kinds = " and ".join(
        "active access keys" if f.kind == "access keys" else "active X.509 signing certificates"
        for f in findings
    )
    seen = "; ".join(f"{f.kind}: {', '.join(f.seen_by)}" for f in findings)
    text = f"The root user still has {kinds} ({seen}). {ROOT_CREDENTIALS_ADVICE}"
    data: dict[str, Any] = {
        "access_keys": any(f.kind == "access keys" for f in findings),
        "signing_certificates": any(f.kind == "signing certificates" for f in findings),
        "seen_by": {f.kind: list(f.seen_by) for f in findings},
        "text": text,
        "references": list(ROOT_CREDENTIALS_REFERENCES),
    }
    step.log(Event.WARNING_ROOT_CREDENTIALS, **data)
    return data


def device(step: Step) -> dict[str, Any]:
    """The device this run removes: the named one (which must exist), or the only one."""
    done = _reused(step, Event.DECISION_DEVICE)
    if done is not None:
        return done
    snap = step.facts.snapshot("before")
    if snap is None:
        raise PreconditionError("The before-state is not recorded yet: run the cell above first.")
    wanted = step.params.device_serial
    known = sorted(snap.known_serials())
    complete = snap.session_devices is not None
    unread = [e for e in snap.errors if e.startswith(("virtual devices", "AccountMFAEnabled"))]
    if unread and not complete:
        # the real cause (throttled, denied, ...), not a guess about FIDO keys
        raise _refuse(
            step,
            "device",
            "The root user's MFA devices could not be read: " + "; ".join(unread) + ". The "
            "device cannot be chosen on a partial view; fix the cause, then resume the run.",
        )
    if not snap.account_mfa_enabled and not known:
        raise _refuse(
            step, "device", "The root user has no MFA device: there is nothing to remove."
        )
    if wanted and wanted not in known:
        # a virtual device would be listed by ListVirtualMFADevices, and an AssumeRoot session
        # lists every kind: if either view says it is not there, it is not there
        listed_virtual = snap.virtual_devices is not None and device_kind(wanted) == "virtual"
        if complete or listed_virtual:
            raise _refuse(
                step,
                "device",
                f"device_serial {wanted} is not among the root user's devices "
                f"({', '.join(known) or 'none visible'}).",
            )
    if wanted:
        serial, how = wanted, "named by device_serial"
    else:
        if snap.account_mfa_enabled and not known:
            raise _refuse(
                step,
                "device",
                "Root MFA is enabled but the device is not visible from this account (a FIDO "
                "key or hardware token); name it with device_serial.",
            )
        try:
            serial = choose_device(known, None) or ""
        except PreconditionError as err:
            step.log(Event.PRECONDITION_FAILED, check="device", reason=str(err))
            raise
        how = "the only device" if complete else "the only device visible through the API"
    data: dict[str, Any] = {
        "serial": serial,
        "kind": device_kind(serial),
        "how": how,
        "visible_through_api": serial in known,
        "devices": known,
    }
    if not complete:
        data["note"] = (
            "Without an AssumeRoot audit session (member accounts with management_profile) "
            "FIDO keys and hardware tokens are not listed; check the console's MFA list "
            "before confirming."
        )
    step.log(Event.DECISION_DEVICE, **data)
    return data


def plan_check(step: Step) -> dict[str, Any]:
    """Refuse, before any change, a plan that cannot end well: binding a new device where the
    root user has no password (nobody can sign in to bind it), or removing in the console
    without a root password."""
    done = _reused(step, Event.OBSERVATION_PLAN_CHECK)
    if done is not None:
        return done
    snap = step.facts.snapshot("before")
    p = step.params
    no_password = snap is not None and snap.account_password_present is False
    if no_password and p.rebind == "bind":
        raise _refuse(
            step,
            "plan can end well",
            "rebind: bind cannot end well: the run would remove the device and then nobody "
            "could sign in to bind a new one, leaving the root user without MFA.\n"
            + NO_PASSWORD_OPTIONS,
        )
    if no_password and p.method == "console":
        raise _refuse(step, "plan can end well", NO_PASSWORD_CONSOLE)
    data = {
        "ok": True,
        "root password": {True: "present", False: "absent", None: "not visible"}[
            None if snap is None else snap.account_password_present
        ],
        "rebind": p.rebind,
        "method": p.method,
    }
    step.log(Event.OBSERVATION_PLAN_CHECK, **data)
    return data


def acknowledge(step: Step) -> Any:
    """The risk acknowledgement (a dry run needs none: it changes nothing)."""
    facts = {
        "account": step.params.account_id,
        "device": step.facts.device,
        "method": step.params.method,
        "change ticket": step.params.change_ticket,
        "dry run": step.params.dry_run,
        "warning": PROCEDURE_WARNING.splitlines()[-1],
    }
    if step.params.dry_run:
        if step.recorded(Event.GATE_NOT_NEEDED) is None:
            step.log(
                Event.GATE_NOT_NEEDED, gate=Gate.RISK, reason="dry run: nothing will be changed"
            )
        return {
            "DRY RUN": "nothing will be changed; no acknowledgement is asked",
            "would ask to acknowledge": facts,
        }
    return step.gates.approval(
        Gate.RISK, "Acknowledge the risk of removing root MFA", facts, step.params.account_id
    )


def checks_missing(facts: RunFacts, params: RunParameters) -> list[str]:
    """What 00 must have on record before it finishes."""
    missing = []
    for event, what in (
        (Event.OBSERVATION_IDENTITY, "the caller identity"),
        (Event.OBSERVATION_ACCOUNT, "the account kind"),
        (Event.DECISION_DEVICE, "the device to remove"),
        (Event.OBSERVATION_PLAN_CHECK, "the check that the plan can end well"),
    ):
        if facts.first(event, "00-preflight") is None:
            missing.append(f"{what} is not recorded (run every cell of this notebook)")
    if facts.snapshot("before") is None:
        missing.append("the before-state is not recorded")
    return missing
