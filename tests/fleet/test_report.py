"""The fleet audit's outputs (runbook_lib/fleet/report.py): findings.csv, findings.json (OCSF
Detection Findings, validated with py_ocsf_models) and report.html, from accounts judged by
rules.judge (tests/fleet/sample_fleet.py: every verdict, MFA kind and rule, each way out of
reach, hostile account names). Pure: no AWS."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import re
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import pytest
from py_ocsf_models.events.findings.detection_finding import DetectionFinding

from runbook_lib.fleet.report import (
    CSP,
    CSV_COLUMNS,
    MFA_KINDS,
    AuditMeta,
    Row,
    finding_uids,
    mfa_kind,
    summarize,
    write_findings_csv,
    write_findings_ocsf,
    write_report_html,
)
from runbook_lib.fleet.rules import RULES, RootCredentials, Verdict, judge
from tests.fleet.sample_fleet import HOSTILE_NAMES, META, NOW, sample_credentials, sample_rows

N = 40


def rows() -> list[Row]:
    return list(sample_rows(N))


def csv_of(given: list[Row]) -> tuple[int, list[dict[str, str]]]:
    out = io.StringIO()
    count = write_findings_csv(given, out)
    assert out.getvalue().count("\r\n") == count + 1  # RFC 4180 lines
    return count, list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))


def ocsf_of(given: list[Row], meta: AuditMeta = META, **kw: Any) -> tuple[int, str]:
    out = io.StringIO()
    count = write_findings_ocsf(given, out, meta, **kw)
    return count, out.getvalue()


def html_of(given: list[Row], meta: AuditMeta = META) -> str:
    out = io.StringIO()
    write_report_html(lambda: iter(given), out, meta)
    return out.getvalue()


# --------------------------------------------------------------- the sample covers everything
def test_the_sample_fleet_has_every_verdict_mfa_kind_rule_and_hostile_name() -> None:
    given = rows()
    assert {j.verdict for _, j in given} == set(Verdict)
    assert {mfa_kind(c) for c, _ in given} == set(MFA_KINDS)
    assert {f.rule.id for _, j in given for f in j.findings} == set(RULES)
    assert {c.reach for c, _ in given} >= {"management-account", "suspended", "access-denied"}
    assert set(HOSTILE_NAMES) <= {c.name for c, _ in given}


def test_summarize_counts_by_verdict_mfa_kind_rule_and_severity() -> None:
    given = rows()
    summary = summarize(given)
    assert summary.accounts == N
    assert summary.findings == sum(len(j.findings) for _, j in given)
    assert summary.planned_runs == sum(1 for _, j in given for f in j.findings if f.runbook)
    assert summary.by_verdict == {v.value: sum(j.verdict is v for _, j in given) for v in Verdict}
    assert list(summary.by_verdict) == ["unreachable", "change-mfa", "attention", "ok"]
    assert summary.by_mfa == {k: sum(mfa_kind(c) == k for c, _ in given) for k in MFA_KINDS}
    found = Counter(f.rule.id for _, j in given for f in j.findings)
    assert summary.by_rule == {rule_id: found[rule_id] for rule_id in RULES}
    assert list(summary.by_rule) == list(RULES)
    member = summary.accounts_by_rule["member-root-credentials"]
    assert 0 < member < summary.by_rule["member-root-credentials"]  # two devices, one account
    assert sum(summary.by_severity.values()) == summary.findings


def test_mfa_kind_of_an_account() -> None:
    mixed = next(c for c in sample_credentials(N) if len({d.kind for d in c.mfa_devices}) > 1)
    assert mfa_kind(mixed) == "mixed"
    assert mfa_kind(RootCredentials("1", password=True)) == "none"
    assert mfa_kind(RootCredentials("1", reach="suspended")) == "not read"
    twice = replace(mixed, mfa_devices=mixed.mfa_devices[:1] * 2)
    assert mfa_kind(twice) == twice.mfa_devices[0].kind


def test_a_row_pairing_two_accounts_is_refused() -> None:
    (creds, judgement), (other, _) = rows()[1:3]
    mixed = [(creds, judge(other, NOW))]
    for write in (
        lambda: write_findings_csv(mixed, io.StringIO()),
        lambda: write_findings_ocsf(mixed, io.StringIO(), META),
        lambda: summarize(mixed),
    ):
        with pytest.raises(ValueError, match="pairs account"):
            write()
    assert judgement.account_id == creds.account_id


def test_audit_meta_refuses_a_time_that_does_not_parse() -> None:
    with pytest.raises(ValueError, match="started_at is not an ISO 8601 time"):
        replace(META, started_at="yesterday")
    with pytest.raises(ValueError, match="finished_at"):
        replace(META, finished_at="soon")


# --------------------------------------------------------------- findings.csv
def test_the_csv_has_a_row_per_finding_and_per_account_without_findings() -> None:
    given = rows()
    count, parsed = csv_of(given)
    assert count == len(parsed) == sum(max(1, len(j.findings)) for _, j in given)
    assert tuple(parsed[0]) == CSV_COLUMNS
    assert [r["account_id"] for r in parsed] == [
        c.account_id for c, j in given for _ in range(max(1, len(j.findings)))
    ]
    for (creds, judgement), uids in zip(given, map(finding_uids, given), strict=True):
        mine = [r for r in parsed if r["account_id"] == creds.account_id]
        assert [r["finding_uid"] for r in mine] == uids
        assert {r["verdict"] for r in mine} == {judgement.verdict.value}
        if not judgement.findings:
            (row,) = mine
            assert row["rule"] == row["severity"] == row["planned_run"] == ""
            assert row["detail"] == (judgement.note or "")
            assert bool(row["detail"]) is (judgement.verdict is Verdict.UNREACHABLE)
            continue
        for row, finding in zip(mine, judgement.findings, strict=True):
            assert row["rule"] == finding.rule.id
            assert row["severity"] == finding.rule.severity.value
            assert row["title"] == finding.rule.title
            assert row["source"] == finding.rule.source
            assert row["remediation"] == finding.rule.remediation
            assert row["detail"] == finding.detail
            planned = json.loads(row["planned_run"]) if row["planned_run"] else None
            assert planned == finding.runbook
            if planned:
                assert " " not in row["planned_run"]  # compact


def test_the_csv_neutralises_every_cell_a_spreadsheet_would_run_as_a_formula() -> None:
    _, parsed = csv_of(rows())
    names = {r["account_name"] for r in parsed}
    formulas = [name for name in HOSTILE_NAMES if name[0] in "=+-@"]
    assert len(formulas) == 4
    for hostile in formulas:
        assert "'" + hostile in names and hostile not in names
    assert "<script>alert(1)</script>" in names  # not a formula: kept as it is
    for row in parsed:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_each_formula_start_is_neutralised(start: str) -> None:
    creds = RootCredentials("123456789012", f"{start}1+1", password=True)
    out = io.StringIO()
    write_findings_csv([(creds, judge(creds, NOW))], out)
    parsed = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert {r["account_name"] for r in parsed} == {f"'{start}1+1"}


# --------------------------------------------------------------- findings.json (OCSF)
def test_every_ocsf_event_validates_as_a_detection_finding_with_nothing_dropped() -> None:
    given = rows()
    count, text = ocsf_of(given)
    events = json.loads(text)
    expected = sum(len(j.findings) or 1 for _, j in given)
    assert count == len(events) == expected
    for event in events:
        model = DetectionFinding.model_validate(event)
        # every field is one of the schema's (pydantic ignores unknown ones: compare back)
        assert model.model_dump(mode="json", exclude_none=True) == event
        assert event["class_uid"] == 2004 and event["category_uid"] == 2
        assert event["type_uid"] == 200401 and event["activity_id"] == 1
        assert event["status_id"] == 1 and event["status"] == "New"
        assert event["cloud"]["provider"] == "AWS"
        assert event["metadata"]["product"]["name"] == "root-mfa-runbook"
        assert event["metadata"]["product"]["version"] == META.product_version
        assert event["metadata"]["tenant_uid"] == META.organization_id
        assert event["metadata"]["correlation_uid"] == META.audit_id
        assert event["time"] == int(NOW.timestamp() * 1000)  # OCSF timestamp_t: milliseconds
        assert event["time_dt"].startswith("2026-12-01T12:00:00")
        account = event["cloud"]["account"]["uid"]
        assert event["resources"][0]["uid"] == f"arn:aws:iam::{account}:root"


def test_the_ocsf_array_is_one_event_a_line() -> None:
    _, text = ocsf_of(rows())
    lines = text.splitlines()
    assert lines[0] == "[" and lines[-1] == "]"
    for line in lines[1:-1]:
        json.loads(line.removesuffix(","))
    assert ocsf_of([]) == (0, "[\n]\n") and json.loads(ocsf_of([])[1]) == []


def test_each_finding_maps_its_rule_severity_detail_remediation_and_plan() -> None:
    given = rows()
    events = iter(json.loads(ocsf_of(given)[1]))
    severity = {"critical": (5, "Critical"), "high": (4, "High"), "medium": (3, "Medium")}
    severity["low"] = (2, "Low")
    for creds, judgement in given:
        for finding in judgement.findings or [None]:
            event = next(events)
            assert event["cloud"]["account"] == {
                "name": creds.name,
                "type": "AWS Account",
                "type_id": 10,
                "uid": creds.account_id,
            }
            if finding is None:
                unreachable = judgement.verdict is Verdict.UNREACHABLE
                assert event["status_code"] == ("MANUAL" if unreachable else "PASS")
                assert event["severity_id"] == 1 and event["severity"] == "Informational"
                if unreachable:
                    assert event["message"] == judgement.note
                    assert event["remediation"]["desc"] == judgement.note
                    assert event["metadata"]["event_code"] == "account-unreachable"
                else:
                    assert event["metadata"]["event_code"] == "account-ok"
                continue
            rule = finding.rule
            assert event["status_code"] == "FAIL"
            assert (event["severity_id"], event["severity"]) == severity[rule.severity.value]
            assert event["metadata"]["event_code"] == rule.id
            assert event["finding_info"]["title"] == rule.title
            assert rule.source in event["finding_info"]["desc"]
            assert event["message"] == event["status_detail"] == finding.detail
            assert event["remediation"]["desc"] == rule.remediation
            assert event["unmapped"]["source"] == rule.source
            assert event["unmapped"]["verdict"] == judgement.verdict.value
            assert event["unmapped"].get("planned_run") == finding.runbook
            cis = "Software and Configuration Checks/Industry and Regulatory Standards/CIS AWS "
            assert (cis + "Foundations Benchmark" in event["finding_info"]["types"]) is (
                "CIS" in rule.source
            )
    assert next(events, None) is None


def test_ocsf_uids_are_unique_stable_and_the_same_finding_keeps_its_uid_across_audits() -> None:
    given = rows()
    first, second = ocsf_of(given)[1], ocsf_of(given)[1]
    assert first == second
    events = json.loads(first)
    uids = [e["finding_info"]["uid"] for e in events]
    assert len(set(uids)) == len(uids)
    assert len({e["metadata"]["uid"] for e in events}) == len(events)
    assert uids == [uid for row in given for uid in finding_uids(row)]
    later = json.loads(ocsf_of(given, replace(META, audit_id="another-audit"))[1])
    assert [e["finding_info"]["uid"] for e in later] == uids  # a consumer can follow it
    assert not {e["metadata"]["uid"] for e in later} & {e["metadata"]["uid"] for e in events}


def test_two_findings_of_one_rule_on_two_devices_have_two_uids() -> None:
    creds = next(c for c in sample_credentials(N) if c.centralised and len(c.mfa_devices) == 2)
    judgement = judge(creds, NOW)
    member = [f for f in judgement.findings if f.rule.id == "member-root-credentials"]
    assert len(member) == 2
    uids = finding_uids((creds, judgement))
    assert len(set(uids)) == len(uids) == len(judgement.findings)
    # the uid follows the device, not the finding's place among the account's findings

    def by_device(c: RootCredentials) -> dict[tuple[str, str], str]:
        judged = judge(c, NOW)
        return {
            (f.rule.id, next(d.serial for d in c.mfa_devices if d.serial in f.detail)): uid
            for f, uid in zip(judged.findings, finding_uids((c, judged)), strict=True)
        }

    swapped = replace(creds, mfa_devices=creds.mfa_devices[::-1])
    assert by_device(swapped) == by_device(creds) and len(by_device(creds)) == len(uids)


def test_the_ocsf_output_can_leave_passing_accounts_out() -> None:
    given = rows()
    count, text = ocsf_of(given, include_ok=False)
    codes = [e["status_code"] for e in json.loads(text)]
    assert "PASS" not in codes and count == len(codes)
    assert codes.count("MANUAL") == sum(j.verdict is Verdict.UNREACHABLE for _, j in given)


def test_the_root_arn_names_the_region_s_partition() -> None:
    creds = RootCredentials("123456789012", "gov", password=True)
    meta = replace(META, region="us-gov-west-1")
    events = json.loads(ocsf_of([(creds, judge(creds, NOW))], meta)[1])
    assert {e["resources"][0]["uid"] for e in events} == {"arn:aws-us-gov:iam::123456789012:root"}
    assert {e["resources"][0]["cloud_partition"] for e in events} == {"aws-us-gov"}


# --------------------------------------------------------------- report.html
class Page(HTMLParser):
    """Every start tag with its attributes, the text of each table's cells, the inline
    scripts and styles, and each SVG bar's count."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.bars: dict[str, dict[str, tuple[int, str]]] = {}
        self._table: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None
        self._raw: str | None = None
        self._chart: str | None = None
        self._bar: tuple[str, int] | None = None
        self._count: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        if tag == "table":
            self._table = found.get("id") or f"table-{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table:
            self.tables[self._table].append([])
        elif tag == "td" and self._in_body:
            self._cell = []
        elif tag in ("script", "style"):
            self._raw = tag
        elif tag == "svg":
            self._chart = found.get("id")
            self.bars[str(self._chart)] = {}
        elif tag == "g" and found.get("class") == "bar":
            self._bar = (str(found["data-key"]), int(str(found["data-count"])))
        elif tag == "text" and found.get("class") == "count":
            self._count = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag in ("script", "style"):
            self._raw = None
        elif tag == "text" and self._count is not None and self._bar:
            self.bars[str(self._chart)][self._bar[0]] = (self._bar[1], "".join(self._count))
            self._count = None

    def handle_data(self, data: str) -> None:
        if self._raw == "script":
            self.scripts.append(data)
        elif self._raw == "style":
            self.styles.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._count is not None:
            self._count.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def test_the_report_references_nothing_outside_itself() -> None:
    text = html_of(rows())
    page = parse(text)
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in ("href", "src", "xlink:href", "action", "srcset", "poster", "data"):
                assert value is not None and value.startswith("#"), (tag, name, value)
        assert tag not in ("link", "iframe", "img", "object", "embed", "base", "form"), tag
    for style in page.styles:
        assert "url(" not in style and "@import" not in style
    assert not re.search(r"https?://", text.replace(html.escape(HOSTILE_NAMES[0]), "")), "URL"
    (csp,) = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert csp["http-equiv"] == "Content-Security-Policy" and csp["content"] == CSP
    assert "default-src 'none'" in CSP
    # the one script is the page's own, allowed by its hash and by nothing else
    (script,) = page.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in CSP
    assert [t for t, a in page.tags if t == "script"] == ["script"]
    assert not [a for _, a in page.tags for name in a if name.startswith("on")]


