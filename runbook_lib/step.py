"""The context a step notebook works in: parameters, plan, run record, AWS, gates.

A notebook opens its step with :func:`open_step` (validates the parameters, opens the run
record, computes the plan), then calls the step functions in :mod:`runbook_lib.steps`. Every
observation, decision and action is appended to the run's hash-chained event log.

Gates, one API for both modes (the ``mode`` parameter chooses; the frontend is never sniffed):

* ``batch``: an approval gate passes only when ``approve`` equals this plan's digest; a
  console step passes when the operator names it in ``confirm`` (or, in the sandbox only, when
  ``sandbox_actor`` lets the simulated console actor do it). Otherwise the run **halts** there.
* ``interactive``: an ipywidgets control (:mod:`runbook_lib.widgets`). The cell that shows it
  returns at once; every action first calls :meth:`Step.require`, which halts unless the
  record holds the operator's confirmation. "Run All" can therefore never act past an
  unconfirmed gate: it stops at the first action and says which cell to re-run.
"""

from __future__ import annotations

import datetime as dt
import getpass
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .aws import AwsContext
from .errors import GateNotApproved, ParameterError, RunbookError
from .params import HUMAN_STEPS, PARAMETER_NAMES, RunParameters, validate
from .plan import STEPS, Plan, make_plan
from .record import RunRecord

DEFAULT_RUNS_DIR = Path("runs")


def operator_identity(caller_arn: str | None = None) -> dict[str, str | None]:
    return {"caller_arn": caller_arn, "os_user": getpass.getuser(), "host": socket.gethostname()}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class Step:
    """One step of one run."""

    def __init__(self, name: str, params: RunParameters, record: RunRecord, plan: Plan) -> None:
        self.name = name
        self.params = params
        self.record = record
        self.plan = plan
        self._target: AwsContext | None = None
        self._management: AwsContext | None = None

    # ------------------------------------------------------------------ AWS
    @property
    def target(self) -> AwsContext:
        """Credentials in the target account (``profile``)."""
        if self._target is None:
            self._target = AwsContext.from_profile(
                self.params.profile, "us-east-1", self.params.endpoint_url
            )
        return self._target

    @property
    def management(self) -> AwsContext | None:
        """Credentials in the management account (``management_profile``), if given."""
        if self._management is None and self.params.management_profile:
            self._management = AwsContext.from_profile(
                self.params.management_profile, self.params.region, self.params.endpoint_url
            )
        return self._management

    # ------------------------------------------------------------------ record
    def log(self, type: str, **data: Any) -> dict[str, Any]:
        return self.record.append(type, step=self.name, **data)

    def operator(self) -> dict[str, str | None]:
        return dict(self.record.load_run().get("operator") or operator_identity())

    def events(self, type: str | None = None, step: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.record.events()
            if (type is None or e["type"] == type) and (step is None or e["step"] == step)
        ]

    def finish(self, **summary: Any) -> None:
        """Mark the step succeeded (once: a dry-run skip may have finished it already)."""
        if any(e["type"] == "step.finished" for e in self.events(step=self.name)[-1:]):
            return
        self.log("step.finished", **summary)
        self.record.update_run(steps={self.name: {"status": "succeeded", "ended": now_iso()}})

    # ------------------------------------------------------------------ gates
    def approved(self, gate: str) -> bool:
        """Whether the record holds an approval (or confirmation) of ``gate`` in this run,
        not withdrawn by a later denial."""
        state = False
        for event in self.record.events():
            if event["data"].get("gate") != gate:
                continue
            if event["type"] in ("gate.approved", "human.confirmed"):
                state = True
            elif event["type"] == "gate.denied":
                state = False
        return state

    def decide(self, kind: str, gate: str, mode: str, typed: str, **extra: Any) -> dict[str, Any]:
        """Record a decision at a gate (``gate.approved``, ``gate.denied``,
        ``human.confirmed``): who (caller ARN, OS user, host), what they typed, and when."""
        return self.log(
            kind, gate=gate, mode=mode, who=self.operator(), typed=typed, at=now_iso(), **extra
        )

    def _in_plan(self, gate: str) -> None:
        """Only a gate the approved plan lists can pass: an approval of a dry-run plan (which
        lists only the risk gate) can never open the removal."""
        if gate in {g.name for g in self.plan.gates}:
            return
        reason = (
            f"gate {gate} is not part of this plan (dry_run="
            f"{str(self.params.dry_run).lower()}, method={self.params.method}, "
            f"rebind={self.params.rebind}); nothing after it may act"
        )
        self.log("gate.halted", gate=gate, mode=self.params.mode, reason=reason)
        raise GateNotApproved(gate, reason)

    def require(self, gate: str) -> None:
        """Call before acting: halt unless ``gate`` is in the plan and was approved."""
        self._in_plan(gate)
        if self.approved(gate):
            return
        if self.params.mode == "interactive":
            reason = (
                "it is not confirmed yet: confirm it in the control above, then re-run this cell"
            )
        else:
            reason = "it was not approved earlier in this run"
        self.log("gate.halted", gate=gate, reason=reason, mode=self.params.mode)
        raise GateNotApproved(gate, reason)

    def gate(self, gate: str, title: str, facts: Mapping[str, Any], expected: str) -> Any:
        """An approval gate. Batch: approved by the plan digest, else halt. Interactive: show
        the confirmation control (the operator types ``expected`` to enable Confirm)."""
        self._in_plan(gate)
        if self.approved(gate):
            return {"gate": gate, "status": "already approved in this run"}
        if self.params.mode == "interactive":
            from .widgets import confirmation

            return confirmation(self, gate, title, dict(facts), expected)
        approve = self.params.approve
        if not approve:
            reason = (
                "no approval was given; review `runbook plan` and re-run with "
                f"--approve {self.plan.digest}"
            )
        elif approve != self.plan.digest:
            reason = (
                f"the approval is for plan {approve[:12]}…, but this plan is "
                f"{self.plan.digest[:12]}… (parameters, notebooks or library changed); "
                "review `runbook plan` again"
            )
        else:
            self.decide("gate.approved", gate, "batch", f"--approve {approve}", facts=dict(facts))
            return {"gate": gate, "status": "approved (plan digest matches)"}
        self.log("gate.halted", gate=gate, mode="batch", reason=reason, facts=dict(facts))
        raise GateNotApproved(gate, reason)

    def human(
        self, gate: str, instructions: str, actor: Callable[[], dict[str, Any]] | None = None
    ) -> Any:
        """A step a person does in the AWS console. Batch: confirmed by naming it in
        ``confirm``; or done by the sandbox's simulated console actor when ``sandbox_actor``;
        otherwise halt. Interactive: a "done" control (plus, with ``sandbox_actor``, a button
        for the simulated console actor), then halt: the operator re-runs the cell once the
        control has recorded and verified the step."""
        if gate not in HUMAN_STEPS:
            raise ValueError(f"unknown console step {gate}")
        self._in_plan(gate)
        if self.approved(gate):
            return {"gate": gate, "status": "already confirmed in this run"}
        if self.params.mode == "interactive":
            from .widgets import console_step

            sandbox = actor if self.params.sandbox_actor else None
            return console_step(self, gate, instructions, actor=sandbox)
        if gate in self.params.confirm:
            self.decide("human.confirmed", gate, "batch", f"confirm={gate}")
            return {"gate": gate, "status": "confirmed by the operator (parameter confirm)"}
        if self.params.sandbox_actor and actor is not None:
            done = actor()
            self.decide(
                "human.confirmed",
                gate,
                "batch",
                "sandbox_actor=true",
                performed_by="sandbox console actor",
                actor_result=done,
            )
            return {"gate": gate, "status": "done by the sandbox console actor", **done}
        reason = (
            f"waiting for the operator to do it in the console; then run `runbook resume "
            f"{self.record.path} -p confirm=[{gate}]`"
        )
        self.log("gate.halted", gate=gate, mode="batch", reason=reason)
        raise GateNotApproved(gate, reason)


