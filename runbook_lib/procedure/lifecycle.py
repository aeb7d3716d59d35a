"""A run's life cycle: a state machine folded from its events, and the transitions it allows.

The event chain is the one source of a run's state; ``run.json`` is a projection of it that only
the orchestrating process (runner, lab, seal, abandon) writes. A step notebook's kernel only
appends events, and the transitions it appends are checked against the state *under the events
lock* (:meth:`runbook_lib.record.run.RunRecord.append` with ``guard``), so two processes cannot both
start a step, and no step starts before the steps before it succeeded::

    created ─▶ 00 started ─▶ 00 finished ─▶ 01 started ─▶ … ─▶ 05 finished ─▶ sealed final
                  │  ▲                          │  ▲
                  ▼  │ (resume / re-run)        ▼  │
             halted / failed                 halted / failed          abandoned (any time)

A step is *succeeded* only when its own checks passed and every gate the plan puts in it was
approved; re-executing a succeeded step is refused (its evidence is write-once), with the name
of the step to continue with. The run is *succeeded* (or *dry-run*) only when every step of the
plan succeeded in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import RunbookError
from .vocabulary import Event, Status


class StepRefused(RunbookError):
    """A step may not start or finish now (out of order, already finished, gates missing)."""


@dataclass
class StepState:
    name: str
    status: str = "pending"  # pending | running | halted | failed | succeeded
    attempts: int = 0
    started: str | None = None
    ended: str | None = None
    gate: str | None = None
    reason: str | None = None
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        for key in ("attempts", "started", "ended", "gate", "reason", "skipped"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


@dataclass
class RunState:
    run_id: str | None
    order: list[str]
    steps: dict[str, StepState]
    dry_run: bool = False
    succeeded: bool = False
    abandoned: dict[str, Any] | None = None
    resumed: int = 0
    last_time: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(self.steps[s].status == "succeeded" for s in self.order)

    def next_step(self) -> str | None:
        """The first step of the plan that has not succeeded."""
        return next((s for s in self.order if self.steps[s].status != "succeeded"), None)

    def current(self) -> StepState | None:
        """The step the run stopped in (or is in)."""
        name = self.next_step()
        return self.steps[name] if name else None

    def status(self, executing: bool = False) -> Status:
        if self.abandoned is not None:
            return Status.ABANDONED
        if self.succeeded:
            return Status.DRY_RUN if self.dry_run else Status.SUCCEEDED
        if executing:
            return Status.RUNNING
        step = self.current()
        if step is not None and step.status == "halted":
            return Status.HALTED
        if step is not None and step.status == "failed":
            return Status.FAILED
        return Status.INCOMPLETE

    def halted_at(self) -> dict[str, Any] | None:
        step = self.current()
        if step is None or step.status not in ("halted", "failed", "running"):
            return None
        where: dict[str, Any] = {"step": step.name, "status": step.status}
        if step.gate:
            where["gate"] = step.gate
        if step.reason:
            where["reason" if step.status == "halted" else "error"] = step.reason
        return where

    def view(self, executing: bool = False) -> dict[str, Any]:
        """What run.json shows of the state."""
        return {
            "status": str(self.status(executing)),
            "dry_run": self.dry_run,
            "halted_at": self.halted_at(),
            "next_step": self.next_step(),
            "steps": {name: self.steps[name].to_dict() for name in self.order},
            "abandoned": self.abandoned,
        }


def fold(events: Sequence[dict[str, Any]], order: Sequence[str]) -> RunState:
    """The state the events describe. Unknown event types are ignored."""
    created = next((e for e in events if e["type"] == Event.RUN_CREATED), None)
    info = (created or {}).get("data", {}).get("info") or {}
    state = RunState(
        run_id=(created or {}).get("data", {}).get("run_id"),
        order=list(order),
        steps={name: StepState(name) for name in order},
        dry_run=bool((info.get("parameters") or {}).get("dry_run")),
    )
    for event in events:
        kind, name, data = event["type"], event.get("step"), event.get("data") or {}
        state.last_time = event.get("time")
        step = state.steps.get(name) if name else None
        if kind == Event.RUN_SUCCEEDED:
            state.succeeded = True
        elif kind == Event.RUN_ABANDONED:
            state.abandoned = {"reason": data.get("reason"), "at": event.get("time")}
        elif kind == Event.RUN_RESUMED:
            state.resumed += 1
        if step is None:
            continue
        if kind in (Event.RUN_HALTED, Event.RUN_FAILED):  # the orchestrator's verdict
            if step.status != "succeeded":
                step.status = "halted" if kind == Event.RUN_HALTED else "failed"
                step.gate = data.get("gate") or step.gate
                step.reason = data.get("reason") or data.get("error") or step.reason
                step.ended = event.get("time")
        elif kind == Event.STEP_STARTED:
            step.status, step.attempts = "running", step.attempts + 1
            step.started, step.ended, step.gate, step.reason = event["time"], None, None, None
        elif kind == Event.STEP_FINISHED:
            step.status, step.ended, step.gate, step.reason = "succeeded", event["time"], None, None
            step.skipped = bool(data.get("skipped"))
        elif kind == Event.GATE_HALTED and step.status == "running":
            step.status, step.gate, step.reason = "halted", data.get("gate"), data.get("reason")
            step.ended = event["time"]
        elif kind == Event.STEP_HALTED and step.status in ("running", "halted"):
            step.status = "halted"
            step.gate = data.get("gate") or step.gate
            step.reason = step.reason or data.get("reason")
            step.ended = event["time"]
        elif kind == Event.STEP_ERROR and step.status != "succeeded":
            step.status, step.reason, step.ended = "failed", data.get("evalue"), event["time"]
            if data.get("ename"):
                step.reason = f"{data['ename']}: {data.get('evalue')}"
        elif kind in (Event.GATE_APPROVED, Event.HUMAN_VERIFIED) and step.status == "halted":
            # the operator answered the gate the step halted at: it is running again
            step.status, step.gate, step.reason = "running", None, None
    return state


def start_guard(name: str, order: Sequence[str]) -> Callable[[list[dict[str, Any]]], None]:
    """A guard for appending ``step.started`` of ``name``: refuses out-of-order starts,
    re-executing a finished step, and anything on a closed run."""

    def guard(events: list[dict[str, Any]]) -> None:
        state = fold(events, order)
        if state.abandoned is not None:
            raise StepRefused(
                f"The run was abandoned ({state.abandoned.get('reason')}); nothing more runs in it."
            )
        if state.succeeded:
            raise StepRefused("The run is complete and sealed; nothing more runs in it.")
        for earlier in order[: order.index(name)]:
            before = state.steps[earlier]
            if before.status != "succeeded":
                where = f" at gate {before.gate}" if before.gate else ""
                raise StepRefused(
                    f"{name} cannot start: {earlier} has not finished (it is {before.status}"
                    f"{where}). Steps run in order; continue with {earlier}."
                )
        this = state.steps[name]
        if this.status == "succeeded":
            nxt = state.next_step()
            then = f"Continue with {nxt}." if nxt else "Every step has finished."
            raise StepRefused(
                f"{name} already finished at {this.ended}; its evidence is write-once and a "
                f"finished step is never executed again. {then}"
            )

    return guard


def finish_guard(
    name: str, order: Sequence[str], missing: Callable[[list[dict[str, Any]]], list[str]]
) -> Callable[[list[dict[str, Any]]], None]:
    """A guard for appending ``step.finished``: the step must be running (or halted at a gate
    since answered) and ``missing(events)`` must name nothing."""

    def guard(events: list[dict[str, Any]]) -> None:
        state = fold(events, order)
        this = state.steps[name]
        if this.status == "succeeded":
            raise StepRefused(f"{name} already finished at {this.ended}.")
        if this.status == "pending":
            raise StepRefused(f"{name} has not started in this run.")
        problems = missing(events)
        if problems:
            raise StepRefused(f"{name} cannot finish: " + "; ".join(problems) + ".")

    return guard


__all__ = ["RunState", "StepRefused", "StepState", "finish_guard", "fold", "start_guard"]
