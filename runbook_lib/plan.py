"""The plan of a run and its digest: what a batch approval is bound to.

The digest is SHA-256 over a canonical JSON of: the parameters (less the approval, the console
confirmations and the run directory), the SHA-256 of every step notebook, the library version
and a hash of its source, and the target account. Change any of them and an approval given for
the old plan no longer matches: the run halts at its first gate.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .params import RunParameters

PACKAGE_DIR = Path(__file__).resolve().parent

# the documented procedure, one notebook per step, in order
STEPS: tuple[tuple[str, str], ...] = (
    ("00-preflight", "Preflight: warning, identity, account, root MFA state before, risk gate"),
    ("01-remove-device", "Remove the root MFA device (console, or AssumeRoot for members)"),
    ("02-verify-removal", "Verify the removal: every signal and the CloudTrail event"),
    ("03-first-sign-in", "First root sign-in with the e-mailed one-time code"),
    ("04-rebind", "Bind a new device in the console, or record the decision to skip"),
    ("05-close-out", "Close-out: before/after, timeline, approvals, seal"),
)


def notebooks_dir() -> Path:
    """Where the step notebooks live (``RUNBOOK_NOTEBOOKS`` overrides, for tests)."""
    override = os.environ.get("RUNBOOK_NOTEBOOKS")
    return Path(override) if override else PACKAGE_DIR.parent / "notebooks"


def notebook_path(step: str) -> Path:
    return notebooks_dir() / f"{step}.ipynb"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_fingerprint() -> str:
    """SHA-256 over the library's Python sources (names and contents, sorted). Not cached: a
    long-lived process must see the library it would run now."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def notebook_hashes() -> dict[str, str]:
    return {step: sha256_file(notebook_path(step)) for step, _ in STEPS}


@dataclass(frozen=True)
class GateInfo:
    name: str
    step: str
    kind: str  # "approval" (a decision) or "console" (a human step in the console)
    description: str


def gates_for(params: RunParameters) -> list[GateInfo]:
    """The gates this plan will meet, in order."""
    gates = [
        GateInfo(
            "risk-acknowledged",
            "00-preflight",
            "approval",
            "The operator acknowledges the risk and the change ticket.",
        )
    ]
    if params.dry_run:
        return gates
    gates.append(
        GateInfo(
            "remove-device",
            "01-remove-device",
            "approval",
            f"Remove the root MFA device by method {params.method}.",
        )
    )
    if params.method == "console":
        gates.append(
            GateInfo(
                "device-removed-in-console",
                "01-remove-device",
                "console",
                "The operator removed the device in the console.",
            )
        )
    gates.append(
        GateInfo(
            "signed-in-with-email-code",
            "03-first-sign-in",
            "console",
            "Root signed in again (with the e-mailed code if no MFA is left).",
        )
    )
    if params.rebind == "bind":
        gates.append(
            GateInfo(
                "new-device-bound-in-console",
                "04-rebind",
                "console",
                "The operator bound a new MFA device in the console.",
            )
        )
    else:
        gates.append(
            GateInfo(
                "skip-rebind",
                "04-rebind",
                "approval",
                "The operator decides to leave the root user without this MFA "
                "device (AWS's root MFA enforcement warning is recorded).",
            )
        )
    return gates


@dataclass(frozen=True)
class Plan:
    digest: str
    account_id: str
    parameters: dict[str, Any]
    notebooks: dict[str, str]
    library_version: str
    library_sha256: str
    gates: tuple[GateInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "account_id": self.account_id,
            "parameters": self.parameters,
            "notebooks": self.notebooks,
            "library": {"version": self.library_version, "sha256": self.library_sha256},
            "gates": [g.__dict__ for g in self.gates],
        }


def make_plan(params: RunParameters) -> Plan:
    parameters = params.plan_view()
    notebooks = notebook_hashes()
    content: dict[str, Any] = {
        "parameters": parameters,
        "notebooks": notebooks,
        "library": {"version": __version__, "sha256": library_fingerprint()},
        "account_id": params.account_id,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(canonical).hexdigest()
    return Plan(
        digest,
        params.account_id,
        parameters,
        notebooks,
        __version__,
        library_fingerprint(),
        tuple(gates_for(params)),
    )


def describe(plan: Plan) -> str:
    """The text `runbook plan` prints."""
    lines = [
        f"plan digest   {plan.digest}",
        f"account       {plan.account_id}",
        f"method        {plan.parameters['method']}   rebind {plan.parameters['rebind']}   "
        f"dry_run {str(plan.parameters['dry_run']).lower()}   mode {plan.parameters['mode']}",
        f"change ticket {plan.parameters['change_ticket']}",
        f"library       root-mfa-runbook {plan.library_version} ({plan.library_sha256[:12]})",
        "notebooks:",
    ]
    lines += [f"  {step:<20} {sha[:12]}" for step, sha in plan.notebooks.items()]
    lines.append("gates:")
    for gate in plan.gates:
        how = (
            "approved by --approve DIGEST"
            if gate.kind == "approval"
            else f"confirmed by -p confirm=[{gate.name}] after doing it"
        )
        lines.append(f"  {gate.step:<20} {gate.name:<28} {how}")
        lines.append(f"  {'':<20} {gate.description}")
    lines.append(f"approve with: runbook run ... --approve {plan.digest}")
    return "\n".join(lines)
