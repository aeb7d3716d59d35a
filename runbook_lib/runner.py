"""Batch runs: the step notebooks executed in order with papermill into a run record.

``run`` validates the parameters, takes the account's lock (two runs on one account at once:
the second is refused), creates ``runs/<run-id>/``, executes each notebook into
``runs/<run-id>/notebooks/``, and stops at the first halt (a gate not approved: exit 3) or
failure (exit 1). Like papermill, a failing notebook is still written, with the failing cell
marked. Every ending leaves a verifiable record: a checkpoint seal when it halts or fails (so
``resume`` can continue it), a final seal when it succeeds.

One kernel serves all six notebooks of a run (a kernel start costs ~0.7 s); each notebook
re-runs its parameters cell and opens its own step, so no state is shared on purpose.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import ParameterError, RunbookError
from .params import RunParameters, validate
from .plan import STEPS, library_fingerprint, make_plan, notebook_hashes, notebook_path
from .record import RunRecord, verify
from .report import render_html
from .step import new_run_info, now_iso

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_HALTED = 0, 1, 2, 3
Progress = Callable[[str], None]


# what `runbook resume -p` may change: the approval, the operator's confirmations of console
# steps, and how long to wait; everything else belongs to the plan the earlier steps executed
RESUMABLE_CHANGES = frozenset({"approve", "confirm", "verify_timeout", "evidence_timeout"})


class RunRefused(RunbookError):
    """The run cannot start or continue (another run holds the account, a sealed run, ...)."""


@contextlib.contextmanager
def account_lock(runs_dir: Path, account_id: str) -> Iterator[None]:
    """Hold the per-account lock for the duration of a run (released if the process dies)."""
    lock_dir = runs_dir / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = lock_dir / f"{account_id}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            raise RunRefused(
                f"Another run on account {account_id} is in progress ({holder or 'unknown'}); "
                "wait for it to end. Nothing was changed."
            ) from err
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {now_iso()}".encode(), 0)
        yield
    finally:
        os.close(fd)


def lock_held(runs_dir: Path, account_id: str) -> bool:
    path = runs_dir / ".locks" / f"{account_id}.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class _Kernel:
    """One python3 kernel for the notebooks of a run."""

    def __init__(self) -> None:
        self.km: Any = None
        self._dir: str | None = None

    def get(self) -> Any:
        from jupyter_client.manager import KernelManager

        class TrackingKernelManager(KernelManager):
            """Remembers the clients nbclient makes: it does not stop their channels when it
            does not own the kernel, which would leak zmq sockets."""

            runbook_clients: list[Any]

            def client(self, **kwargs: Any) -> Any:
                made = super().client(**kwargs)
                self.runbook_clients.append(made)
                return made

        if self.km is None or not self.km.is_alive():
            self.shutdown()
            # IPC sockets in a private directory: nothing listens on TCP, even on localhost
            self._dir = tempfile.mkdtemp(prefix="runbook-kernel-")
            self.km = TrackingKernelManager(
                kernel_name="python3",
                transport="ipc",
                ip=os.path.join(self._dir, "kernel"),
                # nbclient awaits the client: a blocking client would block its event loop in
                # get_msg, and the check that notices a dead kernel would never run
                client_class="jupyter_client.asynchronous.AsyncKernelClient",
            )
            self.km.runbook_clients = []
            self.km.start_kernel()
        return self.km

    def release_clients(self) -> None:
        if self.km is not None:
            for client in self.km.runbook_clients:
                with contextlib.suppress(RuntimeError, OSError):
                    client.stop_channels()
            self.km.runbook_clients.clear()

    def shutdown(self) -> None:
        self.release_clients()
        if self.km is not None:
            with contextlib.suppress(RuntimeError, OSError):
                self.km.shutdown_kernel(now=True)
            self.km = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _execute(record: RunRecord, params: RunParameters, steps: list[str], progress: Progress) -> int:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    kernel = _Kernel()
    values = params.to_dict()
    values["run_dir"] = str(record.path)
    try:
        for name in steps:
            progress(f"step {name} ...")
            record.update_run(steps={name: {"status": "running", "started": now_iso()}})
            output = record.path / "notebooks" / f"{name}.ipynb"
            output.parent.mkdir(mode=0o700, exist_ok=True)
            try:
                papermill.execute_notebook(
                    str(notebook_path(name)),
                    str(output),
                    parameters=values,
                    kernel_name="python3",
                    progress_bar=False,
                    log_output=False,
                    # written once at the end (and on failure), not after every cell: each
                    # write re-validates the whole notebook
                    request_save_on_cell_execute=False,
                    km=kernel.get(),
                    cwd=str(Path.cwd()),
                )
            except PapermillExecutionError as err:
                os.chmod(output, 0o600)
                if err.ename == "GateNotApproved":
                    return _halted(record, name, err.evalue, progress)
                return _failed(record, name, f"{err.ename}: {err.evalue}", progress)
            except (RuntimeError, OSError) as err:  # kernel died or could not start
                return _failed(record, name, f"{type(err).__name__}: {err}", progress)
            finally:
                kernel.release_clients()
            os.chmod(output, 0o600)
            record.update_run(steps={name: {"status": "succeeded", "ended": now_iso()}})
            progress(f"step {name} done")
    finally:
        kernel.shutdown()
    record.update_run(status="succeeded", halted_at=None, ended_at=now_iso())
    record.append("run.succeeded")
    _seal(record, final=True)
    progress("run succeeded")
    return EXIT_OK


def _last_gate_halt(record: RunRecord) -> dict[str, Any]:
    halts = [e for e in record.events() if e["type"] == "gate.halted"]
    return dict(halts[-1]["data"]) if halts else {}


def _halted(record: RunRecord, step: str, message: str, progress: Progress) -> int:
    gate = _last_gate_halt(record)
    where = {"step": step, "gate": gate.get("gate"), "reason": gate.get("reason") or message}
    record.update_run(
        status="halted", halted_at=where, steps={step: {"status": "halted", "ended": now_iso()}}
    )
    record.append("run.halted", **where)
    _seal(record, final=False)
    progress(f"HALTED at {step}, gate {where['gate']}: {where['reason']}")
    return EXIT_HALTED


def _failed(record: RunRecord, step: str, message: str, progress: Progress) -> int:
    where = {"step": step, "error": message[:2000]}
    record.update_run(
        status="failed", halted_at=where, steps={step: {"status": "failed", "ended": now_iso()}}
    )
    record.append("run.failed", **where)
    _seal(record, final=False)
    progress(f"FAILED at {step}: {message[:500]}")
    return EXIT_FAILED


def _seal(record: RunRecord, final: bool) -> None:
    record.write_text("report.html", render_html(record.path, for_seal=True))
    record.seal(final=final)


def plan_for(raw: dict[str, Any]) -> tuple[RunParameters, Any]:
    params = validate(raw)
    return params, make_plan(params)


def run(raw: dict[str, Any], runs_dir: Path, progress: Progress = print) -> tuple[int, Path | None]:
    """Validate, lock the account, create the record, execute every step."""
    params = validate({k: v for k, v in raw.items() if k != "run_dir"})
    plan = make_plan(params)
    runs_dir = Path(runs_dir)
    with account_lock(runs_dir, params.account_id):
        record = RunRecord.create(runs_dir, new_run_info(params, plan))
        progress(
            f"run {record.run_id} on account {params.account_id} "
            f"(plan {plan.digest[:12]}, dry_run={str(params.dry_run).lower()})"
        )
        code = _execute(record, params, [s for s, _ in STEPS], progress)
    return code, record.path


def resume(
    run_dir: Path,
    overrides: dict[str, Any],
    progress: Progress = print,
) -> tuple[int, Path]:
    """Continue a halted, failed or interrupted run from the step that did not succeed."""
    record = RunRecord.open(run_dir)
    run_info = record.load_run()
    if record.sealed_final:
        raise RunRefused(
            f"Run {record.run_id} is sealed ({run_info.get('status')}); start a new run instead."
        )
    plan_before = run_info.get("plan", {})
    changed = [
        s for s, sha in notebook_hashes().items() if plan_before.get("notebooks", {}).get(s) != sha
    ]
    if changed:
        raise RunRefused(
            f"The notebooks changed since run {record.run_id} started "
            f"({', '.join(changed)}); resuming would mix two procedures. Start a "
            "new run."
        )
    if plan_before.get("library", {}).get("sha256") != library_fingerprint():
        raise RunRefused(f"runbook_lib changed since run {record.run_id} started; start a new run.")
    raw = dict(run_info["parameters"])
    fixed = sorted(
        k for k, v in overrides.items() if k not in RESUMABLE_CHANGES and raw.get(k) != v
    )
    if fixed:
        # what the earlier steps decided (the device, the account guard, the method) was
        # decided under the old parameters; approving a new plan must not reuse those decisions
        raise ParameterError(
            [
                f"{name} cannot change on resume (it was {raw.get(name)!r}); start a new run with "
                "the new value"
                for name in fixed
            ]
        )
    raw.update(overrides)
    raw["run_dir"] = str(record.path)
    params = validate(raw)
    runs_dir = record.runs_dir
    with account_lock(runs_dir, params.account_id):
        steps = [
            s for s, _ in STEPS if run_info.get("steps", {}).get(s, {}).get("status") != "succeeded"
        ]
        changes = {k: v for k, v in overrides.items() if run_info["parameters"].get(k) != v}
        record.update_run(
            status="running",
            halted_at=None,
            parameters=params.to_dict(),
            plan_digest=make_plan(params).digest,
        )
        record.append(
            "run.resumed", from_step=steps[0] if steps else None, changed_parameters=changes
        )
        progress(f"resuming run {record.run_id} at {steps[0] if steps else '(nothing left)'}")
        code = _execute(record, params, steps, progress)
    return code, record.path


def seal_run(run_dir: Path) -> dict[str, Any]:
    """Close a run for good (e.g. after an interactive session, or to abandon a halted run)."""
    record = RunRecord.open(run_dir)
    if record.sealed_final:
        raise RunRefused(f"Run {record.run_id} is already sealed.")
    info = record.load_run()
    if info.get("status") == "running" and lock_held(
        record.runs_dir, info["parameters"]["account_id"]
    ):
        raise RunRefused(f"Run {record.run_id} is still running.")
    record.append("run.sealed", status=info.get("status"))
    record.update_run(ended_at=now_iso())
    _seal(record, final=True)
    return dict(verify(record.path).__dict__)
