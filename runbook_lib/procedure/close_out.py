"""05 · Close-out: the state after, the before/after diff, the approvals and claims with their
verdicts, the timeline, every privileged session; then the orchestrator seals the record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..params import RunParameters
from .common import audit_snapshot, record_snapshot
from .facts import RunFacts
from .vocabulary import Event

if TYPE_CHECKING:
    from .context import Step

STEP = "05-close-out"
_TIMELINE = ("evidence.", "action.", "gate.", "human.", "decision.", "session.")


def _what(event: dict[str, Any]) -> str:
    d = event["data"]
    for key in ("claim", "gate", "action", "purpose", "serial", "detail", "reason"):
        if d.get(key):
            return str(d[key])
    return ""


def close_out(step: Step) -> dict[str, Any]:
    facts = step.facts
    done = step.recorded(Event.RUN_CLOSED_OUT)
    if done is not None:
        return {"status": "closed out earlier in this run", **done}
    after = facts.snapshot("after")
    if after is None:
        after = audit_snapshot(step)
        record_snapshot(step, "after", after, facts.created_at.isoformat())
    before = facts.snapshot("before")
    known_before = before.known_serials() if before else set()
    diff = {
        "removed": sorted(known_before - after.known_serials()),
        "added": sorted(after.known_serials() - known_before),
        "AccountMFAEnabled": [
            before.account_mfa_enabled if before else None,
            after.account_mfa_enabled,
        ],
    }
    facts = step.facts
    approvals = [
        {"gate": d.gate, "type": d.type, "who": d.who, "typed": d.typed, "at": d.at}
        for d in facts.decisions()
    ]
    timeline = [
        {
            "time": e["time"],
            "step": e.get("step"),
            "type": e["type"],
            "what": _what(e),
            "event_ids": e["data"].get("event_ids", []),
        }
        for e in facts.events
        if e["type"].startswith(_TIMELINE)
    ]
    action = facts.first(Event.ACTION_REMOVE_DEVICE)
    details = (action["data"].get("details") or {}) if action else {}
    if details.get("virtual_device_left"):
        diff["left_over_device_object"] = {
            "serial": details["virtual_device_left"],
            "why": details.get("virtual_device_left_note"),
        }
    summary = {
        "dry_run": step.params.dry_run,
        "diff": diff,
        "approvals": approvals,
        "sessions": facts.sessions(),
        "timeline": timeline,
    }
    step.write_evidence("summary.json", summary)
    step.log(Event.RUN_CLOSED_OUT, diff=diff, approvals=len(approvals), dry_run=step.params.dry_run)
    return summary


def checks_missing(facts: RunFacts, params: RunParameters) -> list[str]:
    return [] if facts.first(Event.RUN_CLOSED_OUT, STEP) else ["the close-out is not recorded"]
