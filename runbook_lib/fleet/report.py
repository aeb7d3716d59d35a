# mypy: disable-error-code="import-untyped"
# (py_ocsf_models ships no py.typed marker: its models are pydantic classes, typed as Any here)
"""The fleet audit's outputs: ``findings.csv``, ``findings.json`` (OCSF) and ``report.html``.

Pure (no AWS call) and streaming: each writer takes the audit's rows, one
``(RootCredentials, Judgement)`` per account in the audit's order, and writes as it reads, so
memory stays flat in the number of accounts. :func:`write_report_html` takes a factory of rows
and reads them twice (the summary picture first, then the table).

``findings.csv`` (:func:`write_findings_csv`)
    One row per finding, and one row per account without findings (``ok``, or ``unreachable``
    with its note in ``detail``), so every account appears. Columns: :data:`CSV_COLUMNS`.
    ``planned_run`` is the finding's ``runbook run`` parameters as compact JSON (empty when the
    runbook is not the remedy); ``finding_uid`` is the OCSF event's ``finding_info.uid``. Every
    cell that a spreadsheet would read as a formula (it starts with ``= + - @``, a tab or a
    carriage return: account names come from Organizations, which anyone able to name an
    account controls) is neutralised by a leading ``'`` (OWASP, *CSV Injection*).

``findings.json`` (:func:`write_findings_ocsf`)
    A JSON array, one OCSF 1.5 *Detection Finding* (``class_uid`` 2004) a line, each built and
    validated with ``py_ocsf_models`` (Prowler's models), laid out as Prowler's ``json-ocsf``
    output lays its findings out:

    ================================ ==========================================================
    ``status_code``                  ``FAIL`` per finding; ``MANUAL`` for an unreachable account
                                     (one informational event: the audit could not read it, a
                                     person must look; nothing is silently absent); ``PASS``
                                     for an account without findings (``include_ok``)
    ``severity_id``                  :class:`~.rules.Severity` critical/high/medium/low ->
                                     Critical 5 / High 4 / Medium 3 / Low 2; PASS and MANUAL
                                     are Informational 1
    ``status_id``                    New (1): no one has reviewed it yet
    ``finding_info.uid``             ``root-mfa-runbook-ACCOUNT-RULE-HASH``, HASH from the
                                     account, the rule and the device the finding is about: the
                                     same finding has the same uid in every audit (as Prowler's
                                     uids), so a consumer can follow it across audits
    ``metadata.uid``                 this event: sha256 of the audit id and the finding uid
    ``metadata.correlation_uid``     the audit id (every event of one audit shares it)
    ``metadata.event_code``          the rule id (``account-unreachable``, ``account-ok``)
    ``metadata.tenant_uid``          the organization id (as Prowler)
    ``finding_info.title``/``desc``  the rule's title; the title and its source
    ``finding_info.types``           Security Hub's finding types the rule's source names
    ``message``/``status_detail``    the finding's detail (the account's own facts)
    ``resources``                    the root user, ``arn:PARTITION:iam::ACCOUNT:root``, with
                                     its credentials (:meth:`RootCredentials.to_dict`)
    ``remediation.desc``             the rule's remediation (unreachable: the note)
    ``cloud``                        provider ``AWS``, the account (uid, name), the organization
    ``time``/``time_dt``             the audit's start (``started_at``: the ``now`` of the
                                     judgement), in milliseconds as OCSF's ``timestamp_t`` is
                                     (Prowler writes seconds there)
    ``unmapped``                     ``source``, ``verdict``, ``planned_run``
    ================================ ==========================================================

``report.html`` (:func:`write_report_html`)
    One self-contained page (no external URL, font or script; a Content-Security-Policy meta
    allows only its own inline style and its one hashed inline script): the audit's meta, two
    inline SVG bar charts (accounts by verdict, accounts by root MFA kind, each bar with its
    number), the rules' legend (id, title, source, remediation, counts), and a table with one
    row per account that sorts when a header is clicked (without JavaScript the table is still
    complete, in the audit's order). Every value from AWS is HTML-escaped.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import html
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from py_ocsf_models.events.base_event import SeverityID, StatusID
from py_ocsf_models.events.findings.detection_finding import (
    DetectionFinding,
    DetectionFindingTypeID,
)
from py_ocsf_models.events.findings.finding import ActivityID, FindingInformation
from py_ocsf_models.objects.account import Account, TypeID
from py_ocsf_models.objects.cloud import Cloud
from py_ocsf_models.objects.group import Group
from py_ocsf_models.objects.metadata import Metadata
from py_ocsf_models.objects.organization import Organization
from py_ocsf_models.objects.product import Product
from py_ocsf_models.objects.remediation import Remediation
from py_ocsf_models.objects.resource_details import ResourceDetails

from .rules import RULES, Finding, Judgement, RootCredentials, Rule, Severity, Verdict

__all__ = [
    "CSV_COLUMNS",
    "MFA_KINDS",
    "AuditMeta",
    "Row",
    "Summary",
    "finding_uids",
    "mfa_kind",
    "ocsf_events",
    "summarize",
    "write_findings_csv",
    "write_findings_ocsf",
    "write_report_html",
]

#: one account, in the audit's order
Row = tuple[RootCredentials, Judgement]

PRODUCT = "root-mfa-runbook"
#: an account's root MFA, as the summary picture counts it (``not read``: unreachable)
MFA_KINDS = ("none", "virtual", "fido", "hardware", "mixed", "not read")
CSV_COLUMNS = (
    "account_id",
    "account_name",
    "verdict",
    "mfa",
    "rule",
    "severity",
    "title",
    "detail",
    "source",
    "remediation",
    "planned_run",
    "finding_uid",
)
#: the event codes of the events that are not a rule's finding
UNREACHABLE_CODE = "account-unreachable"
OK_CODE = "account-ok"
VERDICT_TEXT = {
    Verdict.UNREACHABLE: "not read: the note says why and what to do",
    Verdict.CHANGE_MFA: "root MFA must change: a runbook run is planned",
    Verdict.ATTENTION: "other findings (access keys, password, devices to account for)",
    Verdict.OK: "no finding",
}
_SEVERITY_ID = {
    Severity.CRITICAL: SeverityID.Critical,
    Severity.HIGH: SeverityID.High,
    Severity.MEDIUM: SeverityID.Medium,
    Severity.LOW: SeverityID.Low,
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditMeta:
    """What every output names. Times are ISO 8601 (UTC); ``started_at`` is the ``now`` the
    judgement used (ValueError at construction when a time does not parse)."""

    audit_id: str  # the fleet record's run id
    organization_id: str
    management_account_id: str
    region: str
    started_at: str
    finished_at: str | None
    max_device_age_days: int
    product_version: str  # runbook_lib.__version__

    def __post_init__(self) -> None:
        _parse_time(self.started_at, "started_at")
        if self.finished_at is not None:
            _parse_time(self.finished_at, "finished_at")

    @property
    def started(self) -> dt.datetime:
        return _parse_time(self.started_at, "started_at")


@dataclass(frozen=True)
class Summary:
    """Counts over the audit's rows (the report's picture and legend)."""

    accounts: int = 0
    findings: int = 0
    planned_runs: int = 0
    #: accounts per verdict, worst first, every verdict present
    by_verdict: Mapping[str, int] = field(default_factory=dict)
    #: accounts per :data:`MFA_KINDS`, every kind present
    by_mfa: Mapping[str, int] = field(default_factory=dict)
    #: findings per rule id (every rule of RULES, then any other rule met)
    by_rule: Mapping[str, int] = field(default_factory=dict)
    #: accounts with at least one finding of the rule
    accounts_by_rule: Mapping[str, int] = field(default_factory=dict)
    #: findings per severity, most severe first
    by_severity: Mapping[str, int] = field(default_factory=dict)
    #: the rules counted, by id (RULES, then any other rule met)
    rules: Mapping[str, Rule] = field(default_factory=dict)


# --- one account ----------------------------------------------------------------------------


def mfa_kind(creds: RootCredentials) -> str:
    """The account's root MFA in one word of :data:`MFA_KINDS`."""
    if creds.reach != "probed":
        return "not read"
    kinds = {device.kind for device in creds.mfa_devices}
    if not kinds:
        return "none"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _checked(row: Row) -> Row:
    creds, judgement = row
    if creds.account_id != judgement.account_id:
        raise ValueError(
            f"a row pairs account {creds.account_id}'s credentials with account "
            f"{judgement.account_id}'s judgement"
        )
    return row