def _register_error_hook(step: Step) -> None:
    """Record any error a cell raises (the kernel may be all that runs: plain papermill)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return
    shell = get_ipython()
    if shell is None:
        return

    def after(result: Any) -> None:
        err = getattr(result, "error_in_exec", None)
        if err is None or isinstance(err, GateNotApproved):
            return
        step.log("step.error", ename=type(err).__name__, evalue=str(err)[:2000])

    for callback in list(shell.events.callbacks.get("post_run_cell", [])):
        if getattr(callback, "_runbook_hook", False):
            shell.events.unregister("post_run_cell", callback)
    after._runbook_hook = True  # type: ignore[attr-defined]
    shell.events.register("post_run_cell", after)


def parameters_from(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The run parameters found in a notebook's namespace (the parameters cell's names)."""
    return {name: namespace[name] for name in PARAMETER_NAMES if name in namespace}


def open_step(name: str, namespace: Mapping[str, Any] | None = None, **raw: Any) -> Step:
    """Validate the parameters, open (or, for 00 without ``run_dir``, create) the run record,
    compute the plan, and record that the step started."""
    if name not in dict(STEPS):
        raise RunbookError(f"unknown step {name}")
    values = parameters_from(namespace or {})
    values.update(raw)
    params = validate(values)
    plan = make_plan(params)
    if params.run_dir:
        record = RunRecord.open(Path(params.run_dir))
    elif name == STEPS[0][0]:
        record = RunRecord.create(DEFAULT_RUNS_DIR, new_run_info(params, plan))
    else:
        raise ParameterError(
            [
                f"run_dir is required for {name}: pass the run directory that "
                "00-preflight created (-p run_dir runs/<run-id>)"
            ]
        )
    step = Step(name, params, record, plan)
    run = record.load_run()
    if run.get("status") in ("halted", "failed") and not run.get("sealed_final"):
        record.update_run(status="running", halted_at=None)
    record.update_run(steps={name: {"status": "running", "started": now_iso()}})
    step.log(
        "step.started", plan_digest=plan.digest, parameters=params.to_dict(), library=__version__
    )
    _register_error_hook(step)
    return step


def new_run_info(params: RunParameters, plan: Plan) -> dict[str, Any]:
    from .versions import versions

    return {
        "parameters": params.to_dict(),
        "plan_digest": plan.digest,
        "plan": plan.to_dict(),
        "operator": operator_identity(),
        "versions": versions(),
        "steps": {s: {"status": "pending"} for s, _ in STEPS},
        "halted_at": None,
    }
