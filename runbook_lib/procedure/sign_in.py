"""03 · The first root sign-in after the removal: with no MFA device left, AWS e-mails a
one-time code to the root address. The runbook never asks for the code and never records it.

The console step is a claim until CloudTrail shows a successful ``ConsoleLogin`` by Root after
the removal (``MFAUsed`` No, or Yes when another device remains).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..aws.evidence import find_console_login, wait_for_evidence
from ..params import RunParameters
from .common import EVIDENCE_POLL, console_actor, dry_run_missing, since
from .facts import RunFacts
from .gates import ConsoleCheck
from .preflight import NO_PASSWORD_OPTIONS
from .vocabulary import Event, Gate

if TYPE_CHECKING:
    from .context import Step

STEP = "03-first-sign-in"
CONSOLE_SIGN_IN = (
    "1. Sign out of the console, then sign in again as the root user (e-mail + password).\n"
    "2. {second_factor}\n"
    "3. You are signed in. (After this first sign-in no code is asked for again until an MFA "
    "device is bound: docs/procedure.md, step 3.)"
)


def _mfa_left(step: Step) -> bool:
    after = step.facts.snapshot("after-removal")
    return bool(after and after.account_mfa_enabled)


def instructions(step: Step) -> str:
    second = (
        "Enter a code from the remaining MFA device."
        if _mfa_left(step)
        else "AWS e-mails a one-time verification code to the root address: enter it. (The "
        "runbook never asks for the code and never records it.)"
    )
    return CONSOLE_SIGN_IN.format(second_factor=second)


def sign_in_check(step: Step) -> ConsoleCheck:
    """CloudTrail: a successful root ConsoleLogin after the removal was verified."""
    mfa = _mfa_left(step)
    start = since(step, Event.VERIFICATION_REMOVED)
    acct = step.params.account_id
    return ConsoleCheck(
        what="the root user's console sign-in in CloudTrail (ConsoleLogin"
        + (", MFAUsed Yes)" if mfa else ", MFAUsed No)"),
        check="Check that the sign-in finished (the console shows the account) and that "
        "CloudTrail is on; events can take a few minutes.",
        timeout=float(step.params.evidence_timeout),
        probe=lambda: find_console_login(step.target, acct, start, mfa=mfa),
        done=lambda ev: bool(ev.found),
        interval=EVIDENCE_POLL,
    )


def sign_in(step: Step) -> dict[str, Any]:
    if step.params.dry_run:
        return step.skip("dry run (nothing was changed)")
    acct = step.params.account_id
    after = step.facts.snapshot("after-removal")
    if after is not None and after.account_password_present is False:
        # only reachable with rebind: skip (preflight refuses bind without a password)
        if step.recorded(Event.DECISION_NO_ROOT_PASSWORD) is None:
            step.log(Event.DECISION_NO_ROOT_PASSWORD, options=NO_PASSWORD_OPTIONS)
            step.gates.not_needed(Gate.SIGNED_IN, "the root user has no password: nobody signs in")
        return {"status": "skipped: the root user has no password", "options": NO_PASSWORD_OPTIONS}
    check = sign_in_check(step)
    result = step.gates.console_step(
        Gate.SIGNED_IN,
        instructions(step),
        check=check,
        actor=lambda: console_actor(step).sign_in(acct),
    )
    recorded = step.recorded(Event.EVIDENCE_CONSOLE_LOGIN)
    if recorded is None:
        # the verdict's CloudTrail hit, or (verified earlier, e.g. by the lab's control) again
        evidence = getattr(result.pop("verdict", None), "seen", None)
        if evidence is None:
            evidence = wait_for_evidence(check.probe, timeout=check.timeout, interval=EVIDENCE_POLL)
        recorded = {"expected_mfa_used": _mfa_left(step), **evidence.summary()}
        step.log(Event.EVIDENCE_CONSOLE_LOGIN, **recorded)
    result.pop("verdict", None)
    return {
        "sign-in": result,
        "expected MFAUsed": "Yes" if _mfa_left(step) else "No",
        "evidence": recorded,
    }


def checks_missing(facts: RunFacts, params: RunParameters) -> list[str]:
    if params.dry_run:
        return dry_run_missing(facts, STEP)
    if facts.first(Event.DECISION_NO_ROOT_PASSWORD, STEP):
        return []
    if facts.first(Event.EVIDENCE_CONSOLE_LOGIN, STEP) is None:
        return ["the ConsoleLogin evidence is not recorded"]
    return []
