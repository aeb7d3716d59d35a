"""Interactive confirmations (ipywidgets) for ``mode=interactive``.

Each approval control shows what will happen (account, device serial, method, change ticket),
enables its Confirm button only once the operator has typed the expected text (the account id)
exactly, and writes the decision into the run record from the button's callback: who (caller
ARN, OS user, host), what they typed, and when. Cancel records ``gate.denied``, a decision to
stop. The cell that shows the control returns at once; the next action halts (``Gates.require``)
until the record holds the confirmation. See :mod:`runbook_lib.lab` for why nothing blocks.

A console step (``Gates.console_step``) shows the procedure's exact console path and a "Done"
control, then halts its cell, so "Run All" stops there and the kernel is free for the click.
"Done" records a *claim* (``human.claimed``); the control then checks the change through the
AWS API, with a visible waiting indicator, until ``verify_timeout`` (CloudTrail:
``evidence_timeout``) runs out, and records the verdict (``human.verified`` or
``human.contradicted``, then says what to check). Only a verified claim passes the gate.

Each control is shown once: its box's display data carries the widget view and, as its
``text/plain``, the same facts and instructions as text. JupyterLab renders the widget; whatever
cannot (papermill, nbval, a plain console, a notebook reopened without its widget state) shows
the text. Nothing sniffs the frontend, and nothing prints the text a second time beside the
widget. Without a frontend the gate simply stays unconfirmed, and the next action halts.

Every text is shown whole: buttons size to their label (``width: auto``), the status line is an
HTML widget that wraps (ipywidgets' ``Label`` cuts long text with an ellipsis), the text boxes
are wide enough for their placeholder. Feedback goes to that status widget: ``print()`` inside
a button callback does not reach the cell's output in JupyterLab. Controls carry CSS classes
(``runbook-gate-*``, ``runbook-console-*``) that the browser test uses.
"""

from __future__ import annotations

import functools
import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import RunbookError
from .procedure.vocabulary import Event, now_iso

if TYPE_CHECKING:
    from .procedure.gates import ConsoleCheck, GatedStep


def _facts_html(facts: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(str(k))}</th>"
        f"<td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in facts.items()
    )
    return f"<table>{rows}</table>"


@functools.cache
def _control_box() -> type:
    """A VBox whose plain-text form is the control's text (its ``text``): the widget where a
    frontend renders widgets, the text everywhere else; made once, on first use."""
    import ipywidgets as w

    class ControlBox(w.VBox):  # type: ignore[misc]
        text = ""

        def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
            data: dict[str, Any] = dict(super()._repr_mimebundle_(**kwargs))
            data["text/plain"] = self.text
            return data

        def __str__(self) -> str:  # what display() prints without IPython
            return self.text

    return ControlBox


def _box(children: list[Any], text: str, css: str) -> Any:
    box = _control_box()(children)
    box.text = text
    box.add_class(css)
    return box


def _button(description: str, **kwargs: Any) -> Any:
    """A button as wide as its label (ipywidgets' default width cuts longer labels)."""
    import ipywidgets as w

    return w.Button(description=description, layout=w.Layout(width="auto"), **kwargs)


def _status(text: str) -> tuple[Any, Callable[[str], None]]:
    """A status line that wraps instead of cutting the text, and its setter (plain text)."""
    import ipywidgets as w

    widget = w.HTML(
        value=html.escape(text), layout=w.Layout(width="auto", height="auto", max_width="100%")
    )

    def show(message: str) -> None:
        widget.value = html.escape(message)

    return widget, show


def _text_box(placeholder: str, description: str) -> Any:
    import ipywidgets as w

    return w.Text(
        placeholder=placeholder,
        description=description,
        continuous_update=True,
        layout=w.Layout(width="auto", min_width="30em"),
        style={"description_width": "initial"},
    )


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
    step: GatedStep, gate: str, title: str, facts: dict[str, Any], expected: str
) -> GateControls:
    """Build an approval control and wire its callbacks (tests call them directly)."""
    import ipywidgets as w

    header = w.HTML(f"<h4>{html.escape(title)}</h4>{_facts_html(facts)}")
    typed = _text_box(f"type {expected} to confirm", "Type:")
    confirm = _button("Confirm", button_style="danger", disabled=True, icon="check")
    cancel = _button("Cancel (stop here)", button_style="")
    status, show = _status("Not confirmed: nothing after this gate will act.")
    typed.add_class("runbook-gate-typed")
    confirm.add_class("runbook-gate-confirm")
    cancel.add_class("runbook-gate-cancel")
    status.add_class("runbook-gate-status")
    box = _box(
        [header, typed, w.HBox([confirm, cancel]), status],
        text_fallback(title, facts, expected, gate),
        "runbook-gate",
    )
    controls = GateControls(box, typed, confirm, cancel, status)

    def on_type(change: dict[str, Any]) -> None:
        confirm.disabled = change["new"].strip() != expected

    def decide(kind: str) -> bool:
        try:
            step.gates.decide(kind, gate, "interactive", typed.value.strip(), facts=facts)
        except RunbookError as err:  # sealed run, refused secret, ...: say so, change nothing
            show(f"Not recorded: {err}")
            return False
        confirm.disabled = cancel.disabled = typed.disabled = True
        return True

    def on_confirm(_: Any) -> None:
        if typed.value.strip() != expected or confirm.disabled:
            return
        if decide(Event.GATE_APPROVED):
            show(
                f"Confirmed by {step.operator().get('caller_arn') or step.operator()['os_user']} "
                f"at {now_iso()}. Run the next cell (re-run the one that halted)."
            )

    def on_cancel(_: Any) -> None:
        if decide(Event.GATE_DENIED):
            show("Cancelled: the decision to stop is recorded. Nothing was changed.")

    typed.observe(on_type, names="value")
    confirm.on_click(on_confirm)
    cancel.on_click(on_cancel)
    return controls


