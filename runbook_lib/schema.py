"""The run parameters, defined once: every other definition is derived from :data:`SCHEMA`.

Each :class:`Parameter` says its name, the types a value may have, its default (or that it is
required), the values it allows (choices, a range), one line of help for the operator, the
longer comment of ``parameters/production-template.yml``, and what covers it: the plan digest
(``digest``), ``runbook resume -p`` (``resumable``), the check that a notebook runs with its
run's values (``compared``), the notebooks' ``parameters`` cell (``notebook``) and the YAML
templates (``template``).

Derived from it: :class:`runbook_lib.params.RunParameters` is checked against it when
``params`` is imported (:func:`check_dataclass`: a field added, removed, reordered, retyped or
with another default fails the import), ``params``' types, help, required names and ranges,
``RunParameters.plan_view``, ``procedure.context.RESUMABLE_CHANGES``, the parameter list of
``runbook run/plan/resume/lab --help`` (:func:`help_epilog`), the notebooks' parameters cell
(:func:`notebook_cell`) and the YAML templates' comments (:func:`template_text`).
``python -m runbook_lib.generate --write`` (``make notebooks``) rewrites the notebooks and the
templates from it; ``tests/runbook/test_schema_drift.py`` fails when a copy drifted.

This module imports nothing of the runbook: it is the bottom of the import graph.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import RunbookError

HUMAN_STEPS = {
    "device-removed-in-console": "the operator removed the MFA device in the console (step 01)",
    "signed-in-with-email-code": "root signed in with the e-mailed one-time code (step 03)",
    "new-device-bound-in-console": "the operator bound a new MFA device in the console (step 04)",
}
METHODS = ("console", "assume-root")
REBIND = ("bind", "skip")
MODES = ("interactive", "batch")

NOTEBOOK_HEADER = (
    "# Parameters. papermill and `runbook run` inject the run's values in a cell below this one.",
    "# The defaults are the safe ones: dry run, batch mode, nothing approved, nothing confirmed.",
)
"""The first lines of every notebook's parameters cell."""
NOTEBOOK_TAG = "parameters"
"""papermill's tag of the cell it injects values after."""
LINE_WIDTH = 100
"""The widest line of a generated cell or template (ruff's line-length)."""


@dataclass(frozen=True)
class Parameter:
    """One run parameter."""

    name: str
    types: tuple[type, ...]
    """What a value may be (``type(None)``: may be empty)."""
    default: Any
    """The dataclass default; for a required parameter, the parameters cell's placeholder."""
    help: str
    """One line for the operator (notebook cell, ``--help``, "is required" messages)."""
    required: bool = False
    choices: tuple[str, ...] = ()
    """The values allowed (for a list: the values its items may take)."""
    bounds: tuple[int, int] | None = None
    """The smallest and largest value of an integer."""
    unit: str = ""
    doc: str = ""
    """The production template's comment above the parameter (lines as written); ``help``
    when empty."""
    digest: bool = True
    """The plan digest covers it (``RunParameters.plan_view``): changing it needs a new plan."""
    resumable: bool = False
    """``runbook resume -p`` may change it."""
    compared: bool = True
    """A notebook given another value than its run recorded is refused."""
    notebook: bool = True
    """A name in the notebooks' parameters cell."""
    template: bool = True
    """Documented in the YAML templates (``parameters/*.yml``)."""

    @property
    def annotation(self) -> str:
        """The dataclass field's annotation this parameter implies."""
        if self.types == (list, tuple):
            return "tuple[str, ...]"
        names = [t.__name__ for t in self.types if t is not type(None)]
        return " | ".join(names + (["None"] if type(None) in self.types else []))


def _p(name: str, types: tuple[type, ...], default: Any, help: str, **more: Any) -> Parameter:
    return Parameter(name, types, default, help, **more)


def _timeout(name: str, default: int, low: int, what: str, doc: str) -> Parameter:
    """How long to wait for something (at most an hour); resume may change it."""
    help = f"seconds to wait for {what}"
    bounds = (low, 3600)
    return Parameter(
        name, (int,), default, help, bounds=bounds, unit="seconds", doc=doc, resumable=True
    )


_OPTIONAL_STR = (str, type(None))
_LIST = (list, tuple)

