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

How a stop looks in the notebook (:func:`show_stops`, installed by :func:`open_step` through
IPython's ``set_custom_exc``): a halt (:class:`~runbook_lib.errors.GateNotApproved`) is shown as
a short notice (the gate, why, what to run next) instead of a traceback, and is no error
output; the runbook's other refusals (:class:`~runbook_lib.errors.RunbookError`: a step out of
order, a precondition, an AWS error) show their message as the error, without the library's
source; anything else keeps IPython's full traceback. The cell still ends in error (the
execute reply says so), so "Run All" and papermill stop there, and the post-run hook records
``step.halted`` / ``step.error`` exactly as before.
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import __version__, schema, widgets
from ..aws.session import AwsContext
from ..creation import create_run, operator_identity
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


class Step:
    """One step of one run."""

    def __init__(self, name: str, params: RunParameters, record: RunRecord, plan: Plan) -> None:
        if name not in STEP_MODULES:
            raise RunbookError(f"unknown step {name}")
        self.name = name
        self.params = params
        self.record = record
        self.plan = plan
        self.gates = Gates(self, widgets)
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


def halt_notice(err: GateNotApproved, step: Step | None = None) -> tuple[str, str]:
    """The short notice a halted cell shows (text, HTML): what happened and what to run next
    (the ``next`` the gate's ``gate.halted`` recorded, unless the reason already says it)."""
    reason = err.reason.rstrip(".").removeprefix(f"{err.gate}: ")
    nxt = ""
    if step is not None:
        try:
            halted = step.facts.last(Event.GATE_HALTED, step.name)
        except RunbookError:
            halted = None
        data = halted["data"] if halted and halted["data"].get("gate") == err.gate else {}
        nxt = str(data.get("next") or "")
        if not nxt and "re-run this cell" not in reason and "runbook " not in reason:
            nxt = (
                "pass the gate, then re-run this cell"
                if step.params.mode == "interactive"
                else f"runbook resume {step.record.path}"
            )
    if nxt and nxt in reason:
        nxt = ""
    lines = [
        f"HALTED at gate {err.gate}: {reason}.",
        "A stop on purpose, not an error: nothing after this cell ran, and the run record "
        "says why.",
    ]
    if nxt:
        lines.append(f"Next: {nxt}")
    text = "\n".join(lines)
    body = "<br>".join(html.escape(line) for line in lines)
    markup = (
        "<div class='runbook-halt' style='border-left:4px solid #d39e00;padding:4px 8px;"
        f"background:rgba(255,193,7,0.12)'>{body}</div>"
    )
    return text, markup


def _shell() -> Any:
    """The IPython shell this code runs in (a kernel), or None."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return None
    return get_ipython()


def show_stops(step: Step | None = None) -> None:
    """Show the runbook's own stops in this kernel without a traceback of its source (see the
    module's docstring); ``step`` names the run for a halt's next command."""
    shell = _shell()
    if shell is None:
        return

    def handler(
        shell: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: Any = None
    ) -> None:
        if isinstance(value, GateNotApproved):
            from IPython.display import display

            text, markup = halt_notice(value, step)
            display({"text/plain": text, "text/html": markup}, raw=True)  # type: ignore[no-untyped-call]
            return
        # the error itself, as IPython words it, without the frames of the library's source
        shell._showtraceback(etype, value, shell.InteractiveTB.get_exception_only(etype, value))

    shell.set_custom_exc((RunbookError,), handler)


def _register_error_hook(step: Step) -> None:
    """Record how a cell ended when it raised: a halt (recognised by its class) or an error.
    The kernel may be all that runs (plain papermill, JupyterLab)."""
    shell = _shell()
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
    show_stops()  # from here on: even a refused start shows as a message, not a traceback
    if name not in STEP_MODULES:
        raise RunbookError(f"unknown step {name}")
    quiet_sdk_logging()
    values = parameters_from(namespace or {})
    values.update(raw)
    params = validate(values)
    if params.run_dir:
        record = RunRecord.open(Path(params.run_dir))
    elif name == ORDER[0]:
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
    show_stops(step)
    return step