def confirmation(
    step: GatedStep, gate: str, title: str, facts: dict[str, Any], expected: str
) -> Any:
    """An approval control; returns the widget (displayed by the notebook cell), whose plain
    text (what papermill, nbval and a plain console show) is :func:`text_fallback`."""
    return build_confirmation(step, gate, title, facts, expected).box


# ------------------------------------------------------------------------------ console steps
def console_text(gate: str, instructions: str) -> str:
    """What a console step shows as text (papermill, nbval, a console)."""
    return (
        f"CONSOLE STEP {gate}:\n{instructions}\n  When it is done, type done, press "
        "'Done in the console', wait until the control has verified it, and re-run this cell."
    )


def verify_console_step(
    step: GatedStep,
    gate: str,
    indicator: Callable[[str], None],
    check: ConsoleCheck | None,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Poll the API for a claimed console step's result, showing progress through
    ``indicator``; the verdict is recorded; True when it passed."""
    try:
        return step.gates.verdict(gate, check, indicator, sleep).passed
    except RunbookError:
        return False


@dataclass
class ConsoleControls:
    """The widgets of one console-step control."""

    box: Any
    typed: Any
    done: Any
    status: Any


def build_console_step(
    step: GatedStep,
    gate: str,
    instructions: str,
    verify: Callable[[Callable[[str], None]], bool] | None = None,
    actor: Callable[[], dict[str, Any]] | None = None,
    check: ConsoleCheck | None = None,
) -> ConsoleControls:
    """Build a "done in the console" control and wire its callbacks. With ``actor`` (the
    sandbox only: ``sandbox_actor=true``) a second button lets the simulated console actor do
    the step, so a whole procedure can be walked through in JupyterLab on the sandbox."""
    import ipywidgets as w

    text = w.HTML(f"<pre style='white-space:pre-wrap'>{html.escape(instructions)}</pre>")
    typed = _text_box("type done when it is done", "Status:")
    done = _button("Done in the console", button_style="warning", disabled=True)
    status, show = _status("Waiting for the console step.")
    typed.add_class("runbook-console-typed")
    done.add_class("runbook-console-done")
    status.add_class("runbook-console-status")
    box = _box([text, typed, done, status], console_text(gate, instructions), "runbook-console")
    controls = ConsoleControls(box, typed, done, status)

    def on_type(change: dict[str, Any]) -> None:
        done.disabled = change["new"].strip().lower() != "done"

    def on_done(_: Any) -> None:
        if done.disabled:
            return
        done.disabled = typed.disabled = True
        if not step.gates.approved(gate):
            try:
                step.gates.decide(Event.HUMAN_CLAIMED, gate, "interactive", typed.value.strip())
            except RunbookError as err:
                show(f"Not recorded: {err}")
                done.disabled = typed.disabled = False
                return
        verifier = verify or (lambda indicator: verify_console_step(step, gate, indicator, check))
        if not verifier(show):
            done.disabled = typed.disabled = False  # let the operator check and press again

    typed.observe(on_type, names="value")
    done.on_click(on_done)
    if actor is not None:
        simulate = _button("Sandbox: let the console actor do it")
        simulate.add_class("runbook-console-actor")

        def on_simulate(_: Any) -> None:
            simulate.disabled = done.disabled = typed.disabled = True
            show("The sandbox console actor is doing it ...")
            try:
                result = actor()
                step.gates.decide(
                    Event.HUMAN_CLAIMED,
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
            verifier = verify or (
                lambda indicator: verify_console_step(step, gate, indicator, check)
            )
            verifier(show)

        simulate.on_click(on_simulate)
        controls.box.children = (*controls.box.children, simulate)
    return controls


def console_step(
    step: GatedStep,
    gate: str,
    instructions: str,
    actor: Callable[[], dict[str, Any]] | None = None,
    check: ConsoleCheck | None = None,
) -> Any:
    """Show a console step's control (once: the widget, or its text where no widget renders),
    then halt the cell (GateNotApproved): the operator does it in the console, presses Done (the
    control verifies it), and re-runs the cell."""
    from IPython.display import display

    controls = build_console_step(step, gate, instructions, actor=actor, check=check)
    display(controls.box)  # type: ignore[no-untyped-call]
    reason = (
        "it is a console step: do it in the console, type done and press the button above, "
        "then re-run this cell"
    )
    raise step.gates.halt(gate, reason, instructions=instructions)
