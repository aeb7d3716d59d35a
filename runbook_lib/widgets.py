"""Interactive confirmations (ipywidgets) for ``mode=interactive``.

Each control shows what will happen, enables its Confirm button only once the operator has
typed the expected text (the account id), and writes the decision into the run record from the
button's callback: who (caller ARN, OS user, host), what they typed, and when. Cancel records a
decision to stop. Without a frontend (papermill, nbval) the same call shows its text, and the
gate simply stays unconfirmed: the next action halts.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .step import Step


def _facts_html(facts: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
        f"<td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in facts.items()
    )
    return f"<table>{rows}</table>"


def _text_fallback(title: str, facts: dict[str, Any], expected: str, gate: str) -> str:
    lines = [f"GATE {gate}: {title}"]
    lines += [f"  {k}: {v}" for k, v in facts.items()]
    lines.append(f"  To confirm, type {expected!r} in the box and press Confirm.")
    return "\n".join(lines)


def confirmation(step: Step, gate: str, title: str, facts: dict[str, Any], expected: str) -> Any:
    """An approval control; returns the widget (displayed by the notebook cell)."""
    import ipywidgets as w

    from .step import now_iso

    header = w.HTML(f"<h4>{html.escape(title)}</h4>{_facts_html(facts)}")
    typed = w.Text(placeholder=f"type {expected} to confirm", description="Confirm:")
    confirm = w.Button(description="Confirm", button_style="danger", disabled=True)
    cancel = w.Button(description="Cancel", button_style="")
    status = w.Label(value="Not confirmed: nothing after this gate will act.")

    def on_type(change: dict[str, Any]) -> None:
        confirm.disabled = change["new"].strip() != expected

    def on_confirm(_: Any) -> None:
        if typed.value.strip() != expected:
            return
        step.log(
            "gate.approved",
            gate=gate,
            mode="interactive",
            who=step.operator(),
            typed=typed.value.strip(),
            facts=facts,
            at=now_iso(),
        )
        confirm.disabled = cancel.disabled = typed.disabled = True
        status.value = f"Confirmed at {now_iso()}. Run the next cell."

    def on_cancel(_: Any) -> None:
        step.log(
            "gate.denied",
            gate=gate,
            mode="interactive",
            who=step.operator(),
            typed=typed.value.strip(),
            facts=facts,
            at=now_iso(),
        )
        confirm.disabled = cancel.disabled = typed.disabled = True
        status.value = "Cancelled: the decision to stop is recorded. Nothing was changed."

    typed.observe(on_type, names="value")
    confirm.on_click(on_confirm)
    cancel.on_click(on_cancel)
    # the same facts as text: what papermill, nbval and a plain console show
    print(_text_fallback(title, facts, expected, gate))
    return w.VBox([header, typed, w.HBox([confirm, cancel]), status])


def console_step(step: Step, gate: str, instructions: str) -> Any:
    """A "done in the console" control for a human step."""
    import ipywidgets as w

    from .step import now_iso

    text = w.HTML(f"<pre>{html.escape(instructions)}</pre>")
    typed = w.Text(placeholder="type done when it is done", description="Status:")
    done = w.Button(description="Done in the console", button_style="warning", disabled=True)
    status = w.Label(value="Waiting for the console step.")

    def on_type(change: dict[str, Any]) -> None:
        done.disabled = change["new"].strip().lower() != "done"

    def on_done(_: Any) -> None:
        step.log(
            "human.confirmed",
            gate=gate,
            mode="interactive",
            who=step.operator(),
            typed=typed.value.strip(),
            at=now_iso(),
        )
        done.disabled = typed.disabled = True
        status.value = "Confirmed. Run the next cell: it verifies through the AWS API."

    typed.observe(on_type, names="value")
    done.on_click(on_done)
    print(
        f"CONSOLE STEP {gate}:\n{instructions}\n  When it is done, type done and press the button."
    )
    return w.VBox([text, typed, done, status])