def _device_of(finding: Finding, creds: RootCredentials) -> str:
    """The serial of the one device a finding is about ('' when it is about the account)."""
    return finding.device_serial or ""


def _uid(account_id: str, code: str, device: str, ordinal: int) -> str:
    digest = hashlib.sha256(f"{account_id}/{code}/{device}/{ordinal}".encode()).hexdigest()
    return f"{PRODUCT}-{account_id}-{code}-{digest[:16]}"


def finding_uids(row: Row) -> list[str]:
    """The stable uid of each of the account's findings, in order (one uid, for the account
    itself, when it has none): from the account, the rule and the device, never the audit."""
    creds, judgement = _checked(row)
    if not judgement.findings:
        code = UNREACHABLE_CODE if judgement.verdict is Verdict.UNREACHABLE else OK_CODE
        return [_uid(creds.account_id, code, "", 0)]
    seen: Counter[tuple[str, str]] = Counter()
    out = []
    for finding in judgement.findings:
        key = (finding.rule.id, _device_of(finding, creds))
        out.append(_uid(creds.account_id, *key, seen[key]))
        seen[key] += 1
    return out


def _partition(region: str) -> str:
    for prefix, partition in (
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
    ):
        if region.startswith(prefix):
            return partition
    return "aws"


def _parse_time(value: str, name: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError) as err:
        raise ValueError(f"AuditMeta.{name} is not an ISO 8601 time: {value!r}") from err
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True) if value else ""