def test_the_picture_counts_what_summarize_counts() -> None:
    given = rows()
    summary = summarize(given)
    page = parse(html_of(given))
    for chart, expected in (("by-verdict", summary.by_verdict), ("by-mfa", summary.by_mfa)):
        drawn = page.bars[chart]
        assert list(drawn) == list(expected)
        assert {key: count for key, (count, _) in drawn.items()} == dict(expected)
        for key, (count, label) in drawn.items():
            assert label.split()[0] == str(count) == str(expected[key])
    assert sum(summary.by_verdict.values()) == N


def test_the_table_has_one_row_per_account_in_the_audit_s_order_names_escaped() -> None:
    given = rows()
    text = html_of(given)
    page = parse(text)
    table = page.tables["accounts"]
    assert len(table) == N
    assert [r[0] for r in table] == [c.account_id for c, _ in given]
    assert [r[1] for r in table] == [c.name for c, _ in given]  # the hostile names, as text
    assert [r[2] for r in table] == [j.verdict.value for _, j in given]
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for (creds, judgement), row in zip(given, table, strict=True):
        assert row[3].startswith(mfa_kind(creds))
        for finding in judgement.findings:
            assert finding.rule.id in row[6] and finding.detail in row[6]
            if finding.runbook:
                assert finding.runbook["device_serial"] in row[7]
        if judgement.verdict is Verdict.UNREACHABLE:
            assert row[6] == judgement.note and row[4] == "not read"