SCHEMA: tuple[Parameter, ...] = (
    _p(
        "account_id",
        (str,),
        "",
        "12-digit id of the account whose root MFA device is removed",
        required=True,
        doc="The account whose root user's MFA device is removed (12 digits). The run stops "
        "before any change\nif the profile below reaches another account.",
    ),
    _p(
        "change_ticket",
        (str,),
        "",
        "the change ticket approving this work (e.g. CHG-1234)",
        required=True,
        doc="The approved change ticket (letters, digits, . _ : / # -). It is recorded and shown "
        "at every gate.",
    ),
    _p(
        "method",
        (str,),
        "console",
        "console (any account) or assume-root (members, centralised root access)",
        choices=METHODS,
        doc="console      any account: the root user's holder removes the device in the AWS "
        "console, the\n             runbook waits for confirmation and verifies through the "
        "API.\nassume-root  member accounts of an organization with centralised root access "
        "only: the runbook\n             removes the device through sts:AssumeRoot from the "
        "management account.",
    ),
    _p(
        "device_serial",
        _OPTIONAL_STR,
        None,
        "serial/ARN of the device to remove; required when root has several",
        doc="The device to remove (ARN of a virtual or FIDO device, or a hardware token's "
        "serial). Required\nwhen the root user has more than one; `runbook run` with dry_run "
        "shows the devices it can see.",
    ),
    _p(
        "rebind",
        (str,),
        "bind",
        "bind a new device in the console afterwards, or skip (recorded)",
        choices=REBIND,
        doc="bind: the root user binds a new device in the console right after (recommended).\n"
        "skip: the decision to leave the root user without this device is recorded with AWS's "
        "warning.",
    ),
    _p(
        "mode",
        (str,),
        "batch",
        "interactive (JupyterLab confirmations) or batch (signed approvals)",
        choices=MODES,
        doc="batch: approvals are files reviewers sign (`runbook plan` writes the plan file, "
        "they run\n       `runbook approve PLAN_FILE --key KEY`; you pass --approval FILE), "
        "console steps come\n       from confirm: [...] as you do them (see `runbook resume`).\n"
        "interactive: use `runbook lab` / JupyterLab; each gate is an on-screen confirmation.",
    ),
    _p(
        "profile",
        _OPTIONAL_STR,
        None,
        "AWS profile for the target account (policies/runbook-reader.json)",
        doc="AWS profile (SSO profiles work) reaching the target account with\n"
        "policies/runbook-reader.json.",
    ),
    _p(
        "management_profile",
        _OPTIONAL_STR,
        None,
        "AWS profile in the management account (assume-root)",
        doc="AWS profile reaching the management account with policies/runbook-assume-root.json "
        "(required\nfor assume-root; optional for console, where it lets the preflight check "
        "centralised root access).",
    ),
    _p(
        "region",
        (str,),
        "us-east-1",
        "regional STS endpoint for AssumeRoot (IAM is read in us-east-1)",
        doc="Regional STS endpoint for AssumeRoot (the global endpoint is refused). IAM and "
        "sign-in events\nare always read in us-east-1.",
    ),
    _p(
        "endpoint_url",
        _OPTIONAL_STR,
        None,
        "an AWS-compatible endpoint instead of AWS (e.g. the local sandbox)",
        doc="An AWS-compatible endpoint instead of AWS (the local sandbox). Leave empty for AWS.",
    ),
    _p(
        "dry_run",
        (bool,),
        True,
        "true: look and plan, change nothing",
        doc="true: look and plan only. Set to false (or -p dry_run=false) for the real change.",
    ),
    _p(
        "operator_key",
        _OPTIONAL_STR,
        None,
        "your SSH key: it signs the seals and names you as the operator",
        doc="Your SSH key: it signs every seal of the record and names you as the operator (a "
        "private key\nwith its .pub beside it, or a .pub whose private key is in ssh-agent; "
        "hardware keys work).",
    ),
    _p(
        "allowed_signers",
        _OPTIONAL_STR,
        None,
        "who may approve and seal (OpenSSH allowed_signers; sha256 in the plan)",
        doc="Who may approve and seal: an OpenSSH allowed_signers file (the format git uses for "
        "SSH\nsigning), from your security team. Its sha256 is in the plan the reviewers "
        "approve.",
    ),
    _p(
        "approvals_required",
        (int,),
        1,
        "how many people other than the operator must sign the plan",
        bounds=(1, 9),
        doc="The approval policy: how many distinct people other than you sign the plan file.",
    ),
    _p(
        "self_approval",
        (bool,),
        False,
        "true: the operator's own approval counts (marked SELF-APPROVED)",
        doc="The approval policy: whether your own signature may count (true marks the run "
        "SELF-APPROVED\neverywhere; leave false).",
    ),
    _p(
        "approvals",
        _LIST,
        (),
        "approval files the reviewers signed (runbook approve PLAN_FILE)",
        digest=False,
        resumable=True,
        doc="Approval files (one per reviewer); usually given as --approval FILE instead.",
    ),
    _p(
        "confirm",
        _LIST,
        (),
        "batch: the console steps the operator confirms having done",
        choices=tuple(HUMAN_STEPS),
        digest=False,
        resumable=True,
        doc="Console steps you confirm having done (batch mode), added as you go with `runbook "
        "resume`:\n  " + ", ".join(HUMAN_STEPS),
    ),
    _p(
        "sandbox_actor",
        (bool,),
        False,
        "sandbox only: a simulated console actor does the console steps",
        doc="Never set on a real account: the simulated console actor exists only in the sandbox.",
    ),
    _p(
        "delete_virtual",
        (bool,),
        True,
        "assume-root: also delete the virtual device object",
        doc="assume-root: also delete the virtual device object after deactivating it (as the "
        "console does).",
    ),
    _timeout(
        "verify_timeout",
        120,
        1,
        "IAM to show a change",
        "IAM is eventually consistent: how long to wait for it to show a change (seconds).",
    ),
    _timeout(
        "evidence_timeout",
        600,
        0,
        "CloudTrail to show an event",
        "CloudTrail takes minutes: how long to wait for it to show an event (seconds).",
    ),
    _p(
        "run_dir",
        _OPTIONAL_STR,
        None,
        "the run record (set by `runbook run`; 00 creates one when empty)",
        digest=False,
        compared=False,
        template=False,
    ),
)

