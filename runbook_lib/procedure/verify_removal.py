"""02 · Verify the removal: every signal after it, and the CloudTrail event that made it.

IAM is eventually consistent (polled up to ``verify_timeout``); the credential report may be
stale (shown so, not as a contradiction); CloudTrail is searched for ``DeactivateMFADevice``
by Root (console) or by any of the run's AssumeRoot sessions (a re-assumed session made the
call with its own key), up to ``evidence_timeout``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..aws.evidence import find_deactivation, wait_for_evidence
from ..aws.state import device_kind, poll_until, read_account_mfa_enabled, wait_for_device_removed
from ..errors import PreconditionError
from ..params import RunParameters
from .common import (
    EVIDENCE_POLL,
    audit_session,
    audit_snapshot,
    dry_run_missing,
    record_snapshot,
    since,
)
from .facts import RunFacts
from .remove import PURPOSE
from .vocabulary import Event, Gate

if TYPE_CHECKING:
    from .context import Step

STEP = "02-verify-removal"


def verify(step: Step) -> dict[str, Any]:
    if step.params.dry_run:
        return step.skip("dry run (nothing was changed, nothing to verify)")
    facts = step.facts
    serial = facts.device or ""
    acct = step.params.account_id
    step.gates.require(Gate.REMOVED_IN_CONSOLE if step.params.method == "console" else Gate.REMOVE)
    removed = facts.first(Event.VERIFICATION_REMOVED, STEP)
    if removed is None:
        how = _wait_removed(step, serial)
        full = audit_snapshot(step)
        if serial in full.known_serials():
            step.log(
                Event.VERIFICATION_FAILED,
                check="device removed",
                serial=serial,
                snapshot=full.to_dict(),
            )
            raise PreconditionError(
                f"{serial} is still listed after the removal; check the console."
            )
        started = facts.when(Event.ACTION_STARTED)
        data = record_snapshot(
            step, "after-removal", full, started.isoformat() if started else None
        )
        step.log(Event.VERIFICATION_REMOVED, serial=serial, how=how)
    else:
        data = {"judgement": "recorded earlier in this run"}
    keys = step.facts.session_keys(PURPOSE) if step.params.method == "assume-root" else None
    start = since(step, Event.ACTION_STARTED)
    evidence = wait_for_evidence(
        lambda: find_deactivation(step.target, acct, serial, start, access_key_ids=keys),
        timeout=step.params.evidence_timeout,
        interval=EVIDENCE_POLL,
    )
    step.log(Event.EVIDENCE_DEACTIVATION, **evidence.summary())
    return {
        "device": serial,
        "removed": True,
        "judgement": data.get("judgement"),
        "evidence": evidence.summary(),
    }


def _wait_removed(step: Step, serial: str) -> str:
    """Poll until the API shows the device gone; say how that was established. A FIDO key or
    hardware token is listed only in an AssumeRoot session; without one, its removal shows as
    AccountMFAEnabled=0 only when it was the root user's last device."""
    acct = step.params.account_id
    timeout = step.params.verify_timeout
    with audit_session(step) as session:
        if device_kind(serial) == "virtual" or session is not None:
            snap = wait_for_device_removed(step.target, acct, serial, session, timeout=timeout)
            return f"no signal lists the device any more ({snap.taken_at})"
    before = step.facts.snapshot("before")
    if before is not None and before.known_serials() <= {serial}:
        poll_until(
            lambda: read_account_mfa_enabled(step.target),
            lambda on: not on,
            timeout=timeout,
            what="AccountMFAEnabled to become 0",
            check="Check the console's MFA list: the device should be gone.",
        )
        return "AccountMFAEnabled is 0: the root user has no MFA device left"
    step.log(
        Event.VERIFICATION_LIMITED,
        serial=serial,
        reason="a FIDO key or hardware token is not listed by any API this account "
        "allows (no AssumeRoot session); the CloudTrail event is the evidence",
    )
    return "not listable through the API: see the CloudTrail evidence"


def checks_missing(facts: RunFacts, params: RunParameters) -> list[str]:
    if params.dry_run:
        return dry_run_missing(facts, STEP)
    missing = []
    if facts.first(Event.VERIFICATION_REMOVED, STEP) is None:
        missing.append("the removal is not verified")
    if facts.first(Event.EVIDENCE_DEACTIVATION, STEP) is None:
        missing.append("the DeactivateMFADevice event is not found")
    return missing
