"""Batch runs: the step notebooks executed in order with papermill into a run record, and the
other ends of a run's life (resume, seal, abandon).

This process is the run's orchestrator and the only writer of ``run.json``, a projection of
the event chain (:mod:`runbook_lib.procedure.lifecycle`); the kernel only appends events.

``run`` validates the parameters, checks that every AWS profile they name is configured
(:func:`check_profiles`: a usage error before anything exists), finds the plan its approval
files name (``runbook plan`` stored it under its digest) or makes a new one, verifies the signed
approvals against it (:mod:`runbook_lib.approval`: refused before anything is created, the plan
included), takes the account's **lease** (held until the run is sealed final or abandoned,
whatever runs dir or process: :mod:`runbook_lib.lease`), consumes the approval (one run per
approval), creates ``runs/<run-id>/`` with its trust root, plan file and approvals
(:mod:`runbook_lib.creation`, which also writes run.json from the events), and executes each
notebook.
A step's outcome is what its events say (a halt is recognised by its class in the kernel and
recorded as such), not what the notebook's exception is called. Like papermill, a failing
notebook is still written (atomically, 0600), with the failing cell marked; an earlier
attempt's notebook is kept under ``notebooks/attempts/``, never overwritten.

Every ending leaves a verifiable record: a checkpoint seal when it halts or fails (so
``resume`` can continue it), a final seal when every step succeeded (status ``succeeded``, or
``dry-run`` for a dry run) or when the run is abandoned; every seal is signed with the run's
``operator_key`` (a missing key refuses the seal before anything is written). :func:`audit_run`
is ``runbook verify``: the record's check, every approval re-verified, the sealer.

``resume``, ``seal_run`` and ``abandon`` check the record first (:func:`check_run`): chain,
ledger and manifest intact, every file as the chain recorded it, owned by the user with
0700/0600 modes and no symbolic link, and run.json saying what the chain says. Otherwise they
refuse, say why, and write nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import lease
from .approval import (
    ApprovalError,
    parse_statement,
)
from .creation import (
    check_profiles,
    create_run,
    current_digest,
    operator_identity,
    plan_to_run,
    project,
    record_approvals,
    verified_approvals,
)
from .errors import ParameterError, RunbookError, RunRefused, SigningError
from .params import RunParameters, validate
from .plan import STEPS, Plan, describe, make_plan, notebook_path, operator_signer
from .procedure.context import (
    RESUMABLE_CHANGES,
    run_plan,
)
from .procedure.facts import RunFacts
from .procedure.lifecycle import RunState, fold
from .procedure.vocabulary import Event, Status, now_iso
from .record.layout import EVENTS_FILE, LOCK_FILE, MANIFEST_FILE, RUN_FILE
from .record.report import render_html
from .record.run import RunRecord
from .record.signing import APPROVAL_NAMESPACE, Signer
from .record.signing import verify as verify_signature
from .record.verify import VerifyReport, check_integrity, trust_root, verify

if TYPE_CHECKING:  # papermill (~0.5 s to import) only where notebooks execute
    from .kernel import Kernel

FLEET_KIND = "fleet-audit"  # runbook_lib.fleet.audit.KIND (imported there only when needed)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_HALTED = 0, 1, 2, 3
ORDER = [name for name, _ in STEPS]
Progress = Callable[[str], None]

__all__ = [
    "EXIT_FAILED",
    "EXIT_HALTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "RESUMABLE_CHANGES",
    "RunRefused",
    "abandon",
    "check_run",
    "plan_for",
    "resume",
    "run",
    "run_state",
    "seal_run",
]


# ---------------------------------------------------------------------------- plans
def plan_for(raw: dict[str, Any], save: bool = False) -> tuple[RunParameters, Plan]:
    """Validate and make a new plan (a new identity); ``save`` stores it, so the run its
    approvals name (``--approval``) executes exactly it."""
    params = validate({k: v for k, v in raw.items() if k != "run_dir"})
    check_profiles(params)
    plan = make_plan(params)
    if save:
        lease.save_plan(plan.to_dict())
    return params, plan


# ---------------------------------------------------------------------------- approvals


def _take_approvals(record: RunRecord, params: RunParameters, plan: Plan, facts: RunFacts) -> None:
    """Approvals given to an existing run (resume, lab --reopen): verified against its plan,
    consumed for it, recorded. Refused, with nothing written, when the plan expired or an
    approval does not hold."""
    if plan.identity.expired():
        raise RunRefused(
            f"Plan {plan.digest[:12]}… expired at {plan.identity.expires_at}; an approval is "
            f"not a standing permission. End this run (runbook abandon {record.path} --reason "
            "...) and plan again. Nothing was changed."
        )
    verified = verified_approvals(params, plan)  # ApprovalRefused: nothing written
    assert verified is not None
    consumed = None
    if facts.first(Event.APPROVAL_CONSUMED) is None:
        consumed = lease.consume_approval(plan.digest, record.run_id)
    record_approvals(record, plan, verified)
    if consumed is not None:
        record.append(Event.APPROVAL_CONSUMED, digest=plan.digest, at=consumed.get("at"))


def add_approvals(run_dir: Path, files: list[str]) -> None:
    """`runbook lab --reopen RUN --approval FILE`: record approvals for an interactive run
    that halted for want of them (its parameters stay as they are: the gates read the
    approvals from the record). Checked like a resume first; nothing written when refused."""
    record = RunRecord.open(Path(run_dir))
    if record.sealed_final:
        raise RunRefused(f"Run {record.run_id} is sealed; start a new run instead.")
    with lease.executing(record.run_id):
        _refuse_unless_intact(record, "given approvals", ("notebooks/*",))
        facts = RunFacts(record.events())
        params = validate(
            {**facts.parameters(), "approvals": list(files), "run_dir": str(record.path)}
        )
        try:
            plan = run_plan(params, facts)
        except RunbookError as err:
            raise RunRefused(str(err).replace("RUN", str(record.path))) from err
        _take_approvals(record, params, plan, facts)
        project(record)


def _signer_for(record: RunRecord) -> Signer:
    """The operator's seal signer: the run's operator_key, as its plan named it."""
    facts = RunFacts(record.events())
    params = validate({**facts.parameters(), "run_dir": str(record.path)})
    trust = (facts.created.get("plan") or {}).get("trust")
    if not trust:
        raise RunRefused(
            f"Run {record.run_id} names no operator key in its plan; it cannot be sealed."
        )
    return operator_signer(params, trust)


# ---------------------------------------------------------------------------- state
def run_state(record: RunRecord) -> RunState:
    return fold(record.events(), ORDER)


def check_run(record: RunRecord, allow_unrecorded: tuple[str, ...] = ()) -> list[str]:
    """Everything that must hold before a run is continued, sealed or abandoned."""
    problems = check_integrity(record.path, allow_unrecorded=allow_unrecorded)
    facts = RunFacts(record.events())
    try:
        info = record.load_run()
    except RunbookError as err:
        return [*problems, str(err)]
    if facts.first(Event.RUN_CREATED) is None:
        problems.append("events.jsonl: the first event is not run.created")
        return problems
    recorded = facts.parameters()
    for name in sorted(set(recorded) | set(info.get("parameters") or {})):
        if (info.get("parameters") or {}).get(name) != recorded.get(name):
            problems.append(
                f"{RUN_FILE}: parameter {name} is {(info.get('parameters') or {}).get(name)!r}, "
                f"but the event chain recorded {recorded.get(name)!r} (run.json was edited)"
            )
    if info.get("plan_digest") != current_digest(facts):
        problems.append(
            f"{RUN_FILE}: plan_digest differs from the event chain's (run.json was edited)"
        )
    return problems


def _refuse_unless_intact(record: RunRecord, what: str, allow: tuple[str, ...] = ()) -> None:
    problems = check_run(record, allow)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise RunRefused(
            f"Run {record.run_id} cannot be {what}: its record is not as the run left it:\n"
            f"{listing}\nNothing was written. Inspect the run directory (runbook verify "
            f"{record.path}); if the change is yours, restore the file, else treat it as tampering."
        )


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    """Files papermill and the kernel create are the owner's only, whatever the umask."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _keep_earlier_attempt(record: RunRecord, name: str) -> None:
    rel = f"notebooks/{name}.ipynb"
    if not (record.path / rel).exists():
        return
    record.record_file(rel, step=name, redact=True)
    attempts = record.path / "notebooks" / "attempts"
    n = 1
    while (attempts / f"{name}.attempt-{n}.ipynb").exists():
        n += 1
    record.move_aside(rel, f"notebooks/attempts/{name}.attempt-{n}.ipynb", step=name)