BY_NAME = {p.name: p for p in SCHEMA}
NAMES = tuple(p.name for p in SCHEMA)
REQUIRED = tuple(p.name for p in SCHEMA if p.required)
RESUMABLE = frozenset(p.name for p in SCHEMA if p.resumable)
NOT_COMPARED = frozenset(p.name for p in SCHEMA if not p.compared)
DIGEST = tuple(p.name for p in SCHEMA if p.digest)
TEMPLATE = tuple(p.name for p in SCHEMA if p.template)
NOTEBOOK = tuple(p.name for p in SCHEMA if p.notebook)


class SchemaError(RunbookError):
    """The schema contradicts itself or the code derived from it (raised at import: a bug in the
    runbook, never the operator's input)."""


def _problems_of_schema() -> list[str]:
    problems = []
    for p in SCHEMA:
        if "\n" in p.help or not p.help.strip():
            problems.append(f"{p.name}: its help must be one non-empty line")
        for choice in p.choices if p.types != _LIST else ():
            if choice not in p.help:
                problems.append(f"{p.name}: its help does not name the choice {choice!r}")
        if p.default is not None and not isinstance(p.default, p.types):
            problems.append(f"{p.name}: default {p.default!r} is not one of its types")
        if p.choices and not p.required and p.types != _LIST and p.default not in p.choices:
            problems.append(f"{p.name}: default {p.default!r} is not one of its choices")
        if p.bounds and not p.bounds[0] <= p.default <= p.bounds[1]:
            problems.append(f"{p.name}: default {p.default!r} is outside {p.bounds}")
    if len(BY_NAME) != len(SCHEMA):
        problems.append("a parameter name is defined twice")
    return problems


def check_dataclass(cls: type, parameters: tuple[Parameter, ...] | None = None) -> None:
    """Raise :class:`SchemaError` unless the dataclass ``cls`` has exactly the fields of
    ``parameters`` (default: the run's :data:`SCHEMA`), in their order, with their annotations
    and defaults (required parameters: no default)."""
    parameters = SCHEMA if parameters is None else parameters
    by_name = {p.name: p for p in parameters}
    problems = []
    found = [f.name for f in dataclasses.fields(cls)]
    if found != list(by_name):
        problems.append(f"fields {found} differ from the schema's {list(by_name)}")
    for f in dataclasses.fields(cls):
        p = by_name.get(f.name)
        if p is None:
            continue
        if f.type != p.annotation:
            problems.append(f"{f.name}: annotated {f.type}, the schema says {p.annotation}")
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = f.default
        if p.required:
            if default is not dataclasses.MISSING:
                problems.append(f"{f.name}: required in the schema, has default {default!r}")
        elif (
            default is dataclasses.MISSING
            or default != p.default
            or type(default) is not (type(p.default))
        ):
            shown = "none" if default is dataclasses.MISSING else repr(default)
            problems.append(f"{f.name}: default {shown}, the schema says {p.default!r}")
    if problems:
        raise SchemaError(
            f"{cls.__qualname__} does not match runbook_lib/schema.py: " + "; ".join(problems)
        )


