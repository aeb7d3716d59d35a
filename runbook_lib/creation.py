"""Creating a run, and its run.json: what ``runbook run``, ``runbook lab`` and a step notebook
opened without a run (00-preflight) share.

:func:`create_run` finds the plan the approval files name (``runbook plan`` stored it under its
digest) or makes a new one, verifies the signed approvals against it (refused before anything
is created), takes the account's lease, consumes the approval, and creates the record with its
trust root, plan file and approvals; nothing is left behind when any of it is refused.
:func:`project` writes run.json from the events: the one place run.json changes after
creation. This module sits below both the orchestrator (:mod:`runbook_lib.runner`,
:mod:`runbook_lib.lab`) and the step context (:mod:`runbook_lib.procedure.context`), which
import it, never each other the wrong way round.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import socket
from pathlib import Path
from typing import Any

from . import lease
from .approval import (
    ApprovalSet,
    Policy,
    approval_digest,
    policy_event,
    render_plan_file,
    verify_approvals,
)
from .aws.privileged import credential_fingerprints
from .aws.session import check_profile
from .errors import ParameterError, RunRefused
from .params import RunParameters
from .plan import STEPS, Plan, PlanIdentity, make_plan
from .procedure.facts import RunFacts
from .procedure.lifecycle import fold
from .procedure.vocabulary import Event
from .record.layout import TRUST_FILE
from .record.run import RunRecord, new_run_id

__all__ = [
    "check_profiles",
    "create_run",
    "current_digest",
    "new_run_info",
    "operator_identity",
    "plan_to_run",
    "project",
    "record_approvals",
    "verified_approvals",
]

ORDER = [name for name, _ in STEPS]


def operator_identity(caller_arn: str | None = None) -> dict[str, str | None]:
    """Who is acting: the caller's ARN when known, the OS user and the host."""
    return {"caller_arn": caller_arn, "os_user": getpass.getuser(), "host": socket.gethostname()}


def new_run_info(params: RunParameters, plan: Plan) -> dict[str, Any]:
    """What a run is created with (the first event holds it; run.json starts as its copy)."""
    from .versions import versions

    return {
        "parameters": params.to_dict(),
        "plan_digest": plan.digest,
        "plan": plan.to_dict(),
        "operator": operator_identity(),
        "versions": versions(),
    }


def plan_to_run(params: RunParameters) -> tuple[Plan, bool]:
    """The plan a new run executes, and whether its ``approvals`` name it: the stored plan
    their digest names when these parameters make exactly that plan, else a new plan (the
    approvals are then refused as another plan's). Nothing is stored here: create_run stores
    the plan once the approvals are verified."""
    check_profiles(params)
    digest = approval_digest([Path(f) for f in params.approvals]) if params.approvals else None
    if digest:
        stored = lease.load_plan(digest)
        if stored is not None and stored.get("identity"):
            plan = make_plan(params, PlanIdentity.from_dict(stored["identity"]))
            if plan.digest == digest:
                if plan.identity.expired():
                    raise RunRefused(
                        f"Plan {plan.digest[:12]}… expired at {plan.identity.expires_at}: an "
                        "approval is not a standing permission. Plan again (runbook plan) and "
                        "have the new plan approved. Nothing was changed."
                    )
                return plan, True
    return make_plan(params), False


def check_profiles(params: RunParameters) -> None:
    """Every AWS profile the run names (``profile``, or ``AWS_PROFILE`` when it names none;
    ``management_profile``) is configured here: else a usage error naming it and how to
    configure it, before any plan, lease or run directory exists. Resolves no credentials."""
    problems: list[str] = []
    for name in dict.fromkeys((params.profile, params.management_profile)):
        if name or name == params.profile:
            try:
                check_profile(name)
            except ParameterError as error:
                problems += error.problems
    if problems:
        raise ParameterError(problems)


def create_run(params: RunParameters, runs_dir: Path, plan: Plan | None = None) -> RunRecord:
    """Verify the approvals, take the account's lease, consume the approval, create the
    record with its trust root and approvals. Nothing is left behind when any of it is
    refused."""
    if plan is None:
        plan, _ = plan_to_run(params)
    verified = verified_approvals(params, plan)  # ApprovalRefused: nothing done yet
    trust = _trust_bytes(params, plan)
    lease.save_plan(plan.to_dict())
    run_id = new_run_id()
    runs_dir = Path(runs_dir).absolute()
    held = lease.acquire(params.account_id, run_id, runs_dir / run_id)
    try:
        consumed = lease.consume_approval(plan.digest, run_id) if verified else None
        try:
            record = RunRecord.create(runs_dir, new_run_info(params, plan), run_id=run_id)
        except BaseException:
            if consumed is not None:
                lease.give_back_approval(plan.digest, run_id)
            raise
    except BaseException:
        lease.release(params.account_id, run_id)
        raise
    record.append(Event.LEASE_ACQUIRED, account_id=params.account_id, since=held.get("since"))
    # the trust root as the plan hashed it: verify() falls back to it (record.TRUST_FILE)
    record.write_text(TRUST_FILE, trust.decode("utf-8"), once=True)
    if verified is not None:
        record_approvals(record, plan, verified)
    if consumed is not None:
        record.append(Event.APPROVAL_CONSUMED, digest=plan.digest, at=consumed.get("at"))
    record.append("credentials.fingerprinted", **_fingerprints(params))
    project(record)
    return record


