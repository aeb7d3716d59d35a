"""Contract: `runbook sandbox` starts every scenario, prints its start line, stops cleanly."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook_sandbox import SCENARIOS, SandboxInfo, sandbox_process

RUNBOOK = [sys.executable, "-m", "runbook_lib.cli"]
FIXED = [name for name in SCENARIOS if not name.startswith("fleet-N")]
ORG_SCENARIOS = {"member", "member-no-password", "management", "fleet-3"}


def test_list_has_one_line_per_scenario() -> None:
    out = subprocess.run(
        [*RUNBOOK, "sandbox", "--list"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [line.split()[0] for line in out] == list(SCENARIOS)
    assert all(len(line.split()) > 3 for line in out)


def test_unknown_scenario_is_usage_error_naming_the_choices() -> None:
    done = subprocess.run(
        [*RUNBOOK, "sandbox", "--scenario", "nope"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "unknown scenario 'nope'" in done.stderr and "standalone" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("name", ["fleet-0", "fleet-5001", "fleet-x"])
def test_fleet_size_is_bounded(name: str) -> None:
    done = subprocess.run(
        [*RUNBOOK, "sandbox", "--scenario", name], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "fleet-N" in done.stderr


@pytest.mark.parametrize("scenario", [*FIXED, "fleet-3"])
def test_every_scenario_starts_and_answers(scenario: str) -> None:
    with sandbox_process(scenario) as info:
        assert info.scenario == scenario and info.region == "us-east-1"
        assert info.endpoint.startswith("http://127.0.0.1:")
        admin = info.principals["admin"]
        assert set(admin) == {"account_id", "arn", "access_key_id", "secret_access_key"}
        assert admin["account_id"] == info.target_account_id
        who = info.client("sts").get_caller_identity()
        assert who["Arn"] == admin["arn"] and who["Account"] == info.target_account_id
        assert ("org-admin" in info.principals) == (scenario in ORG_SCENARIOS)
        if scenario in ORG_SCENARIOS:
            features = info.client("iam", "org-admin").list_organizations_features()
            assert sorted(features["EnabledFeatures"]) == [
                "RootCredentialsManagement",
                "RootSessions",
            ]
        state = info.control.state(info.target_account_id)
        expected_devices = {"no-mfa": 0, "member": 2}.get(scenario, 1)
        assert len(state["devices"]) == expected_devices
        assert state["has_password"] is (scenario != "member-no-password")


@pytest.mark.slow
def test_fleet_5000_has_all_member_accounts_and_mixed_roots() -> None:
    with sandbox_process("fleet-5000") as info:
        orgs = info.client("organizations", "org-admin")
        ids = [
            a["Id"]
            for page in orgs.get_paginator("list_accounts").paginate()
            for a in page["Accounts"]
        ]
        assert len(ids) == 5001
        members = [i for i in ids if i != info.principals["org-admin"]["account_id"]]
        kinds = {
            tuple(d["kind"] for d in info.control.state(acct)["devices"]) for acct in members[:10]
        }
        assert () in kinds and ("virtual",) in kinds and ("fido", "virtual") in kinds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def raw_sandbox() -> Iterator[subprocess.Popen[bytes]]:
    port = _free_port()
    proc = subprocess.Popen(
        [*RUNBOOK, "sandbox", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        _reap(proc)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child if it still runs, wait for it, close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stops_cleanly_on_signal(raw_sandbox: subprocess.Popen[bytes], signum: int) -> None:
    assert raw_sandbox.stdout is not None and raw_sandbox.stderr is not None
    ready, _, _ = select.select([raw_sandbox.stdout], [], [], 60)
    assert ready, "no start line"
    first = json.loads(raw_sandbox.stdout.readline())
    info = SandboxInfo.from_json(first)
    assert info.client("sts").get_caller_identity()["Account"] == "123456789012"
    raw_sandbox.send_signal(signum)
    assert raw_sandbox.wait(timeout=15) == 0
    assert b"sandbox stopped" in raw_sandbox.stderr.read()
    # the port is free again
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", int(info.endpoint.rsplit(":", 1)[1])))


def test_switches_can_be_chosen_for_the_whole_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """RUNBOOK_SANDBOX_SWITCHES picks the variants of undocumented behaviour for every world
    of a sandbox process (resets keep them): how a suite runs against another variant."""
    monkeypatch.setenv(
        "RUNBOOK_SANDBOX_SWITCHES", "root-mfa-window=each-lapse, summary-root-mfa-devices=none"
    )
    with sandbox_process("standalone") as info:
        assert info.control.switches()["root-mfa-window"] == "each-lapse"
        info.control.reset()
        switches = info.control.switches()
        assert switches["root-mfa-window"] == "each-lapse"
        assert switches["summary-root-mfa-devices"] == "none"
        assert switches["get-mfa-device-non-fido"] == "no-such-entity"  # the default


def test_the_module_form_exits_at_once_having_removed_its_profiles_file(tmp_path: Path) -> None:
    """``python -m runbook_sandbox`` ends with os._exit (no slow teardown): what it wrote is
    flushed or removed first."""
    profiles = tmp_path / "credentials"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbook_sandbox", "--profiles-file", str(profiles)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no start line"
        info = SandboxInfo.from_json(json.loads(proc.stdout.readline()))
        assert "sandbox_control_token" in profiles.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert proc.stderr.read().endswith(b"sandbox stopped\n")
        assert not profiles.exists()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", int(info.endpoint.rsplit(":", 1)[1])))
    finally:
        _reap(proc)


def test_work_given_to_sandbox_process_overlaps_its_start() -> None:
    """``while_starting`` runs once, after the child is spawned and before its start line is
    read (the demo imports the runner meanwhile)."""
    seen: list[str] = []

    def meanwhile() -> None:
        seen.append("called")

    with sandbox_process("standalone", while_starting=meanwhile) as info:
        assert seen == ["called"]
        assert info.client("sts").get_caller_identity()["Account"] == "123456789012"
    assert seen == ["called"]
