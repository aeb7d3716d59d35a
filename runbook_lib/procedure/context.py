"""The context a step notebook works in: parameters, plan, run record, AWS, facts, gates.

A notebook opens its step with :func:`open_step`: the parameters are validated and must be the
run's own (as its event chain recorded them: a notebook executed with other values is refused),
the plan is recomputed with the run's plan identity, and ``step.started`` is appended only if
the life cycle allows it (:mod:`.lifecycle`: steps in plan order, a finished step never again).
The cells then call the step's module (:mod:`runbook_lib.procedure.preflight`, ...), which
collects, judges, acts behind :attr:`Step.gates`, and records everything; the last cell calls
:meth:`Step.finish`, which succeeds only when every gate of the step was approved and the
step's checks are on the record.

The kernel writes events only. ``run.json`` is the orchestrator's projection of them.
"""

from __future__ import annotations

import datetime as dt
import getpass
import importlib
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import __version__, schema
from ..aws.session import AwsContext
from ..errors import GateNotApproved, ParameterError, RunbookError
from ..isolation import quiet_sdk_logging
from ..params import PARAMETER_NAMES, RunParameters, validate
from ..plan import STEPS, Plan, PlanIdentity, make_plan
from ..record.run import RunRecord
from .facts import RunFacts
from .gates import Gates
from .lifecycle import StepRefused, finish_guard, fold, start_guard
from .vocabulary import Event

DEFAULT_RUNS_DIR = Path("runs")
ORDER = [name for name, _ in STEPS]
#: the module of each step notebook (its text, its checks, its gates)
STEP_MODULES = {
    "00-preflight": "preflight",
    "01-remove-device": "remove",
    "02-verify-removal": "verify_removal",
    "03-first-sign-in": "sign_in",
    "04-rebind": "bind",
    "05-close-out": "close_out",
}
#: what resume may change (``resumable`` in the schema): how long to wait, the approvals and
#: the console confirmations
RESUMABLE_CHANGES = schema.RESUMABLE
_NOT_COMPARED = schema.NOT_COMPARED


def operator_identity(caller_arn: str | None = None) -> dict[str, str | None]:
    return {"caller_arn": caller_arn, "os_user": getpass.getuser(), "host": socket.gethostname()}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class Step:
    """One step of one run."""

    def __init__(self, name: str, params: RunParameters, record: RunRecord, plan: Plan) -> None:
        if name not in STEP_MODULES:
            raise RunbookError(f"unknown step {name}")
        self.name = name
        self.params = params
        self.record = record
        self.plan = plan
        self.gates = Gates(self)
        self.started_seq: int | None = None
        self._target: AwsContext | None = None
        self._management: AwsContext | None = None

    def __repr__(self) -> str:
        return f"Step({self.name!r}, run={self.record.run_id})"

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
    @property
    def facts(self) -> RunFacts:
        """The run's facts as its events say now."""
        return RunFacts(self.record.events())

    def log(self, type: str, **data: Any) -> dict[str, Any]:
        return self.record.append(type, step=self.name, **data)

    def write_evidence(self, relpath: str, obj: Any) -> Path:
        """A copy of evidence for people (snapshots/…): written once, on the event chain."""
        return self.record.write_json(relpath, obj, step=self.name, once=True)

    def recorded(self, type: str) -> dict[str, Any] | None:
        """The data of a fact this step already recorded (a re-run cell returns it instead of
        collecting again: facts are write-once)."""
        event = self.facts.first(type, self.name)
        return dict(event["data"]) if event else None

    def operator(self) -> dict[str, Any]:
        return self.facts.operator or dict(operator_identity())

    # ------------------------------------------------------------------ life cycle
    def checks_missing(self, events: list[dict[str, Any]]) -> list[str]:
        module = importlib.import_module(f".{STEP_MODULES[self.name]}", __package__)
        missing: list[str] = module.checks_missing(RunFacts(events), self.params)
        return missing

    def finish(self, **summary: Any) -> None:
        """Mark the step succeeded: only when every gate of the plan in this step was approved
        (in either mode) and the step's checks are on the record. Halts at the first gate not
        approved; refuses (StepRefused) when a check is missing."""
        events = self.record.events()
        state = fold(events, ORDER)
        this = state.steps[self.name]
        if this.status == "succeeded" and self._finished_in_this_attempt(events):
            return  # e.g. a dry run's skip finished it a cell earlier
        missing = self.gates.missing()
        if missing:
            gate = missing[0]
            if self.params.mode == "interactive":
                why = "confirm it in its control above, then re-run this cell"
            else:
                why = "it was not approved in this run"
            raise self.gates.halt(
                gate, f"{self.name} cannot finish: gate {gate} is not passed: {why}"
            )
        self.record.append(
            Event.STEP_FINISHED,
            step=self.name,
            guard=finish_guard(self.name, ORDER, self.checks_missing),
            **summary,
        )

    def _finished_in_this_attempt(self, events: list[dict[str, Any]]) -> bool:
        return any(
            e["type"] == Event.STEP_FINISHED
            and e.get("step") == self.name
            and (self.started_seq is None or e["seq"] > self.started_seq)
            for e in events
        )

    def skip(self, reason: str) -> dict[str, Any]:
        """A dry run: record that this step changes and verifies nothing, and finish it."""
        self.log(Event.STEP_SKIPPED, reason=reason)
        self.finish(skipped=True)
        return {"step": self.name, "status": f"skipped: {reason}"}


