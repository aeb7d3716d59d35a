"""The control API hands out secret keys and one-time codes: no back door for local users.

Another unprivileged user on the machine can reach 127.0.0.1 like anyone; before this change
they could read the principals' secret keys (``/_sandbox/info``) and the mailbox's one-time
codes. Now every control call needs the token the sandbox prints on its start line (and writes
into its profiles file); AWS calls are unaffected (they are authenticated by SigV4).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from runbook_sandbox import ControlApiError, ControlClient, SandboxInfo, write_profiles
from runbook_sandbox._client import control_token_of
from runbook_sandbox.actor import ConsoleActor


def _raw(endpoint: str, path: str, token: str | None = None) -> int:
    request = urllib.request.Request(f"{endpoint}/_sandbox/{path}")
    if token is not None:
        request.add_header("X-Runbook-Sandbox-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as err:
        body = json.loads(err.read())
        assert body["error"] == "Forbidden" and "control token" in body["message"]
        assert "secret" not in json.dumps(body).lower()
        return int(err.code)


@pytest.mark.parametrize("path", ["info", "state/123456789012", "mailbox/123456789012"])
def test_control_calls_without_the_token_are_refused(standalone: SandboxInfo, path: str) -> None:
    assert _raw(standalone.endpoint, path) == 403
    assert _raw(standalone.endpoint, path, "wrong-token") == 403
    assert _raw(standalone.endpoint, path, standalone.control_token) == 200


def test_the_token_is_on_the_start_line_and_never_in_a_repr(standalone: SandboxInfo) -> None:
    assert len(standalone.control_token) >= 24
    assert standalone.control_token not in repr(standalone)
    assert standalone.control_token not in repr(standalone.control)
    with pytest.raises(ControlApiError) as err:
        ControlClient(standalone.endpoint).info()
    assert err.value.status == 403


def test_the_profiles_file_carries_the_token_for_the_console_actor(
    standalone: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    write_profiles(creds, standalone.principals, standalone.control_token)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    assert control_token_of("sandbox-admin") == standalone.control_token
    ConsoleActor(standalone.endpoint, "sandbox-admin").control.info()
    # boto3 still reads the profile (the extra key is ignored)
    import boto3

    sts = boto3.Session(profile_name="sandbox-admin").client(
        "sts", endpoint_url=standalone.endpoint, region_name="us-east-1"
    )
    assert sts.get_caller_identity()["Account"] == standalone.target_account_id
    # without the token in the profile the actor refuses with what to do
    write_profiles(tmp_path / "no-token", standalone.principals)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-token"))
    from runbook_sandbox.actor import ActorRefused

    with pytest.raises(ActorRefused, match="sandbox_control_token"):
        ConsoleActor(standalone.endpoint, "sandbox-admin")