def _execute(
    record: RunRecord,
    params: RunParameters,
    steps: list[str],
    progress: Progress,
    kernel: Kernel | None = None,
) -> int:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .kernel import Kernel, engine

    engine_name = engine()
    kernel = kernel or Kernel()
    values = params.to_dict()
    values["run_dir"] = str(record.path)
    notebooks = record.path / "notebooks"
    try:
        with _private_umask():
            if not notebooks.is_dir():
                notebooks.mkdir(mode=0o700)
            for name in steps:
                progress(f"step {name} ...")
                seen = int(record.events()[-1]["seq"])
                _keep_earlier_attempt(record, name)
                output = notebooks / f"{name}.ipynb"
                partial = notebooks / f".{name}.partial.ipynb"
                error: str | None = None
                try:
                    papermill.execute_notebook(
                        str(notebook_path(name)),
                        str(partial),
                        parameters=values,
                        kernel_name="python3",
                        progress_bar=False,
                        log_output=False,
                        # written once at the end (and on failure), not after every cell
                        request_save_on_cell_execute=False,
                        engine_name=engine_name,
                        km=kernel.get(),
                        shared_kc=kernel.client(),
                        cwd=str(Path.cwd()),
                    )
                except PapermillExecutionError as err:
                    error = f"{err.ename}: {err.evalue}"
                except (RuntimeError, OSError) as err:  # kernel died, or could not write
                    error = f"{type(err).__name__}: {err}"
                finally:
                    kernel.release_clients()
                step = run_state(record).steps[name]
                _store_notebook(record, name, partial, output, halted=step.status == "halted")
                for warning in RunFacts(record.events()).of(Event.WARNING_ROOT_CREDENTIALS):
                    if warning["seq"] > seen:
                        progress(f"WARNING: {warning['data'].get('text')}")
                if step.status == "succeeded" and error is None:
                    project(record, executing=True)
                    progress(f"step {name} done" + (" (skipped: dry run)" if step.skipped else ""))
                    continue
                if step.status == "halted":
                    return _halted(record, name, step.gate, step.reason or error or "", progress)
                return _failed(record, name, error or f"{name} ended without finishing", progress)
    finally:
        kernel.shutdown()
    return _succeeded(record, params, progress)


