"""Interactive confirmations (ipywidgets) for ``mode=interactive``.

Each approval control shows what will happen (account, device serial, method, change ticket),
enables its Confirm button only once the operator has typed the expected text (the account id)
exactly, and writes the decision into the run record from the button's callback: who (caller
ARN, OS user, host), what they typed, and when. Cancel records ``gate.denied``, a decision to
stop. The cell that shows the control returns at once; the next action halts (``Step.require``)
until the record holds the confirmation. See :mod:`runbook_lib.lab` for why nothing blocks.

A console step (``Step.human``) shows the procedure's exact console path and a "Done" control,
then halts its cell, so "Run All" stops there and the kernel is free for the click. After
"Done", the control checks the change through the AWS API, with a visible waiting indicator,
until ``verify_timeout`` (CloudTrail: ``evidence_timeout``) runs out, then says what to check.

Without a frontend (papermill, nbval, a plain console) the same calls print the facts and the
instructions as text; the gate simply stays unconfirmed, and the next action halts.

Feedback goes to Label widgets: ``print()`` inside a button callback does not reach the cell's
output in JupyterLab. Controls carry CSS classes (``runbook-gate-*``, ``runbook-console-*``)
that the browser test uses.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import GateNotApproved, RunbookError, VerificationTimeout

if TYPE_CHECKING:
    from .step import Step


def _facts_html(facts: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(str(k))}</th>"
        f"<td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in facts.items()
    )
    return f"<table>{rows}</table>"


def text_fallback(title: str, facts: dict[str, Any], expected: str, gate: str) -> str:
    """What a gate shows as text (papermill, nbval, a console)."""
    lines = [f"GATE {gate}: {title}"]
    lines += [f"  {k}: {v}" for k, v in facts.items()]
    lines.append(
        f"  To confirm, type {expected!r} in the box and press Confirm (JupyterLab); "
        "until then every action after this gate halts."
    )
    return "\n".join(lines)


@dataclass
class GateControls:
    """The widgets of one approval control (``box`` is what the cell displays)."""

    box: Any
    typed: Any
    confirm: Any
    cancel: Any
    status: Any


def build_confirmation(
    step: Step, gate: str, title: str, facts: dict[str, Any], expected: str
) -> GateControls:
    """Build an approval control and wire its callbacks (tests call them directly)."""
    import ipywidgets as w

    from .step import now_iso

    header = w.HTML(f"<h4>{html.escape(title)}</h4>{_facts_html(facts)}")
    typed = w.Text(
        placeholder=f"type {expected} to confirm",
        description="Type:",
        continuous_update=True,
    )
    confirm = w.Button(description="Confirm", button_style="danger", disabled=True, icon="check")
    cancel = w.Button(description="Cancel (stop here)", button_style="")
    status = w.Label(value="Not confirmed: nothing after this gate will act.")
    typed.add_class("runbook-gate-typed")
    confirm.add_class("runbook-gate-confirm")
    cancel.add_class("runbook-gate-cancel")
    status.add_class("runbook-gate-status")
    controls = GateControls(
        w.VBox([header, typed, w.HBox([confirm, cancel]), status]), typed, confirm, cancel, status
    )
    controls.box.add_class("runbook-gate")

    def on_type(change: dict[str, Any]) -> None:
        confirm.disabled = change["new"].strip() != expected

    def decide(kind: str) -> bool:
        try:
            step.decide(kind, gate, "interactive", typed.value.strip(), facts=facts)
        except RunbookError as err:  # sealed run, refused secret, ...: say so, change nothing
            status.value = f"Not recorded: {err}"
            return False
        confirm.disabled = cancel.disabled = typed.disabled = True
        return True

    def on_confirm(_: Any) -> None:
        if typed.value.strip() != expected or confirm.disabled:
            return
        if decide("gate.approved"):
            status.value = (
                f"Confirmed by {step.operator().get('caller_arn') or step.operator()['os_user']} "
                f"at {now_iso()}. Run the next cell (re-run the one that halted)."
            )

    def on_cancel(_: Any) -> None:
        if decide("gate.denied"):
            status.value = "Cancelled: the decision to stop is recorded. Nothing was changed."

    typed.observe(on_type, names="value")
    confirm.on_click(on_confirm)
    cancel.on_click(on_cancel)
    return controls


def confirmation(step: Step, gate: str, title: str, facts: dict[str, Any], expected: str) -> Any:
    """An approval control; returns the widget (displayed by the notebook cell). The same facts
    are printed first: what papermill, nbval and a plain console show."""
    print(text_fallback(title, facts, expected, gate))
    return build_confirmation(step, gate, title, facts, expected).box


# ------------------------------------------------------------------------------ console steps
@dataclass
class ConsoleCheck:
    """How to see a console step's result through the AWS API."""

    what: str
    check: str
    timeout: float
    probe: Callable[[], Any]
    done: Callable[[Any], bool]