# --- summary ----------------------------------------------------------------------------------


def summarize(rows: Iterable[Row]) -> Summary:
    """Counts by verdict, by MFA kind, by rule and by severity (reads the rows once)."""
    accounts = findings = planned = 0
    verdicts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    per_rule: Counter[str] = Counter()
    accounts_per_rule: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    rules: dict[str, Rule] = dict(RULES)
    for creds, judgement in map(_checked, rows):
        accounts += 1
        verdicts[judgement.verdict.value] += 1
        kinds[mfa_kind(creds)] += 1
        for finding in judgement.findings:
            findings += 1
            planned += finding.runbook is not None
            per_rule[finding.rule.id] += 1
            severities[finding.rule.severity.value] += 1
            rules.setdefault(finding.rule.id, finding.rule)
        for rule_id in {f.rule.id for f in judgement.findings}:
            accounts_per_rule[rule_id] += 1
    return Summary(
        accounts=accounts,
        findings=findings,
        planned_runs=planned,
        by_verdict={v.value: verdicts[v.value] for v in Verdict},
        by_mfa={kind: kinds[kind] for kind in MFA_KINDS},
        by_rule={rule_id: per_rule[rule_id] for rule_id in rules},
        accounts_by_rule={rule_id: accounts_per_rule[rule_id] for rule_id in rules},
        by_severity={s.value: severities[s.value] for s in Severity},
        rules=rules,
    )


# --- findings.csv -----------------------------------------------------------------------------


def _cell(value: str) -> str:
    """A cell a spreadsheet shows as text: a would-be formula gets a leading quote."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def write_findings_csv(rows: Iterable[Row], out: TextIO) -> int:
    """One CSV row per finding, and one per account without findings (see the module's
    docstring); a header first. Returns the number of rows written after the header. Open a
    file for it with ``newline=""`` (the csv module's rule: lines end in CRLF, as RFC 4180's)."""
    writer = csv.writer(out)  # RFC 4180: CRLF lines, a field with CR or LF quoted
    writer.writerow(CSV_COLUMNS)
    written = 0
    for row in rows:
        creds, judgement = _checked(row)
        uids = finding_uids(row)
        base = [creds.account_id, creds.name, judgement.verdict.value, mfa_kind(creds)]
        if not judgement.findings:
            lines = [base + ["", "", "", judgement.note or "", "", "", "", uids[0]]]
        else:
            lines = [
                base
                + [
                    f.rule.id,
                    f.rule.severity.value,
                    f.rule.title,
                    f.detail,
                    f.rule.source,
                    f.rule.remediation,
                    _compact(f.runbook),
                    uid,
                ]
                for f, uid in zip(judgement.findings, uids, strict=True)
            ]
        for line in lines:
            writer.writerow([_cell(value) for value in line])
            written += 1
    return written


# --- findings.json (OCSF Detection Finding) ---------------------------------------------------


def _types(source: str) -> list[str]:
    """Security Hub's finding types (as Prowler's checks name them) for a rule's source."""
    base = "Software and Configuration Checks"
    types = [f"{base}/AWS Security Best Practices"]
    standards = f"{base}/Industry and Regulatory Standards"
    if "Security Hub" in source:
        types.append(f"{standards}/AWS Foundational Security Best Practices")
    if "CIS" in source:
        types.append(f"{standards}/CIS AWS Foundations Benchmark")
    return types


