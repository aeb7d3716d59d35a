"""The fleet audit's outputs as the secret scanner meets them in a record: ``findings.json``
(OCSF), ``findings.csv`` and ``report.html`` of ``n`` accounts of
``tests/fleet/sample_fleet.py``, written by ``runbook_lib.fleet.report`` (pure: no AWS).

Large structured text full of the labelled patterns' words (*mfa*, *security*, *code*,
*token* in field names and remediation text) and of nothing secret: what made the scanner
slow (``bench/scan_bench.py`` times it; ``tests/record/test_scan_equivalence.py`` checks the
scanner finds on it exactly what its plain regexes find).
"""

from __future__ import annotations

import io

from runbook_lib.fleet.report import write_findings_csv, write_findings_ocsf, write_report_html
from tests.fleet.sample_fleet import META, sample_rows


def fleet_files(n: int) -> dict[str, bytes]:
    """``{file name: bytes}`` of one audit of ``n`` accounts, as the audit writes them."""
    ocsf, csv_, html = io.StringIO(), io.StringIO(newline=""), io.StringIO()
    write_findings_ocsf(sample_rows(n), ocsf, META)
    write_findings_csv(sample_rows(n), csv_)
    write_report_html(lambda: sample_rows(n), html, META)
    return {
        "findings.json": ocsf.getvalue().encode(),
        "findings.csv": csv_.getvalue().encode(),
        "report.html": html.getvalue().encode(),
    }
