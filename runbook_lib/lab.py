"""``runbook lab``: step through a run in JupyterLab, with the same record as a batch run.

:func:`prepare_lab` does what ``runbook run`` does before it executes anything: validate the
parameters (``mode`` forced to ``interactive``), verify the signed approvals (of a plan made
with ``mode: interactive``; a run prepared without them halts at its first approval gate and
takes them later with ``runbook lab --reopen RUN --approval FILE``), create ``runs/<run-id>/``
with the plan and the operator, and write each step notebook, its parameters injected by papermill
(``prepare_only``: nothing is executed), into ``runs/<run-id>/notebooks/``. :func:`lab_server`
then starts JupyterLab on 127.0.0.1 with a random token, rooted in that notebooks directory,
while holding the account's lock (a batch run on the same account is refused meanwhile).
Every cell the operator runs appends to the run's hash-chained events, exactly as under
papermill; JupyterLab saves the notebooks into the run.

Gates: halt before the action, never block in place. A confirmation cell shows its control and
returns at once; the next action calls :meth:`~runbook_lib.procedure.gates.Gates.require`,
which halts with GateNotApproved unless the record holds the operator's confirmation, and says
which cell to re-run; a step's ``finish()`` does the same for every gate of the step. So "Run
All" can never finish a step or act past an unconfirmed gate. Blocking in place (polling the
kernel for the click with jupyter-ui-poll) was rejected: jupyter-ui-poll 1.1.0 receives no
clicks with ipykernel >= 7.1 (it calls ``Kernel.do_one_iteration``, removed in 7.1, and
swallows the error), so it would need ipykernel pinned below 7.1, and under papermill or nbval
a cell waiting for a click hangs until a deadline. Console steps (``Gates.console_step``)
follow the same rule: the control is shown, the cell halts, and the operator re-runs it after
pressing "Done", when the control has verified the change through the AWS API.

Checkpoints: JupyterLab's ``.ipynb_checkpoints/`` would land in the run directory and be
sealed with it (or, written after a seal, break ``runbook verify``). They go to the Lab's
private temporary directory instead (``FileCheckpoints.checkpoint_dir`` is an absolute path
there), and any stray checkpoint directory is removed from the run before it is sealed.

Life cycle: the run takes the account's lease when it is prepared and keeps it until it is
sealed final or abandoned. The steps run in plan order; a finished step's notebook refuses to
run again (its evidence is write-once), so ``--reopen`` tells the operator which notebook to
open next. Before it serves a run again, ``--reopen`` checks the record like ``resume`` does
(chain, ledger, manifest, modes, no symlinks, run.json as the chain says); only the notebooks
themselves, the operator's working copies, may differ from their last recorded version (Lab
may have been killed before it could record them).

Sealing: never while JupyterLab can still autosave. When Lab stops (Ctrl-C, SIGTERM, or the
File > Shut Down menu), the kernels are shut down, the notebooks are recorded on the event
chain, then the run is sealed: final, with ``run.succeeded``, if every step succeeded;
otherwise a checkpoint seal, so the record always verifies; ``--reopen`` continues it, and
``runbook abandon RUN_DIR --reason ...`` ends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from . import lease
from .creation import create_run, project
from .errors import RunbookError, RunRefused
from .isolation import KERNEL_NAME, kernel_env, kernel_spec
from .params import validate
from .plan import STEPS, notebook_path
from .procedure.vocabulary import Event, now_iso
from .record.run import RunRecord
from .runner import _refuse_unless_intact, _seal, run_state, seal_run

NOTEBOOKS = "notebooks"
CHECKPOINTS = ".ipynb_checkpoints"
CLOSE_OUT = STEPS[-1][0]


def prepare_lab(raw_params: dict[str, Any], runs_dir: Path) -> RunRecord:
    """Validate (mode interactive), create the run record and write the step notebooks into
    ``<run>/notebooks/`` with the run's parameters injected (papermill, prepare-only)."""
    import papermill

    raw = {k: v for k, v in raw_params.items() if k != "run_dir"}
    raw["mode"] = "interactive"
    params = validate(raw)
    record = create_run(params, Path(runs_dir).resolve())  # the approved plan, if approvals
    values = params.to_dict()
    values["run_dir"] = str(record.path)
    out_dir = record.path / NOTEBOOKS
    out_dir.mkdir(mode=0o700, exist_ok=True)
    for name, _ in STEPS:
        output = out_dir / f"{name}.ipynb"
        papermill.execute_notebook(
            str(notebook_path(name)),
            str(output),
            parameters=values,
            prepare_only=True,
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
        )
        record.record_file(f"{NOTEBOOKS}/{name}.ipynb", step=name)
    record.append(
        Event.LAB_PREPARED,
        notebooks=[f"{NOTEBOOKS}/{n}.ipynb" for n, _ in STEPS],
        mode="interactive",
    )
    project(record)
    return record


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LabServer:
    """A running JupyterLab for one run."""

    run_dir: Path
    port: int
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    private_dir: Path  # Jupyter's config, runtime files (kernel connection files), the log

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The URL the operator opens (it carries the token)."""
        return f"{self.base}/lab?token={self.token}"

    def url_of(self, notebook: str | None) -> str:
        """The URL that opens ``notebook`` (the step where the run stands), or Lab itself."""
        if not notebook:
            return self.url
        return f"{self.base}/lab/tree/{notebook}.ipynb?token={self.token}"

    def api(self, method: str, path: str, timeout: float = 10.0) -> Any:
        """Call JupyterLab's REST API with the token; the decoded JSON (or None)."""
        request = urllib.request.Request(
            f"{self.base}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method in ("POST", "PUT") else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
        return json.loads(body) if body else None

    def kernels(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/api/kernels") or [])


def _lab_env(tmp: Path, token: str) -> dict[str, str]:
    """The environment for JupyterLab and the kernels it starts: the kernel's allow-list
    (:func:`runbook_lib.isolation.kernel_env`: AWS settings, no startup code, private IPython
    directory and bytecode cache), Jupyter's configuration, data, runtime files and workspaces
    in a fresh directory (the user's settings, extensions and reopened tabs do not leak in), and
    the token in ``JUPYTER_TOKEN``: never on the command line, which any local user reads. The
    kernel Lab starts is this interpreter's, as a batch run's (:func:`isolation.kernel_spec`)."""
    env = kernel_env(tmp)
    env["JUPYTER_TOKEN"] = token
    for var, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "lab-settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "lab-workspaces"),
        ("IPYTHONDIR", "ipython"),
    ):
        path = tmp / sub
        path.mkdir(mode=0o700, exist_ok=True)
        env[var] = str(path)
    # no "receive Jupyter news?" prompt over the notebook; autosave into the run every 10 s
    for plugin, setting in (
        ("apputils-extension/notification", '{"fetchNews": "false"}'),
        ("docmanager-extension/plugin", '{"autosave": true, "autosaveInterval": 10}'),
    ):
        path = tmp / "lab-settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(setting + "\n")
    # the one kernel is this interpreter's (isolation.kernel_spec), in the fresh data directory,
    # which Jupyter searches first (not the environment's); no other kernelspec is offered
    spec = tmp / "data" / "kernels" / KERNEL_NAME
    spec.mkdir(mode=0o700, parents=True)
    (spec / "kernel.json").write_text(json.dumps(kernel_spec()) + "\n")
    env["JUPYTER_PREFER_ENV_PATH"] = "0"
    (tmp / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"KernelSpecManager": {"allowed_kernelspecs": [KERNEL_NAME]}}) + "\n"
    )
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    return env