def _store_notebook(
    record: RunRecord, name: str, partial: Path, output: Path, halted: bool = False
) -> None:
    """Move the executed notebook into place atomically and record it; a torn one (a write
    that failed half-way) is removed, never left looking like evidence. A halted step's
    notebook loses papermill's error banner (:func:`_without_error_banner`)."""
    if not partial.exists():
        return
    try:
        import nbformat

        nb = nbformat.read(str(partial), as_version=4)  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - unreadable = torn: the record says what happened
        partial.unlink(missing_ok=True)
        return
    if halted and _without_error_banner(nb):
        nbformat.validate(nb)
        nbformat.write(nb, str(partial))  # type: ignore[no-untyped-call]
    os.replace(partial, output)
    record.record_file(f"notebooks/{name}.ipynb", step=name, redact=True)


def _without_error_banner(nb: Any) -> bool:
    """Remove the cells papermill inserts when a cell ends in error ("An Exception was
    encountered at ..." and its anchor, tagged ``papermill-error-cell-tag``); True if any.

    Only for a step the events say halted: a halt is a stop on purpose, the halted cell shows
    its notice (:func:`runbook_lib.procedure.context.show_stops`), and every other cell is
    kept as executed. A failed step keeps the banner and its error."""
    from papermill.execute import ERROR_MARKER_TAG

    kept = [c for c in nb.cells if ERROR_MARKER_TAG not in c.get("metadata", {}).get("tags", [])]
    removed = len(kept) != len(nb.cells)
    nb.cells = kept
    return removed


def _succeeded(record: RunRecord, params: RunParameters, progress: Progress) -> int:
    record.append(Event.RUN_SUCCEEDED, dry_run=params.dry_run)
    _close(record, params.account_id)
    facts = RunFacts(record.events())
    policy = facts.approvals(str(facts.created.get("plan_digest"))) or {}
    if params.dry_run:
        for line in dry_run_summary(facts):
            progress(line)
        progress(
            "DRY RUN complete: nothing was changed. To make the change, plan it with "
            "dry_run: false (runbook plan -f FILE -p dry_run=false), have a reviewer approve "
            "the plan file (runbook approve PLAN_FILE --key KEY), and run it with --approval FILE."
        )
    else:
        progress("run succeeded" + (" (SELF-APPROVED)" if policy.get("self_approved") else ""))
    return EXIT_OK


