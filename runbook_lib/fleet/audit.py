"""The fleet audit, end to end: read every selected member's root credentials (:mod:`.probe`),
judge them (:mod:`.rules`), and keep it all in a record like a run's (:mod:`runbook_lib.record`):
events on a hash chain, snapshots, the findings, a signed seal in the runs directory's ledger.

The record (``runs/<audit id>/``, run.json ``kind: fleet-audit``):

=================================== ==========================================================
``trust/allowed_signers``           who may seal it (the operator's key must be listed)
``accounts/part-NNNNN.jsonl``       the snapshots, :data:`PART_SIZE` accounts a part, in
                                    account-id order: one line per account, what was read
                                    (:meth:`RootCredentials.to_dict`) and how it was judged
``findings.csv``, ``findings.json`` every finding (OCSF Detection Finding in the JSON), every
                                    account
``report.html``                     the summary picture and the sortable table
=================================== ==========================================================

Events: ``fleet.started`` (organization, features, how many accounts, the judging time),
``fleet.part`` per part written (its accounts, verdict counts), ``fleet.resumed`` when an
interrupted audit goes on, ``fleet.finished`` (the counts), then the seal. An audit cut off
(Ctrl-C, a crash, a lost session) keeps every part written: ``runbook fleet audit --resume RUN``
reads only the accounts no part holds, with the same judging time, so its record is the one an
uninterrupted audit would have written.

Concurrency: ``workers`` threads (spread over ``processes`` processes) read accounts; the
results are taken in account order whatever order they finish in (:func:`.pool.ordered_map`),
with a bounded window: memory stays flat in the number of accounts, and the parts are the same
byte for byte at any concurrency. Each thread reuses its clients across accounts
(:class:`~runbook_lib.aws.session.CredentialSlot`); each account gets its own AssumeRoot
session, forgotten when the account is done. Throttling past the SDK's (adaptive) retries
pauses every worker of the process (exponential back-off with jitter, :class:`Backoff`) and the
account is read again: throttling slows the audit and loses nothing.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import multiprocessing
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import HTTPClientError

from .. import __version__, lease
from ..aws.identity import caller_identity
from ..aws.session import AwsContext, CredentialSlot
from ..creation import operator_identity
from ..errors import ParameterError, RunRefused, ThrottledError
from ..plan import operator_trust
from ..record.layout import TRUST_FILE
from ..record.run import RunRecord
from ..record.signing import Signer, load_key
from ..record.verify import check_integrity
from .params import FleetParameters, validate_fleet
from .pool import ordered_map
from .probe import (
    Account,
    Organization,
    accounts_under,
    list_accounts,
    probe,
    reach_detail,
    read_organization,
)
from .rules import Judgement, RootCredentials, Verdict, judge

if TYPE_CHECKING:
    from .report import AuditMeta

KIND = "fleet-audit"
PART_SIZE = 100
PARTS_DIR = "accounts"
STARTED, PART, RESUMED, FINISHED = "fleet.started", "fleet.part", "fleet.resumed", "fleet.finished"
OUTPUTS = ("findings.csv", "findings.json", "report.html")
#: rounds of back-off an account gets for throttling before it is recorded as failed
THROTTLE_ROUNDS = 6

Row = tuple[RootCredentials, Judgement]  # report.Row, which imports py-ocsf-models (0.3 s)


# --------------------------------------------------------------------------- progress
@dataclass
class Progress:
    """What the progress bar shows: accounts done of the total, how many could not be read
    (failed: an AWS error; unreachable: by design), throttling back-offs, the rate."""

    total: int
    done: int = 0
    failed: int = 0
    unreachable: int = 0
    throttled: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def count(self, creds: RootCredentials) -> None:
        self.done += 1
        if creds.reach == "failed":
            self.failed += 1
        elif creds.reach != "probed":
            self.unreachable += 1


OnProgress = Callable[[Progress], None]


# --------------------------------------------------------------------------- back-off
class Backoff:
    """Throttling seen by one worker pauses all of the process's workers: the next account
    starts after the pause (doubling from :attr:`base` to :attr:`cap` seconds while throttling
    goes on, with full jitter; reset by a success)."""

    def __init__(self, base: float = 0.5, cap: float = 20.0) -> None:
        self.base, self.cap = base, cap
        self._lock = threading.Lock()
        self._until = 0.0
        self._streak = 0
        self.events = 0

    def wait(self) -> None:
        while True:
            with self._lock:
                left = self._until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 1.0))

    def throttled(self) -> None:
        with self._lock:
            self.events += 1
            self._streak += 1
            pause = random.uniform(0, min(self.cap, self.base * 2**self._streak))
            self._until = max(self._until, time.monotonic() + pause)

    def succeeded(self) -> None:
        with self._lock:
            self._streak = 0


# --------------------------------------------------------------------------- the readers
@dataclass(frozen=True)
class _Setup:
    """What a worker needs to read accounts (picklable: it goes to worker processes)."""

    profile: str
    region: str
    endpoint_url: str | None
    organization: Organization
    threads: int


class _Reader:
    """Reads accounts with one management context and one credential slot per thread."""

    def __init__(self, setup: _Setup) -> None:
        self.setup = setup
        self.management = AwsContext.from_profile(setup.profile, setup.region, setup.endpoint_url)
        self.backoff = Backoff()
        self._local = threading.local()
        self._pool: cf.ThreadPoolExecutor | None = None

    def _slot(self) -> CredentialSlot:
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = CredentialSlot(self.management)
        return slot

    def read(self, account: Account) -> tuple[RootCredentials, int]:
        """The account's credentials and how many throttling back-offs it took."""
        throttled = 0
        while True:
            self.backoff.wait()
            try:
                creds = probe(
                    self.management,
                    self.setup.organization,
                    account,
                    self.setup.region,
                    self._slot(),
                )
            except (ThrottledError, HTTPClientError) as err:
                throttled += 1
                self.backoff.throttled()
                if throttled < THROTTLE_ROUNDS:
                    continue
                detail = (
                    reach_detail(err)
                    if isinstance(err, ThrottledError)
                    else f"{type(err).__name__}: {err}"
                )
                creds = RootCredentials(
                    account.id,
                    account.name,
                    account.status,
                    reach="failed",
                    reach_detail=f"{detail} (after {throttled} back-offs)",
                    centralised=self.setup.organization.centralised,
                )
            else:
                self.backoff.succeeded()
            return creds, throttled

    def read_many(self, accounts: list[Account]) -> list[tuple[RootCredentials, int]]:
        """A chunk of accounts, in order, on the process's one thread pool (its threads, and
        so their slots and clients, live as long as the process)."""
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(self.setup.threads, thread_name_prefix="fleet")
        return list(self._pool.map(self.read, accounts))


