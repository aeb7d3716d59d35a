"""An auditor's view of one run, as a single self-contained HTML page.

The page answers, on its first screen, what an auditor asks first: what changed on which
account (in words, from the events and the before/after snapshots), who approved it and with
which key, who performed it, when, which CloudTrail events prove each change, and whether the
record is intact. Banners say what kind of record it is: DRY RUN, SELF-APPROVED, an unfinished
(halted, failed, incomplete, abandoned) run, a tampered or unsealed record. Then:

* a timeline picture (inline SVG): one time axis (long idle stretches, such as a halt waiting
  for the operator, are drawn as breaks labelled with their length), lanes for the steps, the
  gates, the people's console steps, the AWS actions and the CloudTrail events;
* one section per step: what it checked, decided and did, with its evidence, in words;
* the record's integrity (``verify``, the manifest) and, folded away (``<details>``), the
  parameters, the snapshots and the raw events.

The page has no JavaScript and no external assets (styles are inline), and every value from the
record is HTML-escaped, so it can be attached to a change ticket and opened anywhere.

It reads the run directory leniently: a failed, halted, partial, tampered or broken run renders,
and whatever is missing is shown as missing rather than failing the report (a section that
cannot be rendered says so and the rest of the page still renders).

Facts are read from the hash-chained events (what ``verify`` protects), not from ``run.json``,
which is a projection; when the two disagree about the status the page says so.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..aws.state import device_kind
from ..plan import STEPS
from ..procedure.lifecycle import RunState, fold
from ..procedure.vocabulary import Event, Status
from .chain import read_chain
from .layout import EVENTS_FILE, MANIFEST_FILE, RUN_FILE
from .verify import VerifyReport, check_integrity, verify

__all__ = ["render_html"]

MISSING = "missing"
ORDER = [name for name, _ in STEPS]
#: approval events of issue 9 (written by the runner at create/resume when signing is in use)
APPROVAL_VERIFIED = "approval.verified"
APPROVAL_POLICY = "approval.policy"
#: what each step is for, who acts, and what it leaves as evidence (ARCHITECTURE.md's table)
STEP_TEXT = {
    "00-preflight": (
        "Preflight",
        "nobody acts: it reads",
        "the caller and account, the root MFA state before, the device to remove, the check "
        "that the plan can end well, the risk acknowledgement",
    ),
    "01-remove-device": (
        "Remove the root MFA device",
        "the operator in the console, or the runbook through sts:AssumeRoot",
        "the approval, the console claim and the API's verdict, or the request ids",
    ),
    "02-verify-removal": (
        "Verify the removal",
        "nobody acts: it reads",
        "every signal after the removal, DeactivateMFADevice in CloudTrail",
    ),
    "03-first-sign-in": (
        "First root sign-in without the device",
        "the operator in the console",
        "ConsoleLogin by Root in CloudTrail (MFAUsed No when no device is left)",
    ),
    "04-rebind": (
        "Bind a new MFA device",
        "the operator in the console (or a recorded decision to skip)",
        "a new device that is not the removed one, EnableMFADevice in CloudTrail",
    ),
    "05-close-out": (
        "Close-out",
        "nobody acts",
        "the state after, the before/after diff, the approvals, the timeline; then the seal",
    ),
}
#: the CloudTrail event each evidence event looks for, and the change it proves
EVIDENCE_NAMES = {
    Event.EVIDENCE_DEACTIVATION: ("DeactivateMFADevice", "removal of the device"),
    Event.EVIDENCE_CONSOLE_LOGIN: ("ConsoleLogin", "root sign-in after the removal"),
    Event.EVIDENCE_ENABLE: ("EnableMFADevice", "binding of the new device"),
}
_NOT_SEALED = f"{MANIFEST_FILE}: missing: the run is not sealed"

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.2em 2em;
       color: #1a1a1a; max-width: 1400px; font-size: 14px; line-height: 1.4; }
h1 { font-size: 1.35em; margin: 0 0 0.3em 0; } h1 .sub { font-weight: 400; color: #555; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; margin: 1.2em 0 0.3em 0; }
table { border-collapse: collapse; margin: 0.4em 0; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top;
         font-size: 0.95em; }
th { background: #f2f2f2; }
td.k, th.k { width: 11em; font-weight: 600; background: #fafafa; }
.tm { white-space: nowrap; }
code, pre, .mono { font-family: SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.88em; }
.mono { overflow-wrap: anywhere; }
pre { white-space: pre-wrap; word-break: break-all; margin: 0; }
.missing { color: #a05a00; font-style: italic; }
.ok { color: #116611; font-weight: 700; } .bad { color: #b00020; font-weight: 700; }
.warn { color: #8a4b00; font-weight: 700; }
.changed { background: #fff4cc; }
.story { font-size: 1.05em; margin: 0.4em 0 0.5em 0; }
.banner { padding: 0.35em 0.8em; border: 2px solid; font-weight: 700; margin: 0.3em 0; }
.banner span { font-weight: 400; }
.banner.dry { border-color: #1f5fa8; background: #e8f0fb; color: #1f5fa8; }
.banner.unfinished { border-color: #a05a00; background: #fff4e0; color: #7a4500; }
.banner.bad { border-color: #b00020; background: #fdecee; color: #b00020; }
.meta { color: #555; font-size: 0.9em; margin: 0.2em 0; }
.kind { font-weight: 600; white-space: nowrap; }
.kind.checked { color: #1f5fa8; } .kind.decided { color: #6a1b9a; }
.kind.done { color: #b00020; } .kind.evidence { color: #00695c; } .kind.step { color: #555; }
details { margin: 0.5em 0; } summary { cursor: pointer; font-weight: 600; }
.timeline { width: 100%; height: auto; border: 1px solid #ddd; background: #fff; }
ul.tight { margin: 0.2em 0; padding-left: 1.3em; }
"""


# --- escaping and small helpers -----------------------------------------------------------------


def _e(value: Any) -> str:
    """HTML-escaped text of ``value``; None is shown as missing."""
    if value is None:
        return f'<span class="missing">{MISSING}</span>'
    if isinstance(value, str):
        return html.escape(value, quote=True)
    return html.escape(json.dumps(value, ensure_ascii=False, sort_keys=True), quote=True)


