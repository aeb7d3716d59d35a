"""Helpers for the run record tests: a realistic sealed run and line-level file surgery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runbook_lib.record.chain import entry_hash
from runbook_lib.record.layout import EVENTS_FILE, LEDGER_FILE
from runbook_lib.record.run import RunRecord

# Fakes shaped like the real thing (the AWS documentation's example key, a made-up token).
FAKE_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
FAKE_SESSION_TOKEN = (
    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDfAkEtOkEnFoRtEsTs0nLy"
    "AiBfAkEfAkEfAkE+fAkE/fAkEfAkEfAkEfAkEfAkEfAkEfAkEfAkEfAkEfAkE0123456789=="
)
FAKE_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": ["account_id = '123456789012'\n"],
            "outputs": [],
            "execution_count": 1,
        }
    ],
    "metadata": {"kernelspec": {"name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def make_run(runs_dir: Path, run_id: str = "20261126T051500Z-3f9a") -> RunRecord:
    """A run with steps, an approval, an action, evidence, a snapshot and a notebook file."""
    rec = RunRecord.create(
        runs_dir,
        {
            "parameters": {
                "account_id": "123456789012",
                "method": "assume-root",
                "change_ticket": "CHG-1042",
            },
            "operator": "alice@example.com",
        },
        run_id=run_id,
    )
    rec.append("step.started", "preflight")
    rec.update_run(steps={"preflight": {"status": "running", "started_at": "t1"}})
    rec.append("gate.approved", "remove", who="alice@example.com", what="remove root MFA")
    rec.append("action.remove_mfa", "remove", request_id="5b5c0f4e-2a51-4c54-8f1c-9d2f0d7b1c3a")
    rec.append("evidence.cloudtrail", "verify", event_id="e-1", summary="DeactivateMFADevice")
    rec.write_json("snapshots/before.json", {"mfa_devices": ["arn:aws:iam::123456789012:mfa/x"]})
    rec.write_text("notebooks/01-remove.ipynb", json.dumps(NOTEBOOK, indent=1))
    rec.update_run(steps={"preflight": {"status": "done", "ended_at": "t2"}})
    return rec


def lines(path: Path) -> list[bytes]:
    """The file's lines, each with its newline (a torn last line has none)."""
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, new: list[bytes]) -> None:
    path.write_bytes(b"".join(new))


def events_path(rec: RunRecord) -> Path:
    return rec.path / EVENTS_FILE


def ledger_path(rec: RunRecord) -> Path:
    return rec.runs_dir / LEDGER_FILE


def rehash(entry: dict[str, Any]) -> dict[str, Any]:
    entry = {k: v for k, v in entry.items() if k != "hash"}
    entry["hash"] = entry_hash(entry)
    return entry


def dump(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()
