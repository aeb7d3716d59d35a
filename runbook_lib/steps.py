"""What each step notebook does: the logic behind the cells, where tests reach it.

Each function takes the notebook's :class:`~runbook_lib.step.Step`, collects (AWS reads), judges
(pure functions in :mod:`state`, :mod:`identity`), acts only behind a gate, records everything,
and returns a small dict for the notebook to show.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

from .actions import choose_device, remove_root_mfa_device
from .errors import PreconditionError, RunbookError
from .evidence import (
    find_console_login,
    find_deactivation,
    find_enable,
    wait_for_evidence,
)
from .identity import (
    account_context,
    caller_identity,
    guard_account,
    removal_methods,
    require_method,
)
from .privileged import AUDIT, RootSession, assume_root
from .state import (
    RootMfaSnapshot,
    collect_snapshot,
    device_kind,
    judge,
    poll_until,
    read_account_mfa_enabled,
    wait_for_device_removed,
    wait_for_new_device,
)
from .step import Step, now_iso

# The procedure, from the seed (a blog post in Traditional Chinese), kept verbatim where the
# operator needs the exact console path.
SEED_WARNING = (
    "警告！！關閉 root 帳號的 MFA 是一個風險較高的操作，AWS 通常不建議這樣做，"
    "因為 root 帳號擁有整個 AWS 資源的完全控制權，一旦密碼或帳號資訊洩漏，可能會造成重大損失。\n"
    "Warning: removing the root user's MFA is a high-risk operation that AWS advises against. "
    "The root user has full control of every resource in the account; if its password or "
    "account details leak, the damage can be severe."
)
CONSOLE_REMOVE_PATH = (
    "1. Sign in as the root user.\n"
    "2. Top right: the account name > Security credentials (安全憑証).\n"
    "3. Scroll to Multi-factor authentication (MFA) (多重要素驗証(MFA)).\n"
    "4. Select the device {serial} and choose Remove (移除).\n"
    "5. A warning dialog asks to confirm: confirm it. The console reports the device removed."
)
CONSOLE_SIGN_IN = (
    "1. Sign out of the console, then sign in again as the root user (e-mail + password).\n"
    "2. {second_factor}\n"
    "3. You are signed in. (The seed: after this first sign-in the code is no longer needed "
    "until MFA is bound again.)"
)
CONSOLE_BIND = (
    "1. After sign-in the console offers to assign MFA (bind now, or skip): choose to assign, "
    "or go to Security credentials > Multi-factor authentication (MFA) > Assign MFA device.\n"
    "2. Choose Authenticator app; name the device (e.g. root-authenticator-{ticket}).\n"
    "3. Scan the QR code with Google Authenticator or Microsoft Authenticator.\n"
    "4. Enter two consecutive codes from the app and choose Add MFA.\n"
    "Note (the seed): a device just bound cannot be removed right away; the root user must "
    "sign in again first.\n"
    "Never paste the QR code, its secret or a code into this notebook."
)
ROOT_MFA_WARNING = (
    "AWS recommends MFA for the root user and enforces it at root sign-in for standalone and "
    "management accounts: without a device the root user will be asked to register one. "
    "For member accounts, AWS recommends removing root credentials altogether (centralised "
    "root access) rather than keeping a root password without MFA."
)
NO_PASSWORD_OPTIONS = (
    "This member account's root user has no password (centralised root access removed it), so "
    "nobody can sign in as root and bind a device. The choice is yours, not the runbook's:\n"
    "  a) keep the account credential-less (AWS's recommendation for members): nothing to "
    "bind; privileged root tasks go through sts:AssumeRoot from the management account;\n"
    "  b) restore root sign-in: from the management account, AssumeRoot with "
    "IAMCreateRootUserPassword and call CreateLoginProfile, then the owner of the root "
    "mailbox uses 'Forgot password', signs in, and binds MFA (run this runbook's step 04 "
    "afterwards to verify)."
)


def show(value: Any) -> None:
    """Print a step's result as readable YAML (what papermill records as text output)."""
    import yaml

    print(yaml.safe_dump(_plain(value), sort_keys=False, allow_unicode=True, width=100).rstrip())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value) if not hasattr(value, "children") else value


def _snapshot_dict(snap: RootMfaSnapshot, changed_after: str | None = None) -> dict[str, Any]:
    verdict = judge(snap, changed_after)
    return {"snapshot": snap.to_dict(), "judgement": verdict.__dict__}


