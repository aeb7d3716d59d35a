"""One vocabulary for the run record: the gates a plan can meet, the event types a run writes,
and how the times in their data are written (:func:`now_iso`).

Everything that reads or writes the record uses these names instead of bare strings, so a typo
is an ``AttributeError`` at import time rather than a silent "never found". Both are
:class:`enum.StrEnum`: a member *is* its string, so events written as JSON read back equal to it.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from ..record import run as _record


def now_iso() -> str:
    """Now, as the times in events' data are written (``at``, ``ended_at``): UTC, ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat()


class Gate(StrEnum):
    """A point the run may not pass without a person: an approval or a console step."""

    RISK = "risk-acknowledged"
    REMOVE = "remove-device"
    REMOVED_IN_CONSOLE = "device-removed-in-console"
    SIGNED_IN = "signed-in-with-email-code"
    BOUND_IN_CONSOLE = "new-device-bound-in-console"
    SKIP_REBIND = "skip-rebind"


#: the console steps: done by a person in the AWS console, claimed, then verified by the API
CONSOLE_GATES = frozenset({Gate.REMOVED_IN_CONSOLE, Gate.SIGNED_IN, Gate.BOUND_IN_CONSOLE})


class Event(StrEnum):
    """Every event type a run writes (the record's own ``file.*`` events included)."""

    # the run as a whole (written by the orchestrator: runner, lab, seal, abandon)
    RUN_CREATED = _record.RUN_CREATED  # the record writes it itself
    RUN_RESUMED = "run.resumed"
    RUN_HALTED = "run.halted"
    RUN_FAILED = "run.failed"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_SEALED = "run.sealed"
    RUN_ABANDONED = "run.abandoned"
    LEASE_ACQUIRED = "lease.acquired"
    LEASE_RELEASED = "lease.released"
    APPROVAL_CONSUMED = "approval.consumed"
    APPROVAL_VERIFIED = "approval.verified"  # one signed approval, checked by the orchestrator
    APPROVAL_POLICY = "approval.policy"  # the approvals against the plan's policy
    LAB_PREPARED = "lab.prepared"
    LAB_STARTED = "lab.started"
    LAB_STOPPED = "lab.stopped"
    # a step's life (written by the step's kernel)
    STEP_STARTED = "step.started"
    STEP_FINISHED = "step.finished"
    STEP_SKIPPED = "step.skipped"
    STEP_HALTED = "step.halted"
    STEP_ERROR = "step.error"
    # gates
    GATE_APPROVED = "gate.approved"
    GATE_DENIED = "gate.denied"
    GATE_HALTED = "gate.halted"
    GATE_NOT_NEEDED = "gate.not-needed"
    HUMAN_CLAIMED = "human.claimed"
    HUMAN_VERIFIED = "human.verified"
    HUMAN_CONTRADICTED = "human.contradicted"
    HUMAN_UNVERIFIABLE = "human.unverifiable"
    # what the steps saw, decided and did
    OBSERVATION_IDENTITY = "observation.identity"
    OBSERVATION_MANAGEMENT = "observation.management-identity"
    OBSERVATION_ACCOUNT = "observation.account"
    OBSERVATION_SNAPSHOT = "observation.snapshot"
    OBSERVATION_PLAN_CHECK = "observation.plan-check"
    # long-term root credentials seen in preflight: a warning, never a halt
    WARNING_ROOT_CREDENTIALS = "warning.root-credentials"
    # a succeeded step whose executed notebook the runner could not store (written by the
    # runner: its events remain the step's record; it is never run again)
    NOTEBOOK_LOST = "notebook.lost"
    PRECONDITION_FAILED = "precondition.failed"
    DECISION_DEVICE = "decision.device"
    DECISION_NO_ROOT_PASSWORD = "decision.no-root-password"
    DECISION_SKIP_REBIND = "decision.skip-rebind"
    SESSION_ASSUMED = "session.assumed"
    ACTION_STARTED = "action.started"
    ACTION_REMOVE_DEVICE = "action.remove-device"
    ACTION_RECOVERED = "action.recovered"
    VERIFICATION_REMOVED = "verification.removed"
    VERIFICATION_FAILED = "verification.failed"
    VERIFICATION_LIMITED = "verification.limited"
    VERIFICATION_NEW_DEVICE = "verification.new-device"
    VERIFICATION_CONSOLE_STEP = "verification.console-step"
    EVIDENCE_DEACTIVATION = "evidence.deactivation"
    EVIDENCE_CONSOLE_LOGIN = "evidence.console-login"
    EVIDENCE_ENABLE = "evidence.enable"
    RUN_CLOSED_OUT = "run.closed-out"
    # the record's own (runbook_lib.record.run appends them; nobody else may)
    FILE_WRITTEN = _record.FILE_WRITTEN
    FILE_RECORDED = _record.FILE_RECORDED
    FILE_MOVED = _record.FILE_MOVED


class Status(StrEnum):
    """A run's status, derived from its events (:mod:`runbook_lib.procedure.lifecycle`)."""

    RUNNING = "running"  # a process is executing it (or a Lab serves it)
    HALTED = "halted"  # stopped on purpose at a gate; resumable
    FAILED = "failed"  # a step failed; resumable once the cause is fixed
    INCOMPLETE = "incomplete"  # stopped without a halt or failure on record (process died)
    SUCCEEDED = "succeeded"  # every step of a real change succeeded, in order; sealed final
    DRY_RUN = "dry-run"  # every step of a dry run succeeded: nothing was changed; sealed final
    ABANDONED = "abandoned"  # ended on purpose by `runbook abandon`; sealed final


#: statuses after which nothing more happens to a run
FINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.DRY_RUN, Status.ABANDONED})
