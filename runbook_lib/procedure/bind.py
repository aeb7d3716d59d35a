"""04 · Bind a new MFA device in the console, or record the decision not to.

No API can bind MFA to the root user (``EnableMFADevice`` needs a ``UserName``): the runbook
guides the console step and verifies it (a device that is not the removed one appears, and
``EnableMFADevice`` by Root shows in CloudTrail). A device just bound cannot be removed before
the root user signs in again (docs/procedure.md, step 5).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ..aws.evidence import find_enable, wait_for_evidence
from ..aws.state import RootMfaSnapshot, collect_snapshot
from ..errors import PreconditionError
from ..params import RunParameters
from .common import EVIDENCE_POLL, console_actor, dry_run_missing, since
from .facts import RunFacts
from .gates import ConsoleCheck
from .vocabulary import Event, Gate

if TYPE_CHECKING:
    from .context import Step

STEP = "04-rebind"
CONSOLE_BIND = (
    "1. After sign-in the console offers to assign MFA (bind now, or skip): choose to assign, "
    "or go to Security credentials > Multi-factor authentication (MFA) > Assign MFA device.\n"
    "2. Choose Authenticator app; name the device (e.g. root-authenticator-{ticket}).\n"
    "3. Scan the QR code with Google Authenticator or Microsoft Authenticator.\n"
    "4. Enter two consecutive codes from the app and choose Add MFA.\n"
    "Note (docs/procedure.md, step 5): a device just bound cannot be removed right away; the "
    "root user must sign in again first.\n"
    "Never paste the QR code, its secret or a code into this notebook."
)
#: IAM User Guide, "Multi-factor authentication for AWS account root user": root users must
#: register MFA within 35 days of their first sign-in attempt without it; after that, enabling
#: MFA is mandatory to proceed with sign-in.
MFA_REGISTRATION_WINDOW = dt.timedelta(days=35)
ROOT_MFA_WARNING = (
    "AWS recommends MFA for the root user and enforces it at root sign-in for standalone and "
    "management accounts: without a device the root user will be asked to register one. "
    "For member accounts, AWS recommends removing root credentials altogether (centralised "
    "root access) rather than keeping a root password without MFA."
)


def decide(step: Step) -> Any:
    """rebind=skip: the approval to leave the root user without a new device."""
    if step.params.dry_run:
        return step.skip("dry run (nothing was changed)")
    if step.params.rebind != "skip":
        return {"rebind": "bind: a console step follows"}
    facts = {
        "account": step.params.account_id,
        "decision": "leave without a new device",
        "warning": ROOT_MFA_WARNING,
    }
    return step.gates.approval(
        Gate.SKIP_REBIND, "Skip binding a new root MFA device", facts, step.params.account_id
    )


def left_over(step: Step) -> str | None:
    """A deactivated virtual device whose object 01 could not delete (its name is taken)."""
    action = step.facts.first(Event.ACTION_REMOVE_DEVICE)
    if action is None:
        return None
    left = (action["data"].get("details") or {}).get("virtual_device_left")
    return str(left) if left else None


def instructions(step: Step) -> str:
    text = CONSOLE_BIND.format(ticket=step.params.change_ticket)
    left = left_over(step)
    if left:
        name = left.rsplit("/", 1)[-1]
        text += (
            f"\nThe old device object {left} is still in the account (unassigned, deactivated: "
            f"01 could not delete it): its name {name!r} is taken, so name the new device "
            "differently."
        )
    return text


def _before(step: Step) -> set[str]:
    after = step.facts.snapshot("after-removal")
    return after.known_serials() if after is not None else set()


def bind_check(step: Step) -> ConsoleCheck:
    removed = step.facts.device
    before = _before(step)
    gone = {removed} if removed else set()
    acct = step.params.account_id

    def appeared(snap: RootMfaSnapshot) -> bool:
        if snap.known_serials() - before - gone:
            return True
        return bool(snap.account_mfa_enabled) and not snap.known_serials() and not before

    return ConsoleCheck(
        what="a new root MFA device (not the removed one)",
        check="Finish binding in the console (scan the QR code, enter two consecutive codes, "
        "choose Add MFA) and check that the console lists the device.",
        timeout=float(step.params.verify_timeout),
        probe=lambda: collect_snapshot(step.target, acct, with_report=False),
        done=appeared,
        interval=1.0,
    )


def rebind(step: Step) -> dict[str, Any]:
    if step.params.dry_run:  # decide() already recorded the skip
        return {"step": step.name, "status": "skipped: dry run (nothing was changed)"}
    acct = step.params.account_id
    removed = step.facts.device
    if step.params.rebind == "skip":
        step.gates.require(Gate.SKIP_REBIND)
        decided = step.recorded(Event.DECISION_SKIP_REBIND)
        if decided is None:
            after = step.facts.snapshot("after-removal")
            decided = {
                "warning": ROOT_MFA_WARNING,
                "mfa_left": bool(after and after.account_mfa_enabled),
                **registration_deadline(step),
            }
            step.log(Event.DECISION_SKIP_REBIND, **decided)
        return {"rebind": "skipped (recorded)", **decided}
    before = _before(step)
    name = f"root-{step.params.change_ticket}".replace("/", "-").replace("#", "-")[:60]
    check = bind_check(step)
    step.gates.console_step(
        Gate.BOUND_IN_CONSOLE,
        instructions(step),
        check=check,
        actor=lambda: console_actor(step).bind_virtual(acct, name),
    )
    verified = step.recorded(Event.VERIFICATION_NEW_DEVICE)
    if verified is None:
        snap = check.probe()
        if removed and removed in snap.known_serials():
            raise PreconditionError(
                f"The removed device {removed} is listed again; the new device must be a "
                "different one."
            )
        verified = {
            "new_devices": sorted(snap.known_serials() - before - {removed or ""}),
            "removed": removed,
            "account_mfa_enabled": snap.account_mfa_enabled,
        }
        step.log(Event.VERIFICATION_NEW_DEVICE, **verified)
    start = since(step, Event.VERIFICATION_REMOVED)
    evidence = step.recorded(Event.EVIDENCE_ENABLE)
    if evidence is None:
        found = wait_for_evidence(
            lambda: find_enable(step.target, acct, start, exclude_serial=removed),
            timeout=step.params.evidence_timeout,
            interval=EVIDENCE_POLL,
        )
        evidence = found.summary()
        step.log(Event.EVIDENCE_ENABLE, **evidence)
    return {
        "new device": verified["new_devices"],
        "evidence": evidence,
        "note": "A device just bound cannot be removed before the root user signs in again.",
    }


def registration_deadline(step: Step) -> dict[str, Any]:
    """When AWS stops letting the root user sign in without registering MFA: 35 days after the
    first sign-in attempt without MFA. The run knows its own sign-in (03's ConsoleLogin with
    MFAUsed No); an earlier attempt, before this run, would make the deadline sooner."""
    login = step.facts.first(Event.EVIDENCE_CONSOLE_LOGIN)
    if login is None or login["data"].get("expected_mfa_used"):
        return {"mfa_registration_deadline": None}
    times = login["data"].get("event_times") or []
    signed_in = dt.datetime.fromisoformat(str(times[0]) if times else login["time"])
    deadline = (signed_in + MFA_REGISTRATION_WINDOW).date().isoformat()
    return {
        "mfa_registration_deadline": deadline,
        "mfa_registration_rule": (
            f"AWS requires the root user to register MFA within 35 days of its first sign-in "
            f"attempt without MFA: by {deadline} at the latest (from this run's sign-in; an "
            "earlier attempt would make it sooner). After that, sign-in is possible only to "
            "register a device."
        ),
    }


def checks_missing(facts: RunFacts, params: RunParameters) -> list[str]:
    if params.dry_run:
        return dry_run_missing(facts, STEP)
    if params.rebind == "skip":
        return (
            []
            if facts.first(Event.DECISION_SKIP_REBIND, STEP)
            else ["the decision to skip is not recorded"]
        )
    missing = []
    if facts.first(Event.VERIFICATION_NEW_DEVICE, STEP) is None:
        missing.append("the new device is not verified")
    if facts.first(Event.EVIDENCE_ENABLE, STEP) is None:
        missing.append("the EnableMFADevice event is not found")
    return missing