def test_the_legend_names_every_rule_with_its_title_and_source() -> None:
    page = parse(html_of(rows()))
    legend = {row[0]: row for row in page.tables["rules"]}
    assert set(legend) == set(RULES)
    for rule in RULES.values():
        _, severity, title, source, remediation, *_ = legend[rule.id]
        assert (severity, title, source, remediation) == (
            rule.severity.value,
            rule.title,
            rule.source,
            rule.remediation,
        )
    ids = {a.get("id") for _, a in page.tags}
    hrefs = {a["href"] for t, a in page.tags if t == "a" and a.get("href")}
    assert {h.removeprefix("#") for h in hrefs} <= ids  # every link leads into the page


def test_the_report_shows_the_audit_s_meta() -> None:
    page = parse(html_of(rows()))
    shown = dict((key, value) for key, value in page.tables["audit"])
    assert shown["Organization"] == META.organization_id
    assert shown["Region"] == META.region
    assert shown["Started"] == META.started_at
    assert shown["Audit id"] == META.audit_id


def test_rows_that_change_between_the_two_passes_are_refused() -> None:
    passes = iter([rows(), rows()[:-1]])
    with pytest.raises(ValueError, match="changed between the report's two passes"):
        write_report_html(lambda: next(passes), io.StringIO(), META)