_PROCESS_READER: _Reader | None = None


def _init_process(setup: _Setup) -> None:
    global _PROCESS_READER
    _PROCESS_READER = _Reader(setup)


def _read_chunk(accounts: list[Account]) -> list[tuple[RootCredentials, int]]:
    assert _PROCESS_READER is not None
    return _PROCESS_READER.read_many(accounts)


def _chunks(items: Iterable[Account], size: int) -> Iterator[list[Account]]:
    chunk: list[Account] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_accounts(
    setup: _Setup, accounts: Iterable[Account], processes: int
) -> Iterator[tuple[RootCredentials, int]]:
    """Every account read, in the accounts' order: threads in this process, or chunks of
    accounts over ``processes`` worker processes (each with ``setup.threads`` threads)."""
    if processes <= 1:
        yield from ordered_map(_Reader(setup).read, accounts, setup.threads)
        return
    chunk = max(1, 2 * setup.threads)
    results = ordered_map(
        _read_chunk,
        _chunks(accounts, chunk),
        processes,
        processes=True,
        window=2 * processes,
        initializer=_init_process,
        initargs=(setup,),
        mp_context=multiprocessing.get_context("spawn"),
    )
    for part in results:
        yield from part


# --------------------------------------------------------------------------- the audit
@dataclass(frozen=True)
class AuditResult:
    record: RunRecord
    counts: dict[str, int]
    accounts: int

    @property
    def path(self) -> Path:
        return self.record.path


