"""The plan of a run and its digest: what a signed approval is bound to.

The digest is SHA-256 over a canonical JSON of the plan dict's :data:`DIGEST_COVERS` keys: the
parameters (less the approvals, the console confirmations and the run directory), the SHA-256
of every step notebook, the library version and a hash of its source, the installed
distributions and their versions, the target account, the plan's own **identity** (a random
id, when it was issued and when it expires) and its **trust** (:func:`trust_for`: the
allowed_signers file's sha256, the operator's principal and key, the approval policy). Change
any of them and an approval given for the old plan no longer matches: it is refused before the
run is created (:mod:`runbook_lib.approval` recomputes the same digest from a plan file).

The identity makes an approval single-use: two plans with the same parameters have different
digests, so an approval names one plan, and the run that consumes it (``runbook_lib.lease``)
is the only one it approves. Re-planning after an abandoned run gives a new plan, which needs a
new approval. A plan expires (24 h by default): an approval is not a standing permission.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .data import FOLDERS, notebooks_dir
from .errors import ParameterError, SigningError
from .params import RunParameters
from .procedure.vocabulary import Gate
from .record.signing import (
    SEAL_NAMESPACE,
    Signer,
    load_key,
    principals_for,
    read_allowed_signers,
)

DEFAULT_VALIDITY = dt.timedelta(hours=24)
#: the keys of a plan's dict its digest is computed over (runbook_lib.approval recomputes it)
DIGEST_COVERS = (
    "parameters",
    "notebooks",
    "library",
    "dependencies",
    "account_id",
    "identity",
    "trust",
)

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


def notebook_path(step: str) -> Path:
    return notebooks_dir() / f"{step}.ipynb"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_fingerprint() -> str:
    """SHA-256 over the library's Python sources (``runbook_lib/**/*.py``: names and contents,
    sorted); not the sandbox's or the demo's (other packages: they are not what a run
    executes), nor the data packages' (a wheel has ``_notebooks/__init__.py`` where an editable
    install has none; the notebooks have their own hashes). Not cached: a long-lived process
    must see the library it would run now."""
    digest = hashlib.sha256()
    data = {name.rpartition(".")[2] for name in FOLDERS}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR)
        if relative.parts[0] in data:
            continue
        digest.update(str(relative).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def installed_distributions() -> list[str]:
    """``name==version`` of every distribution installed in the interpreter's site-packages
    (the user's site-packages left out: the kernel never imports from it), read from the
    ``*.dist-info`` / ``*.egg-info`` directory names: cheap, no metadata parse."""
    import site
    import sys

    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    found: set[str] = set()
    for entry in sys.path:
        if not entry.endswith(("site-packages", "dist-packages")) or entry == user_site:
            continue
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        for name in names:
            for suffix in (".dist-info", ".egg-info"):
                if name.endswith(suffix):
                    dist, _, version = name.removesuffix(suffix).partition("-")
                    found.add(f"{dist.lower().replace('_', '-')}=={version}")
    return sorted(found)


def dependencies_fingerprint() -> str:
    """SHA-256 over the installed distributions and their versions: the plan covers what the
    kernel imports besides the library itself."""
    return hashlib.sha256("\n".join(installed_distributions()).encode()).hexdigest()


def notebook_hashes() -> dict[str, str]:
    return {step: sha256_file(notebook_path(step)) for step, _ in STEPS}


@dataclass(frozen=True)
class GateInfo:
    name: str
    step: str
    kind: str  # "approval" (a decision) or "console" (a human step in the console)
    description: str


def gates_for(params: RunParameters) -> list[GateInfo]:
    """The gates this plan will meet, in order. A dry run meets none: it changes nothing, so
    there is nothing to approve (and no dry-run digest that could be mistaken for a change's)."""
    if params.dry_run:
        return []
    gates = [
        GateInfo(
            Gate.RISK,
            "00-preflight",
            "approval",
            "The operator acknowledges the risk and the change ticket.",
        ),
        GateInfo(
            Gate.REMOVE,
            "01-remove-device",
            "approval",
            f"Remove the root MFA device by method {params.method}.",
        ),
    ]
    if params.method == "console":
        gates.append(
            GateInfo(
                Gate.REMOVED_IN_CONSOLE,
                "01-remove-device",
                "console",
                "The operator removed the device in the console (claimed, then verified).",
            )
        )
    gates.append(
        GateInfo(
            Gate.SIGNED_IN,
            "03-first-sign-in",
            "console",
            "Root signed in again (with the e-mailed code if no MFA is left).",
        )
    )
    if params.rebind == "bind":
        gates.append(
            GateInfo(
                Gate.BOUND_IN_CONSOLE,
                "04-rebind",
                "console",
                "The operator bound a new MFA device in the console (claimed, then verified).",
            )
        )
    else:
        gates.append(
            GateInfo(
                Gate.SKIP_REBIND,
                "04-rebind",
                "approval",
                "The operator decides to leave the root user without this MFA "
                "device (AWS's root MFA enforcement warning is recorded).",
            )
        )
    return gates


@dataclass(frozen=True)
class PlanIdentity:
    """What makes a plan one plan: a random id, when it was issued and until when it holds."""

    plan_id: str
    issued_at: str
    expires_at: str

    @classmethod
    def new(cls, valid_for: dt.timedelta = DEFAULT_VALIDITY) -> PlanIdentity:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return cls(secrets.token_hex(8), now.isoformat(), (now + valid_for).isoformat())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanIdentity:
        return cls(str(data["plan_id"]), str(data["issued_at"]), str(data["expires_at"]))

    def to_dict(self) -> dict[str, str]:
        return {"plan_id": self.plan_id, "issued_at": self.issued_at, "expires_at": self.expires_at}

    def expired(self, now: dt.datetime | None = None) -> bool:
        now = now or dt.datetime.now(dt.UTC)
        return now >= dt.datetime.fromisoformat(self.expires_at)


def trust_for(params: RunParameters) -> dict[str, Any]:
    """Who the plan trusts and who performs it, for the digest: the allowed_signers file's
    sha256, the operator (the principal allowed_signers names for ``operator_key``, and its
    fingerprint), how many approvals it needs and whether the operator may approve.

    ParameterError (what to do) when the key or the file is missing, or the operator's key is
    not in allowed_signers for sealing: refused before anything is done."""
    return {
        **operator_trust(params.operator_key, params.allowed_signers),
        "approvals_required": params.approvals_required,
        "self_approval": params.self_approval,
    }


def operator_trust(operator_key: str | None, allowed_signers: str | None) -> dict[str, Any]:
    """The allowed_signers file's sha256 and the operator it names for ``operator_key`` (the
    one principal listed for the key in the seal namespace): what a run's plan and a fleet
    audit record of who seals. ParameterError (what to do) otherwise."""
    problems = []
    if not operator_key:
        problems.append(
            "operator_key is required: your SSH key, which signs the run's seals (e.g. "
            "operator_key: ~/.ssh/id_ed25519; a .pub file if the key is in ssh-agent)"
        )
    if not allowed_signers:
        problems.append(
            "allowed_signers is required: the file (OpenSSH allowed_signers format, as git uses) "
            "naming who may approve and seal; get it from your security team"
        )
    if problems:
        raise ParameterError(problems)
    assert operator_key and allowed_signers
    path = Path(allowed_signers).expanduser()
    try:
        key = load_key(operator_key)
        signers = read_allowed_signers(path)
    except SigningError as err:
        raise ParameterError([str(err)]) from err
    names = principals_for(signers, key.public_key, SEAL_NAMESPACE)
    if len(names) != 1:
        why = "does not list" if not names else f"lists several principals ({', '.join(names)}) for"
        raise ParameterError(
            [
                f"allowed_signers {path} {why} your key {key.fingerprint} ({operator_key}) "
                f"in namespace {SEAL_NAMESPACE}: ask your security team to add exactly one line "
                "for you (the operator signs every seal)"
            ]
        )
    return {
        "allowed_signers_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "operator": {
            "principal": names[0],
            "fingerprint": key.fingerprint,
            "key_type": key.key_type,
        },
    }


def operator_signer(params: RunParameters, trust: dict[str, Any]) -> Signer:
    """The operator's seal signer, as the plan named it."""
    assert params.operator_key
    key = load_key(params.operator_key)
    if key.fingerprint != trust["operator"]["fingerprint"]:
        raise ParameterError(
            [
                f"operator_key {params.operator_key} is key {key.fingerprint}, but the plan's "
                f"operator signs with {trust['operator']['fingerprint']}: use the plan's key"
            ]
        )
    return Signer(key, str(trust["operator"]["principal"]))


@dataclass(frozen=True)
class Plan:
    digest: str
    account_id: str
    parameters: dict[str, Any]
    notebooks: dict[str, str]
    library_version: str
    library_sha256: str
    gates: tuple[GateInfo, ...]
    identity: PlanIdentity
    dependencies_sha256: str = ""
    trust: dict[str, Any] | None = None

    @property
    def dry_run(self) -> bool:
        return bool(self.parameters.get("dry_run"))

    def gate(self, name: str) -> GateInfo | None:
        return next((g for g in self.gates if g.name == name), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """The plan :meth:`to_dict` describes (a plan file's JSON, a run's first event)."""
        return cls(
            str(data["digest"]),
            str(data["account_id"]),
            dict(data["parameters"]),
            {str(k): str(v) for k, v in dict(data["notebooks"]).items()},
            str(data["library"]["version"]),
            str(data["library"]["sha256"]),
            tuple(GateInfo(**g) for g in data["gates"]),
            PlanIdentity.from_dict(data["identity"]),
            str(data["dependencies"]["sha256"]),
            dict(data["trust"]) if isinstance(data.get("trust"), dict) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "identity": self.identity.to_dict(),
            "account_id": self.account_id,
            "parameters": self.parameters,
            "notebooks": self.notebooks,
            "library": {"version": self.library_version, "sha256": self.library_sha256},
            "dependencies": {"sha256": self.dependencies_sha256},
            "trust": self.trust,
            "gates": [g.__dict__ for g in self.gates],
            "digest_covers": list(DIGEST_COVERS),
        }


def make_plan(params: RunParameters, identity: PlanIdentity | None = None) -> Plan:
    """The plan for ``params``; a new identity unless ``identity`` is given (a run's own plan,
    recomputed by its steps and by resume, keeps the identity it was created with)."""
    identity = identity or PlanIdentity.new()
    trust = trust_for(params)
    parameters = params.plan_view()
    notebooks = notebook_hashes()
    library = library_fingerprint()
    dependencies = dependencies_fingerprint()
    content: dict[str, Any] = {
        "parameters": parameters,
        "notebooks": notebooks,
        "library": {"version": __version__, "sha256": library},
        "dependencies": {"sha256": dependencies},
        "account_id": params.account_id,
        "identity": identity.to_dict(),
        "trust": trust,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(canonical).hexdigest()
    return Plan(
        digest,
        params.account_id,
        parameters,
        notebooks,
        __version__,
        library,
        tuple(gates_for(params)),
        identity,
        dependencies,
        trust,
    )


def describe(plan: Plan) -> str:
    """The text `runbook plan` prints."""
    p = plan.parameters
    lines = []
    if plan.dry_run:
        lines.append(
            "DRY RUN: this plan looks and records; it changes nothing and needs no approval."
        )
    lines += [
        f"plan digest   {plan.digest}",
        f"plan id       {plan.identity.plan_id}   issued {plan.identity.issued_at}   "
        f"expires {plan.identity.expires_at}",
        f"account       {plan.account_id}",
        f"method        {p['method']}   rebind {p['rebind']}   "
        f"dry_run {str(p['dry_run']).lower()}   mode {p['mode']}",
        f"change ticket {p['change_ticket']}",
        *_trust_lines(plan),
        f"library       root-mfa-runbook {plan.library_version} ({plan.library_sha256[:12]})",
        f"dependencies  {plan.dependencies_sha256[:12]} (the installed distributions and versions)",
        "notebooks:",
    ]
    lines += [f"  {step:<20} {sha[:12]}" for step, sha in plan.notebooks.items()]
    lines.append("gates:" if plan.gates else "gates:        none (dry run)")
    for gate in plan.gates:
        how = (
            "approved by the signed approvals of this plan"
            if gate.kind == "approval"
            else f"confirmed by -p confirm=[{gate.name}] after doing it"
        )
        lines.append(f"  {gate.step:<20} {gate.name:<28} {how}")
        lines.append(f"  {'':<20} {gate.description}")
    if plan.dry_run:
        lines.append("run with:     runbook run -f FILE   (a dry run needs no approval)")
    else:
        lines.append(
            "approve with: runbook approve PLAN_FILE --key KEY   (by a reviewer; then "
            "runbook run ... --approval FILE for each; one run only, until the plan expires)"
        )
    return "\n".join(lines)


def _trust_lines(plan: Plan) -> list[str]:
    trust = plan.trust
    if not trust:
        return []
    operator = trust["operator"]
    need = trust["approvals_required"]
    policy = f"{need} signed approval{'s' if need > 1 else ''} by " + (
        "anyone in allowed_signers, the operator included: SELF-APPROVAL ALLOWED"
        if trust["self_approval"]
        else "people other than the operator (four eyes)"
    )
    return [
        f"operator      {operator['principal']} ({operator['key_type']} {operator['fingerprint']})",
        f"approvals     {'none (dry run)' if plan.dry_run else policy}",
        f"trust         allowed_signers sha256 {trust['allowed_signers_sha256']}",
    ]