def _lab_command(root: Path, port: int, checkpoints: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        f"--FileCheckpoints.checkpoint_dir={checkpoints}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_ready(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RunbookError(
                f"JupyterLab exited with code {server.process.returncode} before it was ready; "
                f"the end of its log:\n{_log_tail(server.log_path)}"
            )
        with contextlib.suppress(OSError, ValueError):
            server.api("GET", "/api/status", timeout=2.0)
            return
        time.sleep(0.2)
    raise RunbookError(
        f"JupyterLab was not ready after {timeout:.0f} s; the end of its log:\n"
        + _log_tail(server.log_path)
    )


def _stop(server: LabServer, timeout: float = 20.0) -> None:
    """Shut the kernels down, then JupyterLab (REST API first, then SIGTERM, then SIGKILL)."""
    if server.process.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            for kernel in server.kernels():
                server.api("DELETE", f"/api/kernels/{kernel['id']}")
        with contextlib.suppress(OSError, ValueError):
            server.api("POST", "/api/shutdown")
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.process.terminate()
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


def _remove_checkpoints(run_dir: Path) -> list[str]:
    removed = []
    for path in sorted(run_dir.rglob(CHECKPOINTS)):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            removed.append(path.relative_to(run_dir).as_posix())
    return removed


def _tighten(run_dir: Path) -> None:
    """0600 for what JupyterLab saved into the run (it keeps the umask's modes)."""
    notebooks = run_dir / NOTEBOOKS
    if notebooks.is_dir():
        for path in notebooks.rglob("*"):
            if path.is_symlink():
                continue
            os.chmod(path, 0o700 if path.is_dir() else 0o600)


def _record_notebooks(record: RunRecord) -> None:
    """Put what JupyterLab saved into the run on the event chain."""
    for name, _ in STEPS:
        rel = f"{NOTEBOOKS}/{name}.ipynb"
        if (record.path / rel).is_file():
            record.record_file(rel, step=name, redact=True)