def _close(record: RunRecord, account_id: str) -> None:
    """Final seal, then give the account back."""
    record.append(Event.LEASE_RELEASED, account_id=account_id)
    project(record, ended_at=now_iso())
    _seal(record, final=True)
    lease.release(account_id, record.run_id)


def dry_run_summary(facts: RunFacts) -> list[str]:
    """What a dry run saw: identity, account kind, every MFA signal, the device."""
    lines = ["DRY RUN: what the run saw (nothing was changed)"]
    identity = facts.first(Event.OBSERVATION_IDENTITY)
    if identity:
        lines.append(f"  caller        {identity['data'].get('arn')}")
    account = facts.account
    if account:
        lines.append(
            f"  account kind  {account.kind}  centralised root access: {account.centralised}  "
            f"methods: {', '.join(account.methods) or 'none'}"
        )
    snap = facts.snapshot("before")
    if snap is not None:
        report = snap.credential_report
        lines += [
            f"  AccountMFAEnabled            {snap.account_mfa_enabled}",
            f"  credential report mfa_active {report.mfa_active if report else 'unavailable'}"
            + (f" (generated {report.generated_at})" if report else ""),
            f"  virtual devices              {', '.join(snap.virtual_devices or ()) or 'none'}",
            "  devices (AssumeRoot session) "
            + (
                ", ".join(f"{d.serial} ({d.kind})" for d in snap.session_devices)
                if snap.session_devices is not None
                else "not listed (no audit session)"
            ),
            f"  root password                {snap.account_password_present}",
        ]
    if facts.device:
        lines.append(f"  device a real run removes    {facts.device}")
    return lines


def _halted(record: RunRecord, step: str, gate: str | None, reason: str, progress: Progress) -> int:
    halt = RunFacts(record.events()).last(Event.GATE_HALTED, step)
    data = halt["data"] if halt else {}
    where = {"step": step, "gate": gate or data.get("gate"), "reason": data.get("reason") or reason}
    record.append(Event.RUN_HALTED, step, gate=where["gate"], reason=where["reason"])
    project(record)
    _seal(record, final=False)
    progress(f"HALTED at {step}, gate {where['gate']}: {where['reason']}")
    if data.get("instructions"):
        progress("In the AWS console:\n" + str(data["instructions"]))
    progress("next: " + str(data.get("next") or f"runbook resume {record.path}"))
    return EXIT_HALTED


def _failed(record: RunRecord, step: str, message: str, progress: Progress) -> int:
    record.append(Event.RUN_FAILED, step, error=message[:2000])
    project(record)
    _seal(record, final=False)
    progress(f"FAILED at {step}: {message[:500]}")
    progress(
        f"next: fix the cause, then runbook resume {record.path} (or end it: runbook abandon "
        f"{record.path} --reason ...)"
    )
    return EXIT_FAILED


def _seal(record: RunRecord, final: bool) -> None:
    signer = _signer_for(record)  # before anything is written: a missing key refuses the seal
    record.write_text("report.html", render_html(record.path, for_seal=True))
    record.seal(final=final, signer=signer)


# ---------------------------------------------------------------------------- entry points
def run(
    raw: dict[str, Any],
    runs_dir: Path,
    progress: Progress = print,
    kernel: Kernel | None = None,
) -> tuple[int, Path | None]:
    """Validate, find or make the plan, lease the account, create the record, execute.
    ``kernel``: one already started (e.g. while a sandbox started), which the run shuts down
    when it has executed its notebooks; the caller shuts it down if the run never gets there."""
    params = validate({k: v for k, v in raw.items() if k != "run_dir"})
    if params.dry_run and params.approvals:
        raise ParameterError(
            [
                "approvals: a dry run needs no approval (it changes nothing); drop --approval, or "
                "plan the real change with dry_run: false and have that plan approved"
            ]
        )
    plan, _ = plan_to_run(params)
    record = create_run(params, Path(runs_dir), plan)
    policy = RunFacts(record.events()).approvals(plan.digest) or {}
    banner = (
        "DRY RUN " if params.dry_run else "SELF-APPROVED " if policy.get("self_approved") else ""
    )
    progress(
        f"{banner}run {record.run_id} on account {params.account_id} "
        f"(plan {plan.digest[:12]}, dry_run={str(params.dry_run).lower()})"
    )
    with lease.executing(record.run_id):
        code = _execute(record, params, ORDER, progress, kernel)
    return code, record.path