def _m(value: Any) -> str:
    """A value in monospace (ids, ARNs, digests)."""
    if value is None:
        return _e(None)
    return f'<span class="mono">{_e(value if isinstance(value, str) else str(value))}</span>'


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
    """A two-column table; values are escaped (use :class:`_Html` for ready markup)."""
    body = "".join(
        f'<tr><td class="k">{html.escape(k)}</td>'
        f"<td>{v if isinstance(v, _Html) else _e(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table><tbody>{body}</tbody></table>"


class _Html(str):
    """Markup that is already escaped."""


def _load_json(path: Path) -> tuple[Any, str | None]:
    """(content, None) or (None, why it could not be read)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, MISSING
    except (OSError, ValueError) as err:
        return None, f"unreadable ({type(err).__name__})"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _utc(when: dt.datetime | None, date: bool = True, ms: bool = False) -> str:
    if when is None:
        return MISSING
    when = when.astimezone(dt.UTC)
    text = when.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")
    if ms:
        text += f".{when.microsecond // 1000:03d}"
    return text + (" UTC" if date else "")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s" if minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _who(who: Any) -> str:
    """A person or process as recorded in ``who`` (dict: caller_arn, os_user, host)."""
    if isinstance(who, dict):
        parts = []
        if who.get("principal"):
            parts.append(str(who["principal"]))
        if who.get("os_user") or who.get("host"):
            parts.append(f"{who.get('os_user') or '?'}@{who.get('host') or '?'}")
        if who.get("caller_arn"):
            parts.append(f"as {who['caller_arn']}")
        return " ".join(parts) or _short(who)
    return str(who) if who not in (None, "") else "someone not recorded"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# --- the run as the record holds it -------------------------------------------------------------


@dataclass
class _Run:
    run_dir: Path
    run: dict[str, Any]
    run_err: str | None
    events: list[dict[str, Any]]
    chain_problems: list[str]
    state: RunState | None
    status: str
    for_seal: bool
    report: VerifyReport | None = None
    integrity: list[str] = field(default_factory=list)

    # -- generic readers
    def of(self, *types: str, step: str | None = None) -> list[dict[str, Any]]:
        return [
            e for e in self.events if e["type"] in types and (step is None or e["step"] == step)
        ]

    def first(self, *types: str, step: str | None = None) -> dict[str, Any] | None:
        found = self.of(*types, step=step)
        return found[0] if found else None

    @property
    def info(self) -> dict[str, Any]:
        created = self.first(Event.RUN_CREATED)
        return _dict(_dict(created["data"]).get("info")) if created else {}

    @property
    def params(self) -> dict[str, Any]:
        params = dict(_dict(self.info.get("parameters")) or _dict(self.run.get("parameters")))
        for event in self.of(Event.RUN_RESUMED):
            params.update(_dict(event["data"].get("changed_parameters")))
        return params

    @property
    def dry_run(self) -> bool:
        if self.state is not None and self.first(Event.RUN_CREATED):
            return self.state.dry_run
        return bool(self.params.get("dry_run") or self.run.get("dry_run"))

    @property
    def account(self) -> str | None:
        found = self.params.get("account_id") or self.run.get("account_id")
        return str(found) if found else None

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id") or (self.state.run_id if self.state else None) or "") or (
            self.run_dir.name
        )

    def snapshot(self, which: str) -> dict[str, Any] | None:
        for event in self.of(Event.OBSERVATION_SNAPSHOT):
            if event["data"].get("which") == which:
                return _dict(event["data"].get("snapshot"))
        return None

    @property
    def device(self) -> str | None:
        event = self.first(Event.DECISION_DEVICE)
        serial = event["data"].get("serial") if event else None
        return str(serial) if serial else None

    @property
    def started(self) -> dt.datetime | None:
        return _time(self.events[0]["time"]) if self.events else _time(self.run.get("created_at"))

    @property
    def ended(self) -> dt.datetime | None:
        end = self.first(Event.RUN_SUCCEEDED, Event.RUN_ABANDONED)
        return _time(end["time"]) if end else None

    @property
    def last(self) -> dt.datetime | None:
        times = [t for t in (_time(e["time"]) for e in self.events) if t]
        return max(times) if times else None

    def changed(self) -> bool:
        """Something on the account changed (or may have): a removal was done or claimed."""
        return bool(
            self.of(Event.ACTION_REMOVE_DEVICE, Event.ACTION_RECOVERED, Event.VERIFICATION_REMOVED)
            or any(
                e["data"].get("gate") == "device-removed-in-console"
                for e in self.of(Event.HUMAN_VERIFIED, Event.HUMAN_UNVERIFIABLE)
            )
        )


def _normalise(entries: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        out.append(
            {
                **entry,
                "type": str(entry.get("type") or "?"),
                "time": entry.get("time") if isinstance(entry.get("time"), str) else None,
                "step": str(entry["step"]) if entry.get("step") else None,
                "data": _dict(entry.get("data")),
                "seq": entry.get("seq"),
            }
        )
    return out


def _load(run_dir: Path, for_seal: bool) -> _Run:
    run_doc, run_err = _load_json(run_dir / RUN_FILE)
    chain = read_chain(run_dir / EVENTS_FILE, EVENTS_FILE)
    events = _normalise(chain.entries)
    state: RunState | None = None
    status = "unknown"
    try:
        if events:
            state = fold(events, ORDER)
            status = str(state.status())
    except Exception:  # noqa: BLE001 - a broken chain must not break the report
        state = None
    r = _Run(
        run_dir,
        run_doc if isinstance(run_doc, dict) else {},
        run_err,
        events,
        list(chain.problems),
        state,
        status,
        for_seal,
    )
    if for_seal:
        # the page is part of the seal, so it cannot state the seal's result: it checks what can
        # be checked now (the chain, every file against its events) and points to verify
        r.integrity = check_integrity(run_dir)
    else:
        r.report = verify(run_dir)
        r.integrity = list(r.report.problems)
    return r


# --- describing things in words -------------------------------------------------------------


def _device_words(serial: str) -> str:
    return f"{device_kind(serial)} {serial}"


def _devices_of(snap: dict[str, Any]) -> tuple[list[str], bool]:
    """(serials known, complete: listed by an AssumeRoot session, so every kind)."""
    serials: list[str] = []
    for d in _list(snap.get("session_devices")):
        serial = _dict(d).get("serial")
        if serial and serial not in serials:
            serials.append(str(serial))
    for serial in _list(snap.get("virtual_devices")):
        if serial and serial not in serials:
            serials.append(str(serial))
    return serials, snap.get("session_devices") is not None


def _state_words(snap: dict[str, Any] | None) -> str:
    """One sentence on a snapshot, escaped."""
    if snap is None:
        return _e(None)
    serials, complete = _devices_of(snap)
    enabled = snap.get("account_mfa_enabled")
    flag = {True: "1", False: "0", None: "unreadable"}.get(enabled, str(enabled))
    if serials:
        listed = "; ".join(_m(_device_words(s)) for s in serials)
        count = _plural(len(serials), "MFA device") + ("" if complete else " visible to the API")
        out = f"{count} ({listed})"
    elif enabled:
        out = "MFA enabled, no device visible to the API (a FIDO key or hardware token)"
    else:
        out = "no MFA device"
    out = _e(out) if not serials else out
    out += f"; AccountMFAEnabled {_e(flag)}"
    password = snap.get("account_password_present")
    if password is not None:
        out += f"; root password {'present' if password else 'absent'}"
    return out


def _count_words(snap: dict[str, Any] | None) -> str:
    if snap is None:
        return "an MFA state that was not recorded"
    serials, complete = _devices_of(snap)
    if not serials:
        return (
            "MFA enabled (no device visible to the API)"
            if snap.get("account_mfa_enabled")
            else ("no MFA device")
        )
    text = _plural(len(serials), "MFA device") + ("" if complete else " visible to the API")
    return text


def _trail(ev: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(CloudTrail event id, its eventTime) of an evidence event."""
    ids = [str(i) for i in _list(ev["data"].get("event_ids"))]
    times = [str(t) for t in _list(ev["data"].get("event_times"))]
    return [(i, times[n] if n < len(times) else None) for n, i in enumerate(ids)]


def _trail_words(ev: dict[str, Any] | None, name: str) -> str:
    if ev is None:
        return f'<span class="missing">{_e(name)}: not looked up (step not reached)</span>'
    found = _trail(ev)
    if not found or ev["data"].get("found") is False:
        return f'<span class="bad">{_e(name)}: not found in CloudTrail</span>'
    return ", ".join(f"{_e(name)} {_m(i)}" for i, _ in found)


def _approval_typed(data: dict[str, Any]) -> str:
    typed = str(data.get("typed") or "")
    mode = str(data.get("mode") or "")
    if typed.startswith("--approve"):
        return "with the plan digest (--approve)"
    if mode == "interactive":
        return "in the lab (typed the account id)" if typed else "in the lab"
    return f"({_short(typed, 60)})" if typed else ""


def _describe(ev: dict[str, Any]) -> tuple[str, str]:
    """(kind: checked | decided | done | evidence | step | run, escaped sentence)."""
    kind, d = ev["type"], ev["data"]
    fn = _DESCRIBERS.get(kind)
    if fn is not None:
        try:
            return fn(d)
        except Exception:  # noqa: BLE001 - odd data: described generically below
            fn = None
    prefix = kind.split(".", 1)[0]
    group = {
        "observation": "checked",
        "verification": "checked",
        "precondition": "checked",
        "decision": "decided",
        "gate": "decided",
        "human": "decided",
        "approval": "decided",
        "action": "done",
        "session": "done",
        "evidence": "evidence",
        "file": "evidence",
        "step": "step",
    }.get(prefix, "run")
    rest = "; ".join(f"{k}: {_short(v, 100)}" for k, v in list(d.items())[:8])
    return group, _e(f"{kind}" + (f": {rest}" if rest else ""))


def _d_identity(d: dict[str, Any]) -> tuple[str, str]:
    return "checked", f"Caller {_m(d.get('arn'))} in account {_m(d.get('account_id'))}."


def _d_mgmt(d: dict[str, Any]) -> tuple[str, str]:
    return "checked", (
        f"Management-account caller {_m(d.get('arn'))} (account {_m(d.get('account_id'))})."
    )


def _d_account(d: dict[str, Any]) -> tuple[str, str]:
    text = f"Account kind: {_e(d.get('kind'))}"
    if d.get("organization_id"):
        text += (
            f", organization {_m(d.get('organization_id'))}, management account "
            f"{_m(d.get('management_account_id'))}"
        )
    text += f"; centralised root access: {'yes' if d.get('centralised') else 'no'}"
    text += (
        f"; removal methods allowed: {_e(', '.join(map(str, _list(d.get('methods')))) or 'none')}."
    )
    notes = [str(n) for n in _list(d.get("notes"))]
    return "checked", text + (f" {_e(' '.join(notes))}" if notes else "")


def _d_snapshot(d: dict[str, Any]) -> tuple[str, str]:
    snap = _dict(d.get("snapshot"))
    judgement = _dict(d.get("judgement"))
    text = f"State <b>{_e(d.get('which'))}</b>: {_state_words(snap)}."
    report = _dict(snap.get("credential_report"))
    if report:
        text += (
            f" Credential report: mfa_active {_e(str(report.get('mfa_active')))}, generated "
            f"{_e(report.get('generated_at'))}."
        )
    if judgement.get("agree") is True:
        text += ' <span class="ok">The signals agree.</span>'
    elif judgement.get("agree") is False:
        text += (
            f' <span class="bad">The signals disagree:</span> '
            f"{_e('; '.join(map(str, _list(judgement.get('disagreements')))))}"
        )
    notes = [str(n) for n in _list(judgement.get("notes"))]
    errors = [str(n) for n in _list(snap.get("errors"))]
    if notes:
        text += f" {_e(' '.join(notes))}"
    if errors:
        text += f' <span class="warn">Unread: {_e("; ".join(errors))}</span>'
    return "checked", text


def _d_plan_check(d: dict[str, Any]) -> tuple[str, str]:
    return "checked", _e(
        f"The plan can end well: root password {d.get('root password')}, rebind "
        f"{d.get('rebind')}, method {d.get('method')}."
    )


def _d_precondition(d: dict[str, Any]) -> tuple[str, str]:
    return "checked", (
        f'<span class="bad">Refused ({_e(d.get("check"))}):</span> {_e(d.get("reason"))}'
    )


def _d_device(d: dict[str, Any]) -> tuple[str, str]:
    text = f"Device to remove: {_m(d.get('serial'))} ({_e(d.get('kind'))}), {_e(d.get('how'))}."
    devices = [str(s) for s in _list(d.get("devices"))]
    if devices:
        text += f" Devices seen: {', '.join(_m(s) for s in devices)}."
    if d.get("note"):
        text += f" {_e(d.get('note'))}"
    return "decided", text


def _d_no_password(d: dict[str, Any]) -> tuple[str, str]:
    return "decided", "The root user has no password: nobody signs in; the options were shown."


def _d_skip_rebind(d: dict[str, Any]) -> tuple[str, str]:
    text = "Decided not to bind a new device."
    if d.get("mfa_registration_deadline"):
        text += f" AWS requires MFA registration by {d.get('mfa_registration_deadline')}."
    return "decided", _e(text + (f" {d.get('warning')}" if d.get("warning") else ""))


def _d_gate_approved(d: dict[str, Any]) -> tuple[str, str]:
    return "decided", (
        f'Gate <b>{_e(d.get("gate"))}</b> <span class="ok">approved</span> by '
        f"{_e(_who(d.get('who')))} {_e(_approval_typed(d))}."
    )


def _d_gate_denied(d: dict[str, Any]) -> tuple[str, str]:
    return "decided", (
        f'Gate <b>{_e(d.get("gate"))}</b> <span class="bad">denied</span> by '
        f"{_e(_who(d.get('who')))}" + (f": {_e(d.get('reason'))}" if d.get("reason") else ".")
    )


def _d_gate_halted(d: dict[str, Any]) -> tuple[str, str]:
    return "decided", (
        f'<span class="warn">Halted</span> at gate <b>{_e(d.get("gate"))}</b>: '
        f"{_e(d.get('reason') or 'waiting for a person')}"
    )


def _d_gate_not_needed(d: dict[str, Any]) -> tuple[str, str]:
    return "decided", f"Gate <b>{_e(d.get('gate'))}</b> not needed: {_e(d.get('reason'))}."


def _d_claimed(d: dict[str, Any]) -> tuple[str, str]:
    by = d.get("performed_by") or _who(d.get("who"))
    how = f" ({d.get('typed')})" if d.get("typed") else ""
    return "decided", (
        f"Claim: <b>{_e(d.get('gate'))}</b> done in the console, by {_e(by)}{_e(how)}; "
        f"recorded by {_e(_who(d.get('who')))}."
    )


def _d_verdict(word: str, cls: str) -> Callable[[dict[str, Any]], tuple[str, str]]:
    def describe(d: dict[str, Any]) -> tuple[str, str]:
        detail = d.get("detail") or d.get("what") or d.get("reason")
        return "decided", (
            f'<span class="{cls}">{word}</span> <b>{_e(d.get("gate"))}</b>: {_e(detail)}'
        )

    return describe


def _d_session(d: dict[str, Any]) -> tuple[str, str]:
    return "done", (
        f"AssumeRoot session ({_e(d.get('task_policy'))}) to {_e(d.get('purpose'))}: access "
        f"key {_m(d.get('access_key_id'))}, request id {_m(d.get('request_id'))}, expires "
        f"{_e(d.get('expires_at'))}."
    )


def _d_action_started(d: dict[str, Any]) -> tuple[str, str]:
    return "done", (
        f"Started: {_e(d.get('action'))} of {_m(d.get('serial'))} (method {_e(d.get('method'))})."
    )


def _d_remove(d: dict[str, Any]) -> tuple[str, str]:
    ids = _dict(d.get("request_ids"))
    text = f"<b>{_e(d.get('outcome') or 'done')}</b>: DeactivateMFADevice of {_m(d.get('target'))}"
    if ids:
        text += " (request ids: " + ", ".join(f"{_e(k)} {_m(v)}" for k, v in ids.items()) + ")"
    details = _dict(d.get("details"))
    if details.get("virtual_device_left"):
        text += (
            f'. <span class="warn">The device object {_m(details["virtual_device_left"])} '
            f"remains:</span> {_e(details.get('virtual_device_left_note'))}"
        )
    return "done", text + "."


def _d_recovered(d: dict[str, Any]) -> tuple[str, str]:
    ev = _dict(d.get("evidence"))
    ids = ", ".join(_m(i) for i in _list(ev.get("event_ids")))
    return "done", f"Recovered: {_e(d.get('how'))} (CloudTrail {ids or _e(None)})."


def _d_removed(d: dict[str, Any]) -> tuple[str, str]:
    return "checked", f"Removal of {_m(d.get('serial'))} verified: {_e(d.get('how'))}."


def _d_verification_failed(d: dict[str, Any]) -> tuple[str, str]:
    return "checked", (
        f'<span class="bad">Check failed ({_e(d.get("check"))}):</span> {_m(d.get("serial"))} '
        "is still listed."
    )


def _d_limited(d: dict[str, Any]) -> tuple[str, str]:
    return "checked", f'<span class="warn">Limited check:</span> {_e(d.get("reason"))}'


def _d_new_device(d: dict[str, Any]) -> tuple[str, str]:
    new = [str(s) for s in _list(d.get("new_devices"))]
    return "checked", (
        f"New device: {', '.join(_m(_device_words(s)) for s in new) or _e(None)}; the removed "
        f"{_m(d.get('removed'))} is not listed; AccountMFAEnabled "
        f"{_e(str(d.get('account_mfa_enabled')))}."
    )


def _d_evidence(d: dict[str, Any]) -> tuple[str, str]:
    ids = [str(i) for i in _list(d.get("event_ids"))]
    if d.get("found") and ids:
        head = f'CloudTrail: <span class="ok">found</span> “{_e(d.get("claim"))}”: '
        head += ", ".join(f"event {_m(i)}" for i in ids) + "."
    else:
        head = f'CloudTrail: <span class="bad">not found</span> “{_e(d.get("claim"))}”.'
    facts = [str(f) for f in _list(d.get("facts"))]
    if facts:
        head += f" {_e(' '.join(facts))}"
    return "evidence", head


def _d_file(d: dict[str, Any]) -> tuple[str, str]:
    sha = str(d.get("sha256") or "")
    return "evidence", (
        f"File {_m(d.get('path'))} ({_e(str(d.get('size')))} bytes, sha256 {_m(sha[:16])}…)."
    )


def _d_step_started(d: dict[str, Any]) -> tuple[str, str]:
    return "step", "Step started."


def _d_step_finished(d: dict[str, Any]) -> tuple[str, str]:
    return "step", "Step finished" + (" (skipped: dry run)." if d.get("skipped") else ".")


def _d_step_skipped(d: dict[str, Any]) -> tuple[str, str]:
    return "step", f"Skipped: {_e(d.get('reason'))}."


def _d_step_halted(d: dict[str, Any]) -> tuple[str, str]:
    return "step", f'<span class="warn">Step halted:</span> {_e(d.get("reason"))}'


def _d_step_error(d: dict[str, Any]) -> tuple[str, str]:
    return (
        "step",
        f'<span class="bad">Step failed:</span> {_e(d.get("ename"))}: {_e(d.get("evalue"))}',
    )


def _d_closed_out(d: dict[str, Any]) -> tuple[str, str]:
    diff = _dict(d.get("diff"))
    removed = [str(s) for s in _list(diff.get("removed"))]
    added = [str(s) for s in _list(diff.get("added"))]
    return "evidence", (
        f"Closed out: removed {', '.join(_m(s) for s in removed) or 'nothing'}; added "
        f"{', '.join(_m(s) for s in added) or 'nothing'}; {_e(str(d.get('approvals')))} "
        "decisions on record; summary.json written."
    )


def _d_approval_verified(d: dict[str, Any]) -> tuple[str, str]:
    return "decided", (
        f'Signed approval <span class="ok">verified</span>: {_e(d.get("principal"))}, key '
        f"{_m(d.get('key_fingerprint'))} ({_e(d.get('key_type'))}), signed "
        f"{_e(d.get('approved_at'))}, statement {_m(d.get('file') or d.get('statement'))}"
        + (" (the operator's own key)" if d.get("by_operator") else "")
        + "."
    )


def _d_approval_policy(d: dict[str, Any]) -> tuple[str, str]:
    op = _dict(d.get("operator"))
    approvers = ", ".join(str(a) for a in _list(d.get("approvers"))) or "nobody"
    ok = (
        '<span class="ok">satisfied</span>'
        if d.get("satisfied")
        else ('<span class="bad">not satisfied</span>')
    )
    return "decided", (
        f"Approval policy {ok}: {_e(str(d.get('required')))} required, approved by "
        f"{_e(approvers)}; operator {_e(op.get('principal'))} ({_m(op.get('fingerprint'))}); "
        f"self-approval {'allowed' if d.get('self_approval') else 'not allowed'}"
        + ('; <span class="bad">self-approved</span>' if d.get("self_approved") else "")
        + "."
    )


def _d_run(word: str) -> Callable[[dict[str, Any]], tuple[str, str]]:
    def describe(d: dict[str, Any]) -> tuple[str, str]:
        extra = d.get("reason") or d.get("error") or d.get("status")
        return "run", _e(word + (f": {_short(extra, 300)}" if extra else "."))

    return describe


def _d_created(d: dict[str, Any]) -> tuple[str, str]:
    info = _dict(d.get("info"))
    params = _dict(info.get("parameters"))
    plan = _dict(info.get("plan"))
    ident = _dict(plan.get("identity"))
    return "run", (
        f"Run created by {_e(_who(info.get('operator')))} for account "
        f"{_m(params.get('account_id'))}, change {_m(params.get('change_ticket'))}, method "
        f"{_e(params.get('method'))}, rebind {_e(params.get('rebind'))}, dry run "
        f"{_e(str(bool(params.get('dry_run'))).lower())}, mode {_e(params.get('mode'))}; plan "
        f"{_m(str(plan.get('digest') or '')[:16] or None)} (id {_m(ident.get('plan_id'))}, "
        f"expires {_e(ident.get('expires_at'))})."
    )


def _d_root_credentials(d: dict[str, Any]) -> tuple[str, str]:
    return "checked", f'<span class="warn">Warning</span>: {_e(_short(d.get("text"), 600))}'


def _d_notebook_lost(d: dict[str, Any]) -> tuple[str, str]:
    return "run", (
        f'<span class="warn">Executed notebook {_m(d.get("notebook"))} lost</span>: '
        f"{_e(_short(d.get('reason'), 300))}."
    )


def _d_lease(word: str) -> Callable[[dict[str, Any]], tuple[str, str]]:
    def describe(d: dict[str, Any]) -> tuple[str, str]:
        return "run", f"Lease on account {_m(d.get('account_id'))} {word}."

    return describe


def _d_consumed(d: dict[str, Any]) -> tuple[str, str]:
    return "run", (
        f"The approval (plan digest {_m(str(d.get('digest') or '')[:16] or None)}) was used "
        "by this run: it cannot approve another."
    )


def _d_fingerprinted(d: dict[str, Any]) -> tuple[str, str]:
    profiles = _dict(d.get("profiles"))
    names = ", ".join(f"{k}={v}" for k, v in profiles.items())
    return "run", (
        f"Credentials of the profiles ({_e(names or 'none')}) fingerprinted, so that no secret "
        f"of theirs can be written into the record ({len(_list(d.get('secret_fingerprints')))} "
        "fingerprints; never the secrets)."
    )


_DESCRIBERS: dict[str, Callable[[dict[str, Any]], tuple[str, str]]] = {
    Event.RUN_CREATED: _d_created,
    Event.LEASE_ACQUIRED: _d_lease("acquired (one run per account)"),
    Event.LEASE_RELEASED: _d_lease("released"),
    Event.APPROVAL_CONSUMED: _d_consumed,
    "credentials.fingerprinted": _d_fingerprinted,
    Event.OBSERVATION_IDENTITY: _d_identity,
    Event.OBSERVATION_MANAGEMENT: _d_mgmt,
    Event.OBSERVATION_ACCOUNT: _d_account,
    Event.OBSERVATION_SNAPSHOT: _d_snapshot,
    Event.OBSERVATION_PLAN_CHECK: _d_plan_check,
    Event.WARNING_ROOT_CREDENTIALS: _d_root_credentials,
    Event.NOTEBOOK_LOST: _d_notebook_lost,
    Event.PRECONDITION_FAILED: _d_precondition,
    Event.DECISION_DEVICE: _d_device,
    Event.DECISION_NO_ROOT_PASSWORD: _d_no_password,
    Event.DECISION_SKIP_REBIND: _d_skip_rebind,
    Event.GATE_APPROVED: _d_gate_approved,
    Event.GATE_DENIED: _d_gate_denied,
    Event.GATE_HALTED: _d_gate_halted,
    Event.GATE_NOT_NEEDED: _d_gate_not_needed,
    Event.HUMAN_CLAIMED: _d_claimed,
    Event.HUMAN_VERIFIED: _d_verdict("Verified", "ok"),
    Event.HUMAN_CONTRADICTED: _d_verdict("Contradicted", "bad"),
    Event.HUMAN_UNVERIFIABLE: _d_verdict("Not verifiable through the API", "warn"),
    Event.SESSION_ASSUMED: _d_session,
    Event.ACTION_STARTED: _d_action_started,
    Event.ACTION_REMOVE_DEVICE: _d_remove,
    Event.ACTION_RECOVERED: _d_recovered,
    Event.VERIFICATION_REMOVED: _d_removed,
    Event.VERIFICATION_FAILED: _d_verification_failed,
    Event.VERIFICATION_LIMITED: _d_limited,
    Event.VERIFICATION_NEW_DEVICE: _d_new_device,
    Event.EVIDENCE_DEACTIVATION: _d_evidence,
    Event.EVIDENCE_CONSOLE_LOGIN: _d_evidence,
    Event.EVIDENCE_ENABLE: _d_evidence,
    Event.FILE_WRITTEN: _d_file,
    Event.FILE_RECORDED: _d_file,
    Event.STEP_STARTED: _d_step_started,
    Event.STEP_FINISHED: _d_step_finished,
    Event.STEP_SKIPPED: _d_step_skipped,
    Event.STEP_HALTED: _d_step_halted,
    Event.STEP_ERROR: _d_step_error,
    Event.RUN_CLOSED_OUT: _d_closed_out,
    Event.RUN_HALTED: _d_run("The run halted"),
    Event.RUN_FAILED: _d_run("The run failed"),
    Event.RUN_RESUMED: _d_run("The run was resumed"),
    Event.RUN_SUCCEEDED: _d_run("The run succeeded"),
    Event.RUN_SEALED: _d_run("The run was sealed"),
    Event.RUN_ABANDONED: _d_run("The run was abandoned"),
    APPROVAL_VERIFIED: _d_approval_verified,
    APPROVAL_POLICY: _d_approval_policy,
}


# --- the first screen -------------------------------------------------------------------------


def _banners(r: _Run) -> str:
    out = []
    if r.dry_run:
        out.append(
            '<p class="banner dry">DRY RUN: nothing was changed. <span>This record shows what '
            "the run saw and what a real run would do; it approves and proves no change.</span></p>"
        )
    policy = r.first(APPROVAL_POLICY)
    if policy is not None and policy["data"].get("self_approved"):
        op = _dict(policy["data"].get("operator")).get("principal")
        out.append(
            f'<p class="banner bad">SELF-APPROVED: <span>the operator ({_e(op)}) approved their '
            "own change; no second person signed the plan.</span></p>"
        )
    if policy is not None and policy["data"].get("satisfied") is False:
        out.append(
            '<p class="banner bad">APPROVAL POLICY NOT SATISFIED: <span>the recorded approvals '
            "do not meet the plan's policy.</span></p>"
        )
    lost = [str(e.get("step")) for e in r.of(Event.NOTEBOOK_LOST)]
    if lost:
        out.append(
            '<p class="banner unfinished">NOTEBOOK LOST: <span>the executed notebook of '
            f"{_e(', '.join(lost))} could not be stored after the step succeeded; the step's "
            "events below are its record.</span></p>"
        )
    warned = r.first(Event.WARNING_ROOT_CREDENTIALS)
    if warned is not None:
        out.append(
            '<p class="banner unfinished">ROOT CREDENTIALS: <span>'
            f"{_e(_short(warned['data'].get('text'), 600))}</span></p>"
        )
    status = r.status
    where = r.state.halted_at() if r.state else None
    at = ""
    if where:
        at = f" in {where.get('step')}" + (f" at gate {where['gate']}" if where.get("gate") else "")
    if status == Status.HALTED:
        out.append(
            f'<p class="banner unfinished">HALTED{_e(at)}: <span>the change is not complete; it '
            f"waits for a person. {_e(_short(where.get('reason') if where else '', 300))} "
            "</span></p>"
        )
    elif status == Status.FAILED:
        out.append(
            f'<p class="banner bad">FAILED{_e(at)}: <span>'
            f"{_e(_short(where.get('error') if where else '', 300))} The change is not "
            "complete.</span></p>"
        )
    elif status in (Status.INCOMPLETE, Status.RUNNING):
        out.append(
            f'<p class="banner unfinished">UNFINISHED ({_e(status)}){_e(at)}: <span>the record '
            "ends without the run finishing, halting or failing (the process stopped, or it is "
            "still running).</span></p>"
        )
    elif status == Status.ABANDONED:
        reason = _dict(r.state.abandoned if r.state else None).get("reason")
        out.append(
            f'<p class="banner unfinished">ABANDONED: <span>ended on purpose before completing: '
            f"{_e(reason)}</span></p>"
        )
    elif status == "unknown":
        out.append(
            '<p class="banner bad">NO EVENTS: <span>the event log is missing or unreadable; '
            "nothing this page says can be checked.</span></p>"
        )
    tampered = [p for p in r.integrity if p != _NOT_SEALED] + r.chain_problems
    json_status = r.run.get("status")
    if json_status and r.events and json_status != status and not r.for_seal:
        tampered.append(f"{RUN_FILE} says status {json_status}, the event chain says {status}")
    if tampered:
        label = "INTEGRITY PROBLEMS BEFORE SEALING" if r.for_seal else "TAMPERED OR BROKEN"
        out.append(
            f'<p class="banner bad">{label}: <span>{_plural(len(set(tampered)), "problem")} '
            "(listed under Record integrity). Do not rely on this record until they are "
            "explained.</span></p>"
        )
    elif not r.for_seal and _NOT_SEALED in r.integrity:
        out.append(
            '<p class="banner unfinished">UNSEALED: <span>the record has no seal yet, so it '
            "cannot be verified.</span></p>"
        )
    return "\n".join(out)


def _story(r: _Run) -> str:
    """The change in words: a few escaped sentences."""
    acct = _m(r.account)
    before = r.snapshot("before")
    after = r.snapshot("after")
    device = r.device
    kind = _dict(r.first(Event.OBSERVATION_ACCOUNT) or {"data": {}}).get("data", {}).get("kind")
    where = f"account {acct}" + (f" ({_e(kind)})" if kind else "")
    method = str(r.params.get("method") or "console")
    if not r.events:
        return f"<p class='story missing'>No events are recorded for run {_e(r.run_id)}.</p>"
    if before is None:
        refused = r.first(Event.PRECONDITION_FAILED)
        why = f" Refused: {_e(refused['data'].get('reason'))}" if refused else ""
        return (
            f"<p class='story'>Run on {where}: the root user's MFA state was not recorded; "
            f"nothing was changed.{why}</p>"
        )
    had = f"The root user of {where} had {_e(_count_words(before))}"
    serials, _ = _devices_of(before)
    if serials:
        had += " (" + "; ".join(_m(_device_words(s)) for s in serials) + ")"
    sentences = [had + "."]
    if r.dry_run:
        if device:
            sentences.append(
                f"A real run would remove {_m(device)} by method {_e(method)}. "
                "<b>Dry run: nothing was changed.</b>"
            )
        else:
            sentences.append("<b>Dry run: nothing was changed.</b>")
        return f"<p class='story'>{' '.join(sentences)}</p>"
    removal = r.first(Event.EVIDENCE_DEACTIVATION)
    action = r.first(Event.ACTION_REMOVE_DEVICE, Event.ACTION_RECOVERED)
    verified = r.first(Event.VERIFICATION_REMOVED)
    console_ok = any(
        e["data"].get("gate") == "device-removed-in-console" for e in r.of(Event.HUMAN_VERIFIED)
    )
    if action is not None or verified is not None or console_ok:
        if action is not None and action["type"] == Event.ACTION_REMOVE_DEVICE:
            ids = _dict(action["data"].get("request_ids"))
            how = "by the runbook through sts:AssumeRoot with DeactivateMFADevice" + (
                f" (request id {_m(ids['DeactivateMFADevice'])})"
                if ids.get("DeactivateMFADevice")
                else ""
            )
        elif action is not None:
            how = "by an earlier attempt (recovered from CloudTrail)"
        else:
            how = "in the console"
            claim = r.first(Event.HUMAN_CLAIMED)
            if claim and claim["data"].get("performed_by"):
                how += f" by the {_e(claim['data']['performed_by'])}"
        sentences.append(
            ("It" if device and device in serials else _m(device) if device else "The device")
            + f" was removed {how}"
            + (
                f"; CloudTrail shows it: {_trail_words(removal, 'DeactivateMFADevice')}"
                if removal
                else "; the CloudTrail event is not on record yet"
            )
            + "."
        )
        details = _dict(action["data"].get("details")) if action else {}
        if details.get("virtual_device_left"):
            sentences.append(
                f"Its deactivated device object {_m(details['virtual_device_left'])} remains in "
                "the account."
            )
    else:
        sentences.append(
            "<b>Nothing was removed</b>: the run stopped before "
            f"{_m(device) if device else 'the device'} "
            "was removed."
        )
        return f"<p class='story'>{' '.join(sentences)}</p>"
    login = r.first(Event.EVIDENCE_CONSOLE_LOGIN)
    if login is not None:
        mfa = login["data"].get("expected_mfa_used")
        sentences.append(
            "The root user then signed in "
            + ("with a remaining device" if mfa else "with an e-mailed one-time code")
            + f" ({_trail_words(login, 'ConsoleLogin')})."
        )
    elif r.first(Event.DECISION_NO_ROOT_PASSWORD):
        sentences.append("The root user has no password: nobody signed in.")
    new = r.first(Event.VERIFICATION_NEW_DEVICE)
    enable = r.first(Event.EVIDENCE_ENABLE)
    if new is not None:
        added = [str(s) for s in _list(new["data"].get("new_devices"))]
        sentences.append(
            f"A new {', '.join(_m(_device_words(s)) for s in added) or 'device'} was bound in "
            "the console"
            + (f" ({_trail_words(enable, 'EnableMFADevice')})" if enable else "")
            + "."
        )
    elif r.first(Event.DECISION_SKIP_REBIND):
        sentences.append("<b>No new device was bound</b>: the decision to skip is recorded.")
    elif r.status != Status.SUCCEEDED:
        sentences.append("<b>No new device is bound yet.</b>")
    if after is not None:
        sentences.append(f"Now the root user has {_e(_count_words(after))}.")
    return f"<p class='story'>{' '.join(sentences)}</p>"


def _approved_by(r: _Run) -> str:
    if r.dry_run:
        return "Dry run: nothing to approve."
    lines = []
    for ev in r.of(APPROVAL_VERIFIED):
        d = ev["data"]
        lines.append(
            f"<b>{_e(d.get('principal'))}</b>, key {_m(d.get('key_fingerprint'))} "
            f"({_e(d.get('key_type'))}), signed {_e(d.get('approved_at'))}"
            + (" (the operator's own key)" if d.get("by_operator") else "")
        )
    policy = r.first(APPROVAL_POLICY)
    if policy is not None:
        _, text = _d_approval_policy(policy["data"])
        lines.append(text)
    if not r.of(APPROVAL_VERIFIED):
        lines.insert(0, '<span class="warn">No signed approval is recorded.</span>')
    gates = r.of(Event.GATE_APPROVED)
    if gates:
        by = sorted({_who(g["data"].get("who")) for g in gates})
        how = sorted({_approval_typed(g["data"]) for g in gates} - {""})
        digest = r.run.get("plan_digest") or _dict(r.info.get("plan")).get("digest")
        lines.append(
            f"{_plural(len(gates), 'gate')} approved "
            f"({', '.join(_e(g['data'].get('gate')) for g in gates)}) "
            f"{_e(' '.join(how))} by {_e('; '.join(by))}"
            + (f"; plan {_m(str(digest)[:16] + '…')}" if digest else "")
            + "."
        )
    elif not lines[1:]:
        lines.append("No gate was approved.")
    return "<br>".join(lines)


def _performed_by(r: _Run) -> str:
    parts = []
    policy = r.first(APPROVAL_POLICY)
    op = _dict(policy["data"].get("operator")) if policy else {}
    if op.get("principal"):
        parts.append(f"<b>{_e(op.get('principal'))}</b> (key {_m(op.get('fingerprint'))})")
    raw = r.info.get("operator")
    operator = _dict(raw)
    identity = r.first(Event.OBSERVATION_IDENTITY)
    caller = (identity["data"].get("arn") if identity else None) or operator.get("caller_arn")
    who = f"{operator.get('os_user') or '?'}@{operator.get('host') or '?'}" if operator else None
    if raw and isinstance(raw, str):
        who = raw
    parts.append(f"OS user {_e(who)}, AWS caller {_m(caller)}")
    mgmt = r.first(Event.OBSERVATION_MANAGEMENT)
    if mgmt:
        parts.append(f"management caller {_m(mgmt['data'].get('arn'))}")
    actors = sorted(
        {str(e["data"].get("performed_by")) for e in r.of(Event.HUMAN_CLAIMED)} - {"None", ""}
    )
    claims = r.of(Event.HUMAN_CLAIMED)
    if actors:
        parts.append(f"console steps by the {_e(', '.join(actors))}")
    elif claims:
        parts.append(
            "console steps claimed by the operator ("
            + _e(
                ", ".join(
                    sorted({str(c["data"].get("typed") or c["data"].get("mode")) for c in claims})
                )
            )
            + ")"
        )
    return "; ".join(parts) + "."


def _when(r: _Run) -> str:
    start, end, last = r.started, r.ended, r.last
    if start is None:
        return _e(None)
    if end is not None:
        same_day = end.astimezone(dt.UTC).date() == start.astimezone(dt.UTC).date()
        first = _utc(start)[: -len(" UTC")] if same_day else _utc(start)
        took = _duration((end - start).total_seconds())
        last_ = _utc(end) if not same_day else _utc(end, date=False) + " UTC"
        return f"{_e(first)} → {_e(last_)} ({_e(took)})"
    text = f"started {_e(_utc(start))}; "
    if last is not None:
        text += (
            f"last event {_e(_utc(last))} ({_e(_duration((last - start).total_seconds()))} later); "
        )
    return text + "<b>not finished</b>."


def _evidence_rows(r: _Run) -> str:
    rows = []
    for kind, (name, what) in EVIDENCE_NAMES.items():
        for ev in r.of(kind):
            found = _trail(ev)
            if ev["data"].get("found") and found:
                cells = "<br>".join(
                    f"{_m(i)} <span class='meta'>"
                    f"({_e(_utc(_time(t), date=False) if _time(t) else t)})</span>"
                    for i, t in found
                )
            else:
                cells = '<span class="bad">not found</span>'
            rows.append(f"<tr><td>{_e(name)}</td><td>{_e(what)}</td><td>{cells}</td></tr>")
    for ev in r.of(Event.ACTION_RECOVERED):
        ids = _list(_dict(ev["data"].get("evidence")).get("event_ids"))
        rows.append(
            "<tr><td>DeactivateMFADevice</td><td>removal (recovered after a crash)</td><td>"
            + ", ".join(_m(i) for i in ids)
            + "</td></tr>"
        )
    if not rows:
        if r.dry_run:
            return "Dry run: no change, so no CloudTrail event proves one."
        return '<span class="missing">No CloudTrail evidence is recorded.</span>'
    return (
        "<table><thead><tr><th>CloudTrail event</th><th>proves</th><th>event id (eventTime, UTC)"
        f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _before_after(r: _Run) -> str:
    before, after = r.snapshot("before"), r.snapshot("after")
    text = f"<b>before</b> {_state_words(before)}"
    if r.dry_run:
        return text + " (a dry run changes nothing)"
    if after is None:
        removal = r.snapshot("after-removal")
        if removal is not None:
            text += f"<br><b>after the removal</b> {_state_words(removal)}"
        return (
            text + '<br><b>after</b> <span class="missing">not recorded (the run did not reach '
            "05-close-out)</span>"
        )
    text += f"<br><b>after</b> {_state_words(after)}"
    b, _ = _devices_of(before or {})
    a, _ = _devices_of(after)
    removed, added = [s for s in b if s not in a], [s for s in a if s not in b]
    text += (
        f"<br>removed: {', '.join(_m(s) for s in removed) or 'nothing'}; added: "
        f"{', '.join(_m(s) for s in added) or 'nothing'}"
    )
    return text


def _integrity_line(r: _Run) -> str:
    verify_cmd = f"<code>runbook verify {_e(str(r.run_dir))}</code>"
    if r.for_seal:
        if r.integrity:
            return (
                f'<span class="bad">{_plural(len(r.integrity), "problem")} before sealing</span> '
                f"(listed under Record integrity). Check with {verify_cmd}."
            )
        return (
            "This page was written as the record was being sealed "
            f"({_plural(len(r.events), 'event')}, "
            "chain intact, every file as its events recorded it); a page inside the record cannot "
            f"state its own seal: verify it with {verify_cmd}."
        )
    assert r.report is not None
    if r.report.ok:
        return (
            f'<span class="ok">VERIFIED</span>: intact and sealed '
            f"{'final' if r.report.final else '(checkpoint, not final)'}, "
            f"{_plural(r.report.events, 'event')}. Re-check any time with {verify_cmd}."
        )
    return (
        f'<span class="bad">NOT VERIFIED</span>: {_plural(len(r.report.problems), "problem")} '
        f"(listed under Record integrity). Check with {verify_cmd}."
    )


def _status_words(r: _Run) -> str:
    status = r.status
    words = {
        "succeeded": '<span class="ok">succeeded</span>: every step of the plan, in order',
        "dry-run": '<span class="ok">dry run completed</span>: every step, nothing changed',
        "halted": '<span class="warn">halted</span> at a gate: resume it or abandon it',
        "failed": '<span class="bad">failed</span>: resume once the cause is fixed, or abandon it',
        "incomplete": '<span class="warn">incomplete</span>: stopped without a halt or failure',
        "running": '<span class="warn">running</span>',
        "abandoned": '<span class="warn">abandoned</span>: ended on purpose',
    }
    return words.get(status, _e(status))


def _first_screen(r: _Run) -> str:
    rows: list[tuple[str, Any]] = [
        ("What changed", _Html(_before_after(r))),
        ("Approved by", _Html(_approved_by(r))),
        ("Performed by", _Html(_performed_by(r))),
        ("When (UTC)", _Html(_when(r))),
        ("CloudTrail evidence", _Html(_evidence_rows(r))),
        ("Result", _Html(_status_words(r) + ". Record: " + _integrity_line(r))),
    ]
    ticket = r.params.get("change_ticket")
    head = (
        f"<p class='meta'>Run {_m(r.run_id)} · change ticket {_m(ticket)} · method "
        f"{_e(r.params.get('method'))} · account {_m(r.account)}</p>"
    )
    return head + _story(r) + _kv(rows)


# --- the timeline picture ---------------------------------------------------------------------

_W = 1180  # viewBox width
_GUTTER = 150  # lane names
_PAD_R = 14
_CW = 6.7  # advance of one character of the 11px monospace labels (0.602 em, rounded up)
_ROW = 14  # height of a label row
_MAX_ROWS = 5
_BREAK = 64  # width of a compressed idle stretch
_TICKS = (
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
)
_COLORS = {
    "succeeded": "#2e7d32",
    "halted": "#ef6c00",
    "failed": "#c62828",
    "running": "#607d8b",
    "skipped": "#9e9e9e",
    "approved": "#2e7d32",
    "denied": "#c62828",
    "not-needed": "#9e9e9e",
    "claimed": "#1f5fa8",
    "verified": "#2e7d32",
    "contradicted": "#c62828",
    "unverifiable": "#9e9e9e",
    "action": "#6a1b9a",
    "session": "#ab47bc",
    "trail": "#00695c",
    "missing": "#c62828",
}


_RUN_MARKS = {
    Event.RUN_CREATED: ("hollow", "running", "created"),
    Event.RUN_RESUMED: ("hollow", "running", "resumed"),
    Event.RUN_HALTED: ("square", "halted", "halted"),
    Event.RUN_FAILED: ("cross", "failed", "failed"),
    Event.RUN_SUCCEEDED: ("circle", "succeeded", "succeeded"),
    Event.RUN_ABANDONED: ("cross", "halted", "abandoned"),
    Event.RUN_SEALED: ("circle", "running", "sealed"),
}


@dataclass
class _Bar:
    step: str
    start: float
    end: float
    status: str


@dataclass
class _Mark:
    lane: str
    t: float
    shape: str  # triangle | square | cross | circle | diamond | hollow
    color: str
    label: str
    title: str


def _epoch(value: Any) -> float | None:
    when = _time(value)
    return when.timestamp() if when else None


def _timeline_items(r: _Run) -> tuple[list[_Bar], list[_Mark]]:
    bars: list[_Bar] = []
    marks: list[_Mark] = []
    open_: dict[str, float] = {}
    skipped: set[str] = set()
    last = max((t for t in (_epoch(e["time"]) for e in r.events) if t is not None), default=None)
    for ev in r.events:
        t = _epoch(ev["time"])
        if t is None:
            continue
        kind, step, d = ev["type"], ev["step"], ev["data"]
        if step and kind == Event.STEP_STARTED:
            open_[step] = t
        elif step and kind == Event.STEP_SKIPPED:
            skipped.add(step)
        elif (
            step
            and step in open_
            and kind
            in (
                Event.STEP_FINISHED,
                Event.STEP_HALTED,
                Event.STEP_ERROR,
                Event.RUN_HALTED,
                Event.RUN_FAILED,
                Event.GATE_HALTED,
            )
        ):
            status = {
                Event.STEP_FINISHED: "skipped" if step in skipped else "succeeded",
                Event.STEP_ERROR: "failed",
                Event.RUN_FAILED: "failed",
            }.get(kind, "halted")
            bars.append(_Bar(step, open_.pop(step), t, status))
        gate = str(d.get("gate") or "")
        if kind in _RUN_MARKS:
            shape, color, label = _RUN_MARKS[kind]
            marks.append(_Mark("run", t, shape, _COLORS[color], label, ""))
        elif kind == Event.GATE_APPROVED:
            marks.append(_Mark("gates", t, "triangle", _COLORS["approved"], f"{gate} approved", ""))
        elif kind == Event.GATE_DENIED:
            marks.append(_Mark("gates", t, "cross", _COLORS["denied"], f"{gate} denied", ""))
        elif kind == Event.GATE_HALTED or (
            kind == Event.RUN_HALTED and not r.of(Event.GATE_HALTED)
        ):
            marks.append(_Mark("gates", t, "square", _COLORS["halted"], f"halted: {gate}", ""))
        elif kind == Event.GATE_NOT_NEEDED:
            marks.append(
                _Mark("gates", t, "hollow", _COLORS["not-needed"], f"{gate} not needed", "")
            )
        elif kind == Event.HUMAN_CLAIMED:
            marks.append(_Mark("people", t, "hollow", _COLORS["claimed"], f"claimed {gate}", ""))
        elif kind in (Event.HUMAN_VERIFIED, Event.HUMAN_CONTRADICTED, Event.HUMAN_UNVERIFIABLE):
            word = kind.split(".", 1)[1]
            marks.append(_Mark("people", t, "diamond", _COLORS[word], f"{word}", gate))
        elif kind == Event.SESSION_ASSUMED:
            marks.append(
                _Mark(
                    "aws",
                    t,
                    "circle",
                    _COLORS["session"],
                    f"AssumeRoot {d.get('task_policy') or ''}".strip(),
                    str(d.get("purpose") or ""),
                )
            )
        elif kind == Event.ACTION_STARTED:
            marks.append(
                _Mark(
                    "aws",
                    t,
                    "hollow",
                    _COLORS["action"],
                    f"start {d.get('action') or ''}".strip(),
                    "",
                )
            )
        elif kind == Event.ACTION_REMOVE_DEVICE:
            marks.append(
                _Mark(
                    "aws",
                    t,
                    "circle",
                    _COLORS["action"],
                    "DeactivateMFADevice",
                    str(d.get("outcome") or ""),
                )
            )
        elif kind == Event.ACTION_RECOVERED:
            marks.append(
                _Mark("aws", t, "circle", _COLORS["action"], "recovered from CloudTrail", "")
            )
        elif kind in EVIDENCE_NAMES:
            name = EVIDENCE_NAMES[kind][0]
            found = _trail(ev)
            if d.get("found") and found:
                for event_id, when in found:
                    at = _epoch(when) or t
                    marks.append(
                        _Mark(
                            "trail",
                            at,
                            "square",
                            _COLORS["trail"],
                            f"{name} {event_id[:8]}",
                            f"CloudTrail event {event_id}, eventTime {when}",
                        )
                    )
            else:
                marks.append(
                    _Mark("trail", t, "cross", _COLORS["missing"], f"{name} not found", "")
                )
    for step, start in open_.items():  # still running, or the process stopped
        bars.append(_Bar(step, start, last if last is not None else start, "running"))
    return bars, marks


@dataclass
class _Axis:
    """A piecewise-linear time axis: busy stretches to scale, long idle ones as breaks."""

    clusters: list[tuple[float, float]]
    x0: float
    width: float
    pad: float = 8.0
    pps: float = 1.0
    starts: list[float] = field(default_factory=list)

    @classmethod
    def build(cls, times: Sequence[float], x0: float, width: float) -> _Axis:
        ts = sorted(set(times))
        span = ts[-1] - ts[0] if ts else 0.0
        limit = max(60.0, span * 0.05)
        clusters: list[tuple[float, float]] = []
        for t in ts:
            if clusters and t - clusters[-1][1] <= limit:
                clusters[-1] = (clusters[-1][0], t)
            else:
                clusters.append((t, t))
        axis = cls(clusters or [(0.0, 0.0)], x0, width)
        busy = sum(b - a for a, b in axis.clusters)
        fixed = (len(axis.clusters) - 1) * _BREAK + len(axis.clusters) * 2 * axis.pad
        axis.pps = max(width - fixed, 10.0) / max(busy, 1.0 if busy == 0 else busy)
        x = x0
        for a, b in axis.clusters:
            axis.starts.append(x)
            x += 2 * axis.pad + (b - a) * axis.pps + _BREAK
        return axis

    def x(self, t: float) -> float:
        for (a, b), start in zip(self.clusters, self.starts, strict=True):
            if t <= b or (a, b) == self.clusters[-1]:
                return start + self.pad + max(0.0, min(t, b) - a) * self.pps
        return self.x0  # pragma: no cover - the loop always returns

    def breaks(self) -> list[tuple[float, float, float]]:
        """(x where the break starts, x where it ends, idle seconds)."""
        out = []
        for i in range(len(self.clusters) - 1):
            (_, b), (a2, _) = self.clusters[i], self.clusters[i + 1]
            left = self.x(b) + self.pad
            out.append((left, left + _BREAK, a2 - b))
        return out

    def ticks(self) -> list[tuple[float, str]]:
        step = next((s for s in _TICKS if s * self.pps >= 110), _TICKS[-1])
        out: list[tuple[float, str]] = []
        fmt = "%H:%M:%S"
        last_end = -1e9
        for a, b in self.clusters:
            candidates = [a] + [
                k * step for k in range(math.ceil(a / step), math.floor(b / step) + 1)
            ]
            for t in candidates:
                x = self.x(t)
                when = dt.datetime.fromtimestamp(t, dt.UTC)
                label = when.strftime(fmt) + (f".{when.microsecond // 100000}" if step < 1 else "")
                half = len(label) * _CW / 2
                if x - half < last_end + 10 or x + half > self.x0 + self.width + _PAD_R:
                    continue
                out.append((x, label))
                last_end = x + half
        return out


def _shape(m: _Mark, x: float, y: float) -> str:
    c = m.color
    if m.shape == "triangle":
        points = f"{x:.1f},{y - 6:.1f} {x - 6:.1f},{y + 5:.1f} {x + 6:.1f},{y + 5:.1f}"
        return f'<polygon points="{points}" fill="{c}"/>'
    if m.shape == "square":
        return f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{c}"/>'
    if m.shape == "cross":
        return (
            f'<path d="M{x - 5:.1f},{y - 5:.1f} L{x + 5:.1f},{y + 5:.1f} M{x - 5:.1f},{y + 5:.1f} '
            f'L{x + 5:.1f},{y - 5:.1f}" stroke="{c}" stroke-width="2.5"/>'
        )
    if m.shape == "diamond":
        points = f"{x:.1f},{y - 6:.1f} {x + 6:.1f},{y:.1f} {x:.1f},{y + 6:.1f} {x - 6:.1f},{y:.1f}"
        return f'<polygon points="{points}" fill="{c}"/>'
    if m.shape == "hollow":
        return (
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#fff" stroke="{c}" stroke-width="2"/>'
        )
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{c}"/>'


def _place(
    items: list[tuple[float, str]], left: float, right: float
) -> list[tuple[int, float, str]]:
    """Labels at x (sorted) into rows without overlap: (row, start x, text); -1 = no room."""
    ends: list[float] = []
    out = []
    for x, text in items:
        w = len(text) * _CW
        placed = False
        for start in (x - 4, x - w + 4):
            if start < left or start + w > right:
                continue
            for row in range(_MAX_ROWS):
                if row == len(ends):
                    ends.append(-1e9)
                if ends[row] + 8 <= start:
                    ends[row] = start + w
                    out.append((row, start, text))
                    placed = True
                    break
            if placed:
                break
        if not placed:
            out.append((-1, x, text))
    return out


def _svg_text(x: float, y: float, text: str, cls: str = "lbl", anchor: str = "start") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}">'
        f"{html.escape(text, quote=True)}</text>"
    )


