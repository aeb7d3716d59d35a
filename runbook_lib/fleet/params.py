"""A fleet audit's parameters (``runbook fleet audit -f FLEET.yml``), defined once in
:data:`FLEET_SCHEMA` (the run schema's :class:`~runbook_lib.schema.Parameter`) and validated as
strictly as a run's: the same loader and limits (:func:`runbook_lib.params.load_file`), the
same generic checks (:func:`runbook_lib.params.check_values`), every problem at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import schema
from ..errors import ParameterError
from ..params import ACCOUNT_RE, check_common, check_values, plain_dict
from ..schema import Parameter
from ..terminal import quote
from .rules import DEFAULT_MAX_DEVICE_AGE_DAYS

#: an organizational unit (ou-ROOT-OU) or the organization's root (r-ROOT), as Organizations
#: writes them (API reference, OrganizationalUnit.Id and Root.Id)
OU_RE = re.compile(r"ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32}", re.ASCII)
MAX_ACCOUNTS = 5000
"""Account ids an audit may name (a 64 KiB file holds about 4,000 quoted ids)."""

_OPTIONAL_STR = (str, type(None))
_LIST = (list, tuple)

FLEET_SCHEMA: tuple[Parameter, ...] = (
    Parameter(
        "management_profile",
        (str,),
        "",
        "AWS profile in the management account (policies/runbook-fleet-audit.json)",
        required=True,
    ),
    Parameter(
        "operator_key",
        (str,),
        "",
        "your SSH key (path), which signs the audit's seal",
        required=True,
    ),
    Parameter(
        "allowed_signers",
        (str,),
        "",
        "allowed_signers file naming you (namespace seal@root-mfa-runbook)",
        required=True,
    ),
    Parameter(
        "region",
        (str,),
        "us-east-1",
        "regional STS endpoint for AssumeRoot (IAM is read in us-east-1)",
    ),
    Parameter(
        "endpoint_url",
        _OPTIONAL_STR,
        None,
        "an AWS-compatible endpoint instead of AWS (e.g. the local sandbox)",
    ),
    Parameter(
        "accounts",
        _LIST,
        (),
        "only these member account ids (12 digits); empty: every account",
    ),
    Parameter(
        "organizational_units",
        _LIST,
        (),
        "only the accounts under these OUs or roots (ou-..., r-...), nested OUs included",
    ),
    Parameter(
        "workers",
        (int,),
        8,
        "accounts read at once (threads; AWS's latency, not the CPU, bounds a real audit)",
        bounds=(1, 64),
    ),
    Parameter(
        "processes",
        (int,),
        1,
        "processes the workers are spread over (the client's CPU bounds a local audit)",
        bounds=(1, 16),
    ),
    Parameter(
        "max_device_age_days",
        (int,),
        DEFAULT_MAX_DEVICE_AGE_DAYS,
        "an MFA device enabled longer ago than this is due for replacement",
        bounds=(1, 3650),
        unit="days",
    ),
    Parameter(
        "run_dir",
        _OPTIONAL_STR,
        None,
        "the runs directory the audit's record goes to (default: ./runs)",
    ),
)
FLEET_NAMES = tuple(p.name for p in FLEET_SCHEMA)
FLEET_NOTEBOOK = "fleet/audit.ipynb"
"""The fleet audit's notebook, in the notebooks directory."""
FLEET_NOTEBOOK_HEADER = (
    "# Parameters. papermill injects FLEET.yml's values in a cell below this one",
    "# (papermill notebooks/fleet/audit.ipynb out.ipynb -f FLEET.yml).",
)


def fleet_notebook_cell() -> str:
    """The fleet notebook's parameters cell: FLEET.yml's parameters, then ``resume_run``."""
    cell = schema.notebook_cell(FLEET_SCHEMA, FLEET_NOTEBOOK_HEADER)
    return cell + '\nresume_run = ""  # an interrupted audit\'s record to go on with, instead'


@dataclass(frozen=True)
class FleetParameters:
    """The validated parameters of one fleet audit (fields: :data:`FLEET_SCHEMA`'s)."""

    management_profile: str
    operator_key: str
    allowed_signers: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    accounts: tuple[str, ...] = field(default=())
    organizational_units: tuple[str, ...] = field(default=())
    workers: int = 8
    processes: int = 1
    max_device_age_days: int = DEFAULT_MAX_DEVICE_AGE_DAYS
    run_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    def scope_view(self) -> dict[str, Any]:
        """What decides which accounts are read and how they are judged: a resumed audit must
        keep it (workers, processes and where the record goes may change)."""
        return {
            k: v
            for k, v in self.to_dict().items()
            if k not in ("workers", "processes", "run_dir", "operator_key")
        }


def validate_fleet(raw: dict[str, Any]) -> FleetParameters:
    """Check ``raw`` and return the parameters, or raise ParameterError listing every problem."""
    problems: list[str] = []
    values = check_values(
        raw,
        FLEET_SCHEMA,
        problems,
        max_items={"accounts": MAX_ACCOUNTS, "organizational_units": 100},
    )
    check_common(values, problems)
    accounts = values.get("accounts")
    if isinstance(accounts, list | tuple):
        ids = []
        for item in accounts:
            text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
            if not isinstance(text, str) or not ACCOUNT_RE.fullmatch(text.strip()):
                problems.append(
                    f"accounts: {quote(item)} is not a 12-digit account id (quote ids that "
                    "start with 0)"
                )
                continue
            ids.append(text.strip())
        values["accounts"] = tuple(dict.fromkeys(ids))
    units = values.get("organizational_units")
    if isinstance(units, list | tuple):
        for item in units:
            if not isinstance(item, str) or not OU_RE.fullmatch(item.strip()):
                problems.append(
                    f"organizational_units: {quote(item)} is not an OU id (ou-xxxx-xxxxxxxx) "
                    "or a root id (r-xxxx)"
                )
        values["organizational_units"] = tuple(
            dict.fromkeys(str(i).strip() for i in units if isinstance(i, str))
        )
    if values.get("workers", 8) < values.get("processes", 1):
        problems.append(
            "workers must be at least processes (each process reads with workers/processes threads)"
        )
    if problems:
        raise ParameterError(problems)
    return FleetParameters(**values)


schema.check_dataclass(FleetParameters, FLEET_SCHEMA)