def resume(
    run_dir: Path, overrides: dict[str, Any], progress: Progress = print
) -> tuple[int, Path]:
    """Continue a halted, failed or interrupted run from the step that did not succeed."""
    record = RunRecord.open(Path(run_dir))
    state = run_state(record)
    if record.sealed_final or state.status() == Status.ABANDONED:
        raise RunRefused(
            f"Run {record.run_id} is sealed ({state.status()}); start a new run instead."
        )
    if state.complete:
        # the final seal was not written (the disk filled, the process died): nothing is
        # left to run, only the seal
        raise RunRefused(
            f"Run {record.run_id}: every step succeeded, but its final seal was not written. "
            f"Seal it: runbook seal {record.path}"
        )
    nxt = state.next_step() or ORDER[-1]
    allow: tuple[str, ...] = (f"notebooks/.{nxt}.partial.ipynb",)
    if not _recorded(record, nxt):  # the runner died between writing it and recording it
        allow += (f"notebooks/{nxt}.ipynb",)
    _refuse_unless_intact(record, "resumed", allow)
    facts = RunFacts(record.events())
    if facts.parameters().get("mode") == "interactive":
        raise RunRefused(
            f"Run {record.run_id} is an interactive run; continue it with runbook lab --reopen "
            f"{record.path}."
        )
    raw = facts.parameters()
    fixed = sorted(
        k for k, v in overrides.items() if k not in RESUMABLE_CHANGES and raw.get(k) != v
    )
    if fixed:
        # what the earlier steps decided (the device, the account guard, the method) was
        # decided under the old parameters; approving a new plan must not reuse those decisions
        raise ParameterError(
            [
                f"{name} cannot change on resume (it was {raw.get(name)!r}); start a new run with "
                "the new value (end this one with runbook abandon)"
                for name in fixed
            ]
        )
    changes = {k: v for k, v in overrides.items() if raw.get(k) != v}
    raw.update(overrides)
    params = validate({**raw, "run_dir": str(record.path)})
    check_profiles(params)
    try:
        plan = run_plan(params, facts)
    except RunbookError as err:
        raise RunRefused(str(err).replace("RUN", str(record.path))) from err
    if params.approvals and "approvals" in changes:
        _take_approvals(record, params, plan, facts)
    holder = lease.holder(params.account_id)
    if holder is None or holder.get("run_id") != record.run_id:
        lease.acquire(params.account_id, record.run_id, record.path)  # LeaseHeld if another
        record.append(Event.LEASE_ACQUIRED, account_id=params.account_id, again=True)
    with lease.executing(record.run_id):
        steps = ORDER[ORDER.index(nxt) :]
        record.append(
            Event.RUN_RESUMED,
            from_step=steps[0],
            changed_parameters=changes,
            plan_digest=plan.digest,
        )
        (record.path / "notebooks" / f".{nxt}.partial.ipynb").unlink(missing_ok=True)
        _record_lost_notebooks(record, state, ORDER[: ORDER.index(nxt)], progress)
        project(record, executing=True)
        progress(f"resuming run {record.run_id} at {steps[0]}")
        code = _execute(record, params, steps, progress)
    return code, record.path


def _record_lost_notebooks(
    record: RunRecord, state: RunState, done: list[str], progress: Progress
) -> None:
    """A step the kernel recorded as succeeded whose executed notebook the runner could not
    store (the disk filled, the process died while writing it): it is not run again (its
    actions happened), so the record says the notebook is lost, once, instead of sealing as if
    it were there. Its events remain the step's record."""
    lost = {e.get("step") for e in record.events() if e["type"] == Event.NOTEBOOK_LOST}
    for name in done:
        if state.steps[name].status != "succeeded" or _recorded(record, name) or name in lost:
            continue
        reason = "the runner could not write it after the step succeeded"
        record.append(Event.NOTEBOOK_LOST, name, notebook=f"notebooks/{name}.ipynb", reason=reason)
        progress(
            f"WARNING: the executed notebook of {name} was not stored ({reason}); the step "
            "is not run again, and its events in the record are what it did"
        )