def _timeline(r: _Run) -> str:
    bars, marks = _timeline_items(r)
    times = [b.start for b in bars] + [b.end for b in bars] + [m.t for m in marks]
    if not times:
        return (
            '<p class="missing">Nothing to draw: no timed step, gate, action or CloudTrail '
            "event is recorded.</p>"
        )
    plot_left, plot_right = _GUTTER, _W - _PAD_R
    axis = _Axis.build(times, plot_left, plot_right - plot_left)
    parts: list[str] = []
    back: list[str] = []  # drawn first: breaks and grid lines behind the marks
    y = 10.0
    steps = [s for s in ORDER if any(b.step == s for b in bars)] + sorted(
        {b.step for b in bars} - set(ORDER)
    )
    lanes_top = y
    parts.append(_svg_text(8, y + 10, "Steps", "lane"))
    y += 16
    for step in steps:
        row_y = y + 7
        parts.append(_svg_text(14, row_y + 4, step, "name"))
        labels = []
        for bar in (b for b in bars if b.step == step):
            x1, x2 = axis.x(bar.start), axis.x(bar.end)
            width = max(x2 - x1, 3.0)
            dash = ' stroke-dasharray="3,2" fill-opacity="0.45"' if bar.status == "skipped" else ""
            tip = f"{step}: {bar.status}, {_duration(bar.end - bar.start)}"
            parts.append(
                f'<rect x="{x1:.1f}" y="{row_y - 5:.1f}" width="{width:.1f}" height="10" rx="2" '
                f'fill="{_COLORS[bar.status]}" stroke="{_COLORS[bar.status]}"{dash}>'
                f"<title>{html.escape(tip)}</title></rect>"
            )
            labels.append((x1 + width, f"{bar.status} {_duration(bar.end - bar.start)}"))
        last_end = -1e9
        for x_end, text in labels:
            w = len(text) * _CW
            start = x_end + 6
            if start + w > plot_right:
                start = axis.x(min(b.start for b in bars if b.step == step)) - 6 - w
            if start >= plot_left and start > last_end + 6 and start + w <= plot_right:
                parts.append(_svg_text(start, row_y + 4, text))
                last_end = start + w
        y += 18
    y += 6
    for lane, name in (
        ("run", "Run"),
        ("gates", "Gates"),
        ("people", "People (console)"),
        ("aws", "AWS actions"),
        ("trail", "CloudTrail"),
    ):
        mine = sorted((m for m in marks if m.lane == lane), key=lambda m: m.t)
        parts.append(f'<line x1="0" x2="{_W}" y1="{y:.1f}" y2="{y:.1f}" class="sep"/>')
        base = y + 12
        parts.append(_svg_text(8, base + 4, name, "lane"))
        if not mine:
            parts.append(_svg_text(plot_left, base + 4, "none recorded", "none"))
            y += 26
            continue
        placed = _place([(axis.x(m.t), m.label) for m in mine], plot_left, plot_right)
        rows = max((p[0] for p in placed), default=-1) + 1
        for m, (row, start, text) in zip(mine, placed, strict=True):
            x = axis.x(m.t)
            title = f"{_utc(dt.datetime.fromtimestamp(m.t, dt.UTC), ms=True)}: {m.label}" + (
                f" ({m.title})" if m.title else ""
            )
            parts.append(f"<g>{_shape(m, x, base)}<title>{html.escape(title)}</title></g>")
            if row >= 0:
                parts.append(_svg_text(start, base + 22 + row * _ROW, text))
        y += 20 + rows * _ROW + 8
    lanes_bottom = y
    # breaks and the axis
    for left, right, idle in axis.breaks():
        back.append(
            f'<rect x="{left:.1f}" y="{lanes_top:.1f}" width="{right - left:.1f}" '
            f'height="{lanes_bottom - lanes_top:.1f}" class="brk"/>'
        )
        parts.append(
            _svg_text(
                (left + right) / 2, lanes_bottom + 30, f"+{_duration(idle)}", "brkl", "middle"
            )
        )
    parts.append(
        f'<line x1="{plot_left}" x2="{plot_right}" y1="{y:.1f}" y2="{y:.1f}" class="axis"/>'
    )
    for x, label in axis.ticks():
        back.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{lanes_top:.1f}" y2="{y + 4:.1f}" class="grid"/>'
        )
        parts.append(_svg_text(x, y + 16, label, "tick", "middle"))
    day = dt.datetime.fromtimestamp(min(times), dt.UTC)
    parts.append(_svg_text(8, y + 16, f"UTC {day:%Y-%m-%d}", "tick"))
    y += 40
    # legend
    legend = [
        ("bar", "succeeded", "step succeeded"),
        ("bar", "halted", "step halted"),
        ("bar", "failed", "step failed"),
        ("bar", "skipped", "skipped (dry run)"),
        ("triangle", "approved", "gate approved"),
        ("square", "halted", "halted at gate"),
        ("cross", "denied", "denied / not found"),
        ("hollow", "claimed", "claimed in console"),
        ("diamond", "verified", "verified by the API"),
        ("diamond", "contradicted", "contradicted"),
        ("circle", "action", "AWS action"),
        ("circle", "session", "AssumeRoot session"),
        ("square", "trail", "CloudTrail event (eventTime)"),
    ]
    x = 8.0
    for shape, color, text in legend:
        w = 22 + len(text) * _CW + 14
        if x + w > _W:
            x, y = 8.0, y + 18
        if shape == "bar":
            parts.append(
                f'<rect x="{x:.1f}" y="{y - 5:.1f}" width="16" height="10" rx="2" '
                f'fill="{_COLORS[color]}"/>'
            )
        else:
            parts.append(_shape(_Mark("", 0, shape, _COLORS[color], "", ""), x + 8, y))
        parts.append(_svg_text(x + 22, y + 4, text))
        x += w
    height = y + 14
    idles = axis.breaks()
    note = (
        f" Long idle stretches ({len(idles)}) are drawn as grey breaks labelled with their length."
        if idles
        else ""
    )
    style = (
        "<style>.lbl,.tick,.name,.none,.brkl{font:11px monospace;fill:#222}.lane{font:bold 12px "
        "sans-serif;fill:#111}.none{fill:#999;font-style:italic}.axis{stroke:#444}"
        ".grid{stroke:#e4e4e4}.sep{stroke:#eee}.brk{fill:#f2f2f2;stroke:#bbb;"
        "stroke-dasharray:4,3}.brkl{fill:#555}</style>"
    )
    return (
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height:.0f}" '
        f'role="img" aria-label="Timeline of the run">'
        f"<title>Timeline of run {html.escape(r.run_id)}</title>{style}"
        + "".join(back)
        + "".join(parts)
        + f'</svg><p class="meta">One time axis (UTC); hover a mark for its exact time.{note}</p>'
    )