def _signer(params: FleetParameters) -> tuple[Signer, dict[str, Any]]:
    trust = operator_trust(params.operator_key, params.allowed_signers)
    key = load_key(params.operator_key)
    return Signer(key, str(trust["operator"]["principal"])), trust


def _select(management: AwsContext, params: FleetParameters) -> list[Account]:
    """The accounts to audit, in account-id order (AWS's ListAccounts order is not
    documented as stable; the record must not depend on it). ParameterError naming every
    requested account or OU that is not in the organization, before anything is recorded."""
    every = sorted(list_accounts(management), key=lambda a: a.id)
    wanted: set[str] | None = None
    if params.accounts:
        wanted = set(params.accounts)
        missing = sorted(wanted - {a.id for a in every})
        if missing:
            raise ParameterError(
                [
                    "accounts: not in the organization: " + ", ".join(missing) + " (check "
                    "the ids with `aws organizations list-accounts`)"
                ]
            )
    if params.organizational_units:
        under = accounts_under(management, params.organizational_units)
        wanted = under if wanted is None else wanted & under
    return every if wanted is None else [a for a in every if a.id in wanted]


def _parts(record: RunRecord) -> list[dict[str, Any]]:
    return [e["data"] for e in record.events() if e.get("type") == PART]


def iter_rows(record: RunRecord) -> Iterator[Row]:
    """Every account of the record, in order, read back part by part (memory: one part)."""
    for part in _parts(record):
        with open(record.path / str(part["path"]), encoding="utf-8") as handle:
            for line in handle:
                doc = json.loads(line)
                creds = RootCredentials.from_dict(doc["account"])
                yield creds, _judgement_from(doc["judgement"], creds)


def _judgement_from(doc: dict[str, Any], creds: RootCredentials) -> Judgement:
    # the judgement is pure: judging the snapshot again gives it back (the part holds both so
    # a reader needs no code to see it; a mismatch means the part or the rules were changed)
    return Judgement(creds.account_id, Verdict(doc["verdict"]), note=doc.get("note"))


def audit(
    params: FleetParameters,
    runs_dir: Path,
    *,
    on_progress: OnProgress | None = None,
    now: dt.datetime | None = None,
    on_created: Callable[[Path], None] | None = None,
) -> AuditResult:
    """Audit the fleet ``params`` names into a new record in ``runs_dir``, sealed final.
    ``on_created`` is told the record's directory as soon as it exists (so an operator who
    interrupts the audit knows what to resume)."""
    signer, trust = _signer(params)  # a missing or unlisted key refuses before anything
    management = AwsContext.from_profile(
        params.management_profile, params.region, params.endpoint_url
    )
    caller = caller_identity(management)
    org = read_organization(management)
    accounts = _select(management, params)
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    trust_text = Path(params.allowed_signers).expanduser().read_text(encoding="utf-8")
    record = RunRecord.create(
        Path(runs_dir).absolute(),
        {
            "kind": KIND,
            "parameters": params.to_dict(),
            "organization_id": org.id,
            "management_account_id": org.management_account_id,
            "operator": {**operator_identity(caller.arn), **trust["operator"]},
            "library_version": __version__,
        },
    )
    if on_created is not None:
        on_created(record.path)
    with lease.executing(record.run_id):
        record.write_text(TRUST_FILE, trust_text, once=True)
        record.append(
            STARTED,
            organization={
                "id": org.id,
                "management_account_id": org.management_account_id,
                "features": sorted(org.features),
            },
            caller_arn=caller.arn,
            accounts=len(accounts),
            judged_at=now.isoformat().replace("+00:00", "Z"),
            scope=params.scope_view(),
        )
        return _continue(record, params, org, accounts, now, signer, on_progress)