def _recorded(record: RunRecord, name: str) -> bool:
    rel = f"notebooks/{name}.ipynb"
    return any(
        e["type"] in (Event.FILE_RECORDED, Event.FILE_WRITTEN) and e["data"].get("path") == rel
        for e in record.events()
    )


def seal_run(run_dir: Path) -> dict[str, Any]:
    """Seal a run whose every step succeeded (e.g. after an interactive session). A run that
    stopped before the end is continued (resume, lab --reopen) or ended with :func:`abandon`."""
    record = RunRecord.open(Path(run_dir))
    if record.sealed_final:
        raise RunRefused(f"Run {record.run_id} is already sealed.")
    if lease.is_executing(record.run_id):
        raise RunRefused(f"Run {record.run_id} is still running.")
    _refuse_unless_intact(record, "sealed")
    state = run_state(record)
    if not state.complete:
        where = state.halted_at() or {"step": state.next_step()}
        raise RunRefused(
            f"Run {record.run_id} has not finished: it stopped at {where.get('step')}"
            + (f", gate {where['gate']}" if where.get("gate") else "")
            + f". Continue it (runbook resume {record.path}, or runbook lab --reopen for an "
            f'interactive run), or end it: runbook abandon {record.path} --reason "...".'
        )
    facts = RunFacts(record.events())
    _signer_for(record)  # the operator's key must be at hand before anything is written
    if not state.succeeded:
        record.append(Event.RUN_SUCCEEDED, dry_run=state.dry_run)
    record.append(Event.RUN_SEALED, status=str(run_state(record).status()))
    _close(record, str(facts.parameters()["account_id"]))
    return dict(verify(record.path).__dict__)


def abandon(run_dir: Path, reason: str) -> dict[str, Any]:
    """End a run on purpose: recorded with the reason and who, sealed final, lease released."""
    text = " ".join(str(reason or "").split())
    if not text or len(text) > 500 or any(not ch.isprintable() for ch in text):
        raise ParameterError(
            ["--reason must say why, in one line of printable text (1-500 characters)"]
        )
    record = RunRecord.open(Path(run_dir))
    if record.sealed_final:
        raise RunRefused(f"Run {record.run_id} is already sealed.")
    with lease.executing(record.run_id):
        problems = check_run(record, ("notebooks/*",))
        _signer_for(record)  # the operator's key must be at hand before anything is written
        state = run_state(record)
        facts = RunFacts(record.events())
        record.append(
            Event.RUN_ABANDONED,
            reason=text,
            who=operator_identity(facts.operator.get("caller_arn")),
            stopped_at=state.halted_at() or {"step": state.next_step()},
            integrity_problems=problems,
        )
        # the files as they are now go on the chain after the problems were stated, so the
        # record can be sealed and still tells what was found
        for rel in _files_to_take_in(record, problems):
            record.record_file(rel, redact=True)
        _close(record, str(facts.parameters()["account_id"]))
    return dict(verify(record.path).__dict__)


def _files_to_take_in(record: RunRecord, problems: list[str]) -> list[str]:
    named = {p.split(":", 1)[0] for p in problems}
    out = []
    for path in sorted(record.path.rglob("*")):
        rel = path.relative_to(record.path).as_posix()
        if path.is_symlink() or not path.is_file() or "/" not in rel and rel in _RESERVED:
            continue
        if rel in named or rel.startswith("notebooks/"):
            out.append(rel)
    return out


_RESERVED = {RUN_FILE, EVENTS_FILE, MANIFEST_FILE, LOCK_FILE}


def list_run_states(runs_dir: Path) -> list[dict[str, Any]]:
    """Every run in ``runs_dir`` with its status as its events say (not as run.json says)."""
    from .record.ledger import list_runs

    out = []
    for row in list_runs(Path(runs_dir)):
        entry = {
            "run_id": row["run_id"],
            "account_id": row.get("account_id"),
            "status": "unreadable",
        }
        try:
            record = RunRecord.open(Path(runs_dir) / str(row["run_id"]))
            if record.created_info().get("kind") == FLEET_KIND:
                entry.update(_fleet_state(record))
                out.append(entry)
                continue
            state = run_state(record)
            status = state.status(lease.is_executing(record.run_id))
            where = state.halted_at() or {}
            facts = RunFacts(record.events())
            policy = facts.approvals(str(facts.created.get("plan_digest"))) or {}
            entry.update(
                status=str(status),
                dry_run=state.dry_run,
                self_approved=bool(policy.get("self_approved")),
                where=" ".join(str(where.get(k)) for k in ("step", "gate") if where.get(k))
                if status not in (Status.SUCCEEDED, Status.DRY_RUN)
                else "",
            )
            if status == Status.ABANDONED and state.abandoned:
                entry["where"] = f"abandoned: {state.abandoned.get('reason')}"[:80]
        except (RunbookError, ValueError, KeyError):
            pass
        out.append(entry)
    return out


