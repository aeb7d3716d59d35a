"""Preflight warns when the root user still has long-term credentials (access keys, X.509
signing certificates): in notebook 00's output, on the terminal, as a ``warning.root-credentials``
event, in the report. A warning, not a halt: the run goes on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nbformat

from runbook_lib.record.verify import verify

from .helpers import Env, of_type, run_info


def _preflight_output(run_dir: Path) -> str:
    nb = nbformat.read(run_dir / "notebooks" / "00-preflight.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.source.strip() == "show(preflight.state(step))"]
    return "".join(str(o.get("text", "")) for o in cell.outputs)


def test_root_access_key_and_signing_certificate_are_warned_and_recorded(
    env_for: Callable[[str], Env],
) -> None:
    env = env_for("root-access-keys")  # standalone: the summary and the credential report
    code, run_dir = env.run(env.params("console", dry_run=True))
    assert code == 0, env.progress  # a warning, not a halt
    assert run_info(run_dir)["status"] == "dry-run"
    (warning,) = of_type(run_dir, "warning.root-credentials")
    data = warning["data"]
    assert warning["step"] == "00-preflight"
    assert data["access_keys"] is True and data["signing_certificates"] is True
    assert "GetAccountSummary AccountAccessKeysPresent=1" in data["seen_by"]["access keys"]
    assert any(
        s.startswith("credential report cert_1_active")
        for s in data["seen_by"]["signing certificates"]
    )
    assert "CIS AWS Foundations Benchmark" in data["text"] and "not a halt" in data["text"]
    assert any("root-user-best-practices" in ref for ref in data["references"])
    shown = _preflight_output(run_dir)
    assert shown.startswith("WARNING: The root user still has active access keys and active X.509")
    assert [line for line in env.progress if line.startswith("WARNING: The root user")]
    report = (run_dir / "report.html").read_text()
    assert "ROOT CREDENTIALS" in report and "X.509 signing certificates" in report
    # no key id, no certificate id, no secret in the record
    state = env.info.control.state(env.account)
    raw = (run_dir / "events.jsonl").read_text() + json.dumps(run_info(run_dir))
    for secret in [*state["access_keys"], *state["signing_certificates"]]:
        assert secret not in raw
    assert verify(run_dir).ok


def test_a_member_root_keys_are_seen_in_the_audit_session(env_for: Callable[[str], Env]) -> None:
    env = env_for("member")
    env.info.control.add_root_credentials(signing_certificate=False)
    code, run_dir = env.run(env.params("assume-root", dry_run=True))
    assert code == 0, env.progress
    (warning,) = of_type(run_dir, "warning.root-credentials")
    data = warning["data"]
    assert data["access_keys"] is True and data["signing_certificates"] is False
    assert "ListAccessKeys (AssumeRoot): 1 active" in data["seen_by"]["access keys"]
    assert "signing certificates" not in data["seen_by"]
    (before,) = [
        e for e in of_type(run_dir, "observation.snapshot") if e["data"]["which"] == "before"
    ]
    snapshot = before["data"]["snapshot"]
    assert snapshot["session_active_access_keys"] == 1
    assert snapshot["session_active_signing_certificates"] == 0
    assert snapshot["account_access_keys_present"] is True


def test_no_warning_when_the_root_user_has_no_long_term_credentials(
    env_for: Callable[[str], Env],
) -> None:
    env = env_for("standalone")
    code, run_dir = env.run(env.params("console", dry_run=True))
    assert code == 0
    assert not of_type(run_dir, "warning.root-credentials")
    assert "WARNING" not in _preflight_output(run_dir)
    assert "ROOT CREDENTIALS" not in (run_dir / "report.html").read_text()
    (before,) = [
        e for e in of_type(run_dir, "observation.snapshot") if e["data"]["which"] == "before"
    ]
    assert before["data"]["snapshot"]["account_access_keys_present"] is False
    assert before["data"]["snapshot"]["account_signing_certificates_present"] is False