def _known_serials(snapshot: dict[str, Any] | None) -> set[str]:
    if not snapshot:
        return set()
    serials = set(snapshot.get("virtual_devices") or ())
    serials |= {d["serial"] for d in snapshot.get("session_devices") or ()}
    return serials


def console_check(step: Step, gate: str) -> ConsoleCheck | None:
    """The API check for ``gate`` (None when there is nothing to poll)."""
    from .state import collect_snapshot

    acct = step.params.account_id
    decided = step.events("decision.device")
    serial = decided[-1]["data"].get("serial") if decided else None

    def snapshot() -> Any:
        return collect_snapshot(step.target, acct, with_report=False)

    if gate == "device-removed-in-console" and serial:
        return ConsoleCheck(
            what=f"device {serial} to disappear from the root user's MFA devices",
            check=f"Check in the console (Security credentials > Multi-factor authentication) "
            f"that {serial} is gone; IAM can lag for a short while. Then press Done again.",
            timeout=float(step.params.verify_timeout),
            probe=snapshot,
            done=lambda snap: (
                (snap.virtual_devices is not None or snap.session_devices is not None)
                and serial not in snap.known_serials()
            ),
        )
    if gate == "new-device-bound-in-console":
        path = step.record.path / "snapshots" / "after-removal.json"
        before = _known_serials(json.loads(path.read_text())) if path.exists() else set()
        gone = {serial} if serial else set()
        return ConsoleCheck(
            what="a new root MFA device",
            check="Finish binding in the console (scan the QR code, enter two consecutive "
            "codes, choose Add MFA) and check that the console lists the device. Then press "
            "Done again.",
            timeout=float(step.params.verify_timeout),
            probe=snapshot,
            done=lambda snap: (
                bool(snap.known_serials() - before - gone)
                or (bool(snap.account_mfa_enabled) and not snap.known_serials() and not before)
            ),
        )
    if gate == "signed-in-with-email-code":
        from .evidence import find_console_login

        start = dt.datetime.fromisoformat(step.record.load_run()["created_at"])
        since = start - dt.timedelta(minutes=1)
        return ConsoleCheck(
            what="the root user's console sign-in in CloudTrail (ConsoleLogin)",
            check="Check that the sign-in finished (the console shows the account) and that "
            "CloudTrail is on; events can take a few minutes. Then press Done again.",
            timeout=float(step.params.evidence_timeout),
            probe=lambda: find_console_login(step.target, acct, since),
            done=lambda ev: bool(ev.found),
        )
    return None


