"""render_html: escaped, self-contained, and useful for halted and broken runs."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from runbook_lib.record import chain
from runbook_lib.record import report as report_mod
from runbook_lib.record.layout import EVENTS_FILE, RUN_FILE
from runbook_lib.record.report import render_html
from runbook_lib.record.run import RunRecord
from tests import keys
from tests.keys import signer
from tests.runbook.conftest import _isolated_env, env_for  # noqa: F401 (fixtures)
from tests.runbook.helpers import Env, of_type

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
    assert "being sealed" in page and "Problems found before sealing" not in page
    rec.write_text("report.html", page)
    rec.seal(signer=signer())
    after = render_html(rec.path)  # outside the record, a real check
    assert '<span class="ok">VERIFIED</span>: intact and sealed final' in after
    assert "NOT VERIFIED" in render_html(tmp_path / "runs" / "missing")


# --- the first screen, from real sandbox runs and from hand-built records -------------------------

FINGERPRINT = "SHA256:q1l8bZ4Yp3mK9wR2tX7vN5cJ0hF6dG8sA1eU3iO4yTk"


def _first_screen(page: str) -> str:
    """What comes before the timeline: the banners and the summary."""
    assert "<h2>Timeline</h2>" in page
    return page.split("<h2>Timeline</h2>", 1)[0]


def _ids(run_dir: Path, type_: str) -> list[str]:
    return [i for e in of_type(run_dir, type_) for i in e["data"]["event_ids"]]


def test_the_summary_of_a_real_change_says_who_what_when_approved_by_and_evidence(
    env_for: Callable[[str], Env],  # noqa: F811
) -> None:
    env = env_for("standalone")
    before = env.serials()
    code, run_dir = env.run(env.approved("console"))
    assert code == 0
    after = env.serials()
    (removed,), (added,) = before - after, after - before
    page = (run_dir / "report.html").read_text()
    top = _first_screen(page)
    # what changed, on which account, in words
    assert f'The root user of account <span class="mono">{env.account}</span>' in top
    assert f"virtual {removed}" in top and f"virtual {added}" in top
    assert "was removed in the console by the sandbox console actor" in top
    assert f'A new <span class="mono">virtual {added}</span> was bound in the console' in top
    assert f'removed: <span class="mono">{removed}</span>' in top
    # the CloudTrail event ids that prove each change
    for type_ in ("evidence.deactivation", "evidence.console-login", "evidence.enable"):
        ids = _ids(run_dir, type_)
        assert ids and all(i in top for i in ids), type_
    # approved by whom, with which key; the gates and the plan digest
    assert "No signed approval is recorded." not in top
    alice = keys.signer("alice").key
    assert "<b>alice@example.com</b>" in top and alice.fingerprint in top
    digest = json.loads((run_dir / "run.json").read_text())["plan_digest"]
    assert "risk-acknowledged, remove-device" in top and digest[:16] in top
    # performed by whom: the OS user and host, and the caller ARN
    created = of_type(run_dir, "run.created")[0]["data"]["info"]["operator"]
    caller = of_type(run_dir, "observation.identity")[0]["data"]["arn"]
    assert f"OS user {created['os_user']}@{created['host']}" in top and caller in top
    # when: start and end (UTC)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    start = dt.datetime.fromisoformat(events[0]["time"]).strftime("%Y-%m-%d %H:%M:%S")
    end = dt.datetime.fromisoformat(of_type(run_dir, "run.succeeded")[0]["time"])
    assert f"{start} → {end:%H:%M:%S} UTC" in top
    # the result: written as the record was sealed, and how to check it
    assert "succeeded</span>: every step of the plan" in top
    assert "being sealed" in top and f"runbook verify {run_dir}" in top
    for banner in ("DRY RUN", "SELF-APPROVED", "HALTED", "TAMPERED", "UNSEALED", "FAILED"):
        assert banner not in top, banner
    # then the picture, the steps, and the raw events folded away
    svg = page.split('<svg class="timeline"', 1)[1].split("</svg>", 1)[0]
    for step in ("00-preflight", "01-remove-device", "04-rebind", "05-close-out"):
        assert f">{step}</text>" in svg
    assert "DeactivateMFADevice" in svg and "claimed new-device-bound-in-console" in svg
    last = of_type(run_dir, "step.started")[-1]
    appendix = page.split("<summary>Raw events", 1)
    assert len(appendix) == 2 and last["hash"][:12] not in appendix[0]
    assert last["hash"][:12] in appendix[1].split("</details>", 1)[0]
    # outside the record, the page checks the record itself
    assert "VERIFIED</span>: intact and sealed final" in report_mod.render_html(run_dir)


def test_a_dry_run_says_so_on_its_first_screen(env_for: Callable[[str], Env]) -> None:  # noqa: F811
    env = env_for("standalone")
    (serial,) = env.serials()
    code, run_dir = env.run(env.params("console", dry_run=True))
    assert code == 0
    top = _first_screen((run_dir / "report.html").read_text())
    assert '<p class="banner dry">DRY RUN: nothing was changed.' in top
    assert "Dry run: nothing to approve." in top and "No signed approval" not in top
    assert f'A real run would remove <span class="mono">{serial}</span>' in top
    assert "Dry run: no change, so no CloudTrail event proves one." in top
    assert "was removed" not in top


def test_a_halted_real_run_shows_where_and_that_nothing_changed(
    env_for: Callable[[str], Env],  # noqa: F811
) -> None:
    env = env_for("standalone")
    code, run_dir = env.run(env.approved("console", sandbox_actor=False))
    assert code == 3
    top = _first_screen((run_dir / "report.html").read_text())
    assert (
        '<p class="banner unfinished">HALTED in 01-remove-device at gate '
        "device-removed-in-console:" in top
    )
    assert "<b>Nothing was removed</b>" in top and "not finished" in top
    assert "not recorded (the run did not reach 05-close-out)" in top


def _signed_record(tmp_path: Path, self_approved: bool) -> RunRecord:
    rec = RunRecord.create(
        tmp_path / "runs",
        {
            "parameters": {
                "account_id": "123456789012",
                "change_ticket": "CHG-7",
                "method": "console",
            },
            "operator": {"os_user": "alice", "host": "jump-1", "caller_arn": None},
        },
        run_id="signed",
    )
    approver = "alice@example.com" if self_approved else "bob@example.com"
    rec.append(
        "approval.verified",
        file="approvals/01-x.txt",
        statement="approvals/01-x.txt",
        signature="approvals/01-x.txt.sig",
        principal=approver,
        key_fingerprint=FINGERPRINT,
        key_type="ssh-ed25519",
        approved_at="2026-11-26T05:10:00Z",
        plan_digest="ab" * 32,
        by_operator=self_approved,
    )
    rec.append(
        "approval.policy",
        plan_digest="ab" * 32,
        required=1,
        self_approval=self_approved,
        operator={"principal": "alice@example.com", "fingerprint": "SHA256:operatorkeyfingerprint"},
        allowed_signers_sha256="cd" * 32,
        approvers=[approver],
        satisfied=True,
        self_approved=self_approved,
    )
    return rec


def test_signed_approvals_and_self_approval(tmp_path: Path) -> None:
    page = report_mod.render_html(_signed_record(tmp_path / "a", self_approved=True).path)
    top = _first_screen(page)
    assert '<p class="banner bad">SELF-APPROVED:' in top
    assert '<b>alice@example.com</b>, key <span class="mono">' + FINGERPRINT in top
    assert "(the operator's own key)" in top and "No signed approval is recorded" not in top
    assert '<b>alice@example.com</b> (key <span class="mono">SHA256:operatorkeyfingerprint' in top
    assert "OS user alice@jump-1" in top

    other = _first_screen(
        report_mod.render_html(_signed_record(tmp_path / "b", self_approved=False).path)
    )
    assert "SELF-APPROVED" not in other and "<b>bob@example.com</b>" in other
    assert 'Approval policy <span class="ok">satisfied</span>: 1 required' in other

    unsigned = _first_screen(report_mod.render_html(make_run(tmp_path / "c").path))
    assert '<span class="warn">No signed approval is recorded.</span>' in unsigned


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The record's clock, set by the test: ``clock[0]`` is the time of the next append."""
    now = [dt.datetime(2026, 11, 26, 9, 0, 0, tzinfo=dt.UTC)]
    monkeypatch.setattr(chain, "now", lambda: now[0].isoformat())
    return now


