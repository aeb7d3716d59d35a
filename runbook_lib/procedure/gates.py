"""The gate engine: approvals, console steps (claim, then verdict), and the rule that guards
every action.

Rules, for both modes (the ``mode`` parameter chooses; the frontend is never sniffed):

* **Only plan gates pass.** A gate the plan does not list (e.g. any gate of a dry run) never
  passes, so an approval of one plan can never open another plan's action.
* **Every earlier gate first.** :meth:`Gates.require` (called before every action) halts unless
  *every* gate of the plan up to and including the one named was approved in this run, the
  risk acknowledgement included.
* **Approvals are signed, by someone else.** The plan's digest (which covers its identity,
  expiry and trust: allowed_signers, operator, policy) must carry the SSH-signed approvals its
  policy asks for; the orchestrator verifies them and records ``approval.verified`` and
  ``approval.policy`` (:mod:`runbook_lib.approval`). Batch: that approves the gate.
  Interactive: the operator also types the account id and presses Confirm
  (:mod:`runbook_lib.widgets`); the cell returns at once and the next action halts until the
  record holds the confirmation.
* **Console steps are claims until the API agrees.** A person says a console step is done
  (``confirm=[...]`` in batch, *Done* in the lab, or the sandbox's console actor did it):
  that is recorded as ``human.claimed``. The API check then records the verdict:
  ``human.verified``, ``human.contradicted`` (the claim is false as far as AWS shows; the run
  halts and says what to check), or ``human.unverifiable`` (nothing this account may call can
  see it, e.g. a FIDO key of a standalone account; the next step's CloudTrail evidence
  decides). Only a verified (or unverifiable) claim passes the gate.

Every halt is a :class:`~runbook_lib.errors.GateNotApproved` raised after a ``gate.halted``
event that says why, what the operator sees in the lab (``instructions``) and what to run next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..aws.state import poll_until
from ..errors import GateNotApproved, RunbookError, VerificationTimeout
from ..params import RunParameters
from ..plan import Plan
from ..record.run import RunRecord
from .facts import RunFacts
from .vocabulary import CONSOLE_GATES, Event, Gate, now_iso


class GatedStep(Protocol):
    """What the gate engine, and the interactive controls, need of a step
    (:class:`runbook_lib.procedure.context.Step` is one)."""

    name: str
    params: RunParameters
    record: RunRecord
    plan: Plan
    gates: Gates

    @property
    def facts(self) -> RunFacts: ...

    def log(self, type: str, **data: Any) -> dict[str, Any]: ...

    def operator(self) -> dict[str, Any]: ...


class Interactive(Protocol):
    """The controls shown in ``mode=interactive`` (:mod:`runbook_lib.widgets` is them): the step
    context hands them to :class:`Gates`, so the engine never imports its frontend."""

    def confirmation(
        self, step: GatedStep, gate: str, title: str, facts: dict[str, Any], expected: str
    ) -> Any: ...

    def console_step(
        self,
        step: GatedStep,
        gate: str,
        instructions: str,
        actor: Callable[[], dict[str, Any]] | None = None,
        check: ConsoleCheck | None = None,
    ) -> Any: ...


@dataclass
class ConsoleCheck:
    """How to see a console step's result through the AWS API."""

    what: str
    check: str  # what the operator should check when the API does not show it in time
    timeout: float
    probe: Callable[[], Any]
    done: Callable[[Any], bool]
    interval: float = 1.0


@dataclass
class Verdict:
    """The API's answer to a claim: verified, contradicted or unverifiable; ``seen`` is the
    probe's last result (the evidence the step records)."""

    kind: str
    detail: str
    seen: Any = None

    @property
    def passed(self) -> bool:
        return self.kind in (Event.HUMAN_VERIFIED, Event.HUMAN_UNVERIFIABLE)


