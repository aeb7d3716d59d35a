"""aws.session's CredentialSlot (one thread's clients reused across AssumeRoot sessions) and
the RUNBOOK_MAX_ATTEMPTS / RUNBOOK_RETRY_MODE settings, against the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from runbook_lib.aws.privileged import AUDIT, assume_root
from runbook_lib.aws.session import AwsContext, CredentialSlot, max_attempts, retry_mode
from runbook_lib.errors import ParameterError
from runbook_sandbox import SandboxInfo
from tests.lib.helpers import make_context


def test_one_slot_serves_one_session_after_another_and_is_blank_after_each(
    sandbox_factory: Callable[[str], SandboxInfo],
) -> None:
    info = sandbox_factory("fleet-3")
    management = make_context(info, "org-admin")
    members = sorted(
        a["Id"]
        for a in management.client("organizations").list_accounts()["Accounts"]
        if a["Id"] != "111111111111"
    )
    slot = CredentialSlot(management)
    clients = set()
    for account in members:
        with assume_root(management, account, AUDIT, 60, slot=slot) as root:
            iam = root.client("iam")
            clients.add(id(iam))
            devices = iam.list_mfa_devices()["MFADevices"]
            truth = {d["serial"] for d in info.control.state(account)["devices"]}
            assert {d["SerialNumber"] for d in devices} == truth
    assert len(clients) == 1  # the same client, signing with each session in turn
    with pytest.raises((NoCredentialsError, ClientError)):
        slot.load("", "", "").client("iam").list_mfa_devices()


def test_retry_settings_come_from_the_environment_and_bad_values_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RUNBOOK_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("RUNBOOK_RETRY_MODE", raising=False)
    assert (max_attempts(), retry_mode()) == (8, "adaptive")
    monkeypatch.setenv("RUNBOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RUNBOOK_RETRY_MODE", "standard")
    ctx = AwsContext.from_profile(
        None, "us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    assert ctx.config().retries == {"mode": "standard", "total_max_attempts": 3}
    for name, value in (("RUNBOOK_MAX_ATTEMPTS", "0"), ("RUNBOOK_MAX_ATTEMPTS", "many")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ParameterError, match="whole number from 1 to 20"):
            max_attempts()
    monkeypatch.setenv("RUNBOOK_RETRY_MODE", "legacy-ish")
    with pytest.raises(ParameterError, match="adaptive, standard"):
        retry_mode()