@dataclass(frozen=True)
class _Event:
    """What differs between the events of one account."""

    uid: str
    code: str  # metadata.event_code
    status_code: str  # FAIL | MANUAL | PASS
    severity: SeverityID
    title: str
    desc: str
    detail: str
    types: list[str]
    remediation: str | None = None
    source: str | None = None
    planned_run: dict[str, Any] | None = None


def _informational(uid: str, code: str, status_code: str, title: str, detail: str) -> _Event:
    """An account's one event when it has no finding: PASS, or MANUAL (not read)."""
    manual = status_code == "MANUAL"
    return _Event(
        uid=uid,
        code=code,
        status_code=status_code,
        severity=SeverityID.Informational,
        title=title,
        desc=f"{title}: check this account by hand." if manual else f"{title}.",
        detail=detail,
        types=_types(""),
        remediation=detail if manual else None,
    )


def _account_events(row: Row, include_ok: bool) -> Iterator[_Event]:
    creds, judgement = row
    uids = finding_uids(row)
    if judgement.verdict is Verdict.UNREACHABLE:
        note = judgement.note or f"not read ({creds.reach})"
        title = "The audit could not read the root user's credentials"
        yield _informational(uids[0], UNREACHABLE_CODE, "MANUAL", title, note)
    elif not judgement.findings:
        if include_ok:
            title = "The root user meets every rule of the audit"
            detail = f"no finding (root MFA: {mfa_kind(creds)})"
            yield _informational(uids[0], OK_CODE, "PASS", title, detail)
    else:
        for finding, uid in zip(judgement.findings, uids, strict=True):
            rule = finding.rule
            yield _Event(
                uid=uid,
                code=rule.id,
                status_code="FAIL",
                severity=_SEVERITY_ID[rule.severity],
                title=rule.title,
                desc=f"{rule.title} ({rule.source}).",
                detail=finding.detail,
                types=_types(rule.source),
                remediation=rule.remediation,
                source=rule.source,
                planned_run=finding.runbook,
            )


def ocsf_events(
    rows: Iterable[Row], meta: AuditMeta, *, include_ok: bool = True
) -> Iterator[DetectionFinding]:
    """The OCSF Detection Findings of the rows, one at a time (see the module's docstring)."""
    started = meta.started
    millis = int(started.timestamp() * 1000)
    partition = _partition(meta.region)
    product = Product(uid=PRODUCT, name=PRODUCT, vendor_name=PRODUCT, version=meta.product_version)
    activity = ActivityID.Create
    for row in map(_checked, rows):
        creds, judgement = row
        account = Account(
            name=creds.name,
            type_id=TypeID.AWS_Account,
            type="AWS Account",
            uid=creds.account_id,
        )
        for event in _account_events(row, include_ok):
            yield DetectionFinding(
                message=event.detail,
                activity_id=activity,
                activity_name=activity.name,
                finding_info=FindingInformation(
                    uid=event.uid,
                    title=event.title,
                    desc=event.desc,
                    types=event.types,
                    created_time=millis,
                    created_time_dt=started,
                ),
                time=millis,
                time_dt=started,
                remediation=Remediation(desc=event.remediation) if event.remediation else None,
                severity_id=event.severity,
                severity=event.severity.name,
                status_id=StatusID.New,
                status=StatusID.New.name,
                status_code=event.status_code,
                status_detail=event.detail,
                resources=[
                    ResourceDetails(
                        uid=f"arn:{partition}:iam::{creds.account_id}:root",
                        name="<root_account>",
                        type="AwsIamUser",
                        group=Group(name="iam"),
                        cloud_partition=partition,
                        region=meta.region,
                        data={"details": event.detail, "metadata": creds.to_dict()},
                    )
                ],
                metadata=Metadata(
                    uid=hashlib.sha256(f"{meta.audit_id}/{event.uid}".encode()).hexdigest(),
                    correlation_uid=meta.audit_id,
                    event_code=event.code,
                    product=product,
                    profiles=["cloud", "datetime"],
                    tenant_uid=meta.organization_id,
                ),
                type_uid=DetectionFindingTypeID.Create,
                type_name=f"Detection Finding: {DetectionFindingTypeID.Create.name}",
                cloud=Cloud(
                    account=account,
                    org=Organization(uid=meta.organization_id),
                    provider="AWS",
                    region=meta.region,
                ),
                unmapped={
                    key: value
                    for key, value in (
                        ("source", event.source),
                        ("verdict", judgement.verdict.value),
                        ("planned_run", event.planned_run),
                    )
                    if value is not None
                },
            )


