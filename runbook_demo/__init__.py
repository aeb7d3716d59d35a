"""``runbook demo``: the whole procedure, unattended, on the local sandbox.

An unknown scenario is a usage error (ParameterError listing the valid ones) before anything
starts; importing this module without the ``[sandbox]`` extra raises ImportError (the runbook's
plug-in loader turns it into one line naming the extra).

It starts the sandbox, writes its principals as ordinary AWS profiles into a temporary,
owner-only credentials file (deleted at the end, never in the record), computes the plan,
approves exactly that plan, runs the six steps in batch with the simulated console actor doing
the console steps, verifies the record, and prints a short summary whose last line is the run
directory. The runbook code it drives is the same as against AWS: profiles + an endpoint URL.

It also shows the two-person flow with throwaway SSH keys made in a temporary directory
(never committed, deleted at the end): an *operator* key that signs the seals and an *approver*
key that signs the plan file (``runbook approve``), both listed in a temporary allowed_signers.
The record keeps its own copy of that allowed_signers (``trust/allowed_signers``), so
``runbook verify`` still checks the seal afterwards (against the record's own trust root).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook_lib.errors import ParameterError
from runbook_lib.record.signing import allowed_signers_line, new_key
from runbook_sandbox import SandboxInfo, require_extra, sandbox_process, validate, write_profiles

require_extra()  # without moto: ImportError at load, which the runbook reports in one line

ORG_SCENARIOS = ("member", "member-no-password", "management")


@contextlib.contextmanager
def profile_files() -> Iterator[Path]:
    """A temporary, owner-only directory whose ``credentials`` and ``config`` files
    AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE point to while the block runs (AWS_PROFILE
    unset). The paths exist before the profiles do, so a kernel can start (with them in its
    environment) while the sandbox starts; :func:`write_sandbox_profiles` fills them."""
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_PROFILE")
    }
    with tempfile.TemporaryDirectory(prefix="runbook-demo-") as tmp:
        creds = Path(tmp) / "credentials"
        config = Path(tmp) / "config"
        config.write_text("")
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
        os.environ["AWS_CONFIG_FILE"] = str(config)
        os.environ.pop("AWS_PROFILE", None)
        try:
            yield creds
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def write_sandbox_profiles(creds: Path, info: SandboxInfo) -> dict[str, str]:
    """The sandbox's principals as AWS profiles ``sandbox-<principal>`` in ``creds``."""
    write_profiles(creds, info.principals, info.control_token)
    return {name: f"sandbox-{name}" for name in info.principals}


@contextlib.contextmanager
def sandbox_profiles(info: SandboxInfo) -> Iterator[dict[str, str]]:
    """AWS profiles (``sandbox-<principal>``) for the sandbox's principals, in a temporary
    credentials file that AWS_SHARED_CREDENTIALS_FILE points to while the block runs."""
    with profile_files() as creds:
        yield write_sandbox_profiles(creds, info)


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


@dataclass(frozen=True)
class DemoKeys:
    """Throwaway keys of the demo's two people, and the allowed_signers naming them."""

    operator: Path
    approver: Path
    allowed_signers: Path
    operator_principal: str = "operator@sandbox.example"
    approver_principal: str = "approver@sandbox.example"