def _register_error_hook(step: Step) -> None:
    """Record how a cell ended when it raised: a halt (recognised by its class) or an error.
    The kernel may be all that runs (plain papermill, JupyterLab)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return
    shell = get_ipython()
    if shell is None:
        return

    def after(result: Any) -> None:
        err = getattr(result, "error_in_exec", None)
        if err is None:
            return
        try:
            if isinstance(err, GateNotApproved):
                step.log(Event.STEP_HALTED, gate=err.gate, reason=str(err)[:2000])
            else:
                step.log(Event.STEP_ERROR, ename=type(err).__name__, evalue=str(err)[:2000])
        except RunbookError:  # the record refuses (sealed, disk full): the cell already says why
            pass

    for callback in list(shell.events.callbacks.get("post_run_cell", [])):
        if getattr(callback, "_runbook_hook", False):
            shell.events.unregister("post_run_cell", callback)
    after._runbook_hook = True  # type: ignore[attr-defined]
    shell.events.register("post_run_cell", after)


def parameters_from(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The run parameters found in a notebook's namespace (the parameters cell's names)."""
    return {name: namespace[name] for name in PARAMETER_NAMES if name in namespace}


def differences(given: Mapping[str, Any], recorded: Mapping[str, Any]) -> list[str]:
    """Parameters whose value differs between ``given`` and what the run recorded."""
    out = []
    for name in sorted(set(given) | set(recorded)):
        if name in _NOT_COMPARED:
            continue
        a, b = given.get(name), recorded.get(name)
        if isinstance(a, tuple):
            a = list(a)
        if isinstance(b, tuple):
            b = list(b)
        if a != b:
            out.append(f"{name} (given {a!r}, the run has {b!r})")
    return out


def run_plan(params: RunParameters, facts: RunFacts) -> Plan:
    """The run's plan for ``params``, with the identity the run was created with; refused when
    the notebooks or the library changed since (that would mix two procedures)."""
    created = facts.created.get("plan") or {}
    if not created.get("identity"):
        raise RunbookError(
            "The run's first event holds no plan identity; it is not a run of this version."
        )
    plan = make_plan(params, PlanIdentity.from_dict(created["identity"]))
    if created.get("trust") != plan.trust:
        raise StepRefused(
            "The plan's trust changed since this run started (the allowed_signers file, the "
            "operator's key or the approval policy); the run's approvals were given under the "
            "old one. Nothing was done: end this run (runbook abandon RUN --reason ...) and "
            "start a new one."
        )
    changed = [s for s, sha in plan.notebooks.items() if created.get("notebooks", {}).get(s) != sha]
    if changed:
        raise StepRefused(
            f"The step notebooks changed since this run started ({', '.join(changed)}); "
            "running them would mix two procedures. Nothing was done: end this run "
            "(runbook abandon RUN --reason ...) and start a new one."
        )
    if (created.get("dependencies") or {}).get("sha256") != plan.dependencies_sha256:
        raise StepRefused(
            "The installed dependencies changed since this run started (a package was added, "
            "removed or upgraded); running them would mix two procedures. Nothing was done: end "
            "this run (runbook abandon RUN --reason ...) and start a new one."
        )
    if (created.get("library") or {}).get("sha256") != plan.library_sha256:
        raise StepRefused(
            "runbook_lib changed since this run started; running it would mix two procedures. "
            "Nothing was done: end this run (runbook abandon RUN --reason ...) and start a new one."
        )
    return plan


def open_step(name: str, namespace: Mapping[str, Any] | None = None, **raw: Any) -> Step:
    """Validate the parameters, open (or, for 00 without ``run_dir``, create) the run record,
    check the parameters are the run's, recompute its plan, and start the step."""
    if name not in STEP_MODULES:
        raise RunbookError(f"unknown step {name}")
    quiet_sdk_logging()
    values = parameters_from(namespace or {})
    values.update(raw)
    params = validate(values)
    if params.run_dir:
        record = RunRecord.open(Path(params.run_dir))
    elif name == ORDER[0]:
        from ..runner import create_run

        record = create_run(params, DEFAULT_RUNS_DIR)
    else:
        raise ParameterError(
            [
                f"run_dir is required for {name}: pass the run directory that "
                "00-preflight created (-p run_dir runs/<run-id>)"
            ]
        )
    facts = RunFacts(record.events())
    given = params.to_dict()
    problems = differences(given, facts.parameters())
    if problems:
        raise StepRefused(
            f"{name} was given other parameters than run {record.run_id} has: "
            + "; ".join(problems)
            + ". A step always runs with its run's parameters (only `runbook resume -p` may "
            f"change {', '.join(n for n in schema.NAMES if n in RESUMABLE_CHANGES)}). Nothing "
            "was done."
        )
    plan = run_plan(params, facts)
    step = Step(name, params, record, plan)
    started = record.append(
        Event.STEP_STARTED,
        step=name,
        guard=start_guard(name, ORDER),
        plan_digest=plan.digest,
        library=__version__,
    )
    step.started_seq = int(started["seq"])
    _register_error_hook(step)
    return step


def new_run_info(params: RunParameters, plan: Plan) -> dict[str, Any]:
    """What a run is created with (the first event holds it; run.json starts as its copy)."""
    from ..versions import versions

    return {
        "parameters": params.to_dict(),
        "plan_digest": plan.digest,
        "plan": plan.to_dict(),
        "operator": operator_identity(),
        "versions": versions(),
    }
