"""What several step modules share: showing a result, audit sessions, snapshots, the actor."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..aws.privileged import AUDIT, RootSession, assume_root
from ..aws.state import RootMfaSnapshot, collect_snapshot, judge
from .vocabulary import Event

if TYPE_CHECKING:
    from .context import Step

#: the first wait between CloudTrail lookups (they back off to 30 s); events take from under a
#: second to minutes to show, and the lookups are paced at AWS's 2 requests/s anyway
EVIDENCE_POLL = 0.5


def show(value: Any) -> None:
    """Print a step's result as readable YAML (what papermill records as text output)."""
    import yaml

    print(yaml.safe_dump(_plain(value), sort_keys=False, allow_unicode=True, width=100).rstrip())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)  # a StrEnum member as its plain text
    if isinstance(value, int | float | bool) or value is None:
        return value
    return repr(value) if not hasattr(value, "children") else value


def snapshot_dict(snap: RootMfaSnapshot, changed_after: str | None = None) -> dict[str, Any]:
    verdict = judge(snap, changed_after)
    return {"snapshot": snap.to_dict(), "judgement": verdict.__dict__}


def session_recorder(step: Step, purpose: str) -> Any:
    """A callback that writes every AssumeRoot session to the record the moment it exists,
    before it is used for anything (a crash after an action still leaves its key on record)."""

    def record(info: Any) -> None:
        step.log(Event.SESSION_ASSUMED, **{**info.to_dict(), "purpose": purpose})

    return record


def audit_allowed(step: Step) -> bool:
    """An IAMAuditRootUserCredentials session is possible: a member account with centralised
    root access, and management credentials."""
    account = step.facts.account
    return bool(account and account.kind == "member" and account.centralised and step.management)


@contextlib.contextmanager
def audit_session(
    step: Step, purpose: str = "read every MFA device"
) -> Iterator[RootSession | None]:
    """An audit AssumeRoot session when the account allows one, else None."""
    if not audit_allowed(step):
        yield None
        return
    assert step.management is not None
    with assume_root(
        step.management,
        step.params.account_id,
        AUDIT,
        300,
        step.params.region,
        on_assume=session_recorder(step, purpose),
        purpose=purpose,
    ) as session:
        yield session


def audit_snapshot(
    step: Step, with_report: bool = True, root_credentials: bool = False
) -> RootMfaSnapshot:
    """Every signal; with an audit AssumeRoot session when the account allows one (and then,
    with ``root_credentials``, the root user's access keys and signing certificates too)."""
    with audit_session(step) as session:
        return collect_snapshot(
            step.target,
            step.params.account_id,
            session,
            with_report=with_report,
            root_credentials=root_credentials,
        )


def record_snapshot(
    step: Step, which: str, snap: RootMfaSnapshot, changed_after: str | None = None
) -> dict[str, Any]:
    """Record a snapshot: the event (what later steps read) and a copy in snapshots/."""
    data = snapshot_dict(snap, changed_after)
    step.log(Event.OBSERVATION_SNAPSHOT, which=which, **data)
    step.write_evidence(f"snapshots/{which}.json", snap.to_dict())
    return data


def since(step: Step, event_type: str) -> dt.datetime:
    """Search CloudTrail from a minute before ``event_type`` (or the run's start)."""
    facts = step.facts
    at = facts.when(event_type) or facts.created_at
    return at - dt.timedelta(minutes=1)


def console_actor(step: Step) -> Any:
    """The simulated console actor (only ever called with ``sandbox_actor``), loaded through
    the plug-in point; it refuses any endpoint that is not the sandbox, which this reports as
    a parameter problem."""
    from ..errors import ParameterError
    from ..plugins import load

    actor = load("console-actor", "sandbox_actor=true")
    try:
        return actor(step.params.endpoint_url, step.params.profile)
    except ValueError as err:
        raise ParameterError([str(err)]) from err


def dry_run_missing(facts: Any, step: str) -> list[str]:
    """A dry run's steps 01-04 only record their skip: what is missing of it."""
    return [] if facts.first(Event.STEP_SKIPPED, step) else ["the dry-run skip is not recorded"]
