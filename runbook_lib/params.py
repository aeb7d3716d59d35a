"""Run parameters: the schema's (:mod:`runbook_lib.schema`), validated strictly before
anything runs.

Every problem is collected and reported at once (:class:`~runbook_lib.errors.ParameterError`):
unknown names, wrong types, values outside the allowed set, malformed account ids, serials,
tickets, regions and URLs. No parameter is a secret: credentials come from AWS profiles.

Input is bounded before it is looked at: a parameters file is at most :data:`MAX_FILE_BYTES`
(its size is checked before it is read, and no more than that is ever read); YAML anchors and
aliases are refused while the document is composed, before any value is built from them (so
an alias bomb costs nothing); collections nest at most :data:`MAX_DEPTH` deep; a string value
is at most :data:`MAX_STRING` characters (:data:`MAX_PATH` for ``run_dir``), a list at most
:data:`MAX_ITEMS` items. ``-p name=value`` overrides go through the same loader and limits.
Single-line values hold printable characters only (no newline, tab, ESC...); numbers and ids
are ASCII digits only. Messages quote values through :func:`runbook_lib.terminal.quote`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import schema
from .errors import ParameterError
from .schema import HUMAN_STEPS
from .terminal import clip, quote

# Every pattern is used with fullmatch (a "$" would match before a final newline) and
# re.ASCII (\d and \w would take full-width and Arabic-Indic digits, and letters of any script).
ACCOUNT_RE = re.compile(r"[0-9]{12}", re.ASCII)
TICKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#-]{1,63}", re.ASCII)
REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+", re.ASCII)
DIGEST_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
URL_RE = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]+)?(/[!-~]*)?", re.ASCII)
PROFILE_RE = re.compile(r"[A-Za-z0-9_.@+-]{1,128}", re.ASCII)
HARDWARE_RE = re.compile(r"[\w+=,.@-]{9,256}", re.ASCII)
SERIAL_ARN_RE = re.compile(r"arn:aws:iam::([0-9]{12}):(mfa/[\w+=,.@-]+|u2f/[\w+=,.@/-]+)", re.ASCII)

MAX_FILE_BYTES = 64 * 1024
"""A parameters file (and the text of one ``-p`` value) is at most this many bytes."""
MAX_STRING = 1024
"""Characters of any string value but ``run_dir``."""
MAX_PATH = 4096
"""Characters of ``run_dir`` (PATH_MAX)."""
MAX_ITEMS = 32
"""Items of a list value (``confirm`` names at most three steps)."""
MAX_DEPTH = 8
"""How deep YAML collections may nest (a parameters file needs two levels)."""
MAX_UNKNOWN = 10
"""Unknown parameter names reported one by one; the rest are counted."""
NO_ALIASES = "parameters files may not use YAML anchors or aliases (&, *): write each value out"


@dataclass(frozen=True)
class RunParameters:
    """The validated parameters of one run. Defaults are the safe ones: dry-run on, batch mode
    with nothing approved, nothing confirmed.

    The fields are :data:`runbook_lib.schema.SCHEMA`'s, written out for the type checker;
    importing this module fails (:class:`~runbook_lib.schema.SchemaError`) when they differ."""

    account_id: str
    change_ticket: str
    method: str = "console"
    device_serial: str | None = None
    rebind: str = "bind"
    mode: str = "batch"
    profile: str | None = None
    management_profile: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None
    dry_run: bool = True
    operator_key: str | None = None
    allowed_signers: str | None = None
    approvals_required: int = 1
    self_approval: bool = False
    approvals: tuple[str, ...] = field(default=())
    confirm: tuple[str, ...] = field(default=())
    sandbox_actor: bool = False
    delete_virtual: bool = True
    verify_timeout: int = 120
    evidence_timeout: int = 600
    run_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    def plan_view(self) -> dict[str, Any]:
        """The parameters the plan digest covers (``digest`` in the schema): all but the
        approvals themselves (they sign the digest), the operator's confirmations of console
        steps (statements of fact, verified through the API) and where the record is written."""
        return {k: v for k, v in self.to_dict().items() if schema.BY_NAME[k].digest}


def plain_dict(params: Any) -> dict[str, Any]:
    """A parameters dataclass as plain data (tuples as lists): run.json's, a fleet record's."""
    data = asdict(params)
    for name, value in data.items():
        if isinstance(value, tuple):
            data[name] = list(value)
    return data


schema.check_dataclass(RunParameters)
_TYPES: dict[str, tuple[type, ...]] = {p.name: p.types for p in schema.SCHEMA}
PARAMETER_NAMES = schema.NAMES
REQUIRED = schema.REQUIRED
HELP = {p.name: p.help for p in schema.SCHEMA}


def _check_serial(serial: str, account_id: str | None) -> str | None:
    match = SERIAL_ARN_RE.fullmatch(serial)
    if match:
        if account_id and match.group(1) != account_id:
            return (
                f"device_serial {quote(serial)} belongs to account {match.group(1)}, not "
                f"account_id {account_id}"
            )
        return None
    if serial.startswith("arn:"):
        return (
            f"device_serial {quote(serial)} is not an MFA device ARN "
            "(arn:aws:iam::ACCOUNT:mfa/NAME or arn:aws:iam::ACCOUNT:u2f/...)"
        )
    if not HARDWARE_RE.fullmatch(serial):
        return f"device_serial {quote(serial)} is neither an MFA device ARN nor a hardware serial"
    return None


def _string_problem(name: str, value: str) -> str | None:
    """Too long, or (but for ``run_dir``, a path) a character that is not printable: a
    newline, a tab, ESC, any other control or invisible character."""
    cap = MAX_PATH if name == "run_dir" else MAX_STRING
    if len(value) > cap:
        return f"{name} is {len(value)} characters long; at most {cap} are allowed"
    if name == "run_dir":
        return None
    for index, char in enumerate(value):
        if not char.isprintable():
            return (
                f"{name} {quote(value)} holds a control or invisible character "
                f"({quote(char)} at position {index}); it must be a single line of "
                "printable characters"
            )
    return None


def check_values(
    raw: dict[str, Any],
    parameters: Sequence[schema.Parameter],
    problems: list[str],
    max_items: dict[str, int] | None = None,
) -> dict[str, Any]:
    """What every parameters file is checked for, against ``parameters`` (a schema): unknown
    names, types, string length and printability, list sizes (``max_items`` per name, else
    :data:`MAX_ITEMS`), choices, integer ranges, required names. Appends each problem to
    ``problems`` and returns the values that passed (stripped; an empty optional string as
    None; an ``account_id`` given as a 12-digit YAML integer as its string)."""
    by_name = {p.name: p for p in parameters}
    names = tuple(by_name)
    unknown = sorted(set(raw) - set(names), key=quote)
    for name in unknown[:MAX_UNKNOWN]:
        problems.append(f"unknown parameter {quote(name)} (known: {', '.join(names)})")
    if len(unknown) > MAX_UNKNOWN:
        problems.append(f"... and {len(unknown) - MAX_UNKNOWN} more unknown parameters")
    values: dict[str, Any] = {}
    rejected: set[str] = set()  # reported already: not "required" as well
    for name in names:
        if name not in raw:
            continue
        value = raw[name]
        allowed = by_name[name].types
        if name == "account_id" and isinstance(value, int) and not isinstance(value, bool):
            # -p account_id=123456789012 arrives as a YAML integer; a leading zero would be lost
            if 0 <= value < 10**12 and len(str(value)) == 12:
                value = str(value)
            else:
                problems.append(
                    f"account_id {quote(value)} is not 12 digits; quote it (e.g. "
                    "account_id='012345678901') so a leading zero is kept"
                )
                rejected.add(name)
                continue
        if isinstance(value, bool) and bool not in allowed:
            problems.append(f"{name} must be {_type_names(allowed)}, got a boolean")
            rejected.add(name)
            continue
        if not isinstance(value, allowed):
            problems.append(
                f"{name} must be {_type_names(allowed)}, got {type(value).__name__} {quote(value)}"
            )
            rejected.add(name)
            continue
        if isinstance(value, str):
            problem = _string_problem(name, value)
            if problem:
                problems.append(problem)
                rejected.add(name)
                continue
            if name != "change_ticket":
                value = value.strip()
        cap = (max_items or {}).get(name, MAX_ITEMS)
        if isinstance(value, list | tuple) and len(value) > cap:
            problems.append(f"{name} has {len(value)} items; at most {cap} are allowed")
            rejected.add(name)
            continue
        if value == "" and type(None) in allowed:
            value = None
        values[name] = value
    for p in parameters:
        if p.required and not values.get(p.name) and p.name not in rejected:
            problems.append(f"{p.name} is required: {p.help}")
    for p in parameters:
        if p.choices and str in p.types and p.name in values and values[p.name] not in p.choices:
            problems.append(
                f"{p.name} {quote(values[p.name])} must be one of: {', '.join(p.choices)}"
            )
    for p in parameters:
        value = values.get(p.name)
        if p.bounds and isinstance(value, int) and not p.bounds[0] <= value <= p.bounds[1]:
            unit = f" {p.unit}" if p.unit else ""
            problems.append(f"{p.name} must be between {p.bounds[0]} and {p.bounds[1]}{unit}")
    return values


def check_common(values: dict[str, Any], problems: list[str]) -> None:
    """The checks of values a run and a fleet audit share: region, endpoint_url, profiles."""
    region = values.get("region")
    if region is not None and not REGION_RE.fullmatch(region):
        problems.append(f"region {quote(region)} is not an AWS region name (e.g. us-east-1)")
    url = values.get("endpoint_url")
    if url and not URL_RE.fullmatch(url):
        problems.append(f"endpoint_url {quote(url)} must be an http(s) URL")
    for name in ("profile", "management_profile"):
        if values.get(name) and not PROFILE_RE.fullmatch(values[name]):
            problems.append(f"{name} {quote(values[name])} is not a valid profile name")


def validate(raw: dict[str, Any]) -> RunParameters:
    """Check ``raw`` and return the parameters, or raise ParameterError listing every problem."""
    problems: list[str] = []
    values = check_values(raw, schema.SCHEMA, problems)
    account = values.get("account_id")
    if isinstance(account, str) and account and not ACCOUNT_RE.fullmatch(account):
        problems.append(f"account_id {quote(account)} must be 12 digits (0-9)")
        account = None
    ticket = values.get("change_ticket")
    if isinstance(ticket, str) and ticket and not TICKET_RE.fullmatch(ticket):
        problems.append(
            f"change_ticket {quote(ticket)} must be 2-64 characters: letters, digits, "
            "and . _ : / # -"
        )
    serial = values.get("device_serial")
    if serial:
        problem = _check_serial(serial, account)
        if problem:
            problems.append(problem)
    check_common(values, problems)
    approvals = values.get("approvals")
    if isinstance(approvals, list | tuple):
        if any(not isinstance(item, str) or not item.strip() for item in approvals):
            problems.append("approvals items must be paths of approval files (runbook approve)")
        else:
            values["approvals"] = tuple(dict.fromkeys(str(i).strip() for i in approvals))
    confirm = values.get("confirm")
    if isinstance(confirm, list | tuple):
        for item in confirm:
            if not isinstance(item, str):
                problems.append(f"confirm items must be console step names, got {quote(item)}")
                continue
            if item not in HUMAN_STEPS:
                problems.append(
                    f"confirm {quote(item)} is not a console step; known: " + ", ".join(HUMAN_STEPS)
                )
        values["confirm"] = tuple(dict.fromkeys(str(i) for i in confirm))
    if values.get("method") == "assume-root" and not values.get("management_profile"):
        problems.append(
            "method assume-root needs management_profile (credentials in the "
            "management account allowed to call sts:AssumeRoot)"
        )
    if values.get("sandbox_actor"):
        from .plugins import missing

        problem = missing("console-actor", "sandbox_actor=true")
        if problem:
            problems.append(problem)
    if problems:
        raise ParameterError(problems)
    return RunParameters(**values)


def _type_names(types: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        bool: "true/false",
        int: "an integer",
        list: "a list",
        tuple: "a list",
        type(None): "empty",
    }
    return " or ".join(dict.fromkeys(names[t] for t in types))


class _Refused(yaml.YAMLError):
    """A YAML document this loader will not compose; ``where`` is its line and column."""

    def __init__(self, reason: str, mark: yaml.Mark | None) -> None:
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        super().__init__(reason)
        self.reason = reason
        self.where = where


class _AliasRefused(_Refused):
    pass


class StrictLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (plain data only: no Python objects), composing no anchor, no alias
    and nothing nested deeper than :data:`MAX_DEPTH`.

    The refusal happens in the compose step, at the first ``&`` or ``*`` event, before any node
    is shared or built from one: an alias bomb is refused in the time it takes to read its first
    lines. (PyYAML offers no switch for this; overriding ``compose_node`` is the documented
    extension point of its Composer. The pure-Python loader is used, not the C one, so the
    override applies.)"""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasRefused(NO_ALIASES, event.start_mark)
        nested = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(f"values may nest at most {MAX_DEPTH} levels deep", event.start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1


def load_yaml(text: str) -> Any:
    """One YAML document through :class:`StrictLoader`. Raises yaml.YAMLError (``_Refused``
    for anchors, aliases, deep nesting) or ValueError (an integer too long to convert, a date
    that does not exist)."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_file(path: Path) -> dict[str, Any]:
    """A YAML parameters file (a mapping) of at most :data:`MAX_FILE_BYTES` bytes, UTF-8.

    The size is checked on the open file before reading, and at most one byte more than the
    cap is ever read (a file that grows, a pipe, /dev/zero)."""
    shown = f"parameters file {quote(str(path), limit=240)}"
    too_big = f"{shown} is larger than {MAX_FILE_BYTES} bytes (64 KiB), the most allowed"
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise ParameterError([f"{too_big}: it is {size} bytes"])
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as err:
        raise ParameterError([f"{shown} does not exist"]) from err
    except OSError as err:
        raise ParameterError([f"{shown} cannot be read: {err.strerror or err}"]) from err
    if len(data) > MAX_FILE_BYTES:
        raise ParameterError([too_big])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParameterError([f"{shown} is not UTF-8 text (byte {err.start})"]) from err
    try:
        loaded = load_yaml(text)
    except _Refused as err:
        raise ParameterError([f"{shown}, {err.where}: {err.reason}"]) from err
    except (yaml.YAMLError, ValueError) as err:
        raise ParameterError([f"{shown} is not valid YAML: {_yaml_problem(err)}"]) from err
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ParameterError([f"{shown} must be a mapping of name: value"])
    return loaded


def _yaml_problem(err: Exception) -> str:
    """The YAML parser's complaint on one line, with where it is (line, column)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if problem and mark is not None:
        return clip(f"{problem} (line {mark.line + 1}, column {mark.column + 1})")
    return clip(" ".join(str(err).split()))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``-p name=value`` pairs; values are read as YAML scalars (true, 120, [a, b]) by the
    parameters files' loader, under the same limits; text that is not YAML is taken as is."""
    out: dict[str, Any] = {}
    problems = []
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            problems.append(f"-p {quote(item)} must look like name=value")
            continue
        name = name.strip()
        if len(text) > MAX_FILE_BYTES:
            problems.append(
                f"-p {quote(name)}: the value is {len(text)} characters long; at most "
                f"{MAX_FILE_BYTES} are read"
            )
            continue
        try:
            out[name] = load_yaml(text) if text.strip() else None
        except _AliasRefused:
            problems.append(
                f"-p {quote(name)}: values may not use YAML anchors or aliases (&, *): "
                "write the value out"
            )
        except _Refused as err:
            problems.append(f"-p {quote(name)}: {err.reason}")
        except (yaml.YAMLError, ValueError):
            out[name] = text
    if problems:
        raise ParameterError(problems)
    return out
