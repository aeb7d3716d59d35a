"""The fleet audit's report.html in a real browser (Debian's chromium driven by Playwright): its
one inline script runs under the page's own Content-Security-Policy (so the hash in the policy
is the script's), a click on a header sorts the table, a second click reverses it, Enter on a
focused header sorts too; the two charts draw every bar inside the picture. The first screen
goes to test-artifacts/fleet-report.png (docs/fleet-report.png, for the README, is a real
audit of fleet-1000: ``bench/fleet_bench.py --screenshot docs/fleet-report.png``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.fleet.report import write_report_html
from runbook_lib.fleet.rules import Verdict
from tests.fleet.sample_fleet import CHROMIUM, META, chromium_page, sample_rows

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; "
        "`make test` installs it); in CI this test always runs",
    ),
]

COLUMN = """(col) => [...document.querySelectorAll('#accounts tbody tr')]
  .map(row => row.cells[col].textContent)"""
IN_ORDER = "(xs) => xs.every((x, i) => i === 0 || xs[i - 1].localeCompare(x) <= 0)"
BARS = """() => [...document.querySelectorAll('svg.chart')].map(svg => {
  const outer = svg.getBoundingClientRect();
  return {outer: {left: outer.left, right: outer.right, top: outer.top, bottom: outer.bottom},
          items: [...svg.querySelectorAll('g.bar')].map(g => {
            const b = g.getBoundingClientRect();
            const rect = g.querySelector('rect').getBoundingClientRect();
            return {key: g.dataset.key, count: Number(g.dataset.count), width: rect.width,
                    left: b.left, right: b.right, top: b.top, bottom: b.bottom};
          })};
})"""


@pytest.fixture
def report(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    path = tmp_path / "report.html"
    with path.open("w", encoding="utf-8") as out:
        write_report_html(lambda: sample_rows(40), out, META)
    with chromium_page() as page:
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda err: problems.append(str(err)))
        page.goto(path.as_uri())
        yield page, path
        assert problems == [], problems  # a CSP refusal is a console error


def test_a_click_on_a_header_sorts_the_table_and_a_second_reverses_it(
    report: tuple[Any, Path],
) -> None:
    page, _ = report
    assert not page.evaluate(IN_ORDER, page.evaluate(COLUMN, 1))
    audit_order = page.evaluate(COLUMN, 0)
    assert len(audit_order) == 40 and audit_order != sorted(audit_order)
    header = page.locator("#accounts th", has_text="Account")
    header.click()
    assert page.evaluate(COLUMN, 0) == sorted(audit_order)
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert page.evaluate(COLUMN, 0) == sorted(audit_order, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"

    verdict = page.locator("#accounts th", has_text="Verdict")
    verdict.click()
    ranks = [[v.value for v in Verdict].index(v) for v in page.evaluate(COLUMN, 2)]
    assert ranks == sorted(ranks) and ranks[0] == 0  # unreachable first: the worst
    assert header.get_attribute("aria-sort") is None  # one sorted column at a time

    names = page.locator("#accounts th", has_text="Name")
    names.focus()
    page.keyboard.press("Enter")
    shown = page.evaluate(COLUMN, 1)
    assert names.get_attribute("aria-sort") == "ascending"
    # the browser's own collation (localeCompare), not Python's code point order
    assert page.evaluate(IN_ORDER, shown) and "<script>alert(1)</script>" in shown


def test_the_charts_draw_every_bar_inside_the_picture_and_the_first_screen_is_saved(
    report: tuple[Any, Path],
) -> None:
    page, _ = report
    charts = page.evaluate(BARS)
    assert len(charts) == 2
    for chart in charts:
        outer = chart["outer"]
        biggest = max(item["count"] for item in chart["items"])
        for item in chart["items"]:
            assert outer["left"] <= item["left"] and item["right"] <= outer["right"] + 0.5
            assert outer["top"] <= item["top"] and item["bottom"] <= outer["bottom"] + 0.5
            assert (item["width"] > 0) is (item["count"] > 0)
            if item["count"] == biggest:
                assert item["width"] == max(i["width"] for i in chart["items"])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "fleet-report.png"))
    assert (ARTIFACTS / "fleet-report.png").stat().st_size > 10_000
