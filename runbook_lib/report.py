"""An auditor's view of one run, as a single self-contained HTML page.

The page has no JavaScript and no external assets (styles are inline), and every value from the
record is HTML-escaped, so it can be attached to a change ticket and opened anywhere. It shows:
the run summary, the step table, approvals and confirmations, AWS actions with their request
ids, the before/after snapshots, evidence, the full event log, and the result of
:func:`runbook_lib.record.verify`.

It reads the run directory leniently: a failed, halted or partial run renders, and whatever is
missing is shown as missing rather than failing the report.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .procedure.vocabulary import Event
from .record import EVENTS_FILE, MANIFEST_FILE, RUN_FILE, VerifyReport, _read_chain, verify

__all__ = ["render_html"]

MISSING = "missing"
_APPROVAL_TYPES = (
    Event.GATE_APPROVED,
    Event.GATE_DENIED,
    Event.GATE_HALTED,
    Event.GATE_NOT_NEEDED,
    Event.HUMAN_CLAIMED,
    Event.HUMAN_VERIFIED,
    Event.HUMAN_CONTRADICTED,
    Event.HUMAN_UNVERIFIABLE,
)
_REQUEST_ID_KEYS = ("request_id", "request_ids", "RequestId", "aws_request_id")

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em;
       color: #1a1a1a; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top;
         font-size: 0.9em; }
th { background: #f2f2f2; }
td.k { width: 16em; font-weight: 600; }
code, pre, .mono { font-family: SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.85em; }
pre { white-space: pre-wrap; word-break: break-all; margin: 0; }
.missing { color: #a05a00; font-style: italic; }
.ok { color: #116611; font-weight: 700; } .bad { color: #b00020; font-weight: 700; }
.changed { background: #fff4cc; }
.banner { padding: 0.6em 1em; border: 2px solid; font-weight: 700; font-size: 1.1em; }
.banner.dry { border-color: #1f5fa8; background: #e8f0fb; color: #1f5fa8; }
.banner.unfinished { border-color: #a05a00; background: #fff4e0; color: #7a4500; }
"""


def _e(value: Any) -> str:
    """HTML-escaped text of ``value``; None is shown as missing."""
    if value is None:
        return f'<span class="missing">{MISSING}</span>'
    if isinstance(value, str):
        return html.escape(value, quote=True)
    return html.escape(json.dumps(value, ensure_ascii=False, sort_keys=True), quote=True)


def _pre(value: Any) -> str:
    if value is None or value == {}:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
    return f"<pre>{html.escape(text, quote=True)}</pre>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """A table from already-escaped cells; ``empty`` (plain text) when there are no rows."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="missing">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f'<tr><td class="k">{html.escape(k)}</td><td>{_e(v)}</td></tr>' for k, v in rows)
    return f"<table><tbody>{body}</tbody></table>"