@contextlib.contextmanager
def demo_keys() -> Iterator[DemoKeys]:
    """Make the demo's keys (ssh-keygen, ed25519, no passphrase) in a private temporary
    directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="runbook-demo-keys-") as tmp:
        base = Path(tmp)
        keys = DemoKeys(base / "operator", base / "approver", base / "allowed_signers")
        keys.allowed_signers.write_text(
            "".join(
                allowed_signers_line(principal, new_key(path, principal))
                for path, principal in (
                    (keys.operator, keys.operator_principal),
                    (keys.approver, keys.approver_principal),
                )
            )
        )
        yield keys


def demo_parameters(
    info: SandboxInfo,
    method: str,
    profiles: dict[str, str],
    operator_key: Path | None = None,
    allowed_signers: Path | None = None,
) -> dict[str, Any]:
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
    if operator_key is not None:
        params["operator_key"] = str(operator_key)
    if allowed_signers is not None:
        params["allowed_signers"] = str(allowed_signers)
    if "org-admin" in profiles:
        params["management_profile"] = profiles["org-admin"]
    devices = info.control.state(target)["devices"]
    virtual = [d["serial"] for d in devices if d["kind"] == "virtual"]
    if len(devices) > 1 and virtual:
        params["device_serial"] = virtual[0]
    return params


def sign_approval(plan: Any, key: Path, approver: str, operator: str, directory: Path) -> Path:
    """What a reviewer's ``runbook approve PLAN_FILE --key KEY --yes`` does, without the
    questions: write the plan file into ``directory``, sign the approval statement with
    ``key``; the approval file's path."""
    from runbook_lib.approval import read_plan_file, write_plan_file
    from runbook_lib.approval import sign_approval as signed
    from runbook_lib.record.signing import load_key

    plan_path = directory / f"plan-{plan.digest[:12]}.txt"
    if not plan_path.exists():
        write_plan_file(plan, plan_path)
    approval = directory / f"{plan_path.stem}.{approver}.approval"
    approval.write_bytes(signed(read_plan_file(plan_path), load_key(key), approver, operator))
    return approval


def run_demo(
    scenario: str = "standalone", method: str | None = None, runs_dir: Path = Path("runs")
) -> int:
    try:
        validate(scenario)  # before anything starts: a usage error listing the scenarios
    except ValueError as err:
        raise ParameterError([f"demo: {err}"]) from err
    method = method or ("assume-root" if scenario.startswith(("member", "fleet")) else "console")
    print(f"starting the sandbox ({scenario}) ...")
    started: list[Any] = []

    def meanwhile() -> None:
        """While the sandbox starts: the run's kernel (its environment names the profile
        files, filled once the sandbox is up), then, while it boots, the runner's imports
        (papermill, nbclient: ~0.5 s)."""
        from runbook_lib.kernel import Kernel, engine

        kernel = Kernel()
        started.append(kernel)
        kernel.get()
        import runbook_lib.runner  # noqa: F401 - imported for its import time only

        engine()

    try:
        with (
            _demo_state_dir(),
            profile_files() as creds,
            sandbox_process(scenario, while_starting=meanwhile) as info,
            demo_keys() as keys,
        ):
            from runbook_lib.runner import EXIT_OK, plan_for, run

            profiles = write_sandbox_profiles(creds, info)
            params = demo_parameters(info, method, profiles, keys.operator, keys.allowed_signers)
            _, plan = plan_for(params, save=True)
            approval = sign_approval(
                plan,
                keys.approver,
                keys.approver_principal,
                keys.operator_principal,
                keys.allowed_signers.parent,
            )
            print(
                f"plan {plan.digest[:16]}… ({len(plan.gates)} gates, method {method}, account "
                f"{params['account_id']}) signed by {keys.approver_principal}; performed and "
                f"sealed by {keys.operator_principal}"
            )
            params["approvals"] = [str(approval)]
            code, run_dir = run(params, runs_dir, kernel=started[0])
            now = info.control.state(params["account_id"])
    finally:
        for kernel in started:
            kernel.shutdown()  # a run that never reached its notebooks leaves it to us
    if run_dir is None:
        return code
    from runbook_lib.record.verify import verify

    report = verify(run_dir)
    print("")
    print(f"result     {'succeeded' if code == EXIT_OK else f'exit code {code}'}")
    intact = "verified intact" if report.ok else "NOT intact: " + "; ".join(report.problems)
    print(f"record     {intact}")
    print(f"root MFA   now {', '.join(d['serial'] for d in now['devices']) or '(none)'}")
    print(f"inspect    runbook verify {run_dir}   |   {run_dir}/report.html")
    print(run_dir)
    return code if report.ok else 1