def close_lab_run(record: RunRecord) -> dict[str, Any]:
    """After JupyterLab stopped: remove stray checkpoints, record the notebooks, then seal the
    run: final if every step succeeded, else a checkpoint seal. Returns what verify found."""
    from .record.verify import verify

    removed = _remove_checkpoints(record.path)
    _tighten(record.path)
    _record_notebooks(record)
    state = run_state(record)
    record.append(
        Event.LAB_STOPPED,
        removed_checkpoints=removed,
        complete=state.complete,
        next_step=state.next_step(),
    )
    if state.complete:
        return seal_run(record.path)
    project(record)
    _seal(record, final=False)
    return dict(verify(record.path).__dict__)


def next_notebook(record: RunRecord) -> str | None:
    """The notebook the operator opens next (None when every step finished)."""
    return run_state(record).next_step()


@contextlib.contextmanager
def lab_server(
    run_dir: Path, port: int = 0, token: str | None = None, ready_timeout: float = 90.0
) -> Iterator[LabServer]:
    """JupyterLab for ``run_dir`` while the block runs, under the account's lock. On exit the
    kernels and Lab are stopped and the run is sealed (see the module docstring)."""
    from .procedure.facts import RunFacts

    record = RunRecord.open(Path(run_dir).resolve())
    if record.sealed_final:
        raise RunRefused(
            f"Run {record.run_id} is sealed ({run_state(record).status()}); start a new one "
            "with `runbook lab`."
        )
    facts = RunFacts(record.events())
    params = facts.parameters()
    if params.get("mode") != "interactive":
        raise RunRefused(f"Run {record.run_id} is a batch run; continue it with `runbook resume`.")
    notebooks = record.path / NOTEBOOKS
    if not notebooks.is_dir():
        raise RunRefused(f"Run {record.run_id} has no notebooks; prepare it with `runbook lab`.")
    _refuse_unless_intact(record, "reopened", (f"{NOTEBOOKS}/*",))
    account_id = str(params["account_id"])
    holder = lease.holder(account_id)
    if holder is None or holder.get("run_id") != record.run_id:
        lease.acquire(account_id, record.run_id, record.path)  # LeaseHeld if another run
        record.append(Event.LEASE_ACQUIRED, account_id=account_id, again=True)
    served = False
    try:
        with lease.executing(record.run_id):
            served = True
            with _running_lab(record, notebooks, port, token, ready_timeout) as server:
                yield server
    finally:
        if served:  # after the execution lock is released: seal_run refuses a busy run
            close_lab_run(record)


@contextlib.contextmanager
def _running_lab(
    record: RunRecord, notebooks: Path, port: int, token: str | None, ready_timeout: float
) -> Iterator[LabServer]:
    with tempfile.TemporaryDirectory(prefix="runbook-lab-") as tmp_name:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o700)
        checkpoints = tmp / "checkpoints"
        checkpoints.mkdir(mode=0o700)
        chosen_port = port or _free_port()
        secret = token or secrets.token_urlsafe(32)
        log_path = tmp / "jupyterlab.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                _lab_command(notebooks, chosen_port, checkpoints),
                cwd=notebooks,
                env=_lab_env(tmp, secret),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = LabServer(record.path, chosen_port, secret, process, log_path, tmp)
        try:
            _wait_ready(server, ready_timeout)
            record.append(
                Event.LAB_STARTED,
                url=f"{server.base}/lab",
                pid=process.pid,
                root_dir=str(notebooks),
                at=now_iso(),
            )
            yield server
        finally:
            _stop(server)
            keep = os.environ.get("RUNBOOK_LAB_KEEP_LOG")
            if keep:
                shutil.copy(log_path, Path(keep))


def serve_lab(
    run_dir: Path,
    port: int = 0,
    open_token: str | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Run JupyterLab for ``run_dir`` in the foreground until Ctrl-C or SIGTERM (or Lab's own
    File > Shut Down); print the URL on one line; then stop Lab and seal the run."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with lab_server(run_dir, port, open_token) as server:
            nxt = next_notebook(RunRecord.open(server.run_dir))
            out(server.url_of(nxt))  # opens where the run stands
            where = (
                f"Open {nxt}.ipynb (the steps run in order; finished ones are closed)."
                if nxt
                else "Every step has finished."
            )
            out(
                f"JupyterLab serves run {server.run_dir.name} on 127.0.0.1:{server.port}. "
                f"{where} Ctrl-C stops Lab and seals the run.",
            )
            while not stop.wait(0.5) and server.process.poll() is None:
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    record = RunRecord.open(Path(run_dir))
    kind = "sealed final" if record.sealed_final else "checkpoint-sealed"
    out(f"JupyterLab stopped; {record.path} is {kind}.")
    if not record.sealed_final:
        nxt = next_notebook(record)
        out(
            f"It stopped before {nxt}. Continue: runbook lab --reopen {record.path}   |   end it: "
            f'runbook abandon {record.path} --reason "..."'
        )
    return 0
