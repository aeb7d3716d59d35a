"""What ``notebooks/fleet/audit.ipynb`` calls: the same audit as ``runbook fleet audit``, from
the notebook's parameters, and a summary an engineer reads in JupyterLab (or in the executed
notebook papermill writes). Nothing here prints a secret: counts, ids, paths and rule names."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..record.run import RunRecord
from .audit import AuditResult, Progress, audit, judged_rows, resume
from .params import FLEET_NAMES, validate_fleet


def run(values: dict[str, Any], resume_run: str = "") -> AuditResult:
    """Audit (or, with ``resume_run``, go on with an interrupted audit) from the notebook's
    namespace: the fleet parameters are read from ``values`` (``globals()``), every other
    name ignored."""
    from tqdm.auto import tqdm

    bar = tqdm(unit="acct", desc="accounts")

    def update(progress: Progress) -> None:
        bar.total = progress.total
        bar.n = progress.done
        bar.set_postfix(failed=progress.failed, unreachable=progress.unreachable)
        bar.refresh()

    try:
        if resume_run:
            workers = values.get("workers")
            return resume(Path(resume_run), workers=workers, on_progress=update)
        raw = {k: values[k] for k in FLEET_NAMES if k in values}
        raw = {k: v for k, v in raw.items() if v not in (None, "", [], ())}
        params = validate_fleet(raw)
        return audit(params, Path(params.run_dir or "runs"), on_progress=update)
    finally:
        bar.close()


def summary(result: AuditResult) -> str:
    """Markdown: the verdict counts, the MFA kinds, the rules that fired, the planned runs."""
    record = RunRecord.open(result.path)
    kinds: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    planned = []
    for creds, judgement in judged_rows(record):
        if creds.reach == "probed":
            found = sorted({d.kind for d in creds.mfa_devices})
            kinds["none" if not found else "+".join(found)] += 1
        for finding in judgement.findings:
            rules[finding.rule.id] += 1
            if finding.runbook:
                planned.append((creds.account_id, finding.rule.id, finding.runbook))
    lines = [
        f"**Fleet audit {result.record.run_id}**: {result.accounts} accounts, sealed; "
        f"the record is `{result.path}`, its report `{result.path / 'report.html'}`.",
        "",
        "| verdict | accounts |",
        "|---|---|",
        *(f"| {verdict} | {n} |" for verdict, n in result.counts.items()),
        "",
        "| root MFA (probed accounts) | accounts |",
        "|---|---|",
        *(f"| {kind} | {n} |" for kind, n in sorted(kinds.items())),
        "",
        "| rule | findings |",
        "|---|---|",
        *(f"| `{rule}` | {n} |" for rule, n in sorted(rules.items())),
        "",
        f"**Planned runbook runs: {len(planned)}**"
        + (
            f" (write them with `runbook fleet plan {result.path} --out plans "
            "--change-ticket CHG-...`)"
            if planned
            else ""
        ),
    ]
    lines += [
        f"- {acct}: `{rule}`, device `{run['device_serial']}`" for acct, rule, run in planned[:50]
    ]
    if len(planned) > 50:
        lines.append(f"- ... and {len(planned) - 50} more (see findings.csv)")
    return "\n".join(lines)