# --------------------------------------------------------------- streaming
class Tracked:
    """Rows made one at a time, each account's credentials watched: how many are alive at
    once, and how many had been made when the output was first written to."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.alive = 0
        self.most_alive = 0
        self.made = 0

    def _gone(self) -> None:
        self.alive -= 1

    def rows(self) -> Iterator[Row]:
        for creds in sample_credentials(self.n):
            weakref.finalize(creds, self._gone)
            self.alive += 1
            self.made += 1
            self.most_alive = max(self.most_alive, self.alive)
            yield creds, judge(creds, NOW)


class Out(io.StringIO):
    """Notes how many rows had been made at each write."""

    def __init__(self, tracked: Tracked) -> None:
        super().__init__()
        self.tracked = tracked
        self.made_at: list[int] = []

    def write(self, text: str) -> int:
        self.made_at.append(self.tracked.made)
        return super().write(text)


@pytest.mark.parametrize("output", ["csv", "ocsf", "html"])
def test_5000_accounts_are_read_one_at_a_time(output: str) -> None:
    tracked = Tracked(5000)
    out = Out(tracked)
    writers: dict[str, Callable[[], object]] = {
        "csv": lambda: write_findings_csv(tracked.rows(), out),
        "ocsf": lambda: write_findings_ocsf(tracked.rows(), out, META),
        "html": lambda: write_report_html(tracked.rows, out, META),
    }
    writers[output]()
    assert tracked.made == (2 if output == "html" else 1) * 5000
    assert tracked.most_alive <= 3, f"{tracked.most_alive} accounts held at once"
    # written as read: each account's lines go out before the next account is made
    first_pass = 5000 if output == "html" else 0  # the report counts first, then writes
    assert set(range(first_pass + 1, first_pass + 5001)) <= set(out.made_at)
    ids = {c.account_id for c in sample_credentials(5000)}
    assert ids <= set(re.findall(r"\b[0-9]{12}\b", out.getvalue()))  # every account written
