"""render_html: escaped, self-contained, and useful for halted and broken runs."""

from __future__ import annotations

import re
from pathlib import Path

from runbook_lib.record import EVENTS_FILE, RUN_FILE, RunRecord
from runbook_lib.report import render_html
from tests.keys import signer

from .helpers import make_run


def test_event_data_is_escaped_and_the_page_is_self_contained(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    rec.append("evidence.note", "verify", text="<script>alert('x')</script>", who='"><img>')
    rec.write_json("snapshots/after.json", {"mfa_devices": [], "<b>key</b>": "<i>v</i>"})
    rec.seal(signer=signer())
    page = render_html(rec.path)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<img" not in page and "<b>key" not in page and "&lt;i&gt;v&lt;/i&gt;" in page
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page, re.IGNORECASE)
    assert "VERIFIED" in page and "NOT VERIFIED" not in page
    for text in ("CHG-1042", "assume-root", "alice@example.com", "123456789012"):
        assert text in page
    assert "5b5c0f4e-2a51-4c54-8f1c-9d2f0d7b1c3a" in page  # the action's request id
    assert "DeactivateMFADevice" in page  # evidence
    assert rec.events()[-1]["hash"][:12] in page  # event log with short hashes


def test_halted_run_without_after_snapshot(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    rec.append("gate.halted", "approve-removal", who="bob@example.com", what="not approved")
    rec.update_run(status="halted", halted_at="approve-removal")
    rec.seal(final=False, signer=signer())
    page = render_html(rec.path)
    assert "halted" in page and "approve-removal" in page
    assert "snapshots/after.json: missing" in page
    assert "bob@example.com" in page and "gate.halted" in page
    assert "checkpoint, not final" in page


def test_tampered_and_broken_runs_still_render(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    rec.seal(signer=signer())
    (rec.path / "snapshots" / "before.json").write_text("{not json")
    page = render_html(rec.path)
    assert "NOT VERIFIED" in page and "snapshots/before.json: changed" in page
    assert "snapshots/before.json: unreadable" in page

    broken = RunRecord.create(tmp_path / "runs", {}, run_id="broken")
    (broken.path / RUN_FILE).unlink()
    (broken.path / EVENTS_FILE).unlink()
    page = render_html(broken.path)
    assert "run.json: missing" in page and "No events" in page and "NOT VERIFIED" in page


def test_page_written_into_the_record_at_sealing_points_to_verify(tmp_path: Path) -> None:
    """The page is in the manifest, so it cannot verify itself: written for the seal it says
    how to check the record instead of showing a verification that predates the seal."""
    rec = make_run(tmp_path / "runs")
    page = render_html(rec.path, for_seal=True)
    assert "NOT verified" not in page and "NOT VERIFIED" not in page
    assert "runbook verify" in page and rec.events()[-1]["hash"] in page
    rec.write_text("report.html", page)
    rec.seal(signer=signer())
    assert "NOT verified" in render_html(tmp_path / "runs" / "missing")  # a real check still