def write_findings_ocsf(
    rows: Iterable[Row], out: TextIO, meta: AuditMeta, *, include_ok: bool = True
) -> int:
    """``findings.json``: ``[``, one event a line, ``]``. Returns the number of events."""
    written = 0
    out.write("[")
    for event in ocsf_events(rows, meta, include_ok=include_ok):
        out.write(",\n" if written else "\n")
        out.write(event.model_dump_json(exclude_none=True))
        written += 1
    out.write("\n]\n")
    return written


# --- report.html ------------------------------------------------------------------------------

_CHART_W = 400
_BAR_H = 24
_LABEL_W = 84
_COLORS = {
    "unreachable": "#8a8a8a",
    "change-mfa": "#c62828",
    "attention": "#e08a00",
    "ok": "#2e7d32",
    "none": "#c62828",
    "virtual": "#e08a00",
    "fido": "#2e7d32",
    "hardware": "#1b5e20",
    "mixed": "#6a1b9a",
    "not read": "#8a8a8a",
}
_SEVERITY_WEIGHT = {s: len(Severity) - s.rank for s in Severity}  # critical 4 ... low 1

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.2em 2em;
       color: #1a1a1a; max-width: 1500px; font-size: 14px; line-height: 1.4; }
h1 { font-size: 1.35em; margin: 0 0 0.3em 0; } h1 .sub { font-weight: 400; color: #555; }
h2 { font-size: 1.15em; margin-top: 1.4em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.4em 0; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top;
         font-size: 0.95em; }
th { background: #f2f2f2; }
table.meta td.k { width: 11em; font-weight: 600; background: #fafafa; }
#accounts th { cursor: pointer; user-select: none; white-space: nowrap; }
#accounts th[aria-sort=ascending]::after { content: " \\25B2"; }
#accounts th[aria-sort=descending]::after { content: " \\25BC"; }
.mono { font-family: SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em;
        overflow-wrap: anywhere; }
.summary { display: flex; flex-wrap: wrap; gap: 1.2em 2em; align-items: flex-start; }
.chart { width: 360px; max-width: 100%; height: auto; }
table.meta { width: auto; font-size: 0.92em; }
.verdict { font-weight: 700; white-space: nowrap; }
.v-unreachable { color: #666; } .v-change-mfa { color: #b00020; }
.v-attention { color: #8a4b00; } .v-ok { color: #116611; }
.sev { font-weight: 600; white-space: nowrap; }
.s-critical { color: #b00020; } .s-high { color: #c43e00; } .s-medium { color: #8a4b00; }
.s-low { color: #555; }
.note { color: #555; font-style: italic; }
.nowrap { white-space: nowrap; } .small { font-size: 0.8em; }
.stats { font-size: 1.05em; margin: 0.4em 0; }
ul.f { margin: 0; padding-left: 1.1em; }
"""

_SCRIPT = """
(() => {
  const table = document.getElementById("accounts");
  if (!table) return;
  const body = table.tBodies[0];
  const heads = [...table.tHead.rows[0].cells];
  heads.forEach((th, col) => {
    th.tabIndex = 0;
    th.title = "Sort by " + th.textContent;
    const sort = () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const numeric = th.dataset.type === "num";
      const key = (row) => {
        const cell = row.cells[col];
        const text = cell.dataset.sort ?? cell.textContent;
        return numeric ? Number(text) : text;
      };
      const rows = [...body.rows].map((row) => [key(row), row]);
      rows.sort(([a], [b]) => {
        const order = numeric ? a - b : a.localeCompare(b);
        return ascending ? order : -order;
      });
      const sorted = document.createDocumentFragment();
      rows.forEach(([, row]) => sorted.appendChild(row));
      body.appendChild(sorted);
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        sort();
      }
    });
  });
})();
"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
#: only the page's own inline style and its one script (by hash); nothing is fetched
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; img-src data:; base-uri 'none'; form-action 'none'"
)
#: the table's columns: (header, numeric sort)
TABLE_COLUMNS = (
    ("Account", False),
    ("Name", False),
    ("Verdict", True),
    ("Root MFA", False),
    ("Password", True),
    ("Keys / certificates", True),
    ("Findings", True),
    ("Planned run", False),
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _chart(title: str, counts: Mapping[str, int], total: int, css_id: str) -> str:
    """A horizontal bar chart, one bar per key with its count (``data-count``) and share."""
    top = 28
    height = top + len(counts) * (_BAR_H + 6) + 4
    plot = _CHART_W - _LABEL_W - 90
    biggest = max(counts.values(), default=0) or 1
    parts = [
        f'<svg class="chart" id="{css_id}" viewBox="0 0 {_CHART_W} {height}" role="img" '
        f'aria-label="{_e(title)}"><title>{_e(title)}</title>',
        f'<text x="0" y="16" font-weight="700" font-size="14">{_e(title)}</text>',
    ]
    for i, (key, count) in enumerate(counts.items()):
        y = top + i * (_BAR_H + 6)
        width = round(plot * count / biggest, 1)
        share = f"{100 * count / total:.0f}%" if total else "0%"
        parts.append(
            f'<g class="bar" data-key="{_e(key)}" data-count="{count}">'
            f'<text x="{_LABEL_W - 6}" y="{y + 16}" text-anchor="end" font-size="12">'
            f"{_e(key)}</text>"
            f'<rect x="{_LABEL_W}" y="{y}" width="{width}" height="{_BAR_H}" rx="2" '
            f'fill="{_COLORS.get(key, "#1f5fa8")}"/>'
            f'<text class="count" x="{_LABEL_W + width + 6}" y="{y + 16}" font-size="12">'
            f"{count} ({share})</text></g>"
        )
    return "".join(parts) + "</svg>"


def _meta_table(meta: AuditMeta) -> str:
    rows = [
        ("Organization", meta.organization_id),
        ("Management account", meta.management_account_id),
        ("Region", meta.region),
        ("Started", meta.started_at),
        ("Finished", meta.finished_at or "not finished"),
        ("Audit id", meta.audit_id),
        ("MFA device age limit", f"{meta.max_device_age_days} days"),
        ("Product", f"{PRODUCT} {meta.product_version}"),
    ]
    body = "".join(
        f'<tr><td class="k">{_e(k)}</td><td class="mono">{_e(v)}</td></tr>' for k, v in rows
    )
    return f'<table class="meta" id="audit"><tbody>{body}</tbody></table>'


def _stats(summary: Summary) -> str:
    return (
        f'<p class="stats"><b>{summary.accounts}</b> accounts, <b>{summary.findings}</b> '
        f"findings, <b>{summary.planned_runs}</b> planned runbook runs. The times are the "
        "audit's (the judgement's <i>now</i> is its start); each rule is named, with its "
        'source, in the <a href="#rules">rules</a> below the table.</p>'
    )


def _legend(summary: Summary) -> str:
    verdicts = "".join(
        f'<tr><td class="verdict v-{_e(v.value)}">{_e(v.value)}</td><td>{_e(text)}</td>'
        f"<td>{summary.by_verdict.get(v.value, 0)}</td></tr>"
        for v, text in VERDICT_TEXT.items()
    )
    rules = "".join(
        f'<tr id="rule-{_e(rule.id)}"><td class="mono">{_e(rule.id)}</td>'
        f'<td class="sev s-{_e(rule.severity.value)}">{_e(rule.severity.value)}</td>'
        f"<td>{_e(rule.title)}</td><td>{_e(rule.source)}</td><td>{_e(rule.remediation)}</td>"
        f"<td>{summary.by_rule.get(rule.id, 0)}</td>"
        f"<td>{summary.accounts_by_rule.get(rule.id, 0)}</td></tr>"
        for rule in summary.rules.values()
    )
    return (
        '<h2>Verdicts</h2><table id="verdicts"><thead><tr><th>Verdict</th><th>Meaning</th>'
        "<th>Accounts</th>"
        f"</tr></thead><tbody>{verdicts}</tbody></table>"
        '<h2>Rules</h2><table id="rules"><thead><tr><th>Rule</th><th>Severity</th>'
        "<th>Title</th><th>Source</th><th>Remediation</th><th>Findings</th><th>Accounts</th>"
        f"</tr></thead><tbody>{rules}</tbody></table>"
    )


def _table_row(creds: RootCredentials, judgement: Judgement) -> str:
    verdict = judgement.verdict
    kind = mfa_kind(creds)
    devices = "".join(
        f'<br><span class="mono small">{_e(d.kind + " " if kind == "mixed" else "")}'
        f"{_e(d.serial)}</span>"
        for d in creds.mfa_devices
    )
    mfa = _e(kind) + devices
    if creds.password is None:
        password, password_key = "not read", 2
    else:
        password, password_key = ("yes", 1) if creds.password else ("no", 0)
    keys = len(creds.active_keys)
    certs = creds.signing_certificates_active
    held = ", ".join(
        [f"access key …{k.id_suffix}" for k in creds.active_keys]
        + ([f"{certs} signing certificate(s)"] if certs else [])
    )
    held = "not read" if creds.reach != "probed" else held or "none"
    if judgement.findings:
        items = "".join(
            f'<li><a class="sev s-{_e(f.rule.severity.value)}" href="#rule-{_e(f.rule.id)}">'
            f"{_e(f.rule.id)}</a> {_e(f.detail)}</li>"
            for f in judgement.findings
        )
        findings = f'<ul class="f">{items}</ul>'
        worst = min(f.rule.severity.rank for f in judgement.findings)
        findings_key = _SEVERITY_WEIGHT[list(Severity)[worst]] * 1000 + len(judgement.findings)
    else:
        findings = f'<span class="note">{_e(judgement.note or "no finding")}</span>'
        findings_key = 0
    runs = [
        f"{r['method']} · remove {r['device_serial']} · rebind {r['rebind']}"
        for r in (f.runbook for f in judgement.findings)
        if r
    ]
    planned = "<br>".join(f'<span class="mono small">{_e(run)}</span>' for run in runs)
    cells = [
        f'<td class="mono nowrap">{_e(creds.account_id)}</td>',
        f"<td>{_e(creds.name)}</td>",
        f'<td class="verdict v-{_e(verdict.value)}" data-sort="{list(Verdict).index(verdict)}">'
        f"{_e(verdict.value)}</td>",
        f'<td data-sort="{_e(kind)}">{mfa}</td>',
        f'<td data-sort="{password_key}">{_e(password)}</td>',
        f'<td data-sort="{keys + certs if creds.reach == "probed" else -1}">{_e(held)}</td>',
        f'<td data-sort="{findings_key}">{findings}</td>',
        f'<td data-sort="{len(runs)}">{planned}</td>',
    ]
    return "<tr>" + "".join(cells) + "</tr>\n"


def write_report_html(rows: Callable[[], Iterable[Row]], out: TextIO, meta: AuditMeta) -> None:
    """``report.html``: ``rows()`` is called twice (the summary, then the table); each pass
    streams. ValueError when the second pass gives another number of accounts."""
    summary = summarize(rows())
    title = f"Fleet audit {meta.audit_id}"
    out.write(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>{_e(title)} <span class='sub'>· root credentials of organization "
        f"{_e(meta.organization_id)}</span></h1>\n"
    )
    out.write(
        _stats(summary)
        + '<div class="summary">'
        + _meta_table(meta)
        + _chart("Accounts by verdict", summary.by_verdict, summary.accounts, "by-verdict")
        + _chart("Accounts by root MFA", summary.by_mfa, summary.accounts, "by-mfa")
        + "</div>\n"
    )
    numeric_type = ' data-type="num"'
    head = "".join(
        f'<th scope="col"{numeric_type if numeric else ""}>{_e(name)}</th>'
        for name, numeric in TABLE_COLUMNS
    )
    out.write(
        f"<h2>Accounts ({summary.accounts})</h2>"
        "<p class='note'>In the audit's order; click a header to sort.</p>"
        f'<table id="accounts"><thead><tr>{head}</tr></thead><tbody>\n'
    )
    count = 0
    for creds, judgement in map(_checked, rows()):
        out.write(_table_row(creds, judgement))
        count += 1
    if count != summary.accounts:
        raise ValueError(
            f"the rows changed between the report's two passes ({summary.accounts} accounts, "
            f"then {count})"
        )
    out.write("</tbody></table>\n" + _legend(summary))
    out.write(f"\n<script>{_SCRIPT}</script>\n</body></html>\n")