def verify_console_step(
    step: Step,
    gate: str,
    indicator: Callable[[str], None],
    check: ConsoleCheck | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Poll the API for a console step's result, showing progress through ``indicator``;
    record the outcome (``verification.console-step``); True when it was seen."""
    from .state import poll_until

    check = check or console_check(step, gate)
    if check is None:
        indicator("Recorded. Nothing to check through the API for this step.")
        return True
    started = time.monotonic()
    frames = "◐◓◑◒"
    polls = 0

    def waiting(seconds: float) -> None:
        nonlocal polls
        polls += 1
        elapsed = time.monotonic() - started
        indicator(
            f"{frames[polls % 4]} Checking through the AWS API for {check.what}: "
            f"{elapsed:.0f} s of at most {check.timeout:.0f} s ..."
        )
        sleep(seconds)

    indicator(f"{frames[0]} Checking through the AWS API for {check.what} ...")
    try:
        poll_until(
            check.probe,
            check.done,
            timeout=check.timeout,
            what=check.what,
            check=check.check,
            interval=1.0,
            max_interval=5.0,
            sleep=waiting,
        )
    except VerificationTimeout as err:
        step.log("verification.console-step", gate=gate, seen=False, what=check.what)
        indicator(f"Not seen yet. {err}")
        return False
    except RunbookError as err:
        step.log("verification.console-step", gate=gate, seen=False, error=str(err)[:500])
        indicator(f"Could not check through the API: {err}")
        return False
    step.log(
        "verification.console-step",
        gate=gate,
        seen=True,
        what=check.what,
        seconds=round(time.monotonic() - started, 1),
    )
    indicator(f"Verified through the AWS API: {check.what}. Re-run the cell that halted.")
    return True


@dataclass
class ConsoleControls:
    """The widgets of one console-step control."""

    box: Any
    typed: Any
    done: Any
    status: Any


def build_console_step(
    step: Step,
    gate: str,
    instructions: str,
    verify: Callable[[Callable[[str], None]], bool] | None = None,
    actor: Callable[[], dict[str, Any]] | None = None,
) -> ConsoleControls:
    """Build a "done in the console" control and wire its callbacks. With ``actor`` (the
    sandbox only: ``sandbox_actor=true``) a second button lets the simulated console actor do
    the step, so a whole procedure can be walked through in JupyterLab on the sandbox."""
    import ipywidgets as w

    text = w.HTML(f"<pre style='white-space:pre-wrap'>{html.escape(instructions)}</pre>")
    typed = w.Text(placeholder="type done when it is done", description="Status:")
    done = w.Button(description="Done in the console", button_style="warning", disabled=True)
    status = w.Label(value="Waiting for the console step.")
    typed.add_class("runbook-console-typed")
    done.add_class("runbook-console-done")
    status.add_class("runbook-console-status")
    controls = ConsoleControls(w.VBox([text, typed, done, status]), typed, done, status)
    controls.box.add_class("runbook-console")

    def show(message: str) -> None:
        status.value = message

    def on_type(change: dict[str, Any]) -> None:
        done.disabled = change["new"].strip().lower() != "done"

    def on_done(_: Any) -> None:
        if done.disabled:
            return
        done.disabled = typed.disabled = True
        if not step.approved(gate):
            try:
                step.decide("human.confirmed", gate, "interactive", typed.value.strip())
            except RunbookError as err:
                show(f"Not recorded: {err}")
                done.disabled = typed.disabled = False
                return
        check = verify or (lambda indicator: verify_console_step(step, gate, indicator))
        if not check(show):
            done.disabled = typed.disabled = False  # let the operator check and press again

    typed.observe(on_type, names="value")
    done.on_click(on_done)
    if actor is not None:
        simulate = w.Button(description="Sandbox: let the console actor do it")
        simulate.add_class("runbook-console-actor")

        def on_simulate(_: Any) -> None:
            simulate.disabled = done.disabled = typed.disabled = True
            show("The sandbox console actor is doing it ...")
            try:
                result = actor()
                step.decide(
                    "human.confirmed",
                    gate,
                    "interactive",
                    "sandbox_actor=true",
                    performed_by="sandbox console actor",
                    actor_result=result,
                )
            except (RunbookError, OSError, RuntimeError) as err:
                show(f"The console actor failed: {err}")
                simulate.disabled = False
                return
            check = verify or (lambda indicator: verify_console_step(step, gate, indicator))
            check(show)

        simulate.on_click(on_simulate)
        controls.box.children = (*controls.box.children, simulate)
    return controls


def console_step(
    step: Step, gate: str, instructions: str, actor: Callable[[], dict[str, Any]] | None = None
) -> Any:
    """Show a console step's control, then halt the cell (GateNotApproved): the operator does
    it in the console, presses Done (the control verifies it), and re-runs the cell."""
    from IPython.display import display

    print(
        f"CONSOLE STEP {gate}:\n{instructions}\n  When it is done, type done, press "
        "'Done in the console', wait until the control has verified it, and re-run this cell."
    )
    controls = build_console_step(step, gate, instructions, actor=actor)
    display(controls.box)  # type: ignore[no-untyped-call]
    reason = (
        "it is a console step: do it in the console, type done and press the button above, "
        "then re-run this cell"
    )
    step.log("gate.halted", gate=gate, reason=reason, mode="interactive")
    raise GateNotApproved(gate, reason)
