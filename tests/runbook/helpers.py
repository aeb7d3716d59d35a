"""Helpers for the runbook tests: parameters for a sandbox, run records, secrets, the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_demo import demo_parameters, sign_approval
from runbook_lib import runner
from runbook_lib.plan import STEPS
from runbook_lib.record.ledger import list_runs
from runbook_sandbox import SandboxInfo
from tests import keys
from tests.operator_text import notebook_text, seeds_in

REPO = Path(__file__).resolve().parents[2]
STEP_NAMES = [name for name, _ in STEPS]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMEOUTS = {"verify_timeout": 20, "evidence_timeout": 20}


@dataclass
class Env:
    """One sandbox with its principals as AWS profiles, and where the runs go."""

    info: SandboxInfo
    profiles: dict[str, str]
    runs: Path
    progress: list[str] = field(default_factory=list)

    @property
    def account(self) -> str:
        return self.info.target_account_id

    def params(self, method: str = "console", **overrides: Any) -> dict[str, Any]:
        """Parameters for an unattended run (as ``runbook demo``), short timeouts, no approval;
        the operator is olivia (tests/keys.py), who signs the seals."""
        params = demo_parameters(
            self.info, method, self.profiles, keys.key("operator"), keys.allowed_signers()
        )
        params.update(TIMEOUTS)
        params.update(overrides)
        return params

    def approved(
        self, method: str = "console", approver: str = "alice", **overrides: Any
    ) -> dict[str, Any]:
        """The same, with ``approver``'s signed approval of exactly this plan."""
        params = self.params(method, **overrides)
        params["approvals"] = [str(approval_of(params, approver, self.runs.parent))]
        return params

    def run(self, params: dict[str, Any]) -> tuple[int, Path]:
        code, run_dir = runner.run(params, self.runs, progress=self.progress.append)
        assert run_dir is not None
        return code, run_dir

    def resume(self, run_dir: Path, overrides: dict[str, Any]) -> int:
        code, _ = runner.resume(run_dir, overrides, progress=self.progress.append)
        return code

    def devices(self, account: str | None = None) -> list[dict[str, Any]]:
        """The sandbox's ground truth: the root user's devices now."""
        return list(self.info.control.state(account or self.account)["devices"])

    def serials(self, account: str | None = None) -> set[str]:
        return {d["serial"] for d in self.devices(account)}


def plan_of(params: dict[str, Any]) -> Any:
    """Plan ``params`` as `runbook plan` does (a new plan, stored); the plan."""
    _, plan = runner.plan_for({k: v for k, v in params.items() if k != "approvals"}, save=True)
    return plan


def digest_of(params: dict[str, Any]) -> str:
    return str(plan_of(params).digest)


def approval_of(params: dict[str, Any], approver: str = "alice", where: Path | None = None) -> Path:
    """A new plan of ``params`` signed by ``approver`` (tests/keys.py); the approval file."""
    plan = plan_of(params)
    directory = Path(where or Path.cwd()) / f"approvals-{plan.digest[:12]}"
    directory.mkdir(exist_ok=True)
    return sign_approval(
        plan, keys.key(approver), keys.PRINCIPALS[approver], keys.PRINCIPALS["operator"], directory
    )


def events(run_dir: Path) -> list[dict[str, Any]]:
    lines = (Path(run_dir) / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def of_type(run_dir: Path, type_: str) -> list[dict[str, Any]]:
    return [e for e in events(run_dir) if e["type"] == type_]


def run_info(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((Path(run_dir) / "run.json").read_text()))


def run_dirs(runs: Path) -> list[str]:
    """The run directories under ``runs`` (not the ledger or the locks)."""
    return [row["run_id"] for row in list_runs(runs)] if runs.exists() else []


def known_secrets(env: Env) -> tuple[list[str], list[str]]:
    """(secret access keys of every sandbox principal, every one-time code the sandbox knows:
    the root mailboxes' codes and the authenticator codes of the root users' virtual devices)."""
    keys = [p["secret_access_key"] for p in env.info.principals.values()]
    codes: list[str] = []
    accounts = {env.account}
    for account in accounts:
        codes += [str(m["code"]) for m in env.info.control.mailbox(account) if m.get("code")]
        for device in env.devices(account):
            if device["kind"] == "virtual":
                codes += env.info.control.authenticator_codes(device["serial"])
    return keys, codes


def code_occurrences(run_dir: Path, codes: list[str]) -> list[str]:
    """Files holding one of ``codes`` as a number of its own. (The scanner's ``known`` matches
    substrings: a 6-digit code would match inside account ids and microseconds by chance.)"""
    found = []
    patterns = [re.compile(rf"(?<![\d.]){re.escape(c)}(?!\d)") for c in codes]
    for path in sorted(Path(run_dir).rglob("*")):
        if path.is_file():
            text = path.read_text(errors="replace")
            found += [f"{path.name}: code #{i}" for i, p in enumerate(patterns) if p.search(text)]
    return found


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m runbook_lib.cli ARGS`` in a subprocess (environment inherited)."""
    return subprocess.run(
        [sys.executable, "-m", "runbook_lib.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
        check=False,
    )


def write_params(path: Path, params: dict[str, Any]) -> Path:
    """A YAML parameters file (JSON is YAML)."""
    path.write_text(json.dumps(params))
    return path


def edit_cell(notebook: Path) -> None:
    """Append a harmless line to the notebook's last code cell."""
    nb = json.loads(notebook.read_text())
    cell = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
    source = cell["source"]
    text = "".join(source) if isinstance(source, list) else source
    cell["source"] = text + "\nprint('edited')"
    notebook.write_text(json.dumps(nb, indent=1))


def check_operator_text(run_dir: Path) -> None:
    """What the run showed (executed notebooks, their outputs) and the report never say
    "seed" (tests/operator_text.py)."""
    shown = [
        piece
        for notebook in sorted((run_dir / "notebooks").glob("*.ipynb"))
        for piece in notebook_text(notebook)
    ]
    assert any(where.endswith("output") for where, _ in shown), "no output at all"
    shown.append(("report.html", (run_dir / "report.html").read_text(encoding="utf-8")))
    found = seeds_in(iter(shown))
    assert not found, found


def kill_tree(proc: subprocess.Popen[Any]) -> None:
    """A child that a failed assertion left running: kill it and what it started (kernels,
    JupyterLab), then reap it, so no test outlives itself."""
    if proc.poll() is None:
        import psutil

        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
    proc.wait(30)
