"""Run parameters: one schema, validated strictly before anything runs.

Every problem is collected and reported at once (:class:`~runbook_lib.errors.ParameterError`):
unknown names, wrong types, values outside the allowed set, malformed account ids, serials,
tickets, regions and URLs. No parameter is a secret: credentials come from AWS profiles.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ParameterError

HUMAN_STEPS = {
    "device-removed-in-console": "the operator removed the MFA device in the console (step 01)",
    "signed-in-with-email-code": "root signed in with the e-mailed one-time code (step 03)",
    "new-device-bound-in-console": "the operator bound a new MFA device in the console (step 04)",
}
METHODS = ("console", "assume-root")
REBIND = ("bind", "skip")
MODES = ("interactive", "batch")

ACCOUNT_RE = re.compile(r"^\d{12}$")
TICKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{1,63}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
URL_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(:\d+)?(/.*)?$")
PROFILE_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")
HARDWARE_RE = re.compile(r"^[\w+=,.@-]{9,256}$")


@dataclass(frozen=True)
class RunParameters:
    """The validated parameters of one run. Defaults are the safe ones: dry-run on, batch mode
    with nothing approved, nothing confirmed."""

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
    approve: str | None = None
    confirm: tuple[str, ...] = field(default=())
    sandbox_actor: bool = False
    delete_virtual: bool = True
    verify_timeout: int = 120
    evidence_timeout: int = 600
    run_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["confirm"] = list(self.confirm)
        return data

    def plan_view(self) -> dict[str, Any]:
        """The parameters the plan digest covers: all but the approval itself, the operator's
        confirmations of console steps (statements of fact, verified through the API) and
        where the record is written."""
        data = self.to_dict()
        for key in ("approve", "confirm", "run_dir"):
            data.pop(key)
        return data


_TYPES: dict[str, tuple[type, ...]] = {
    "account_id": (str,),
    "change_ticket": (str,),
    "method": (str,),
    "device_serial": (str, type(None)),
    "rebind": (str,),
    "mode": (str,),
    "profile": (str, type(None)),
    "management_profile": (str, type(None)),
    "region": (str,),
    "endpoint_url": (str, type(None)),
    "dry_run": (bool,),
    "approve": (str, type(None)),
    "confirm": (list, tuple),
    "sandbox_actor": (bool,),
    "delete_virtual": (bool,),
    "verify_timeout": (int,),
    "evidence_timeout": (int,),
    "run_dir": (str, type(None)),
}
PARAMETER_NAMES = tuple(f.name for f in fields(RunParameters))
REQUIRED = ("account_id", "change_ticket")
HELP = {
    "account_id": "12-digit id of the account whose root MFA device is removed",
    "change_ticket": "the change ticket approving this work (e.g. CHG-1234)",
    "method": "console (any account) or assume-root (member accounts with centralised root access)",
    "device_serial": "serial/ARN of the device to remove; required when root has several",
    "rebind": "bind a new device in the console afterwards, or skip (recorded, with AWS's warning)",
    "mode": "interactive (JupyterLab confirmations) or batch (approvals from parameters)",
    "profile": "AWS profile for the target account (read-only policy: policies/)",
    "management_profile": "AWS profile in the management account (assume-root; optional for "
    "console, to check centralised root access)",
    "region": "regional STS endpoint for AssumeRoot; IAM and sign-in events are read in us-east-1",
    "endpoint_url": "an AWS-compatible endpoint instead of AWS (e.g. the local sandbox)",
    "dry_run": "true: look and plan, change nothing",
    "approve": "the plan digest printed by `runbook plan` (batch mode)",
    "confirm": "console steps the operator confirms they did (batch mode): "
    + ", ".join(HUMAN_STEPS),
    "sandbox_actor": "sandbox only: a simulated console actor performs the human steps",
    "delete_virtual": "assume-root: also delete the virtual device object after deactivating",
    "verify_timeout": "seconds to wait for IAM to show a change",
    "evidence_timeout": "seconds to wait for CloudTrail to show an event",
    "run_dir": "the run record directory (set by `runbook run`)",
}


def _check_serial(serial: str, account_id: str | None) -> str | None:
    match = re.match(r"^arn:aws:iam::(\d{12}):(mfa/[\w+=,.@-]+|u2f/[\w+=,.@/-]+)$", serial)
    if match:
        if account_id and match.group(1) != account_id:
            return (
                f"device_serial {serial!r} belongs to account {match.group(1)}, not "
                f"account_id {account_id}"
            )
        return None
    if serial.startswith("arn:"):
        return (
            f"device_serial {serial!r} is not an MFA device ARN "
            "(arn:aws:iam::ACCOUNT:mfa/NAME or arn:aws:iam::ACCOUNT:u2f/...)"
        )
    if not HARDWARE_RE.match(serial):
        return f"device_serial {serial!r} is neither an MFA device ARN nor a hardware serial"
    return None


def validate(raw: dict[str, Any]) -> RunParameters:
    """Check ``raw`` and return the parameters, or raise ParameterError listing every problem."""
    problems: list[str] = []
    unknown = sorted(set(raw) - set(PARAMETER_NAMES))
    for name in unknown:
        problems.append(f"unknown parameter {name!r} (known: {', '.join(PARAMETER_NAMES)})")
    values: dict[str, Any] = {}
    for name in PARAMETER_NAMES:
        if name not in raw:
            continue
        value = raw[name]
        allowed = _TYPES[name]
        if name == "account_id" and isinstance(value, int) and not isinstance(value, bool):
            # -p account_id=123456789012 arrives as a YAML integer; a leading zero would be lost
            if len(str(value)) == 12:
                value = str(value)
            else:
                problems.append(
                    f"account_id {value} is not 12 digits; quote it (e.g. "
                    "account_id='012345678901') so a leading zero is kept"
                )
                continue
        if isinstance(value, bool) and bool not in allowed:
            problems.append(f"{name} must be {_type_names(allowed)}, got a boolean")
            continue
        if not isinstance(value, allowed):
            problems.append(
                f"{name} must be {_type_names(allowed)}, got {type(value).__name__} {value!r}"
            )
            continue
        if isinstance(value, str) and name != "change_ticket":
            value = value.strip()
        if value == "" and type(None) in allowed:
            value = None
        values[name] = value
    for name in REQUIRED:
        if not values.get(name):
            problems.append(f"{name} is required: {HELP[name]}")
    account = values.get("account_id")
    if isinstance(account, str) and account and not ACCOUNT_RE.match(account):
        problems.append(f"account_id {account!r} must be 12 digits")
        account = None
    ticket = values.get("change_ticket")
    if isinstance(ticket, str) and ticket and not TICKET_RE.match(ticket):
        problems.append(
            f"change_ticket {ticket!r} must be 2-64 characters: letters, digits, and . _ : / # -"
        )
    for name, choices in (("method", METHODS), ("rebind", REBIND), ("mode", MODES)):
        if name in values and values[name] not in choices:
            problems.append(f"{name} {values[name]!r} must be one of: {', '.join(choices)}")
    serial = values.get("device_serial")
    if serial:
        problem = _check_serial(serial, account)
        if problem:
            problems.append(problem)
    region = values.get("region")
    if region is not None and not REGION_RE.match(region):
        problems.append(f"region {region!r} is not an AWS region name (e.g. us-east-1)")
    url = values.get("endpoint_url")
    if url and not URL_RE.match(url):
        problems.append(f"endpoint_url {url!r} must be an http(s) URL")
    for name in ("profile", "management_profile"):
        if values.get(name) and not PROFILE_RE.match(values[name]):
            problems.append(f"{name} {values[name]!r} is not a valid profile name")
    approve = values.get("approve")
    if approve and not DIGEST_RE.match(approve):
        problems.append("approve must be the 64-character plan digest printed by `runbook plan`")
    confirm = values.get("confirm")
    if isinstance(confirm, list | tuple):
        for item in confirm:
            if not isinstance(item, str):
                problems.append(f"confirm items must be console step names, got {item!r}")
                continue
            if item not in HUMAN_STEPS:
                problems.append(
                    f"confirm {item!r} is not a console step; known: " + ", ".join(HUMAN_STEPS)
                )
        values["confirm"] = tuple(dict.fromkeys(str(i) for i in confirm))
    for name, low, high in (("verify_timeout", 1, 3600), ("evidence_timeout", 0, 3600)):
        if name in values and not low <= values[name] <= high:
            problems.append(f"{name} must be between {low} and {high} seconds")
    if values.get("method") == "assume-root" and not values.get("management_profile"):
        problems.append(
            "method assume-root needs management_profile (credentials in the "
            "management account allowed to call sts:AssumeRoot)"
        )
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


def load_file(path: Path) -> dict[str, Any]:
    """A YAML parameters file (a mapping)."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ParameterError([f"parameters file {path} does not exist"]) from err
    except yaml.YAMLError as err:
        raise ParameterError([f"parameters file {path} is not valid YAML: {err}"]) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError([f"parameters file {path} must be a mapping of name: value"])
    return data


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``-p name=value`` pairs; values are read as YAML scalars (true, 120, [a, b])."""
    out: dict[str, Any] = {}
    problems = []
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            problems.append(f"-p {item!r} must look like name=value")
            continue
        try:
            out[name.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            out[name.strip()] = text
    if problems:
        raise ParameterError(problems)
    return out