# --- per-step sections, integrity, appendix -------------------------------------------------------


def _step_header(r: _Run, step: str) -> str:
    info = r.state.steps.get(step) if r.state else None
    title, who, evidence = STEP_TEXT.get(step, (step, "?", "?"))
    status = info.status if info else "not recorded"
    if info and info.skipped:
        status = "skipped (dry run)"
    cls = {"succeeded": "ok", "failed": "bad", "halted": "warn", "running": "warn"}.get(
        info.status if info else "", "missing"
    )
    when = ""
    if info and info.started:
        s, e = _time(info.started), _time(info.ended)
        when = f" · {_e(_utc(s, date=False, ms=True))}"
        if e and s:
            when += (
                f" → {_e(_utc(e, date=False, ms=True))} ({_e(_duration((e - s).total_seconds()))})"
            )
    attempts = f" · {info.attempts} attempts" if info and info.attempts > 1 else ""
    reason = f"<p class='meta'>{_e(info.reason)}</p>" if info and info.reason else ""
    return (
        f"<h3>{_e(step)} · {_e(title)}: <span class='{cls}'>{_e(status)}</span>{when}"
        f"{attempts}</h3>"
        f"<p class='meta'>Who acts: {_e(who)}. Evidence: {_e(evidence)}.</p>{reason}"
    )