def _texts(svg: str) -> list[tuple[float, float, str, str, str]]:
    """(x, y, anchor, class, text) of every <text> in the SVG."""
    found = re.findall(
        r'<text x="([\d.-]+)" y="([\d.-]+)" class="(\w+)" text-anchor="(\w+)">([^<]*)</text>', svg
    )
    return [(float(x), float(y), a, c, html.unescape(t)) for x, y, c, a, t in found]


def test_a_run_over_hours_has_a_readable_timeline(tmp_path: Path, clock: list[dt.datetime]) -> None:
    """Halts waiting for the operator are drawn as labelled breaks, so the seconds around each
    action stay readable; every label is inside the picture and none overlaps another."""
    t0 = clock[0]
    rec = RunRecord.create(tmp_path / "runs", {"parameters": {"account_id": "123456789012"}})
    gate = {"gate": "device-removed-in-console"}

    def at(seconds: float, type_: str, step: str | None = None, **data: object) -> None:
        clock[0] = t0 + dt.timedelta(seconds=seconds)
        rec.append(type_, step, **data)

    at(1, "step.started", "00-preflight")
    at(2, "gate.approved", "00-preflight", gate="risk-acknowledged", who={"os_user": "a"})
    at(3, "step.finished", "00-preflight")
    at(4, "step.started", "01-remove-device")
    at(5, "gate.approved", "01-remove-device", gate="remove-device", who={"os_user": "a"})
    at(6, "action.started", "01-remove-device", action="remove-device", serial="s")
    at(7, "gate.halted", "01-remove-device", **gate, reason="waiting")
    at(8, "run.halted", "01-remove-device", **gate, reason="waiting")
    at(5400, "run.resumed")  # 1 h 30 min later
    at(5401, "step.started", "01-remove-device")
    at(5402, "human.claimed", "01-remove-device", **gate, performed_by="the operator")
    at(5403, "human.verified", "01-remove-device", **gate, detail="gone")
    at(5404, "step.finished", "01-remove-device")
    at(5405, "step.started", "02-verify-removal")
    at(
        5406,
        "evidence.deactivation",
        "02-verify-removal",
        found=True,
        claim="root deactivated s",
        event_ids=["11111111-2222-3333-4444-555555555555"],
        event_times=[(t0 + dt.timedelta(seconds=5402)).isoformat()],
    )
    at(9000, "step.finished", "02-verify-removal")  # 1 h later (a long CloudTrail wait)
    at(9001, "run.abandoned", reason="test")
    page = report_mod.render_html(rec.path)
    svg = page.split('<svg class="timeline"', 1)[1].split("</svg>", 1)[0]
    width = float(svg.split('viewBox="0 0 ', 1)[1].split(" ", 1)[0])
    texts = _texts(svg)
    breaks = [t for t in texts if t[3] == "brkl"]
    assert [t[4] for t in breaks] == ["+1 h 29 min", "+59 min"], breaks
    labels = [t for t in texts if t[3] == "lbl"]
    assert {
        "risk-acknowledged approved",
        "claimed device-removed-in-console",
        "halted: device-removed-in-console",
    } <= {t[4] for t in labels}
    assert "DeactivateMFADevice 11111111" in {t[4] for t in labels}
    boxes = []
    for x, y, anchor, _, text in labels + [t for t in texts if t[3] in ("tick", "brkl")]:
        w = len(text) * report_mod._CW
        left = {"start": x, "middle": x - w / 2, "end": x - w}[anchor]
        assert 0 <= left and left + w <= width, text
        boxes.append((left, left + w, y, text))
    for i, (l1, r1, y1, t1) in enumerate(boxes):
        for l2, r2, y2, t2 in boxes[i + 1 :]:
            if abs(y1 - y2) < 11:
                assert r1 <= l2 or r2 <= l1, f"{t1!r} overlaps {t2!r}"
    # the busy seconds keep a readable scale despite the 2.5 hours around them
    xs = {t[4]: t[0] for t in labels}
    assert xs["remove-device approved"] - xs["risk-acknowledged approved"] > 50
    top = _first_screen(page)
    assert "ABANDONED" in top and "2 h 30 min" in top
