"""``runbook demo``: the whole procedure, unattended, on the local sandbox.

It starts the sandbox, writes its principals as ordinary AWS profiles into a temporary,
owner-only credentials file (deleted at the end, never in the record), computes the plan,
approves exactly that plan, runs the six steps in batch with the simulated console actor doing
the console steps, verifies the record, and prints a short summary whose last line is the run
directory. The runbook code it drives is the same as against AWS: profiles + an endpoint URL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .record import verify
from .runner import EXIT_OK, run
from .sandbox import SandboxInfo, sandbox_process, write_profiles

ORG_SCENARIOS = ("member", "member-no-password", "management")


@contextlib.contextmanager
def sandbox_profiles(info: SandboxInfo) -> Iterator[dict[str, str]]:
    """AWS profiles (``sandbox-<principal>``) for the sandbox's principals, in a temporary
    credentials file that AWS_SHARED_CREDENTIALS_FILE points to while the block runs."""
    names = {name: f"sandbox-{name}" for name in info.principals}
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_PROFILE")
    }
    with tempfile.TemporaryDirectory(prefix="runbook-demo-") as tmp:
        creds = Path(tmp) / "credentials"
        write_profiles(creds, info.principals, info.control_token)
        config = Path(tmp) / "config"
        config.write_text("")
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
        os.environ["AWS_CONFIG_FILE"] = str(config)
        os.environ.pop("AWS_PROFILE", None)
        try:
            yield names
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@contextlib.contextmanager
def _demo_state_dir() -> Iterator[None]:
    """The sandbox's accounts live as long as the sandbox: its leases, plans and approvals go to
    a temporary state directory (unless RUNBOOK_STATE_DIR is set), never the operator's."""
    if os.environ.get("RUNBOOK_STATE_DIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="runbook-demo-state-") as tmp:
        os.environ["RUNBOOK_STATE_DIR"] = tmp
        try:
            yield
        finally:
            os.environ.pop("RUNBOOK_STATE_DIR", None)


def demo_parameters(info: SandboxInfo, method: str, profiles: dict[str, str]) -> dict[str, Any]:
    """Parameters for an unattended sandbox run of the whole procedure."""
    target = info.target_account_id
    params: dict[str, Any] = {
        "account_id": target,
        "change_ticket": "DEMO-" + dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S"),
        "method": method,
        "rebind": "bind",
        "mode": "batch",
        "profile": profiles["admin"],
        "endpoint_url": info.endpoint,
        "dry_run": False,
        "sandbox_actor": True,
        "verify_timeout": 30,
        "evidence_timeout": 30,
    }
    if "org-admin" in profiles:
        params["management_profile"] = profiles["org-admin"]
    devices = info.control.state(target)["devices"]
    virtual = [d["serial"] for d in devices if d["kind"] == "virtual"]
    if len(devices) > 1 and virtual:
        params["device_serial"] = virtual[0]
    return params


def run_demo(
    scenario: str = "standalone", method: str | None = None, runs_dir: Path = Path("runs")
) -> int:
    from .runner import plan_for

    method = method or ("assume-root" if scenario.startswith(("member", "fleet")) else "console")
    print(f"starting the sandbox ({scenario}) ...")
    with (
        sandbox_process(scenario) as info,
        sandbox_profiles(info) as profiles,
        _demo_state_dir(),
    ):
        params = demo_parameters(info, method, profiles)
        _, plan = plan_for(params, save=True)
        print(
            f"plan {plan.digest[:16]}… approved for this demo: {len(plan.gates)} gates, "
            f"method {method}, account {params['account_id']}"
        )
        params["approve"] = plan.digest
        code, run_dir = run(params, runs_dir)
        now = info.control.state(params["account_id"])
    if run_dir is None:
        return code
    report = verify(run_dir)
    print("")
    print(f"result     {'succeeded' if code == EXIT_OK else f'exit code {code}'}")
    intact = "verified intact" if report.ok else "NOT intact: " + "; ".join(report.problems)
    print(f"record     {intact}")
    print(f"root MFA   now {', '.join(d['serial'] for d in now['devices']) or '(none)'}")
    print(f"inspect    runbook verify {run_dir}   |   {run_dir}/report.html")
    print(run_dir)
    return code if report.ok else 1