def _event_rows(events: Iterable[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for ev in events:
        kind, text = _describe(ev)
        when = _time(ev["time"])
        rows.append(
            [
                "<span class='mono tm'>"
                f"{_e(_utc(when, date=False, ms=True) if when else None)}</span>",
                f"<span class='kind {kind}'>{_e(kind)}</span>",
                text,
            ]
        )
    return rows


def _steps(r: _Run) -> str:
    out = []
    steps = list(ORDER) + sorted({e["step"] for e in r.events if e["step"]} - set(ORDER))
    for step in steps:
        mine = [e for e in r.events if e["step"] == step]
        out.append(_step_header(r, step))
        if not mine:
            out.append('<p class="missing">Not reached: nothing is recorded for this step.</p>')
            continue
        out.append(_table(["Time (UTC)", "Kind", "What"], _event_rows(mine), ""))
    return "\n".join(out)


def _run_events(r: _Run) -> str:
    mine = [e for e in r.events if not e["step"]]
    return _table(["Time (UTC)", "Kind", "What"], _event_rows(mine), "No run-level events.")


def _integrity(r: _Run, manifest: Any, manifest_err: str | None) -> str:
    if r.for_seal:
        out = (
            '<p class="ok">This page is part of the record being sealed: it is listed, with its '
            "SHA-256, in <code>manifest.json</code>, so a page cannot state its own integrity. "
            f"Check the record (this page included) with <code>runbook verify "
            f"{_e(str(r.run_dir))}</code>. At sealing the event log held {len(r.events)} events, "
            f"head <code>{_e(r.events[-1].get('hash') if r.events else None)}</code>.</p>"
        )
        if r.integrity:
            out += '<p class="bad">Problems found before sealing:</p>'
    else:
        assert r.report is not None
        if r.report.ok:
            out = '<p class="ok">VERIFIED: the record is intact and sealed'
            out += " (final)</p>" if r.report.final else " (checkpoint, not final)</p>"
        else:
            out = f'<p class="bad">NOT VERIFIED: {len(r.report.problems)} problem(s)</p>'
    problems = list(dict.fromkeys(r.integrity + r.chain_problems))
    if r.run_err:
        problems.append(f"{RUN_FILE}: {r.run_err}")
    json_status = r.run.get("status")
    if json_status and r.events and json_status != r.status and not r.for_seal:
        problems.append(f"{RUN_FILE} says status {json_status}, the event chain says {r.status}")
    if problems:
        out += "<ul>" + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>"
    if r.for_seal and not isinstance(manifest, dict):
        return out
    if manifest_err or not isinstance(manifest, dict):
        return out + f'<p class="missing">{MANIFEST_FILE}: {html.escape(manifest_err or "?")}</p>'
    if r.for_seal:
        out += "<p class='meta'>The previous seal (a checkpoint) is described below.</p>"
    events = _dict(manifest.get("events"))
    signer = _dict(manifest.get("signer"))
    rows: list[tuple[str, Any]] = [
        ("Sealed at", manifest.get("sealed_at")),
        ("Final", manifest.get("final")),
        ("Events", events.get("count")),
        ("Events head", events.get("head")),
        ("Previous manifest sha256", manifest.get("previous_manifest_sha256") or "—"),
    ]
    if signer:
        rows.append(
            (
                "Sealed by",
                f"{signer.get('principal')} ({signer.get('fingerprint')}, "
                f"{signer.get('key_type')})",
            )
        )
    out += _kv(rows)
    files = _dict(manifest.get("files"))
    file_rows = [
        [_m(rel), _e(_dict(meta).get("size")), _m(_dict(meta).get("sha256"))]
        for rel, meta in sorted(files.items())
    ]
    return out + (
        f"<details><summary>Manifest: {_plural(len(files), 'file')}</summary>"
        + _table(["File", "Size", "sha256"], file_rows, "The manifest lists no files.")
        + "</details>"
    )


def _flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
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


def _appendix(r: _Run) -> str:
    params = r.params
    plan = _dict(r.info.get("plan")) or _dict(r.run.get("plan"))
    versions = _dict(r.info.get("versions")) or _dict(r.run.get("versions"))
    rows = [
        [
            _e(ev.get("seq")),
            _m(ev["time"]),
            _e(ev["type"]),
            _e(ev["step"]) if ev["step"] else "",
            _m(str(ev.get("hash", ""))[:12]),
            _pre(ev["data"]),
        ]
        for ev in r.events
    ]
    return (
        f"<details><summary>Parameters ({len(params)})</summary>"
        + _kv((str(k), v) for k, v in sorted(params.items()))
        + "</details>"
        + f"<details><summary>Plan {_e(str(plan.get('digest') or '')[:16])}</summary>"
        + _pre(plan or None)
        + "</details>"
        + (
            "<details><summary>Versions</summary>"
            + _kv((str(k), v) for k, v in sorted(versions.items()))
            + "</details>"
            if versions
            else ""
        )
        + "<details><summary>Snapshots before / after (every signal)</summary>"
        + _snapshots(r.run_dir)
        + "</details>"
        + f"<details><summary>Raw events ({len(r.events)}), as chained in {EVENTS_FILE}</summary>"
        + _table(
            ["Seq", "Time", "Type", "Step", "Hash", "Data"],
            rows,
            "No events (events.jsonl is missing or empty).",
        )
        + "</details>"
    )


def _section(render: Callable[[], str], name: str) -> str:
    """A section, or a line saying it could not be rendered (the rest of the page still is)."""
    try:
        return render()
    except Exception as err:  # noqa: BLE001 - the report renders whatever the record holds
        return (
            f'<p class="bad">The {html.escape(name)} could not be rendered '
            f"({html.escape(type(err).__name__)}): the record holds something unexpected; see "
            "the raw events.</p>"
        )


def render_html(run_dir: Path, *, for_seal: bool = False) -> str:
    """The auditor's page for the run in ``run_dir`` (works for partial and broken runs).

    ``for_seal``: the page is written into the record just before it is sealed; it then says
    so, checks what can be checked before the seal (the chain, every file against its events)
    and points to ``runbook verify`` instead of a verification that would predate the seal."""
    run_dir = Path(run_dir)
    r = _load(run_dir, for_seal)
    manifest, manifest_err = _load_json(run_dir / MANIFEST_FILE)
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    what = "dry run" if r.dry_run else "root MFA change"
    title = f"Run {r.run_id}"
    sections = [
        f"<h1>{_e(title)} <span class='sub'>· {_e(what)} record · status "
        f"{_e(r.status)}</span></h1>",
        _section(lambda: _banners(r), "banners"),
        (f'<p class="missing">{RUN_FILE}: {html.escape(r.run_err)}</p>' if r.run_err else ""),
        _section(lambda: _first_screen(r), "summary"),
        "<h2>Timeline</h2>",
        _section(lambda: _timeline(r), "timeline"),
        "<h2>The run</h2>",
        _section(lambda: _run_events(r), "run events"),
        "<h2>Step by step</h2>",
        _section(lambda: _steps(r), "step sections"),
        "<h2>Record integrity</h2>",
        _section(lambda: _integrity(r, manifest, manifest_err), "integrity section"),
        "<h2>Appendix</h2>",
        _section(lambda: _appendix(r), "appendix"),
        f"<p class='meta'>Report generated {_e(generated)} from <code>{_e(str(run_dir))}</code>"
        + (" as the record was sealed." if for_seal else ".")
        + "</p>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
