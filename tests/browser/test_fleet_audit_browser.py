"""A real fleet audit of the sandbox (fleet-N over HTTP, `runbook fleet audit` through cli.main)
opens in Chromium: its report.html loads under its own CSP with no console error, shows one row
per account and the counts the record holds. The first screen goes to
test-artifacts/fleet-audit.png."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from runbook_lib import cli
from runbook_lib.fleet.audit import iter_rows
from runbook_lib.record.run import RunRecord
from tests.fleet import conftest as fleet_fixtures
from tests.fleet.conftest import Fleet
from tests.fleet.sample_fleet import CHROMIUM, chromium_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium at /usr/bin/chromium (`make test` installs it)",
    ),
]
# the fleet tests' fixtures: a fleet sandbox with AWS profiles, the host's AWS settings cleared
fleet_for = fleet_fixtures.fleet_for
_isolated = fleet_fixtures._isolated
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_a_sandbox_fleet_audit_opens_in_the_browser(
    fleet_for: Callable[[str], Fleet], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = fleet_for("fleet-40")
    fleet_file = tmp_path / "FLEET.yml"
    fleet_file.write_text(yaml.safe_dump(fleet.raw()))
    runs = tmp_path / "runs"
    assert cli.main(["fleet", "audit", "-f", str(fleet_file), "--runs-dir", str(runs)]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    rows = list(iter_rows(RunRecord.open(run_dir)))
    with chromium_page() as page:
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda err: problems.append(str(err)))
        page.goto((run_dir / "report.html").as_uri())
        shown = page.eval_on_selector_all(
            "#accounts tbody tr", "rows => rows.map(r => r.cells[0].textContent.trim())"
        )
        assert shown == [creds.account_id for creds, _ in rows]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "fleet-audit.png"))
        assert problems == [], problems