def resume(
    run_dir: Path,
    *,
    workers: int | None = None,
    processes: int | None = None,
    operator_key: str | None = None,
    on_progress: OnProgress | None = None,
) -> AuditResult:
    """Go on with an interrupted audit: only the accounts no part holds are read, judged at
    the audit's recorded time. Refused (nothing written) for a record that is not a fleet
    audit, is sealed final, is running elsewhere, or fails its integrity check."""
    record = RunRecord.open(Path(run_dir))
    info = record.created_info()
    if info.get("kind") != KIND:
        raise RunRefused(
            f"{record.path} is not a fleet audit (a runbook run resumes with runbook resume)"
        )
    if record.sealed_final:
        raise RunRefused(f"Fleet audit {record.run_id} is finished and sealed; nothing to resume")
    raw = dict(info.get("parameters") or {})
    for name, value in (
        ("workers", workers),
        ("processes", processes),
        ("operator_key", operator_key),
    ):
        if value is not None:
            raw[name] = value
    params = validate_fleet(raw)
    signer, _ = _signer(params)
    with lease.executing(record.run_id):
        problems = check_integrity(record.path)
        if problems:
            raise RunRefused(
                f"Fleet audit {record.run_id} was changed behind the record's back; it is not "
                "resumed:\n  - " + "\n  - ".join(problems)
            )
        started = _started(record)
        now = _judged_at(started)
        management = AwsContext.from_profile(
            params.management_profile, params.region, params.endpoint_url
        )
        org = read_organization(management)
        if org.id != started["organization"]["id"]:
            raise RunRefused(
                f"management_profile now reaches organization {org.id}, not the audit's "
                f"{started['organization']['id']}; resume with the audit's profile"
            )
        done = {creds.account_id for creds, _ in iter_rows(record)}
        accounts = [a for a in _select(management, params) if a.id not in done]
        record.append(RESUMED, done=len(done), left=len(accounts))
        return _continue(record, params, org, accounts, now, signer, on_progress, len(done))