def _policy(plan: Plan) -> Policy:
    trust = plan.trust or {}
    operator = trust.get("operator") or {}
    return Policy(
        required=int(trust.get("approvals_required", 1)),
        self_approval=bool(trust.get("self_approval")),
        operator_principal=str(operator.get("principal", "")),
        operator_fingerprint=str(operator.get("fingerprint", "")),
    )


def verified_approvals(params: RunParameters, plan: Plan) -> ApprovalSet | None:
    """The approval files checked against the plan (signatures, allowed_signers, policy, the
    plan file each approver signed); None when none were given. ApprovalRefused otherwise."""
    if not params.approvals:
        return None
    if plan.dry_run:
        raise ParameterError(
            [
                "approvals: a dry run needs no approval (it changes nothing); drop them, or plan "
                "the real change with dry_run: false and have that plan approved"
            ]
        )
    assert params.allowed_signers
    return verify_approvals(
        [Path(f).expanduser() for f in params.approvals],
        plan.digest,
        _policy(plan),
        Path(params.allowed_signers).expanduser(),
        plan_file_sha256=hashlib.sha256(render_plan_file(plan)).hexdigest(),
        issued_at=plan.identity.issued_at,
    )


def _trust_bytes(params: RunParameters, plan: Plan) -> bytes:
    """The allowed_signers file, as the plan hashed it (else refused: it changed since)."""
    assert params.allowed_signers
    path = Path(params.allowed_signers).expanduser()
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != (plan.trust or {}).get("allowed_signers_sha256"):
        raise RunRefused(
            f"allowed_signers {path} changed since the plan was made (its sha256 is in the "
            "plan); plan again and have the new plan approved. Nothing was changed."
        )
    return data


def record_approvals(record: RunRecord, plan: Plan, verified: ApprovalSet) -> None:
    """Keep the plan file and each approval (statement + signature) in the record, then say
    what was verified: one ``approval.verified`` each, then the ``approval.policy`` verdict."""
    facts = RunFacts(record.events())
    if not (record.path / "plan.txt").exists():
        record.write_text("plan.txt", render_plan_file(plan).decode("utf-8"), once=True)
    known = {
        e["data"].get("key_fingerprint")
        for e in facts.of(Event.APPROVAL_VERIFIED)
        if e["data"].get("plan_digest") == plan.digest
    }
    n = len(facts.of(Event.APPROVAL_VERIFIED))
    for approval in verified.approvals:
        if approval.key_fingerprint in known:
            continue
        n += 1
        name = re.sub(r"[^A-Za-z0-9@._-]", "_", approval.principal)[:64]
        base = f"approvals/{n:02d}-{name}.txt"
        record.write_text(base, approval.statement.decode("utf-8"), once=True)
        record.write_text(f"{base}.sig", approval.signature.decode("ascii"), once=True)
        record.append(
            Event.APPROVAL_VERIFIED,
            statement=base,
            signature=f"{base}.sig",
            file=str(approval.path),
            **approval.to_dict(),
        )
    trust = plan.trust or {}
    record.append(
        Event.APPROVAL_POLICY,
        **policy_event(
            verified, _policy(plan), plan.digest, str(trust.get("allowed_signers_sha256"))
        ),
    )


def _fingerprints(params: RunParameters) -> dict[str, Any]:
    """The run's profiles and the sha256 of their credentials (never the credentials): the
    record then finds those credentials wherever a notebook prints them, and redacts them."""
    profiles = {"profile": params.profile, "management_profile": params.management_profile}
    found = {
        which: credential_fingerprints(name, params.endpoint_url)
        for which, name in profiles.items()
        if name or which == "profile"  # no profile: the default chain
    }
    return {
        "profiles": {which: profiles[which] for which in found},
        "fingerprinted": {which: len(fps) for which, fps in found.items()},
        "secret_fingerprints": sorted({fp for fps in found.values() for fp in fps}),
    }


def project(record: RunRecord, executing: bool = False, **extra: Any) -> dict[str, Any]:
    """Write run.json from the events: the one place run.json changes after creation."""
    events = record.events()
    facts = RunFacts(events)
    view = fold(events, ORDER).view(executing)
    return record.update_run(
        **view,
        parameters=facts.parameters(),
        plan_digest=current_digest(facts),
        operator=facts.operator,
        device=facts.device,
        **extra,
    )


def current_digest(facts: RunFacts) -> str | None:
    resumed = facts.last(Event.RUN_RESUMED)
    if resumed and resumed["data"].get("plan_digest"):
        return str(resumed["data"]["plan_digest"])
    return facts.created.get("plan_digest")