@contextlib.contextmanager
def _audit_session(step: Step) -> Iterator[RootSession | None]:
    """An IAMAuditRootUserCredentials session when the account allows one (a member account
    with centralised root access, and management credentials); else None."""
    ctx = _context(step)
    if not (ctx.get("kind") == "member" and ctx.get("centralised") and step.management):
        yield None
        return
    with assume_root(
        step.management, step.params.account_id, AUDIT, 300, step.params.region
    ) as session:
        step.log(
            "action.assume-root",
            task_policy="IAMAuditRootUserCredentials",
            access_key_id=session.access_key_id,
            request_id=session.assume_request_id,
            purpose="read every MFA device",
        )
        yield session


def _audit_snapshot(step: Step, with_report: bool = True) -> RootMfaSnapshot:
    """Every signal; with an audit AssumeRoot session when the account allows one."""
    with _audit_session(step) as session:
        return collect_snapshot(
            step.target, step.params.account_id, session, with_report=with_report
        )


def _context(step: Step) -> dict[str, Any]:
    found = step.events("observation.account")
    return dict(found[-1]["data"]) if found else {}


def chosen_device(step: Step) -> str | None:
    found = step.events("decision.device")
    return found[-1]["data"].get("serial") if found else None


def _when(step: Step, event_type: str) -> str | None:
    found = step.events(event_type)
    return found[-1]["time"] if found else None


def _since(step: Step, event_type: str) -> dt.datetime:
    """Search CloudTrail from a minute before ``event_type`` (or the run's start)."""
    at = _when(step, event_type) or step.record.load_run()["created_at"]
    return dt.datetime.fromisoformat(at) - dt.timedelta(minutes=1)


def _actor(step: Step) -> Any:
    from .sandbox.actor import ConsoleActor

    return ConsoleActor(step.params.endpoint_url)


def skip_if_dry_run(step: Step) -> dict[str, Any] | None:
    if not step.params.dry_run:
        return None
    step.log("step.skipped", reason="dry_run=true: nothing is changed or verified")
    step.finish(skipped=True)
    return {"step": step.name, "status": "skipped: dry run (nothing was changed)"}


# ---------------------------------------------------------------------------- 00 preflight
def preflight_identity(step: Step) -> dict[str, Any]:
    """Who is calling, and is it the account this run is for? Stops before any change."""
    who = caller_identity(step.target)
    step.log("observation.identity", arn=who.arn, account_id=who.account_id)
    operator = step.operator()
    operator["caller_arn"] = who.arn
    step.record.update_run(operator=operator)
    try:
        guard_account(who, step.params.account_id)
    except PreconditionError as err:
        step.log("precondition.failed", check="account guard", reason=str(err))
        raise
    return {"caller": who.arn, "account": who.account_id, "expected account": "matches"}


def preflight_account(step: Step) -> dict[str, Any]:
    """Account kind, centralised root access, and the removal methods it allows."""
    ctx = account_context(step.target, step.params.account_id, step.management)
    methods = removal_methods(ctx)
    if step.management is not None:
        mgmt = caller_identity(step.management)
        step.log("observation.management-identity", arn=mgmt.arn, account_id=mgmt.account_id)
        if ctx.management_account_id and mgmt.account_id != ctx.management_account_id:
            reason = (
                f"management_profile reaches account {mgmt.account_id}, but the "
                f"organization's management account is {ctx.management_account_id}"
            )
            step.log("precondition.failed", check="management account", reason=reason)
            raise PreconditionError(reason + ". Nothing was changed.")
    data = {
        "kind": ctx.kind,
        "organization_id": ctx.organization_id,
        "management_account_id": ctx.management_account_id,
        "root_features": sorted(ctx.root_features) if ctx.root_features is not None else None,
        "centralised": ctx.centralised_root_access,
        "methods": methods,
        "notes": list(ctx.notes),
    }
    step.log("observation.account", **data)
    try:
        require_method(ctx, step.params.method)
    except PreconditionError as err:
        step.log("precondition.failed", check="removal method", reason=str(err))
        raise
    return data


def preflight_state(step: Step) -> dict[str, Any]:
    """The root user's MFA state before the change, from every signal."""
    snap = _audit_snapshot(step)
    step.record.write_json("snapshots/before.json", snap.to_dict())
    data = _snapshot_dict(snap)
    step.log("observation.snapshot", which="before", **data)
    return data