def _continue(
    record: RunRecord,
    params: FleetParameters,
    org: Organization,
    accounts: list[Account],
    now: dt.datetime,
    signer: Signer,
    on_progress: OnProgress | None,
    already: int = 0,
) -> AuditResult:
    processes = min(params.processes, max(1, len(accounts)))
    setup = _Setup(
        params.management_profile,
        params.region,
        params.endpoint_url,
        org,
        max(1, params.workers // processes),
    )
    progress = Progress(total=len(accounts) + already, done=already)
    number = len(_parts(record))
    lines: list[str] = []
    verdicts: Counter[str] = Counter()

    def flush() -> None:
        nonlocal number
        if not lines:
            return
        number += 1
        rel = f"{PARTS_DIR}/part-{number:05d}.jsonl"
        record.write_text(rel, "".join(lines), once=True)
        first, last = json.loads(lines[0]), json.loads(lines[-1])
        record.append(
            PART,
            path=rel,
            accounts=len(lines),
            first=first["account"]["account_id"],
            last=last["account"]["account_id"],
            verdicts=dict(sorted(verdicts.items())),
        )
        lines.clear()
        verdicts.clear()

    for creds, throttled in read_accounts(setup, accounts, processes):
        judgement = judge(creds, now, params.max_device_age_days, params.region)
        doc = {"account": creds.to_dict(), "judgement": judgement.to_dict()}
        lines.append(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
        verdicts[judgement.verdict.value] += 1
        progress.count(creds)
        progress.throttled += throttled
        if on_progress is not None:
            on_progress(progress)
        if len(lines) >= PART_SIZE:
            flush()
    flush()
    counts = _counts(record)
    record.append(FINISHED, accounts=sum(counts.values()), verdicts=counts)
    write_outputs(record)
    record.seal(final=True, signer=signer)
    return AuditResult(record, counts, sum(counts.values()))


def fleet_status(record: RunRecord, executing: bool = False) -> dict[str, Any]:
    """``runbook runs``' view of a fleet audit: status, kind, and where it stands."""
    types = [e.get("type") for e in record.events()]
    parts = _parts(record)
    done = sum(int(p.get("accounts", 0)) for p in parts)
    started = _started(record)
    if record.sealed_final:
        status, where = "sealed", ", ".join(f"{n} {v}" for v, n in _counts(record).items() if n)
    else:
        status = "running" if executing else "incomplete"
        where = f"{done}/{started.get('accounts', '?')} accounts read" + (
            "" if executing or FINISHED in types else "; runbook fleet audit --resume"
        )
    org = started.get("organization", {}).get("id", "?")
    return {"status": status, "fleet": True, "account_id": f"org {org}", "where": where}


def _counts(record: RunRecord) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in _parts(record):
        total.update(part.get("verdicts") or {})
    return {v.value: total.get(v.value, 0) for v in Verdict}


def write_outputs(record: RunRecord) -> None:
    """findings.csv, findings.json and report.html, from the parts (read again, one part in
    memory at a time), each streamed into the record (scanned a chunk at a time)."""
    from . import report

    meta = audit_meta(record)
    for name, write in (
        ("findings.csv", lambda out: report.write_findings_csv(judged_rows(record), out)),
        ("findings.json", lambda out: report.write_findings_ocsf(judged_rows(record), out, meta)),
        (
            "report.html",
            lambda out: report.write_report_html(lambda: judged_rows(record), out, meta),
        ),
    ):
        with record.streamed(name, once=True) as out:
            write(out)


def judged_rows(record: RunRecord) -> Iterator[Row]:
    """The rows with their full judgement: judged again from the snapshot at the recorded
    time and limits (pure, so equal to what the part holds; checked)."""
    info = record.created_info()
    params = info.get("parameters") or {}
    now = _judged_at(_started(record))
    for creds, recorded in iter_rows(record):
        judgement = judge(
            creds, now, int(params.get("max_device_age_days", 1095)), str(params["region"])
        )
        if judgement.verdict is not recorded.verdict:
            raise RunRefused(
                f"account {creds.account_id}: the part says {recorded.verdict.value}, the rules "
                f"say {judgement.verdict.value} (the record or the rules were changed)"
            )
        yield creds, judgement


def _started(record: RunRecord) -> dict[str, Any]:
    """``fleet.started``'s data (organization, judging time, scope); {} before it is written."""
    return next((e["data"] for e in record.events() if e.get("type") == STARTED), {})


def _judged_at(started: dict[str, Any]) -> dt.datetime:
    """The time every account of the audit is judged at (resumed parts too)."""
    return dt.datetime.fromisoformat(str(started["judged_at"]).replace("Z", "+00:00"))


def _seconds(stamp: str) -> str:
    """An event's time (ISO 8601, microseconds, +00:00) as the audit writes times: to the
    second, Z."""
    when = dt.datetime.fromisoformat(stamp).astimezone(dt.UTC).replace(microsecond=0)
    return when.isoformat().replace("+00:00", "Z")


def audit_meta(record: RunRecord) -> AuditMeta:
    """What every output names of the audit (its id, organization, region, times)."""
    from .report import AuditMeta

    info = record.created_info()
    started = _started(record)
    finished = [e for e in record.events() if e.get("type") == FINISHED]
    params = info.get("parameters") or {}
    return AuditMeta(
        audit_id=record.run_id,
        organization_id=str(info.get("organization_id")),
        management_account_id=str(info.get("management_account_id")),
        region=str(params.get("region")),
        started_at=str(started["judged_at"]),
        finished_at=_seconds(str(finished[-1]["time"])) if finished else None,
        max_device_age_days=int(params.get("max_device_age_days", 1095)),
        product_version=__version__,
    )