def _fleet_state(record: RunRecord) -> dict[str, Any]:
    """A fleet audit's line in ``runbook runs``: sealed (with its counts) or incomplete."""
    from .fleet.audit import fleet_status

    return fleet_status(record, lease.is_executing(record.run_id))


@dataclass
class RunAudit:
    """:func:`audit_run`'s answer: the record's own check (chain, files, ledger, seal
    signature), then the approvals checked again from the record's files, and who sealed."""

    record: VerifyReport
    approvals: list[str] = field(default_factory=list)  # "alice@example.com (ssh-ed25519 SHA256:…)"
    problems: list[str] = field(default_factory=list)
    self_approved: bool = False
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return self.record.ok and not self.problems


def audit_run(run_dir: Path, allowed_signers: Path | None = None) -> RunAudit:
    """Verify a run as an auditor would: :func:`record.verify`, then every recorded approval
    again (its statement and signature files against the same allowed_signers, for this run's
    plan digest), the approval policy the gates relied on, and that the seal was signed by the
    plan's operator. Read only; a record that is not a run gives a report with problems."""
    run_dir = Path(run_dir)
    report = verify(run_dir, allowed_signers)
    audit = RunAudit(report)
    try:
        facts = RunFacts(RunRecord.open(run_dir).events())
    except RunbookError:
        return audit
    plan = facts.created.get("plan") or {}
    digest = str(facts.created.get("plan_digest") or plan.get("digest") or "")
    trust = plan.get("trust") or {}
    audit.dry_run = bool(facts.parameters().get("dry_run"))
    trust_path, _ = trust_root(run_dir, allowed_signers)
    for event in facts.of(Event.APPROVAL_VERIFIED):
        data = event["data"]
        who = str(data.get("principal"))
        try:
            statement = (run_dir / str(data.get("statement"))).read_bytes()
            signature = (run_dir / str(data.get("signature"))).read_bytes()
            at = dt.datetime.fromisoformat(str(data.get("approved_at")).replace("Z", "+00:00"))
            good = verify_signature(
                statement, signature, who, APPROVAL_NAMESPACE, trust_path, at=at
            )
            named = parse_statement(statement).get("plan-digest")
        except (OSError, ValueError, ApprovalError, SigningError) as err:
            audit.problems.append(f"approval by {who} ({data.get('statement')}): {err}")
            continue
        if named != digest:
            audit.problems.append(
                f"approval by {who} approves plan {str(named)[:12]}…, not this run's"
            )
            continue
        audit.approvals.append(f"{good.principal} ({good.key_type} {good.fingerprint})")
    policy = facts.approvals(digest)
    if policy is not None:
        audit.self_approved = bool(policy.get("self_approved"))
    gated = facts.of(Event.GATE_APPROVED)
    if gated and not (policy and policy.get("satisfied")):
        audit.problems.append(
            "gates were approved, but the record holds no satisfied approval policy for its plan"
        )
    operator = (trust.get("operator") or {}).get("principal")
    if report.signer and operator and report.signer.get("principal") != operator:
        audit.problems.append(
            f"the seal is signed by {report.signer.get('principal')}, not by the run's operator "
            f"{operator}"
        )
    return audit


def plan_of_run(run_dir: Path) -> Plan:
    """The plan a run executes, as it stands (its identity, its trust)."""
    record = RunRecord.open(Path(run_dir))
    facts = RunFacts(record.events())
    params = validate({**facts.parameters(), "run_dir": str(record.path)})
    return run_plan(params, facts)


def describe_run(run_dir: Path) -> str:
    """`runbook plan --run RUN`: the plan a run executes, as it stands."""
    return describe(plan_of_run(run_dir)).replace(
        "runbook run ...", f"runbook resume {Path(run_dir)}"
    )