def preflight_device(step: Step) -> dict[str, Any]:
    """The device this run removes: the named one (which must exist), or the only one."""
    snap = RootMfaSnapshot(**_load_snapshot(step, "before"))
    wanted = step.params.device_serial
    known = sorted(snap.known_serials())
    complete = snap.session_devices is not None
    if not snap.account_mfa_enabled and not known:
        reason = "The root user has no MFA device: there is nothing to remove."
        step.log("precondition.failed", check="device", reason=reason)
        raise PreconditionError(reason + " Nothing was changed.")
    if wanted and wanted not in known:
        # a virtual device would be listed by ListVirtualMFADevices, and an AssumeRoot session
        # lists every kind: if either view says it is not there, it is not there
        listed_virtual = snap.virtual_devices is not None and device_kind(wanted) == "virtual"
        if complete or listed_virtual:
            reason = (
                f"device_serial {wanted} is not among the root user's devices "
                f"({', '.join(known) or 'none visible'})"
            )
            step.log("precondition.failed", check="device", reason=reason)
            raise PreconditionError(reason + ". Nothing was changed.")
    if wanted:
        serial, how = wanted, "named by device_serial"
    else:
        if snap.account_mfa_enabled and not known:
            reason = (
                "Root MFA is enabled but the device is not visible from this account (a "
                "FIDO key or hardware token); name it with device_serial."
            )
            step.log("precondition.failed", check="device", reason=reason)
            raise PreconditionError(reason + " Nothing was changed.")
        try:
            serial = choose_device(known, None) or ""
        except PreconditionError as err:
            step.log("precondition.failed", check="device", reason=str(err))
            raise
        how = "the only device" if complete else "the only device visible through the API"
    visible = serial in known
    data = {
        "serial": serial,
        "kind": device_kind(serial),
        "how": how,
        "visible_through_api": visible,
        "devices": known,
    }
    if not complete:
        data["note"] = (
            "Without an AssumeRoot audit session (member accounts with "
            "management_profile) FIDO keys and hardware tokens are not listed; "
            "check the console's MFA list before confirming."
        )
    step.log("decision.device", **data)
    step.record.update_run(device=serial)
    return data


def preflight_gate(step: Step) -> Any:
    facts = {
        "account": step.params.account_id,
        "device": chosen_device(step),
        "method": step.params.method,
        "change ticket": step.params.change_ticket,
        "dry run": step.params.dry_run,
        "warning": SEED_WARNING.splitlines()[-1],
    }
    return step.gate(
        "risk-acknowledged",
        "Acknowledge the risk of removing root MFA",
        facts,
        step.params.account_id,
    )


def _load_snapshot(step: Step, which: str) -> dict[str, Any]:
    import json

    data = json.loads((step.record.path / "snapshots" / f"{which}.json").read_text())
    from .state import CredentialReportRoot, MfaDeviceInfo

    if data.get("credential_report"):
        data["credential_report"] = CredentialReportRoot(**data["credential_report"])
    for key in ("virtual_devices", "errors"):
        if data.get(key) is not None:
            data[key] = tuple(data[key])
    if data.get("session_devices") is not None:
        data["session_devices"] = tuple(MfaDeviceInfo(**d) for d in data["session_devices"])
    return dict(data)


# ---------------------------------------------------------------------------- 01 remove
def removal_gate(step: Step) -> Any:
    """The approval to remove the device; a dry run skips the whole step instead."""
    skipped = skip_if_dry_run(step)
    if skipped is not None:
        return skipped
    serial = chosen_device(step)
    facts = {
        "account": step.params.account_id,
        "device": serial,
        "method": step.params.method,
        "change ticket": step.params.change_ticket,
    }
    return step.gate(
        "remove-device", f"Remove root MFA device {serial}", facts, step.params.account_id
    )


def remove_device(step: Step) -> dict[str, Any]:
    """Console: the operator removes it (the seed's path) and confirms. AssumeRoot: the library
    removes it (member accounts), with request ids recorded."""
    if step.params.dry_run:
        return {"step": step.name, "status": "skipped: dry run (nothing was changed)"}
    serial = chosen_device(step)
    if not serial:
        raise RunbookError("No device was chosen in 00-preflight of this run; run it first.")
    if step.params.device_serial and step.params.device_serial != serial:
        raise PreconditionError(
            f"00-preflight of this run chose {serial}, but device_serial is now "
            f"{step.params.device_serial}; nothing was changed. Start a new run."
        )
    acct = step.params.account_id
    step.require("remove-device")
    if not step.events("action.started", step=step.name):  # a re-run after a halt: once only
        step.log("action.started", action="remove-device", serial=serial, method=step.params.method)
    if step.params.method == "console":
        result = step.human(
            "device-removed-in-console",
            CONSOLE_REMOVE_PATH.format(serial=serial),
            actor=lambda: _actor(step).remove_device(acct, serial),
        )
        return {"method": "console", "device": serial, **dict(result)}
    assert step.management is not None
    outcome = remove_root_mfa_device(
        step.management,
        acct,
        serial,
        dry_run=False,
        delete_virtual=step.params.delete_virtual,
        region=step.params.region,
        verify_timeout=step.params.verify_timeout,
        target_reader=step.target,
    )
    step.log("action.remove-device", **outcome.to_dict())
    return outcome.to_dict()


