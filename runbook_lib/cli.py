"""The ``runbook`` command line.

  runbook plan -f FILE [-p k=v ...] [--out F] | --run RUN_DIR print, store and write a plan file
  runbook approve PLAN_FILE --key KEY [--as P] [--out F]     a reviewer signs an approval of it
  runbook run -f FILE [-p k=v ...] [--approval F ...] [--runs-dir DIR]   execute the steps
  runbook resume RUN_DIR [-p k=v ...] [--approval F ...]     continue a halted/failed run
  runbook runs [--runs-dir DIR]                              list runs and their status
  runbook verify RUN_DIR [--against s3://BUCKET/PREFIX]     check a record (and its archive)
  runbook seal RUN_DIR                                       seal a run whose every step succeeded
  runbook abandon RUN_DIR --reason TEXT                      end a run on purpose; frees the account
  runbook lab -f FILE [-p k=v ...] [--port N]                the same run, in JupyterLab
  runbook archive RUN_DIR s3://BUCKET/PREFIX --retain-days N upload with S3 Object Lock, once
  runbook fleet audit -f FLEET.yml | --resume RUN_DIR         audit every account's root credentials
  runbook fleet plan RUN_DIR --out DIR --change-ticket T     the runbook runs the audit calls for
  runbook demo [--scenario S] [--method M] [--runs-dir DIR]  the whole procedure on the sandbox
  runbook sandbox [--scenario NAME] [--port N] [--list]      serve the local AWS sandbox

Exit codes: 0 succeeded, 1 failed (or refused), 2 bad usage or parameters, 3 halted at a gate.

A usage error is one line on stderr (argparse's included: no usage block; several parameter
problems are listed one per line under their count), exit 2, and nothing is created: no run
directory, lease or stored plan. A path given as a run must be a run record (:func:`_record_dir`:
a typo or a runs dir is a usage error; a damaged record is a finding, exit 1); ``--approval``,
plan and key files must exist; a plug-in that is not installed (:class:`PluginMissing`) is a
usage error too. Every subcommand has a description and every option a help text.

Every line printed goes through :mod:`runbook_lib.terminal`: control characters from
parameters, paths or AWS messages are escaped, never sent to the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .errors import ParameterError, RunbookError
from .plugins import PluginMissing
from .schema import help_epilog
from .terminal import EscapingWriter, escape_controls, out, quote
from .terminal import err as err_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_HALTED = 0, 1, 2, 3
#: runbook_lib.fleet.params.FLEET_NAMES, written out so that --help imports no AWS code (a
#: test keeps them equal)
FLEET_PARAMETERS = (
    "management_profile",
    "operator_key",
    "allowed_signers",
    "region",
    "endpoint_url",
    "accounts",
    "organizational_units",
    "workers",
    "processes",
    "max_device_age_days",
    "run_dir",
)


def _err(message: str) -> None:
    err_line(f"runbook: {message}")


def _progress(line: str) -> None:
    out(line, flush=True)


class _Parser(argparse.ArgumentParser):
    """argparse, whose messages quote argv as it came (``unrecognized arguments: ...``):
    escaped like every other line. A usage error is one line (no usage block): what is wrong,
    and where the help is."""

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        super().exit(status, escape_controls(message) if message else message)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}; see {self.prog} --help\n")


def _usage(message: str) -> NoReturn:
    """A usage error (exit 2): ``message`` says what is wrong and what to do."""
    raise ParameterError([message])


# what only a run record holds: a directory with none of them is not one (a typo, a runs dir)
_RECORD_FILES = (
    "events.jsonl",
    "run.json",
    "run.json.lock",
    "manifest.json",
    "SHA256SUMS",
    "SHA256SUMS.sig",
    "ledger-entries.jsonl",
    "report.html",
    "notebooks",
    "snapshots",
    "trust",
)


def _runs_dir(given: str) -> Path:
    """``--runs-dir``: a directory, or one to be made (else a usage error)."""
    path = Path(given)
    if os.path.lexists(path) and not path.is_dir():
        _usage(
            f"--runs-dir {quote(given)} is not a directory; give the directory that holds the runs "
            "(made if missing)"
        )
    return path


def _record_dir(given: str) -> Path:
    """``given`` as a run directory, or a usage error saying what it is instead. A directory
    holding any of a record's own files is a record, and so is a symbolic link (damaged or
    refused, that is a finding: exit 1, said by the command itself)."""
    path = Path(given)
    where = "give a run directory (runbook runs lists them)"
    if path.is_symlink():  # the record refuses a link and says why (a finding, not a typo)
        return path
    if not path.exists():
        _usage(f"{quote(given)} is not a run record: it does not exist; {where}")
    if not path.is_dir():
        _usage(f"{quote(given)} is not a run record: it is not a directory; {where}")
    if any(os.path.lexists(path / name) for name in _RECORD_FILES):
        return path
    if (path / "ledger.jsonl").exists():
        _usage(
            f"{quote(given)} is a runs directory, not a run record: give one of its runs "
            f"(runbook runs --runs-dir {quote(given)} lists them)"
        )
    _usage(f"{quote(given)} is not a run record: no events.jsonl; {where}")


class _ParametersFormatter(argparse.HelpFormatter):
    """argparse's formatter, but the epilog (the schema's parameter list) keeps its lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text == help_epilog():
            return text
        return super()._fill_text(text, width, indent)