class Gates:
    """The gates of one step of one run."""

    def __init__(self, step: GatedStep, interactive: Interactive) -> None:
        self.step = step
        self.interactive = interactive

    # -------------------------------------------------------------- reading
    def approved(self, gate: str) -> bool:
        """Whether this run's record holds an approval (or a verified console step) of
        ``gate``, not withdrawn by a later denial or contradiction."""
        return self.step.facts.approved(gate)

    def in_plan(self, gate: str) -> bool:
        return self.step.plan.gate(gate) is not None

    def earlier(self, gate: str) -> list[str]:
        """The plan's gates up to and including ``gate``, in plan order."""
        names = [g.name for g in self.step.plan.gates]
        return names[: names.index(gate) + 1] if gate in names else []

    def of_step(self) -> list[str]:
        return [g.name for g in self.step.plan.gates if g.step == self.step.name]

    def missing(self, gates: list[str] | None = None) -> list[str]:
        """The gates among ``gates`` (default: this step's) not approved yet."""
        facts = self.step.facts
        return [g for g in (self.of_step() if gates is None else gates) if not facts.approved(g)]

    # -------------------------------------------------------------- recording
    def decide(self, kind: str, gate: str, mode: str, typed: str, **extra: Any) -> dict[str, Any]:
        """Record a decision or claim at a gate: who (caller ARN, OS user, host), what they
        typed, and when."""
        return self.step.log(
            kind, gate=gate, mode=mode, who=self.step.operator(), typed=typed, at=now_iso(), **extra
        )

    def not_needed(self, gate: str, reason: str) -> None:
        """Record that the run's facts make a plan gate moot (e.g. no root password: nobody
        signs in). Only the step modules call this, and the record says why."""
        self.step.log(Event.GATE_NOT_NEEDED, gate=gate, reason=reason)

    def halt(self, gate: str, reason: str, **extra: Any) -> GateNotApproved:
        """Record why the run stops at ``gate`` and return the exception to raise."""
        self.step.log(
            Event.GATE_HALTED, gate=gate, mode=self.step.params.mode, reason=reason, **extra
        )
        return GateNotApproved(gate, reason)

    # -------------------------------------------------------------- the rules
    def _refuse_outside_plan(self, gate: str) -> None:
        if self.in_plan(gate):
            return
        p = self.step.params
        reason = (
            f"gate {gate} is not part of this plan (dry_run={str(p.dry_run).lower()}, "
            f"method={p.method}, rebind={p.rebind}); nothing after it may act"
        )
        raise self.halt(gate, reason)

    def require(self, gate: str) -> None:
        """Call before acting: halt unless ``gate`` and every gate of the plan before it were
        approved in this run."""
        self._refuse_outside_plan(gate)
        for name in self.earlier(gate):
            if self.approved(name):
                continue
            if name in CONSOLE_GATES and self.step.facts.claimed(name):
                why = "it was claimed but the AWS API has not confirmed it"
            elif self.step.params.mode == "interactive":
                why = "it is not confirmed yet: confirm it in its control, then re-run this cell"
            else:
                why = "it was not approved earlier in this run"
            before = "" if name == gate else f" (needed before {gate})"
            raise self.halt(name, f"{name}{before}: {why}")

    def approval(self, gate: str, title: str, facts: Mapping[str, Any], expected: str) -> Any:
        """An approval gate: the plan must carry the signed approvals its policy asks for (the
        orchestrator verified them: ``approval.policy``). Batch: that approves the gate.
        Interactive: the operator then confirms in the control (types ``expected``)."""
        self._refuse_outside_plan(gate)
        if self.approved(gate):
            return {"gate": gate, "status": "already approved in this run"}
        step = self.step
        plan, run = step.plan, step.record.path
        policy = step.facts.approvals(plan.digest)
        reason = None
        if policy is None or not policy.get("satisfied"):
            need = (plan.trust or {}).get("approvals_required", 1)
            then = (
                f"runbook lab --reopen {run} --approval FILE"
                if step.params.mode == "interactive"
                else f"runbook resume {run} --approval FILE"
            )
            reason = (
                f"no approval was given for plan {plan.digest[:12]}… (it needs {need} signed "
                "approval(s), by people other than the operator unless the plan allows "
                "self-approval): a "
                f"reviewer signs the plan file (runbook plan --run {run} --out PLAN_FILE; "
                f"runbook approve PLAN_FILE --key KEY), then continue with: {then}"
            )
        elif plan.identity.expired():
            reason = (
                f"plan {plan.digest[:12]}… expired at {plan.identity.expires_at}; an approval "
                f"is not a standing permission: abandon this run (runbook abandon {run} "
                "--reason ...) and plan again"
            )
        if reason:
            raise self.halt(gate, reason, facts=dict(facts))
        assert policy is not None
        if step.params.mode == "interactive":
            return self.interactive.confirmation(step, gate, title, dict(facts), expected)
        approvers = ", ".join(policy.get("approvers") or [])
        self.decide(
            Event.GATE_APPROVED,
            gate,
            "batch",
            f"signed approvals by {approvers}",
            facts=dict(facts),
            approvers=policy.get("approvers"),
            self_approved=bool(policy.get("self_approved")),
        )
        return {"gate": gate, "status": f"approved (signed by {approvers})"}

    def console_step(
        self,
        gate: str,
        instructions: str,
        *,
        check: ConsoleCheck | None,
        actor: Callable[[], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A step a person does in the AWS console: claimed (``confirm`` in batch, the lab's
        Done, or the sandbox actor), then verified through ``check``. Halts until verified."""
        if gate not in CONSOLE_GATES:
            raise ValueError(f"unknown console step {gate}")
        self._refuse_outside_plan(gate)
        before = self.earlier(gate)[:-1]
        if before:  # every gate of the plan before this console step
            self.require(before[-1])
        if self.approved(gate):
            return {"gate": gate, "status": "already verified in this run"}
        step = self.step
        if step.params.mode == "interactive":
            sandbox = actor if step.params.sandbox_actor else None
            self.interactive.console_step(step, gate, instructions, actor=sandbox, check=check)
            raise AssertionError("console_step always halts")  # pragma: no cover
        if gate in step.params.confirm:
            self.decide(Event.HUMAN_CLAIMED, gate, "batch", f"confirm={gate}")
            how = "claimed by the operator (parameter confirm)"
        elif step.params.sandbox_actor and actor is not None:
            done = actor()
            self.decide(
                Event.HUMAN_CLAIMED,
                gate,
                "batch",
                "sandbox_actor=true",
                performed_by="sandbox console actor",
                actor_result=done,
            )
            how = "done by the sandbox console actor"
        else:
            command = f"runbook resume {step.record.path} -p confirm=[{gate}]"
            raise self.halt(
                gate,
                f"waiting for the operator to do it in the console; then run `{command}`",
                instructions=instructions,
                next=command,
            )
        verdict = self.verdict(gate, check)
        if not verdict.passed:
            raise self.halt(
                gate,
                f"the console step was claimed, but {verdict.detail}",
                instructions=instructions,
                next=f"check in the console, then: runbook resume {step.record.path} "
                f"-p confirm=[{gate}]",
            )
        return {"gate": gate, "status": f"{how}; {verdict.detail}", "verdict": verdict}

    def verdict(
        self,
        gate: str,
        check: ConsoleCheck | None,
        indicator: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Verdict:
        """Poll the API for a claimed console step's result (progress through ``indicator``)
        and record the verdict."""
        show = indicator or (lambda _: None)
        if check is None:
            verdict = Verdict(
                Event.HUMAN_UNVERIFIABLE,
                "nothing this account may call can see it; the next step's evidence decides",
            )
            self.step.log(verdict.kind, gate=gate, detail=verdict.detail)
            show(f"Recorded. {verdict.detail}.")
            return verdict
        started = time.monotonic()
        frames = "◐◓◑◒"
        polls = 0

        def waiting(seconds: float) -> None:
            nonlocal polls
            polls += 1
            elapsed = time.monotonic() - started
            show(
                f"{frames[polls % 4]} Checking through the AWS API for {check.what}: "
                f"{elapsed:.0f} s of at most {check.timeout:.0f} s ..."
            )
            sleep(seconds)

        show(f"{frames[0]} Checking through the AWS API for {check.what} ...")
        try:
            seen = poll_until(
                check.probe,
                check.done,
                timeout=check.timeout,
                what=check.what,
                check=check.check,
                interval=check.interval,
                max_interval=5.0,
                sleep=waiting,
            )
        except VerificationTimeout as err:
            verdict = Verdict(
                Event.HUMAN_CONTRADICTED,
                f"the AWS API did not show {check.what} within {check.timeout:.0f} s. "
                f"{check.check}",
                getattr(err, "last", None),
            )
        except RunbookError as err:
            self.step.log(
                Event.VERIFICATION_CONSOLE_STEP, gate=gate, seen=False, error=str(err)[:500]
            )
            show(f"Could not check through the AWS API: {err}")
            raise
        else:
            verdict = Verdict(
                Event.HUMAN_VERIFIED,
                f"the AWS API shows {check.what} "
                f"({time.monotonic() - started:.1f} s after the claim)",
                seen,
            )
        self.step.log(verdict.kind, gate=gate, what=check.what, detail=verdict.detail)
        show(("Verified: " if verdict.passed else "Not seen: ") + verdict.detail)
        return verdict


__all__ = ["ConsoleCheck", "Gate", "Gates", "Verdict"]