# ---------------------------------------------------------------------------- 02 verify
def verify_removal(step: Step) -> dict[str, Any]:
    skipped = skip_if_dry_run(step)
    if skipped is not None:
        return skipped
    serial = chosen_device(step) or ""
    acct = step.params.account_id
    step.require("remove-device")
    if step.params.method == "console":
        step.require("device-removed-in-console")
    removed_at = _when(step, "action.started") or now_iso()
    how = _wait_removed(step, serial)
    full = _audit_snapshot(step)
    step.record.write_json("snapshots/after-removal.json", full.to_dict())
    data = _snapshot_dict(full, removed_at)
    if serial in full.known_serials():
        step.log("verification.failed", check="device removed", serial=serial, **data)
        raise PreconditionError(f"{serial} is still listed after the removal; check the console.")
    step.log("verification.removed", serial=serial, how=how, **data)
    key = None
    action = step.events("action.remove-device")
    if action:
        key = action[-1]["data"]["details"].get("session_access_key_id")
    since = _since(step, "action.started")
    evidence = wait_for_evidence(
        lambda: find_deactivation(step.target, acct, serial, since, access_key_id=key),
        timeout=step.params.evidence_timeout,
        interval=2.0,
    )
    step.log("evidence.deactivation", **evidence.summary())
    return {
        "device": serial,
        "removed": True,
        "judgement": data["judgement"],
        "evidence": evidence.summary(),
    }


def _wait_removed(step: Step, serial: str) -> str:
    """Poll until the API shows the device gone; say how that was established. A FIDO key or
    hardware token is listed only in an AssumeRoot session; without one, its removal shows as
    AccountMFAEnabled=0 only when it was the root user's last device."""
    acct = step.params.account_id
    timeout = step.params.verify_timeout
    with _audit_session(step) as session:
        if device_kind(serial) == "virtual" or session is not None:
            snap = wait_for_device_removed(step.target, acct, serial, session, timeout=timeout)
            return f"no signal lists the device any more ({snap.taken_at})"
    before = RootMfaSnapshot(**_load_snapshot(step, "before"))
    if before.known_serials() <= {serial}:
        poll_until(
            lambda: read_account_mfa_enabled(step.target),
            lambda on: not on,
            timeout=timeout,
            what="AccountMFAEnabled to become 0",
            check="Check the console's MFA list: the device should be gone.",
        )
        return "AccountMFAEnabled is 0: the root user has no MFA device left"
    step.log(
        "verification.limited",
        serial=serial,
        reason="a FIDO key or hardware token is not listed by any API this account "
        "allows (no AssumeRoot session); the CloudTrail event is the evidence",
    )
    return "not listable through the API: see the CloudTrail evidence"


# ---------------------------------------------------------------------------- 03 first sign-in
def first_sign_in(step: Step) -> dict[str, Any]:
    skipped = skip_if_dry_run(step)
    if skipped is not None:
        return skipped
    acct = step.params.account_id
    after = RootMfaSnapshot(**_load_snapshot(step, "after-removal"))
    if after.account_password_present is False:
        step.log("decision.no-root-password", options=NO_PASSWORD_OPTIONS)
        return {"status": "skipped: the root user has no password", "options": NO_PASSWORD_OPTIONS}
    mfa_left = bool(after.account_mfa_enabled)
    second = (
        "Enter a code from the remaining MFA device."
        if mfa_left
        else "AWS e-mails a one-time verification code to the root address: enter it. (The "
        "runbook never asks for the code and never records it.)"
    )
    result = step.human(
        "signed-in-with-email-code",
        CONSOLE_SIGN_IN.format(second_factor=second),
        actor=lambda: _actor(step).sign_in(acct),
    )
    since = _since(step, "verification.removed")
    evidence = wait_for_evidence(
        lambda: find_console_login(step.target, acct, since, mfa=mfa_left),
        timeout=step.params.evidence_timeout,
        interval=2.0,
    )
    step.log("evidence.console-login", expected_mfa_used=mfa_left, **evidence.summary())
    return {
        "sign-in": dict(result),
        "expected MFAUsed": "Yes" if mfa_left else "No",
        "evidence": evidence.summary(),
    }