def _load_json(path: Path) -> tuple[Any, str | None]:
    """(content, None) or (None, why it could not be read)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, MISSING
    except (OSError, ValueError) as err:
        return None, f"unreadable ({type(err).__name__})"


def _first(sources: Iterable[Any], *keys: str) -> Any:
    """The first non-empty value of any of ``keys`` in any of the dict ``sources``."""
    for source in sources:
        if not isinstance(source, dict):
            continue
        for key in keys:
            value = source.get(key)
            if value not in (None, "", {}, []):
                return value
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _digest(value: Any) -> Any:
    if isinstance(value, dict):
        return _first([value], "digest", "sha256", "plan_digest")
    return value


# --- sections ---------------------------------------------------------------------------------


def _summary(run: dict[str, Any], run_dir: Path) -> str:
    params = _dict(run.get("parameters"))
    src = [run, params]
    versions = _first(src, "versions", "version")
    rows: list[tuple[str, Any]] = [
        ("Run id", run.get("run_id") or run_dir.name),
        ("Status", run.get("status")),
        ("Halted at", run.get("halted_at") or "—"),
        ("Created at", run.get("created_at")),
        ("Finished at", _first(src, "finished_at", "ended_at", "completed_at") or "—"),
        ("Account", _first(src, "account_id", "account")),
        ("Method", _first(src, "method", "removal_method")),
        ("Change ticket", _first(src, "change_ticket", "ticket", "change_id")),
        ("Operator", _first(src, "operator", "operator_id", "user")),
        ("Plan digest", _digest(_first(src, "plan_digest", "plan"))),
    ]
    html_rows = _kv(rows)
    if isinstance(versions, dict):
        html_rows += "<h3>Versions</h3>" + _kv((str(k), v) for k, v in sorted(versions.items()))
    else:
        html_rows += _kv([("Versions", versions)])
    return html_rows


def _step_rows(run: dict[str, Any], events: list[dict[str, Any]]) -> list[list[str]]:
    steps = run.get("steps")
    rows: list[list[str]] = []
    if isinstance(steps, dict) and steps:
        for name, info in steps.items():
            info = info if isinstance(info, dict) else {"status": info}
            rows.append(
                [
                    _e(str(name)),
                    _e(info.get("status")),
                    _e(_first([info], "started_at", "start", "started")),
                    _e(_first([info], "ended_at", "finished_at", "end", "ended")),
                ]
            )
        return rows
    # No steps in run.json (e.g. a run that failed early): derive them from step.* events.
    derived: dict[str, dict[str, Any]] = {}
    for ev in events:
        kind, step = str(ev.get("type", "")), ev.get("step")
        if not kind.startswith("step.") or not step:
            continue
        info = derived.setdefault(str(step), {"status": None, "start": ev.get("time"), "end": None})
        info["status"] = kind.removeprefix("step.")
        if kind != "step.started":
            info["end"] = ev.get("time")
    return [[_e(n), _e(i["status"]), _e(i["start"]), _e(i["end"])] for n, i in derived.items()]


def _approvals(events: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for ev in events:
        if ev.get("type") not in _APPROVAL_TYPES:
            continue
        data = _dict(ev.get("data"))
        who = _first([data], "who", "approver", "by", "operator", "user", "confirmed_by")
        what = _first([data], "what", "gate", "statement", "question", "reason", "action")
        when = _first([data], "when", "at", "approved_at") or ev.get("time")
        rest = {k: v for k, v in data.items() if k not in ("who", "what", "when")}
        rows.append(
            [
                _e(ev.get("seq")),
                _e(ev.get("type")),
                _e(ev.get("step")),
                _e(who),
                _e(what),
                _e(when),
                _pre(rest),
            ]
        )
    return rows


def _request_ids(data: dict[str, Any]) -> Any:
    found = {k: data[k] for k in _REQUEST_ID_KEYS if data.get(k)}
    if not found:
        return None
    return next(iter(found.values())) if len(found) == 1 else found


def _actions(events: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for ev in events:
        if not str(ev.get("type", "")).startswith("action."):
            continue
        data = _dict(ev.get("data"))
        rid = _request_ids(data)
        if isinstance(rid, dict | list):
            rid_html = _pre(rid)
        else:
            rid_html = f'<span class="mono">{_e(rid)}</span>'
        rest = {k: v for k, v in data.items() if k not in _REQUEST_ID_KEYS}
        rows.append(
            [
                _e(ev.get("seq")),
                _e(ev.get("time")),
                _e(ev.get("type")),
                _e(ev.get("step")),
                rid_html,
                _pre(rest),
            ]
        )
    return rows


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix or "(value)", value


def _snapshots(run_dir: Path) -> str:
    before, before_err = _load_json(run_dir / "snapshots" / "before.json")
    after, after_err = _load_json(run_dir / "snapshots" / "after.json")
    notes = []
    for name, err in (("before", before_err), ("after", after_err)):
        if err:
            notes.append(f'<p class="missing">snapshots/{name}.json: {html.escape(err)}</p>')
    b = dict(_flatten(before)) if before_err is None else {}
    a = dict(_flatten(after)) if after_err is None else {}
    keys = list(b) + [k for k in a if k not in b]
    rows = []
    for key in keys:
        bv = _e(b[key]) if key in b else _e(None)
        av = _e(a[key]) if key in a else _e(None)
        changed = before_err is None and after_err is None and b.get(key) != a.get(key)
        cls = ' class="changed"' if changed else ""
        rows.append(f"<tr{cls}><td class='mono'>{_e(key)}</td><td>{bv}</td><td>{av}</td></tr>")
    table = ""
    if rows:
        table = (
            "<table><thead><tr><th>Key</th><th>Before</th><th>After</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return "".join(notes) + table


def _evidence(events: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            _e(ev.get("seq")),
            _e(ev.get("time")),
            _e(ev.get("type")),
            _e(ev.get("step")),
            _pre(ev.get("data")),
        ]
        for ev in events
        if str(ev.get("type", "")).startswith("evidence.")
    ]


def _event_log(events: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            _e(ev.get("seq")),
            _e(ev.get("time")),
            _e(ev.get("type")),
            _e(ev.get("step")) if ev.get("step") is not None else "",
            f'<span class="mono">{_e(str(ev.get("hash", ""))[:12])}</span>',
            _pre(ev.get("data")),
        ]
        for ev in events
    ]


def _integrity(report: VerifyReport, manifest: Any, manifest_err: str | None) -> str:
    if report.ok:
        head = '<p class="ok">VERIFIED: the record is intact and sealed'
        head += " (final)</p>" if report.final else " (checkpoint, not final)</p>"
    else:
        head = f'<p class="bad">NOT VERIFIED: {len(report.problems)} problem(s)</p>'
    problems = "".join(f"<li>{_e(p)}</li>" for p in report.problems)
    out = head + (f"<ul>{problems}</ul>" if problems else "")
    if manifest_err or not isinstance(manifest, dict):
        return out + f'<p class="missing">{MANIFEST_FILE}: {html.escape(manifest_err or "?")}</p>'
    events = _dict(manifest.get("events"))
    out += _kv(
        [
            ("Sealed at", manifest.get("sealed_at")),
            ("Final", manifest.get("final")),
            ("Events", events.get("count")),
            ("Events head", events.get("head")),
            ("Previous manifest sha256", manifest.get("previous_manifest_sha256") or "—"),
        ]
    )
    files = _dict(manifest.get("files"))
    rows = [
        [
            f'<span class="mono">{_e(rel)}</span>',
            _e(_dict(meta).get("size")),
            f'<span class="mono">{_e(_dict(meta).get("sha256"))}</span>',
        ]
        for rel, meta in sorted(files.items())
    ]
    return out + _table(["File", "Size", "sha256"], rows, "The manifest lists no files.")


def _sealing_note(events: list[dict[str, Any]]) -> str:
    head = events[-1].get("hash") if events else None
    return (
        '<p class="ok">This page is part of the sealed record: it is listed, with its SHA-256, '
        "in <code>manifest.json</code>, so a page cannot state its own integrity. Check the "
        "record (this page included) with <code>runbook verify RUN_DIR</code>. At sealing the "
        f"event log held {len(events)} events, head <code>{_e(head)}</code>.</p>"
    )


def render_html(run_dir: Path, *, for_seal: bool = False) -> str:
    """The auditor's page for the run in ``run_dir`` (works for partial and broken runs).

    ``for_seal``: the page is written into the record just before it is sealed; it then
    points to ``runbook verify`` instead of a verification that would predate the seal."""
    run_dir = Path(run_dir)
    run_doc, run_err = _load_json(run_dir / RUN_FILE)
    run: dict[str, Any] = run_doc if isinstance(run_doc, dict) else {}
    events = _read_chain(run_dir / EVENTS_FILE, EVENTS_FILE).entries
    manifest, manifest_err = _load_json(run_dir / MANIFEST_FILE)
    report = verify(run_dir)
    title = f"Run {run.get('run_id') or run_dir.name}"
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    params = _dict(run.get("parameters"))
    status = str(run.get("status") or "unknown")
    banner = ""
    if params.get("dry_run") or run.get("dry_run"):
        banner = (
            '<p class="banner dry">DRY RUN: nothing was changed. This record shows what the run '
            "saw; it approves and proves no change.</p>"
        )
    elif status not in ("succeeded",):
        banner = (
            f'<p class="banner unfinished">Status {_e(status)}: this change did not complete '
            "every step of its plan.</p>"
        )
    sections = [
        f"<h1>{_e(title)}: root MFA {'dry run' if params.get('dry_run') else 'change'} record</h1>",
        banner,
        f"<p>Report generated {_e(generated)} from <code>{_e(str(run_dir))}</code>. "
        + (
            "Written when the record was sealed; check it with <code>runbook verify</code> "
            "(details at the end).</p>"
            if for_seal
            else "Record integrity: "
            + (
                '<span class="ok">verified</span>'
                if report.ok
                else '<span class="bad">NOT verified</span>'
            )
            + " (details at the end).</p>"
        ),
        "<h2>Summary</h2>",
        (f'<p class="missing">{RUN_FILE}: {html.escape(run_err)}</p>' if run_err else "")
        + _summary(run, run_dir),
        "<h2>Steps</h2>",
        _table(["Step", "Status", "Started", "Ended"], _step_rows(run, events), "No steps."),
        "<h2>Approvals and confirmations</h2>",
        _table(
            ["Seq", "Type", "Step", "Who", "What", "When", "Details"],
            _approvals(events),
            "No approvals or confirmations were recorded.",
        ),
        "<h2>Actions</h2>",
        _table(
            ["Seq", "Time", "Type", "Step", "AWS request id", "Details"],
            _actions(events),
            "No actions were recorded.",
        ),
        "<h2>Snapshots (before / after)</h2>",
        _snapshots(run_dir),
        "<h2>Evidence</h2>",
        _table(
            ["Seq", "Time", "Type", "Step", "Data"],
            _evidence(events),
            "No evidence was recorded.",
        ),
        "<h2>Event log</h2>",
        _table(
            ["Seq", "Time", "Type", "Step", "Hash", "Data"],
            _event_log(events),
            "No events (events.jsonl is missing or empty).",
        ),
        "<h2>Record integrity</h2>",
        _sealing_note(events) if for_seal else _integrity(report, manifest, manifest_err),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