# ------------------------------------------------------------------ rendered texts
def python_literal(value: Any) -> str:
    """A default as the parameters cell writes it (a tuple as ``[]``: papermill passes lists)."""
    if isinstance(value, tuple | list):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def yaml_scalar(value: Any) -> str:
    """A value as one line of YAML that loads back to it: plain when that is unambiguous,
    JSON (a YAML subset) otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if not isinstance(value, str):
        raise TypeError(f"no parameter takes a {type(value).__name__} ({value!r})")
    text = value
    try:
        if text and "\n" not in text and text == text.strip() and yaml.safe_load(text) == text:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text, ensure_ascii=False)


def notebook_cell(
    parameters: tuple[Parameter, ...] | None = None, header: tuple[str, ...] = NOTEBOOK_HEADER
) -> str:
    """The source of every step notebook's parameters cell (no final newline, as Jupyter
    stores it); with ``parameters`` and ``header``, another notebook's (the fleet audit's)."""
    lines = list(header)
    for p in SCHEMA if parameters is None else parameters:
        if p.notebook:
            lines.append(f"{p.name} = {python_literal(p.default)}  # {p.help}")
    return "\n".join(lines)


def help_epilog() -> str:
    """The parameter list of ``runbook run/plan/resume/lab --help`` (for a raw formatter):
    every documented parameter, its default and allowed values, its help."""
    lines = ["parameters (in the YAML file of -f, or -p NAME=VALUE):"]
    for p in SCHEMA:
        if not p.template:
            continue
        head = f"{p.name} (required)" if p.required else f"{p.name} = {yaml_scalar(p.default)}"
        if p.bounds:
            head += f"  [{p.bounds[0]}-{p.bounds[1]}{' ' + p.unit if p.unit else ''}]"
        if p.choices:
            head += f"  [{' | '.join(p.choices)}]"
        lines += [f"  {head}", f"      {p.help}"]
    return "\n".join(lines)


TEMPLATES: dict[str, str] = {
    "production-template.yml": "doc",
    "sandbox.yml": "help",
}
"""The templates in ``parameters/`` and the comment each parameter gets: its ``doc`` (the
production template, for reading before a real change) or its one-line ``help``."""


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.split("\n")]


def template_header(text: str) -> str:
    """A template's own header: its first lines, up to the first that is not a comment."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def template_text(style: str, header: str, values: dict[str, Any]) -> str:
    """A template: its header, then each template parameter in schema order, its comment
    (``doc`` or ``help``: from the schema) above ``name: value``. ``values`` are the template's
    own (examples chosen by hand); a parameter it lacks gets the schema default."""
    if not header.strip():
        raise ValueError("a template needs a header comment")
    out = [header, ""]
    for p in SCHEMA:
        if not p.template:
            continue
        comment = (p.doc or p.help) if style == "doc" else p.help
        out.extend(_comment(comment))
        value = values.get(p.name, p.default)
        out.append(f"{p.name}: {yaml_scalar(value)}")
        out.append("")
    return "\n".join(out[:-1]) + "\n"


def check_lines(texts: Iterable[tuple[str, str]], width: int = LINE_WIDTH) -> list[str]:
    """Lines of generated ``(where, text)`` wider than ``width``."""
    return [
        f"{where} line {n}: {len(line)} characters (at most {width})"
        for where, text in texts
        for n, line in enumerate(text.split("\n"), 1)
        if len(line) > width
    ]


def _self_check(check: Callable[[], list[str]] = _problems_of_schema) -> None:
    problems = check() + check_lines([("the parameters cell", notebook_cell())])
    # a comment line is "# " and the text
    problems += check_lines([(f"{p.name}'s doc", p.doc or p.help) for p in SCHEMA], LINE_WIDTH - 2)
    if problems:
        raise SchemaError("runbook_lib/schema.py: " + "; ".join(problems))


_self_check()