# ---------------------------------------------------------------------------- 04 rebind
def rebind_gate(step: Step) -> Any:
    skipped = skip_if_dry_run(step)
    if skipped is not None:
        return skipped
    if step.params.rebind != "skip":
        return {"rebind": "bind: a console step follows"}
    facts = {
        "account": step.params.account_id,
        "decision": "leave without a new device",
        "warning": ROOT_MFA_WARNING,
    }
    return step.gate(
        "skip-rebind", "Skip binding a new root MFA device", facts, step.params.account_id
    )


def rebind(step: Step) -> dict[str, Any]:
    if step.params.dry_run:  # rebind_gate already recorded the skip
        return {"step": step.name, "status": "skipped: dry run (nothing was changed)"}
    acct = step.params.account_id
    removed = chosen_device(step)
    after = RootMfaSnapshot(**_load_snapshot(step, "after-removal"))
    if step.params.rebind == "skip":
        step.require("skip-rebind")
        step.log(
            "decision.skip-rebind",
            warning=ROOT_MFA_WARNING,
            mfa_left=bool(after.account_mfa_enabled),
        )
        return {"rebind": "skipped (recorded)", "warning": ROOT_MFA_WARNING}
    if after.account_password_present is False:
        step.log("decision.rebind-not-possible", options=NO_PASSWORD_OPTIONS)
        return {"rebind": "not possible without a root password", "options": NO_PASSWORD_OPTIONS}
    before = after.known_serials()
    name = f"root-{step.params.change_ticket}".replace("/", "-").replace("#", "-")[:60]
    result = step.human(
        "new-device-bound-in-console",
        CONSOLE_BIND.format(ticket=step.params.change_ticket),
        actor=lambda: _actor(step).bind_virtual(acct, name),
    )
    snap = wait_for_new_device(
        step.target, acct, removed, before, timeout=step.params.verify_timeout
    )
    new = sorted(snap.known_serials() - before - {removed or ""})
    if removed and removed in snap.known_serials():
        raise PreconditionError(
            f"The removed device {removed} is listed again; the new device must be a different one."
        )
    step.log(
        "verification.new-device",
        new_devices=new,
        removed=removed,
        account_mfa_enabled=snap.account_mfa_enabled,
    )
    since = _since(step, "verification.removed")
    evidence = wait_for_evidence(
        lambda: find_enable(step.target, acct, since, exclude_serial=removed),
        timeout=step.params.evidence_timeout,
        interval=2.0,
    )
    step.log("evidence.enable", **evidence.summary())
    return {
        "console": dict(result),
        "new device": new,
        "evidence": evidence.summary(),
        "note": "A device just bound cannot be removed before the root user signs in again.",
    }


# ---------------------------------------------------------------------------- 05 close-out
def close_out(step: Step) -> dict[str, Any]:
    snap = _audit_snapshot(step)
    step.record.write_json("snapshots/after.json", snap.to_dict())
    start = step.record.load_run()["created_at"]
    after = _snapshot_dict(snap, start)
    step.log("observation.snapshot", which="after", **after)
    before = RootMfaSnapshot(**_load_snapshot(step, "before"))
    diff = {
        "removed": sorted(before.known_serials() - snap.known_serials()),
        "added": sorted(snap.known_serials() - before.known_serials()),
        "AccountMFAEnabled": [before.account_mfa_enabled, snap.account_mfa_enabled],
    }
    approvals = [
        {
            "gate": e["data"].get("gate"),
            "type": e["type"],
            "who": e["data"].get("who"),
            "typed": e["data"].get("typed"),
            "at": e["time"],
        }
        for e in step.record.events()
        if e["type"] in ("gate.approved", "human.confirmed", "gate.denied")
    ]
    timeline = []
    for event in step.record.events():
        if event["type"].startswith(("evidence.", "action.", "gate.", "human.", "decision.")):
            timeline.append(
                {
                    "time": event["time"],
                    "type": event["type"],
                    "what": event["data"].get("claim")
                    or event["data"].get("gate")
                    or event["data"].get("action")
                    or event["data"].get("purpose")
                    or "",
                    "event_ids": event["data"].get("event_ids", []),
                }
            )
    summary = {
        "diff": diff,
        "approvals": approvals,
        "timeline": timeline,
        "dry_run": step.params.dry_run,
    }
    step.record.write_json("summary.json", summary)
    step.log("run.closed-out", diff=diff, approvals=len(approvals))
    return summary
