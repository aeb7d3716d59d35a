"""Typed readers of a run's facts, from its hash-chained events (never from run.json).

run.json is a projection anyone with write access to the runs dir can edit; the event chain is
what :func:`runbook_lib.record.verify.verify` protects. So every fact a later step relies on (the
device preflight chose, the account it saw, the snapshots, the approvals, the privileged
sessions) is read here from the events, by type from :mod:`.vocabulary`, with the first record
of a fact winning: a fact is written once, and a re-run cell cannot replace it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..aws.state import RootMfaSnapshot
from .vocabulary import CONSOLE_GATES, Event, Gate


@dataclass(frozen=True)
class Decision:
    """One recorded decision or claim at a gate."""

    gate: str
    type: str
    who: dict[str, Any] | None
    typed: str | None
    at: str
    seq: int


@dataclass(frozen=True)
class AccountFacts:
    kind: str | None
    centralised: bool | None
    organization_id: str | None
    management_account_id: str | None
    methods: tuple[str, ...]


class RunFacts:
    """What the events of one run say. Built from a list of events (cheap: one pass)."""

    def __init__(self, events: Sequence[dict[str, Any]]) -> None:
        self.events = list(events)

    # -------------------------------------------------------------- generic
    def of(self, type: str, step: str | None = None) -> list[dict[str, Any]]:
        return [
            e for e in self.events if e["type"] == type and (step is None or e.get("step") == step)
        ]

    def first(self, type: str, step: str | None = None) -> dict[str, Any] | None:
        found = self.of(type, step)
        return found[0] if found else None

    def last(self, type: str, step: str | None = None) -> dict[str, Any] | None:
        found = self.of(type, step)
        return found[-1] if found else None

    def when(self, type: str) -> dt.datetime | None:
        event = self.first(type)
        return dt.datetime.fromisoformat(event["time"]) if event else None

    # -------------------------------------------------------------- the run
    @property
    def created(self) -> dict[str, Any]:
        """The info the run was created with (parameters, plan, operator, versions)."""
        event = self.first(Event.RUN_CREATED)
        if event is None:
            return {}
        return dict(event["data"].get("info") or {})

    @property
    def created_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.events[0]["time"])

    def parameters(self) -> dict[str, Any]:
        """The parameters in force now: those the run was created with, plus every change a
        resume recorded (only ever the resumable ones)."""
        params = dict(self.created.get("parameters") or {})
        for event in self.of(Event.RUN_RESUMED):
            params.update(event["data"].get("changed_parameters") or {})
        return params

    @property
    def operator(self) -> dict[str, Any]:
        operator = dict(self.created.get("operator") or {})
        identity = self.first(Event.OBSERVATION_IDENTITY)
        if identity:
            operator["caller_arn"] = identity["data"].get("arn")
        return operator

    # -------------------------------------------------------------- what preflight found
    @property
    def device(self) -> str | None:
        """The device preflight chose (the first decision: a re-run cannot change it)."""
        event = self.first(Event.DECISION_DEVICE)
        return event["data"].get("serial") if event else None

    @property
    def account(self) -> AccountFacts | None:
        event = self.first(Event.OBSERVATION_ACCOUNT)
        if event is None:
            return None
        d = event["data"]
        return AccountFacts(
            d.get("kind"),
            d.get("centralised"),
            d.get("organization_id"),
            d.get("management_account_id"),
            tuple(d.get("methods") or ()),
        )

    def snapshot(self, which: str) -> RootMfaSnapshot | None:
        """The snapshot recorded as ``which`` (before, after-removal, after), from its event:
        the file in snapshots/ is a copy for people, not what the steps read."""
        for event in self.of(Event.OBSERVATION_SNAPSHOT):
            if event["data"].get("which") == which:
                return RootMfaSnapshot.from_dict(event["data"]["snapshot"])
        return None

    # -------------------------------------------------------------- gates
    def decisions(self, gate: str | None = None) -> list[Decision]:
        kinds = {
            Event.GATE_APPROVED,
            Event.GATE_DENIED,
            Event.HUMAN_CLAIMED,
            Event.HUMAN_VERIFIED,
            Event.HUMAN_CONTRADICTED,
            Event.HUMAN_UNVERIFIABLE,
            Event.GATE_NOT_NEEDED,
        }
        out = []
        for e in self.events:
            d = e["data"]
            if e["type"] in kinds and (gate is None or d.get("gate") == gate):
                out.append(
                    Decision(
                        str(d.get("gate")),
                        e["type"],
                        d.get("who"),
                        d.get("typed"),
                        e["time"],
                        e["seq"],
                    )
                )
        return out

    def approvals(self, digest: str) -> dict[str, Any] | None:
        """The latest ``approval.policy`` for plan ``digest``: who approved it with which key,
        and whether that satisfies the plan's policy (the orchestrator checked the signatures
        against allowed_signers before appending it)."""
        for event in reversed(self.of(Event.APPROVAL_POLICY)):
            if event["data"].get("plan_digest") == digest:
                return dict(event["data"])
        return None

    def approved(self, gate: str) -> bool:
        """Approval gates: the last decision is an approval. Console steps: the last verdict
        after a claim is *verified* (or *unverifiable* from this account: then the next step's
        evidence decides); a claim alone, a contradiction or a denial is not enough."""
        state = False
        console = gate in CONSOLE_GATES
        for decision in self.decisions(gate):
            if decision.type == Event.GATE_DENIED:
                state = False
            elif decision.type == Event.GATE_NOT_NEEDED:
                state = True
            elif console:
                if decision.type == Event.HUMAN_CLAIMED:
                    state = False  # a new claim waits for its verdict
                elif decision.type in (Event.HUMAN_VERIFIED, Event.HUMAN_UNVERIFIABLE):
                    state = True
                elif decision.type == Event.HUMAN_CONTRADICTED:
                    state = False
            elif decision.type == Event.GATE_APPROVED:
                state = True
        return state

    def claimed(self, gate: str) -> bool:
        return any(d.type == Event.HUMAN_CLAIMED for d in self.decisions(gate))

    # -------------------------------------------------------------- privileged sessions
    def sessions(self, purpose: str | None = None) -> list[dict[str, Any]]:
        """Every AssumeRoot session the run used (access key id, request id, expiry, ...)."""
        return [
            dict(e["data"])
            for e in self.of(Event.SESSION_ASSUMED)
            if purpose is None or e["data"].get("purpose") == purpose
        ]

    def session_keys(self, purpose: str | None = None) -> list[str]:
        return [str(s["access_key_id"]) for s in self.sessions(purpose) if s.get("access_key_id")]


def gate_names(gates: Iterable[Any]) -> list[str]:
    return [str(getattr(g, "name", g)) for g in gates]


__all__ = ["AccountFacts", "Decision", "Gate", "RunFacts", "gate_names"]
