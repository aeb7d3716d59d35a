"""01 · Remove the root MFA device: the approval, then the console step (claimed, then
verified through the API) or the removal through ``sts:AssumeRoot`` (member accounts).

The action is recorded before it starts (``action.started``) and every AssumeRoot session the
moment it exists (``session.assumed``), so a crash between ``DeactivateMFADevice`` and its
record is recoverable: the re-run looks for the event in CloudTrail, in the run's window, made
by one of the run's sessions, and records it as recovered evidence instead of acting again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..aws.actions import remove_root_mfa_device
from ..aws.evidence import find_deactivation, wait_for_evidence
from ..aws.state import device_kind, read_account_mfa_enabled
from ..errors import PreconditionError, RunbookError
from ..params import RunParameters
from .common import (
    EVIDENCE_POLL,
    audit_allowed,
    audit_snapshot,
    console_actor,
    dry_run_missing,
    session_recorder,
    since,
)
from .facts import RunFacts
from .gates import ConsoleCheck
from .vocabulary import Event, Gate

if TYPE_CHECKING:
    from .context import Step

STEP = "01-remove-device"
PURPOSE = "remove root MFA device"
CONSOLE_REMOVE_PATH = (
    "1. Sign in as the root user.\n"
    "2. Top right: the account name > Security credentials (安全憑証).\n"
    "3. Scroll to Multi-factor authentication (MFA) (多重要素驗証(MFA)).\n"
    "4. Select the device {serial} and choose Remove (移除).\n"
    "5. A warning dialog asks to confirm: confirm it. The console reports the device removed."
)


def _serial(step: Step) -> str:
    serial = step.facts.device
    if not serial:
        raise RunbookError("No device was chosen in 00-preflight of this run; run it first.")
    if step.params.device_serial and step.params.device_serial != serial:
        raise PreconditionError(
            f"00-preflight of this run chose {serial}, but device_serial is now "
            f"{step.params.device_serial}; nothing was changed. Start a new run."
        )
    return serial


def approve(step: Step) -> Any:
    """The approval to remove the device; a dry run skips the whole step instead."""
    if step.params.dry_run:
        return step.skip("dry run (nothing is changed)")
    serial = _serial(step)
    facts = {
        "account": step.params.account_id,
        "device": serial,
        "method": step.params.method,
        "change ticket": step.params.change_ticket,
    }
    return step.gates.approval(
        Gate.REMOVE, f"Remove root MFA device {serial}", facts, step.params.account_id
    )


def instructions(step: Step) -> str:
    return CONSOLE_REMOVE_PATH.format(serial=step.facts.device or "(the device preflight chose)")


def removal_check(step: Step, serial: str) -> ConsoleCheck | None:
    """How the API shows the device gone: listed no more (a virtual device, or any kind in an
    audit session), or AccountMFAEnabled=0 when it was the root user's last device; None when
    nothing this account may call can see it (then 02's CloudTrail evidence decides)."""
    timeout = float(step.params.verify_timeout)
    check = (
        f"Check in the console (Security credentials > Multi-factor authentication) that "
        f"{serial} is gone; IAM can lag for a short while."
    )
    if device_kind(serial) == "virtual" or audit_allowed(step):
        return ConsoleCheck(
            what=f"device {serial} gone from the root user's MFA devices",
            check=check,
            timeout=timeout,
            probe=lambda: audit_snapshot(step, with_report=False),
            done=lambda snap: (
                (snap.virtual_devices is not None or snap.session_devices is not None)
                and serial not in snap.known_serials()
            ),
        )
    before = step.facts.snapshot("before")
    if before is not None and before.known_serials() <= {serial}:
        return ConsoleCheck(
            what="AccountMFAEnabled to become 0 (it was the root user's last device)",
            check=check,
            timeout=timeout,
            probe=lambda: read_account_mfa_enabled(step.target),
            done=lambda on: not on,
        )
    return None


def remove(step: Step) -> dict[str, Any]:
    """Console: the operator removes it (the procedure's path, docs/procedure.md step 1), then
    the API confirms it.
    AssumeRoot: the library removes it (member accounts), with every session and request id
    recorded."""
    if step.params.dry_run:
        return {"step": step.name, "status": "skipped: dry run (nothing was changed)"}
    serial = _serial(step)
    acct = step.params.account_id
    step.gates.require(Gate.REMOVE)
    facts = step.facts
    if step.params.method == "console":
        if facts.first(Event.ACTION_STARTED, STEP) is None:
            step.log(Event.ACTION_STARTED, action="remove-device", serial=serial, method="console")
        result = step.gates.console_step(
            Gate.REMOVED_IN_CONSOLE,
            instructions(step),
            check=removal_check(step, serial),
            actor=lambda: console_actor(step).remove_device(acct, serial),
        )
        result.pop("verdict", None)
        return {"method": "console", "device": serial, **result}
    done = facts.first(Event.ACTION_REMOVE_DEVICE, STEP) or facts.first(
        Event.ACTION_RECOVERED, STEP
    )
    if done is not None:
        return {"status": "recorded earlier in this run", **done["data"]}
    if facts.first(Event.ACTION_STARTED, STEP) is not None:
        recovered = _recover(step, serial)
        if recovered is not None:
            return recovered
    else:
        step.log(Event.ACTION_STARTED, action="remove-device", serial=serial, method="assume-root")
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
        on_session=session_recorder(step, PURPOSE),
    )
    if outcome.outcome == "already-absent" and step.facts.session_keys(PURPOSE)[:-1]:
        # an earlier attempt removed it and died before recording: find its event
        recovered = _recover(step, serial, wait=True)
        if recovered is not None:
            return recovered
    step.log(Event.ACTION_REMOVE_DEVICE, **outcome.to_dict())
    return outcome.to_dict()


def _recover(step: Step, serial: str, wait: bool = False) -> dict[str, Any] | None:
    """An earlier attempt started the action and left no record of its end: look for its
    DeactivateMFADevice in CloudTrail (the run's window, the run's sessions)."""
    keys = step.facts.session_keys(PURPOSE)
    if not keys:
        return None
    start = since(step, Event.ACTION_STARTED)

    def find() -> Any:
        return find_deactivation(
            step.target, step.params.account_id, serial, start, access_key_ids=keys
        )

    evidence = (
        wait_for_evidence(find, timeout=step.params.evidence_timeout, interval=EVIDENCE_POLL)
        if wait
        else find()
    )
    if not evidence.found:
        return None
    data = {
        "action": "remove-device",
        "serial": serial,
        "how": "reconstructed from CloudTrail: an earlier attempt removed the device and "
        "stopped before recording it",
        "evidence": evidence.summary(),
    }
    step.log(Event.ACTION_RECOVERED, **data)
    return data


def checks_missing(facts: RunFacts, params: RunParameters) -> list[str]:
    if params.dry_run:
        return dry_run_missing(facts, STEP)
    if params.method == "console":
        return []  # the gate (verified console step) is checked by finish()
    if facts.first(Event.ACTION_REMOVE_DEVICE, STEP) or facts.first(Event.ACTION_RECOVERED, STEP):
        return []
    return ["the removal is not recorded"]