def _raw_params(args: argparse.Namespace) -> dict[str, Any]:
    raw = _file_and_overrides(args)
    _refuse_digest_approval(args)
    if getattr(args, "approval", None):
        raw["approvals"] = _approval_files(args.approval)
    return raw


def _file_and_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``-f FILE`` then ``-p`` overrides; the file's problems and the overrides' are reported
    together (a run's parameters, a fleet audit's)."""
    from .params import load_file, parse_overrides

    raw: dict[str, Any] = {}
    problems: list[str] = []
    try:
        raw = load_file(Path(args.file)) if getattr(args, "file", None) else {}
    except ParameterError as error:
        problems += error.problems
    try:
        raw.update(parse_overrides(args.param or []))
    except ParameterError as error:
        problems += error.problems
    if problems:
        raise ParameterError(problems)
    return raw


def _approval_files(given: list[str]) -> list[str]:
    """The ``--approval`` paths, each an existing file (else a usage error)."""
    for name in given:
        if not os.path.isfile(name):
            _usage(
                f"--approval {quote(name)}: no such file; give the approval file the reviewer "
                "sent you (runbook approve PLAN_FILE writes it)"
            )
    return list(given)


def _approval_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--approval",
        action="append",
        metavar="FILE",
        help="an approval file a reviewer signed (runbook approve PLAN_FILE); repeat for each",
    )
    parser.add_argument("--approve", metavar="DIGEST", help=argparse.SUPPRESS)


def _refuse_digest_approval(args: argparse.Namespace) -> None:
    if getattr(args, "approve", None):
        raise ParameterError(
            [
                "--approve DIGEST is gone: an approval is now a file a reviewer signs with their "
                "SSH key (runbook plan writes the plan file; they run runbook approve PLAN_FILE "
                "--key KEY); pass it with --approval FILE"
            ]
        )


def _cmd_plan(args: argparse.Namespace) -> int:
    from .approval import write_plan_file
    from .plan import describe
    from .runner import describe_run, plan_for, plan_of_run

    if args.run:
        if args.file or args.param:
            _err("plan: --run takes no -f/-p (a run keeps its parameters)")
            return EXIT_USAGE
        out(describe_run(_record_dir(args.run)))
        if not args.out:
            return EXIT_OK
        plan = plan_of_run(Path(args.run))  # its plan file, for a reviewer (runbook approve)
    else:
        plan = None
    if not args.file and plan is None:
        _err("plan: -f FILE is required (or --run RUN_DIR)")
        return EXIT_USAGE
    if args.out and os.path.lexists(args.out):
        _err(
            f"plan: {quote(args.out)} exists; a plan file is never overwritten "
            "(choose another --out)"
        )
        return EXIT_USAGE
    if plan is None:
        _, plan = plan_for(_raw_params(args), save=True)
    target = Path(args.out) if args.out else Path(f"plan-{plan.digest[:12]}.txt")
    try:
        write_plan_file(plan, target)
    except FileExistsError:
        _err(f"plan: {quote(str(target))} exists; a plan file is never overwritten (use --out)")
        return EXIT_USAGE
    except OSError as error:
        _err(f"plan: cannot write the plan file {quote(str(target))} ({error.strerror or error})")
        return EXIT_FAILED
    if not args.run:
        out(describe(plan))
    out("")
    out(f"plan file     {target}")
    if plan.dry_run:
        out("next:         a dry run needs no approval; run it with runbook run -f FILE")
    else:
        out(
            f"next:         send it to a reviewer: runbook approve {target} --key ~/.ssh/id_ed25519"
        )
    return EXIT_OK


def _allowed_signers_for(args: argparse.Namespace, plan: dict[str, Any]) -> Path:
    from .approval import ApprovalError

    if args.allowed_signers:
        return Path(args.allowed_signers).expanduser()
    named = plan.get("parameters", {}).get("allowed_signers")
    if isinstance(named, str) and named:
        path = Path(named).expanduser()
        if path.is_file() and os.access(path, os.R_OK):
            return path
        raise ApprovalError(
            f"approve: the plan's allowed_signers {quote(named)} cannot be read here; pass "
            "--allowed-signers FILE (the file that lists who may approve)"
        )
    raise ApprovalError(
        "approve: the plan names no allowed_signers; pass --allowed-signers FILE (the file "
        "that lists who may approve)"
    )


def _approver_principal(args: argparse.Namespace, key: Any, signers_path: Path) -> str:
    import fnmatch

    from .approval import ApprovalError
    from .record.signing import APPROVAL_NAMESPACE, principals_for, read_allowed_signers

    names = principals_for(read_allowed_signers(signers_path), key.public_key, APPROVAL_NAMESPACE)
    if not names:
        raise ApprovalError(
            f"approve: your key {key.fingerprint} is not listed in {signers_path} for namespace "
            f"{APPROVAL_NAMESPACE}: ask whoever keeps allowed_signers to add it, or use the key "
            "that is listed"
        )
    if args.principal:
        if any(args.principal == n or fnmatch.fnmatchcase(args.principal, n) for n in names):
            return str(args.principal)
        raise ApprovalError(
            f"approve: {signers_path} lists your key {key.fingerprint} for "
            f"{', '.join(names)}, not for {quote(args.principal)}"
        )
    if len(names) > 1 or any(ch in names[0] for ch in "*?"):
        raise ApprovalError(
            f"approve: {signers_path} lists your key for {', '.join(names)}: say which one you "
            "approve as with --as PRINCIPAL"
        )
    return names[0]


def _cmd_approve(args: argparse.Namespace) -> int:
    from .approval import (
        ApprovalError,
        approval_file_name,
        read_plan_file,
        sign_approval,
        split_approval,
        write_new_file,
    )
    from .errors import SigningError
    from .record.signing import APPROVAL_NAMESPACE, load_key, verify

    plan_path = Path(args.plan_file)
    if not plan_path.is_file():
        _usage(
            f"approve: {quote(args.plan_file)}: no such file; give the plan file the operator "
            "sent you (runbook plan writes it)"
        )
    target = Path(args.out) if args.out else None
    if target is not None and os.path.lexists(target):
        _err(f"approve: {quote(str(target))} exists; an approval is never overwritten")
        return EXIT_USAGE
    if not args.yes and not sys.stdin.isatty():
        _err(
            "approve: stdin is not a terminal: type the account id at a terminal, or pass --yes "
            "(you have read the plan file)"
        )
        return EXIT_USAGE
    plan_file = read_plan_file(plan_path)
    plan = plan_file.plan
    if plan.get("parameters", {}).get("dry_run"):
        raise ApprovalError("approve: this is a dry-run plan; a dry run needs no approval")
    try:
        key = load_key(args.key)
    except SigningError as error:  # the key named is not there or not a key: usage
        _usage(f"approve: {error}")
    signers_path = _allowed_signers_for(args, plan)
    principal = _approver_principal(args, key, signers_path)
    trust = plan_file.trust
    found = trust.get("operator")
    operator: dict[str, Any] = found if isinstance(found, dict) else {}
    operator_principal = str(operator.get("principal") or "unknown")
    operator_fp = str(operator.get("fingerprint") or "")
    self_ok = bool(trust.get("self_approval", plan["parameters"].get("self_approval", False)))
    by_operator = principal == operator_principal or key.fingerprint == operator_fp
    if by_operator and not self_ok:
        raise ApprovalError(
            f"approve: you are this plan's operator ({operator_principal}, key "
            f"{operator_fp or key.fingerprint}); under four-eyes someone else approves it"
        )
    target = target or approval_file_name(plan_path, principal)
    if os.path.lexists(target):
        _err(f"approve: {quote(str(target))} exists; an approval is never overwritten (--out)")
        return EXIT_USAGE
    out(plan_file.text)
    out("")
    if by_operator:
        err_line("runbook: warning: SELF-APPROVED: you are the plan's operator (self_approval)")
    if not args.yes:
        sys.stderr.write(
            f"Approve this plan for account {plan_file.account_id} as {principal}? "
            "Type the account id to approve: "
        )
        sys.stderr.flush()
        typed = sys.stdin.readline(64).strip()
        if typed != plan_file.account_id:
            raise ApprovalError(
                f"approve: not approved (typed {quote(typed)}, the plan's account is "
                f"{plan_file.account_id}); nothing was signed"
            )
    approval = sign_approval(plan_file, key, principal, operator_principal)
    verify(*split_approval(approval), principal, APPROVAL_NAMESPACE, signers_path)
    try:
        write_new_file(target, approval)
    except FileExistsError:
        _err(f"approve: {quote(str(target))} exists; an approval is never overwritten (--out)")
        return EXIT_USAGE
    out(approval.decode("utf-8", "replace").rstrip("\n"))
    out("")
    out(f"approval file {target}")
    out(
        "next:         give it to the operator; the run takes it with "
        f"--approval {quote(str(target))}"
    )
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import run

    runs_dir = _runs_dir(args.runs_dir)
    code, run_dir = run(_raw_params(args), runs_dir, progress=_progress)
    if run_dir is not None:
        out(str(run_dir))
    return code


def _cmd_resume(args: argparse.Namespace) -> int:
    from .params import parse_overrides
    from .runner import resume

    run_dir = _record_dir(args.run_dir)
    overrides = parse_overrides(args.param or [])
    _refuse_digest_approval(args)
    if args.approval:
        overrides["approvals"] = _approval_files(args.approval)
    code, run_dir = resume(run_dir, overrides, progress=_progress)
    out(str(run_dir))
    return code


def _cmd_runs(args: argparse.Namespace) -> int:
    from .runner import list_run_states

    runs_dir = _runs_dir(args.runs_dir)
    rows = list_run_states(runs_dir) if runs_dir.is_dir() else []
    if not rows:
        out(f"no runs in {runs_dir}")
        return EXIT_OK
    for line in runs_table(rows):
        out(line)
    return EXIT_OK


def runs_table(rows: list[dict[str, Any]]) -> list[str]:
    """`runbook runs`' lines: a header, then one line per run, each column as wide as its
    widest cell (a "SELF-APPROVED change" kind must not push "where" out of line)."""
    cells = [("run id", "account", "status", "kind", "where")] + [
        (
            str(row["run_id"]),
            str(row.get("account_id")),
            str(row["status"]),
            _kind(row),
            str(row.get("where") or ""),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(4)]
    return [
        " ".join(cell.ljust(width) for cell, width in zip(line[:4], widths, strict=True))
        + f" {line[4]}".rstrip()
        for line in cells
    ]


def _kind(row: dict[str, Any]) -> str:
    if row.get("fleet"):
        return "fleet audit"
    if row.get("dry_run"):
        return "DRY RUN"
    return "SELF-APPROVED change" if row.get("self_approved") else "change"


def _cmd_verify(args: argparse.Namespace) -> int:
    from .runner import audit_run

    if args.against is None:
        extra = [
            f"--{n.replace('_', '-')}" for n in ("profile", "endpoint_url") if getattr(args, n)
        ]
        if extra:
            _err(f"verify: {' and '.join(extra)} only go with --against s3://BUCKET/PREFIX")
            return EXIT_USAGE
    else:
        from .record.archive import parse_destination

        try:
            parse_destination(args.against)
        except ParameterError as error:
            _err("verify: " + "; ".join(error.problems))
            return EXIT_USAGE

    run_dir = _record_dir(args.run_dir)
    trust = Path(args.allowed_signers) if args.allowed_signers else None
    audit = audit_run(run_dir, trust)
    report = audit.record
    if audit.ok:
        kind = "final seal" if report.final else "checkpoint seal"
        out(f"OK: {args.run_dir} is intact ({report.events} events, {kind})")
    else:
        out(f"TAMPERED or INCOMPLETE: {args.run_dir}")
        for problem in [*report.problems, *audit.problems]:
            out(f"  - {problem}")
    if report.signer:
        signer = report.signer
        out(f"  sealed by   {signer['principal']} ({signer['key_type']} {signer['fingerprint']})")
    if audit.dry_run:
        out("  approved by nobody: DRY RUN (it changed nothing and needed no approval)")
    else:
        for approver in audit.approvals:
            out(f"  approved by {approver}" + ("   SELF-APPROVED" if audit.self_approved else ""))
    if report.trust:
        out(f"  checked against {report.trust}")
    if args.against is None:
        return EXIT_OK if audit.ok else EXIT_FAILED
    return _verify_against(args, audit.ok)


def _verify_against(args: argparse.Namespace, local_ok: bool) -> int:
    from .record.archive import verify_against

    try:
        archived = verify_against(
            Path(args.run_dir),
            args.against,
            profile=args.profile,
            endpoint_url=args.endpoint_url,
            region=args.region,
        )
    except ParameterError as error:
        _err("verify: " + "; ".join(error.problems))
        return EXIT_USAGE
    out(str(archived))
    return EXIT_OK if local_ok and archived.ok else EXIT_FAILED


def _cmd_seal(args: argparse.Namespace) -> int:
    from .runner import seal_run

    result = seal_run(_record_dir(args.run_dir))
    out(f"sealed {args.run_dir}: {'intact' if result['ok'] else result['problems']}")
    return EXIT_OK if result["ok"] else EXIT_FAILED


def _cmd_abandon(args: argparse.Namespace) -> int:
    from .runner import abandon

    result = abandon(_record_dir(args.run_dir), args.reason)
    out(
        f"abandoned {args.run_dir}: sealed final, the account's lease released; record "
        f"{'intact' if result['ok'] else 'NOT intact: ' + '; '.join(result['problems'])}"
    )
    return EXIT_OK if result["ok"] else EXIT_FAILED


def _cmd_lab(args: argparse.Namespace) -> int:
    from .lab import prepare_lab, serve_lab

    if args.reopen:
        if args.file or args.param:
            _err("lab: --reopen takes no -f/-p (the run keeps its parameters)")
            return EXIT_USAGE
        run_dir = _record_dir(args.reopen)
        if args.approval:
            from .runner import add_approvals

            _refuse_digest_approval(args)
            add_approvals(run_dir, _approval_files(args.approval))
            err_line(f"approvals recorded for {run_dir}")
    elif not args.file:
        _err("lab: -f FILE is required (or --reopen RUN_DIR)")
        return EXIT_USAGE
    else:
        record = prepare_lab(_raw_params(args), _runs_dir(args.runs_dir))
        err_line(f"prepared {record.path}")
        run_dir = record.path
    return serve_lab(run_dir, args.port, out=_progress)


def _cmd_archive(args: argparse.Namespace) -> int:
    from .record.archive import archive_run

    result = archive_run(
        _record_dir(args.run_dir),
        args.destination,
        args.retain_days,
        profile=args.profile,
        endpoint_url=args.endpoint_url,
        region=args.region,
    )
    if result.get("status") != "archived":
        err_line(f"{result['status']}: {result['uploaded']} object(s) uploaded")
    for warning in result.get("warnings", []):
        err_line(f"warning: {warning}")
    out(json.dumps(result, indent=2, default=str))
    return EXIT_OK


def _cmd_policies(args: argparse.Namespace) -> int:
    from .data import policies_dir

    folder = policies_dir()
    if args.name:
        path = folder / Path(args.name).name
        if path.suffix != ".json" or not path.is_file():
            names = ", ".join(p.name for p in sorted(folder.glob("*.json")))
            _err(f"policies: no policy {args.name!r}; the policies are: {names}")
            return EXIT_USAGE
        out(path.read_text(encoding="utf-8").rstrip("\n"))
        return EXIT_OK
    out(f"{folder}  (what to attach where: {folder / 'README.md'})")
    for path in sorted(folder.glob("*.json")):
        out(f"  {path.name}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .plugins import load

    run_demo = load("demo", "`runbook demo`")
    # run_demo prints for itself (and lets the runner print its progress)
    with contextlib.redirect_stdout(EscapingWriter(sys.stdout)):
        return int(run_demo(args.scenario, args.method, _runs_dir(args.runs_dir)))


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from .plugins import load

    serve = load("sandbox", "`runbook sandbox`")
    return int(serve(list(args.sandbox_args), prog="runbook sandbox"))


@contextlib.contextmanager
def _fleet_progress() -> Any:
    """A tqdm bar on stderr (accounts done, failed, unreachable, throttled, rate); on a
    terminal only (tqdm's ``disable=None``), else a line per tenth done."""
    from tqdm import tqdm

    bar = tqdm(total=None, unit="acct", file=sys.stderr, disable=None, delay=0.5)
    last = [0]

    def update(progress: Any) -> None:
        if bar.total != progress.total:
            bar.total = progress.total
            bar.n = progress.done - 1 if progress.done else 0
        bar.update(progress.done - bar.n)
        bar.set_postfix(
            failed=progress.failed,
            unreachable=progress.unreachable,
            throttled=progress.throttled,
            refresh=False,
        )
        tenth = max(1, progress.total // 10)
        if bar.disable and (progress.done - last[0] >= tenth or progress.done == progress.total):
            last[0] = progress.done
            _progress(
                f"fleet: {progress.done}/{progress.total} accounts, {progress.failed} failed, "
                f"{progress.unreachable} unreachable, {progress.rate:.0f}/s"
            )

    try:
        yield update
    finally:
        bar.close()


def _fleet_done(result: Any) -> int:
    counts = ", ".join(f"{n} {verdict}" for verdict, n in result.counts.items())
    _progress(f"fleet audit of {result.accounts} accounts: {counts}")
    _progress(f"report: {result.path / 'report.html'}")
    out(str(result.path))
    return EXIT_OK


def _cmd_fleet_audit(args: argparse.Namespace) -> int:
    from .fleet.audit import audit, resume

    if args.resume:
        if args.file or args.param:
            _usage("fleet audit --resume RUN_DIR takes no -f/-p: the audit keeps its parameters")
        run_dir = _record_dir(args.resume)
        with _fleet_progress() as update:
            result = resume(
                run_dir, workers=args.workers, processes=args.processes, on_progress=update
            )
        return _fleet_done(result)
    if not args.file:
        _usage("fleet audit needs -f FLEET.yml (or --resume RUN_DIR)")
    from .fleet.params import validate_fleet

    raw = _file_and_overrides(args)
    for name in ("workers", "processes"):
        if getattr(args, name) is not None:
            raw[name] = getattr(args, name)
    params = validate_fleet(raw)
    runs_dir = _runs_dir(args.runs_dir or params.run_dir or "runs")

    def created(path: Path) -> None:
        _progress(f"fleet audit record: {path} (interrupted? runbook fleet audit --resume {path})")

    with _fleet_progress() as update:
        result = audit(params, runs_dir, on_progress=update, on_created=created)
    return _fleet_done(result)


def _cmd_fleet_plan(args: argparse.Namespace) -> int:
    from .fleet.plan import write_plans
    from .params import parse_overrides

    run_dir = _record_dir(args.run_dir)
    overrides = parse_overrides(args.param or [])
    if args.profile:
        overrides["profile"] = args.profile
    signers = Path(args.allowed_signers) if args.allowed_signers else None
    paths = write_plans(run_dir, Path(args.out), args.change_ticket, overrides, signers)
    for path in paths:
        out(str(path))
    if not paths:
        _progress("the audit plans no runbook run: no root MFA must change")
    return EXIT_OK


def _run_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="the run directory (runbook runs lists them)"
    )


def _runs_dir_arg(parser: argparse.ArgumentParser) -> None:
    where = "where the run records are (default runs)"
    parser.add_argument("--runs-dir", default="runs", metavar="RUNS_DIR", help=where)


def _s3_args(parser: argparse.ArgumentParser, purpose: str) -> None:
    """The AWS options of the archive commands (verify --against, archive)."""
    parser.add_argument(
        "--profile", help=f"AWS profile {purpose} (default: the standard AWS chain)"
    )
    parser.add_argument(
        "--region",
        default="us-east-1",
        help=f"AWS region of the bucket {purpose} (default us-east-1)",
    )
    parser.add_argument(
        "--endpoint-url",
        metavar="URL",
        help=f"S3 endpoint {purpose}, if not AWS's (an S3-compatible store)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="runbook",
        description="Executable, auditable runbook: remove and re-bind an AWS root user's MFA.",
        epilog="Exit codes: 0 succeeded, 1 failed or refused, 2 bad usage, 3 halted at a gate.",
    )
    parser.add_argument("--version", action="version", version=f"runbook {__version__}")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="one of the commands below; runbook COMMAND --help says more",
    )

    def params(p: argparse.ArgumentParser, file_required: bool = True) -> None:
        # the parameter list of --help comes from the schema (runbook_lib/schema.py)
        p.formatter_class = _ParametersFormatter
        p.epilog = help_epilog()
        if file_required:
            p.add_argument("-f", "--file", required=True, help="YAML parameters file")
        param_option(p)

    def param_option(
        p: argparse.ArgumentParser,
        text: str = "override one parameter (repeatable); values are YAML scalars",
    ) -> None:
        p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help=text)

    plan = sub.add_parser(
        "plan",
        help="make a plan, write the plan file a reviewer approves, print its digest and gates",
        description="Make a new plan (a new identity: an approval approves one plan, for one "
        "run, until it expires), store it and write the plan file a reviewer signs with "
        "`runbook approve`; `runbook run --approval FILE` then runs exactly it. With --run, show "
        "the plan a run executes.",
    )
    params(plan, file_required=False)
    plan.add_argument("-f", "--file", help="YAML parameters file")
    plan.add_argument("--run", metavar="RUN_DIR", help="show the plan of an existing run")
    plan.add_argument(
        "--out",
        metavar="FILE",
        help="where the plan file goes (default plan-DIGEST12.txt here; never overwritten)",
    )
    plan.set_defaults(func=_cmd_plan)

    approve = sub.add_parser(
        "approve",
        help="review a plan file and sign an approval of it with your SSH key",
        description="Check a plan file (digest, text, expiry), show it, ask you to type the "
        "account id, and write an approval file: a statement naming the plan, signed with your "
        "SSH key (ssh-keygen -Y sign, namespace approval@root-mfa-runbook).",
    )
    approve.add_argument(
        "plan_file", metavar="PLAN_FILE", help="the plan file the operator sent (runbook plan)"
    )
    approve.add_argument(
        "--key",
        required=True,
        help="your SSH private key (its .pub beside it), or a .pub in ssh-agent",
    )
    approve.add_argument(
        "--as", dest="principal", metavar="PRINCIPAL", help="approve as this principal of your key"
    )
    approve.add_argument(
        "--allowed-signers",
        metavar="FILE",
        help="who may approve (default: the file the plan names)",
    )
    approve.add_argument(
        "--out", metavar="FILE", help="default PLAN_STEM.PRINCIPAL.approval beside the plan file"
    )
    approve.add_argument(
        "--yes", action="store_true", help="do not ask for the account id (you read the plan)"
    )
    approve.set_defaults(func=_cmd_approve)

    run = sub.add_parser(
        "run",
        help="execute the step notebooks in batch",
        description="Validate the parameters, verify the approval files against the plan they "
        "approve, take the account's lease, create the run record in RUNS_DIR/RUN_ID and "
        "execute the six step notebooks with papermill. Exit 0 succeeded, 1 failed or refused, "
        "2 bad usage (nothing created), 3 halted at a gate (runbook resume).",
    )
    params(run)
    _approval_args(run)
    _runs_dir_arg(run)
    run.set_defaults(func=_cmd_run)

    resume = sub.add_parser(
        "resume",
        help="continue a halted or failed run",
        description="Check the record, then continue the run from the step that did not "
        "succeed. Only approvals, confirm and the timeouts may change; anything else needs a new "
        "run (end this one with runbook abandon).",
    )
    _run_dir_arg(resume)
    params(resume, file_required=False)
    _approval_args(resume)
    resume.set_defaults(func=_cmd_resume)

    runs = sub.add_parser(
        "runs",
        help="list runs",
        description="List the runs in RUNS_DIR: run id, account, status (as the event chain "
        "says), kind (DRY RUN, change, SELF-APPROVED change) and where it stopped.",
    )
    _runs_dir_arg(runs)
    runs.set_defaults(func=_cmd_runs)

    ver = sub.add_parser(
        "verify",
        help="check a run record; exit 0 when intact",
        description="Check a run record: the event chain, the ledger, the manifest, every file, "
        "the operator's seal signature and every approval. Exit 0 intact, 1 TAMPERED or "
        "INCOMPLETE (or different from its archive), 2 bad usage (not a run record).",
    )
    _run_dir_arg(ver)
    ver.add_argument(
        "--against",
        metavar="s3://BUCKET/PREFIX",
        help="also compare it with its archived (Object Lock) copy there; exit 1 if it differs",
    )
    ver.add_argument(
        "--allowed-signers",
        metavar="FILE",
        help="check the signatures against this allowed_signers (yours; default "
        "$RUNBOOK_ALLOWED_SIGNERS, else the record's own copy, which only shows consistency)",
    )
    _s3_args(ver, "for --against")
    ver.set_defaults(func=_cmd_verify)

    seal = sub.add_parser(
        "seal",
        help="seal a run whose every step succeeded",
        description="Write the final seal of a run whose every step succeeded (the manifest, "
        "SHA256SUMS signed with the operator's key, the report) and release the account's "
        "lease. A sealed record is never written again.",
    )
    _run_dir_arg(seal)
    seal.set_defaults(func=_cmd_seal)

    aban = sub.add_parser(
        "abandon",
        help="end a run on purpose (recorded with the reason, sealed final, lease released)",
        description="End an unfinished run on purpose: the reason is recorded, the record is "
        "sealed final and the account's lease released, so a new run can start.",
    )
    _run_dir_arg(aban)
    aban.add_argument("--reason", required=True, help="why the run ends here (one line)")
    aban.set_defaults(func=_cmd_abandon)

    lab = sub.add_parser(
        "lab",
        help="prepare an interactive run and step through it in JupyterLab (127.0.0.1)",
        description="Prepare a run like runbook run (mode interactive: each gate is an "
        "on-screen confirmation) and serve its notebooks in JupyterLab on 127.0.0.1 with a "
        "token; the run is sealed when Lab stops.",
    )
    params(lab, file_required=False)
    lab.add_argument("-f", "--file", help="YAML parameters file (mode is set to interactive)")
    _approval_args(lab)
    _runs_dir_arg(lab)
    lab.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    lab.add_argument(
        "--reopen",
        metavar="RUN_DIR",
        help="serve an unsealed interactive run again, where it stopped",
    )
    lab.set_defaults(func=_cmd_lab)

    arc = sub.add_parser(
        "archive",
        help="upload a sealed record with S3 Object Lock",
        description="Upload a sealed run record to a bucket with Object Lock, each object under "
        "COMPLIANCE retention, once: an identical archive uploads nothing, a different one is "
        "refused naming each file (runbook verify --against compares them later).",
    )
    _run_dir_arg(arc)
    arc.add_argument("destination", help="s3://BUCKET/PREFIX (a bucket with Object Lock enabled)")
    arc.add_argument(
        "--retain-days",
        type=int,
        required=True,
        metavar="N",
        help="days each object stays under COMPLIANCE retention (1-36500; nobody can shorten it)",
    )
    _s3_args(arc, "for the upload")
    arc.set_defaults(func=_cmd_archive)

    pol = sub.add_parser(
        "policies",
        help="where the least-privilege IAM policies are; with NAME, print that policy",
        description="List the least-privilege IAM policies the runbook's principals need (the "
        "folder, with a README saying what to attach where), or print one of them.",
    )
    pol.add_argument("name", nargs="?", metavar="NAME", help="e.g. runbook-reader.json")
    pol.set_defaults(func=_cmd_policies)

    demo = sub.add_parser(
        "demo",
        help="the whole procedure on the local sandbox",
        description="Start the local AWS sandbox (the [sandbox] extra), make throwaway keys for "
        "an approver and an operator, plan, approve, run the six steps with the sandbox's "
        "simulated console actor, verify the record; the last line is the run directory.",
    )
    demo.add_argument(
        "--scenario",
        default="standalone",
        help="sandbox scenario (default standalone; runbook sandbox --list shows them)",
    )
    demo.add_argument(
        "--method",
        choices=("console", "assume-root"),
        default=None,
        help="default: assume-root for member scenarios, console otherwise",
    )
    _runs_dir_arg(demo)
    demo.set_defaults(func=_cmd_demo)

    fleet = sub.add_parser(
        "fleet",
        help="audit the root credentials of every account of an organization",
        description="The fleet audit: from the management account, read every member's root "
        "credentials through AssumeRoot (IAMAuditRootUserCredentials), judge them against named "
        "rules (CIS, AWS's recommendation for centralised root access, ours), and keep a sealed "
        "record with findings.csv, findings.json (OCSF) and report.html.",
    )
    fleet_sub = fleet.add_subparsers(
        dest="fleet_command",
        required=True,
        metavar="COMMAND",
        help="audit or plan; runbook fleet COMMAND --help says more",
    )
    f_audit = fleet_sub.add_parser(
        "audit",
        help="audit the fleet into a new sealed record (or resume an interrupted one)",
        description="Audit the accounts FLEET.yml names (all by default) into a new record in "
        "the runs directory, sealed with operator_key; the last line is the record's directory. "
        "An interrupted audit goes on with --resume RUN_DIR (accounts already read are not read "
        "again). Parameters: " + ", ".join(FLEET_PARAMETERS) + ".",
    )
    f_audit.add_argument("-f", "--file", help="YAML fleet parameters file (FLEET.yml)")
    param_option(f_audit)
    f_audit.add_argument("--resume", metavar="RUN_DIR", help="go on with an interrupted audit")
    f_audit.add_argument("--workers", type=int, help="accounts read at once (1-64)")
    f_audit.add_argument("--processes", type=int, help="processes the workers use (1-16)")
    f_audit.add_argument(
        "--runs-dir", metavar="RUNS_DIR", help="where the record goes (default run_dir, or runs)"
    )
    f_audit.set_defaults(func=_cmd_fleet_audit)
    f_plan = fleet_sub.add_parser(
        "plan",
        help="write the runbook run parameters files a fleet audit calls for",
        description="From a fleet audit that verifies, write one `runbook run` parameters file "
        "per root MFA device that must change, each ready for `runbook plan -f FILE`.",
    )
    f_plan.add_argument("run_dir", metavar="RUN_DIR", help="the fleet audit's record")
    f_plan.add_argument("--out", required=True, help="directory for the files (made if missing)")
    f_plan.add_argument(
        "--change-ticket", required=True, help="the change ticket every planned run names"
    )
    f_plan.add_argument(
        "--profile",
        help="profile for each target account; {account_id} is replaced (console method)",
    )
    f_plan.add_argument(
        "--allowed-signers", help="verify the audit against this allowed_signers file"
    )
    param_option(f_plan, "set a run parameter in every file (e.g. -p dry_run=false)")
    f_plan.set_defaults(func=_cmd_fleet_plan)

    sandbox = sub.add_parser(
        "sandbox",
        help="serve the local AWS sandbox in the foreground (see `runbook sandbox --help`)",
        description="Serve the local AWS sandbox (the [sandbox] extra): its own options follow.",
        add_help=False,
        prefix_chars="\0",
    )
    sandbox.add_argument("sandbox_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    sandbox.set_defaults(func=_cmd_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ParameterError as err:
        # one problem is one line; several are listed under a count, one per line
        if len(err.problems) == 1:
            _err(" ".join(err.problems[0].split()))
        else:
            _err(str(err))
        return EXIT_USAGE
    except PluginMissing as err:  # the extra is not installed: nothing ran
        _err(str(err))
        return EXIT_USAGE
    except RunbookError as err:
        _err(str(err))
        return EXIT_FAILED
    except BrokenPipeError:  # e.g. `runbook plan ... | head -1`
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        _err("interrupted; the record stays as it is (resume it, or seal it)")
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
