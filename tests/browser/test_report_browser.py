"""The run report in a real browser (Debian's chromium driven by Playwright).

A real sandbox run (standalone, console, the simulated console actor), then its report.html as
an auditor opens it: at 1280x800 the first screen answers what/who/when/approved-by/evidence,
and the SVG timeline renders with every label inside the picture and none on top of another.
Screenshots go to test-artifacts/ (docs/report.png, shown in the README, is copied from there).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook_demo import sandbox_profiles
from runbook_sandbox import SandboxInfo
from tests import keys
from tests.conftest import isolate_aws_env
from tests.runbook.helpers import Env, of_type

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; "
        "`make test` installs it); in CI this test always runs",
    ),
]

# Where the first occurrence of a text is drawn (its range's box), or null when absent.
FIND_TEXT = """(needle) => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const at = node.textContent.indexOf(needle);
    if (at >= 0) {
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + needle.length);
      const box = range.getBoundingClientRect();
      return {top: box.top, bottom: box.bottom, left: box.left, right: box.right};
    }
  }
  return null;
}"""

# The SVG's size, and the boxes (page coordinates) of its labels.
SVG_BOXES = """() => {
  const svg = document.querySelector('svg.timeline');
  if (!svg) return null;
  const outer = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].map(t => {
    const b = t.getBoundingClientRect();
    return {text: t.textContent, cls: t.getAttribute('class'),
            left: b.left, right: b.right, top: b.top, bottom: b.bottom};
  });
  return {width: outer.width, height: outer.height, left: outer.left, right: outer.right,
          top: outer.top, bottom: outer.bottom, texts};
}"""


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS, timeout=30_000
        )
        try:
            tab = browser.new_page(viewport=VIEWPORT)
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            browser.close()


@pytest.fixture
def env(
    sandbox_factory: Callable[[str], SandboxInfo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Env]:
    isolate_aws_env(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    info = sandbox_factory("standalone")
    with sandbox_profiles(info) as profiles:
        yield Env(info, profiles, tmp_path / "runs")


def test_the_report_of_a_real_run_in_chromium(env: Env, page: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    code, run_dir = env.run(env.approved("console"))
    assert code == 0
    caller = of_type(run_dir, "observation.identity")[0]["data"]["arn"]
    trail_ids = [
        i
        for t in ("evidence.deactivation", "evidence.console-login", "evidence.enable")
        for e in of_type(run_dir, t)
        for i in e["data"]["event_ids"]
    ]
    assert len(trail_ids) == 3
    page.goto((run_dir / "report.html").resolve().as_uri())
    page.screenshot(path=str(ARTIFACTS / "report-first-screen.png"))
    page.screenshot(path=str(ARTIFACTS / "report-full.png"), full_page=True)

    # the first screen (1280x800, not scrolled) answers the auditor's questions
    needles = [
        "The root user of account",
        env.account,
        "was removed in the console",
        "was bound in the console",
        "alice@example.com",  # the approver, with her key's fingerprint
        keys.signer("alice").key.fingerprint,
        "OS user ",
        caller,
        "When (UTC)",
        *trail_ids,
        "being sealed",
    ]
    for needle in needles:
        box = page.evaluate(FIND_TEXT, needle)
        assert box is not None, f"{needle!r} is not on the page"
        assert 0 <= box["top"] and box["bottom"] <= VIEWPORT["height"], (
            f"{needle!r} is not on the first screen (drawn at y={box['top']:.0f})"
        )
        assert box["right"] <= VIEWPORT["width"], f"{needle!r} runs off the screen"
    assert page.evaluate(FIND_TEXT, "DRY RUN") is None

    # the timeline renders: a real size, every label inside it, no label on another
    svg = page.evaluate(SVG_BOXES)
    assert svg is not None and svg["width"] > 1000 and svg["height"] > 200, svg
    texts = svg["texts"]
    assert {"00-preflight", "05-close-out", "CloudTrail"} <= {t["text"] for t in texts}
    assert any(t["text"].startswith("DeactivateMFADevice ") for t in texts)
    for t in texts:
        assert t["right"] - t["left"] > 0, t
        assert svg["left"] <= t["left"] and t["right"] <= svg["right"] + 0.5, t
        assert svg["top"] <= t["top"] and t["bottom"] <= svg["bottom"] + 0.5, t
    labels = [t for t in texts if t["cls"] in ("lbl", "tick", "brkl", "name", "lane")]
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            apart = (
                a["right"] <= b["left"] + 0.5
                or b["right"] <= a["left"] + 0.5
                or a["bottom"] <= b["top"] + 0.5
                or b["bottom"] <= a["top"] + 0.5
            )
            assert apart, f"label {a['text']!r} overlaps {b['text']!r}"
    page.locator("svg.timeline").screenshot(path=str(ARTIFACTS / "report-timeline.png"))

    # the raw events are folded away until asked for
    raw = page.locator("details", has=page.locator("summary", has_text="Raw events"))
    assert not raw.evaluate("d => d.open")
    assert not page.locator("details table").first.is_visible()
    raw.locator("summary").click()
    assert raw.locator("table").is_visible()
