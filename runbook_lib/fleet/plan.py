"""``runbook fleet plan``: the ``runbook run`` parameters files a fleet audit calls for.

One file per planned run (a finding whose remediation is this runbook: :attr:`Finding.runbook`),
from a fleet record that verifies (chain, files, ledger, seal signature: the files derive from
evidence, so evidence nobody can vouch for plans nothing). Each file is the finding's
parameters (account, method, device, rebind, region) plus what the operator gives once for all
(``change_ticket``, profiles, keys; the audit's management profile, endpoint and keys by
default) and ``-p`` overrides, and is checked with the run's own validation
(:func:`runbook_lib.params.validate`) before anything is written: ``runbook plan -f FILE`` takes
it as it is. The files are new (an existing one is never overwritten) and owner-only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ParameterError, RunRefused
from ..params import validate
from ..record.run import RunRecord
from ..record.verify import verify
from .audit import KIND, judged_rows

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def planned_runs(run_dir: Path, allowed_signers: Path | None = None) -> list[dict[str, Any]]:
    """Every planned run of a verified fleet audit, in account order: the finding's rule and
    detail with the run's parameters."""
    run_dir = Path(run_dir)
    report = verify(run_dir, allowed_signers)
    if not report.ok:
        raise RunRefused(
            f"{run_dir} does not verify, so nothing is planned from it:\n  - "
            + "\n  - ".join(report.problems)
        )
    record = RunRecord.open(run_dir)
    if record.created_info().get("kind") != KIND:
        raise RunRefused(f"{run_dir} is not a fleet audit (runbook fleet audit makes one)")
    out = []
    for _, judgement in judged_rows(record):
        for finding in judgement.findings:
            if finding.runbook:
                out.append({"rule": finding.rule.id, "detail": finding.detail, **finding.runbook})
    return out


def write_plans(
    run_dir: Path,
    out_dir: Path,
    change_ticket: str,
    overrides: dict[str, Any] | None = None,
    allowed_signers: Path | None = None,
) -> list[Path]:
    """Write the parameters files into ``out_dir`` (made 0700 if missing); return their paths.
    ParameterError listing every file's problems, and nothing written, when any would not
    validate."""
    record = RunRecord.open(Path(run_dir))
    audit_params = record.created_info().get("parameters") or {}
    runs = planned_runs(run_dir, allowed_signers)
    shared: dict[str, Any] = {
        "change_ticket": change_ticket,
        "management_profile": audit_params.get("management_profile"),
        "endpoint_url": audit_params.get("endpoint_url"),
        "operator_key": audit_params.get("operator_key"),
        "allowed_signers": audit_params.get("allowed_signers"),
    }
    shared.update(overrides or {})
    files: list[tuple[Path, str]] = []
    problems: list[str] = []
    out_dir = Path(out_dir)
    for run in runs:
        params = {k: v for k, v in run.items() if k not in ("rule", "detail")}
        raw = {**params, **{k: v for k, v in shared.items() if v is not None}}
        if "profile" in raw and isinstance(raw["profile"], str):
            raw["profile"] = raw["profile"].replace("{account_id}", str(params["account_id"]))
        name = _SAFE.sub("-", f"{params['account_id']}-{str(params['device_serial'])[-24:]}")
        path = out_dir / f"{name.strip('-')}.yml"
        try:
            validate(raw)
        except ParameterError as err:
            problems += [f"{path.name}: {p}" for p in err.problems]
            continue
        if os.path.lexists(path):
            problems.append(f"{path} exists; give an empty --out directory (nothing is replaced)")
            continue
        head = (
            f"# Planned by `runbook fleet plan` from fleet audit {record.run_id}\n"
            f"# finding: {run['rule']}: {' '.join(str(run['detail']).split())}\n"
            "# Review, then: runbook plan -f THIS_FILE (approvers sign the plan file it writes)\n"
        )
        files.append((path, head + yaml.safe_dump(raw, sort_keys=False)))
    if problems:
        raise ParameterError(problems)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path, text in files:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    return [path for path, _ in files]
