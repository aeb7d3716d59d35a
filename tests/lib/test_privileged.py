"""AssumeRoot sessions: no secret shown, checked parameters, expiry, denial."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from runbook_lib.aws import actions, privileged, state
from runbook_lib.aws.privileged import RootSession
from runbook_lib.aws.session import AwsContext, call
from runbook_lib.errors import AccessDeniedError, ParameterError, SessionExpiredError
from runbook_sandbox import SandboxInfo

from .helpers import MANAGEMENT_ID, ContextFactory, assert_not_leaked, raw_events, root_state


def secrets_of(root: RootSession) -> tuple[str, str, str]:
    creds = root.aws.session.get_credentials().get_frozen_credentials()
    return creds.access_key, creds.secret_key, creds.token


def no_sts(ctx: AwsContext, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        pytest.fail("an STS client was built: a call was about to be made")

    monkeypatch.setattr(ctx, "sts_regional", refuse)


# ----------------------------------------------------------------- no secret shown
def test_repr_never_shows_the_credentials(member: SandboxInfo, aws_for: ContextFactory) -> None:
    mgmt = aws_for(member, "org-admin")
    fresh = RootSession(mgmt, member.target_account_id, privileged.AUDIT, 300, None)
    assert "key=(none)" in repr(fresh)
    with privileged.assume_root(mgmt, member.target_account_id, privileged.AUDIT) as root:
        key, secret, token = secrets_of(root)
        assert key.startswith("ASIA") and root.access_key_id == key
        texts = {
            "repr": repr(root),
            "str": str(root),
            "format": f"{root!r} {root}",
            "context repr": repr(root.aws),
            "vars": repr({k: v for k, v in vars(root).items() if k != "_context"}),
        }
        for label, text in texts.items():
            assert_not_leaked(text, secret, f"secret access key in {label}")
            assert_not_leaked(text, token, f"session token in {label}")
        for label in ("repr", "str", "format"):
            assert_not_leaked(texts[label], key, f"full access key id in {label}")
        assert f"key=...{key[-4:]}" in repr(root)
        assert "IAMAuditRootUserCredentials" in repr(root)
        assert member.target_account_id in repr(root)
        assert root.expires_at is not None
    assert root._context is None, "close() forgets the credentials"


# ----------------------------------------------------------------- parameters checked first
@pytest.mark.parametrize("duration", [901, 3600, 0, -1])
def test_bad_duration_is_refused_before_any_call(
    duration: int, member: SandboxInfo, aws_for: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgmt = aws_for(member, "org-admin")
    no_sts(mgmt, monkeypatch)
    with pytest.raises(ParameterError) as exc:
        RootSession(mgmt, member.target_account_id, privileged.DELETE, duration, None)
    assert str(duration) in exc.value.problems[0]
    with pytest.raises(ParameterError):
        with privileged.assume_root(mgmt, member.target_account_id, privileged.AUDIT, duration):
            pytest.fail("the session must not start")
    with pytest.raises(ParameterError):
        actions.remove_root_mfa_device(
            mgmt, member.target_account_id, None, dry_run=False, duration=duration
        )
    assert raw_events(member, "org-admin", "AssumeRoot") == []


@pytest.mark.parametrize(
    "policy",
    [
        "arn:aws:iam::aws:policy/AdministratorAccess",
        "arn:aws:iam::aws:policy/root-task/IAMDeleteEverything",
        "IAMAuditRootUserCredentials",
        "",
    ],
)
def test_non_root_task_policy_is_refused_before_any_call(
    policy: str, member: SandboxInfo, aws_for: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgmt = aws_for(member, "org-admin")
    no_sts(mgmt, monkeypatch)
    with pytest.raises(ParameterError) as exc:
        with privileged.assume_root(mgmt, member.target_account_id, policy):
            pytest.fail("the session must not start")
    assert repr(policy) in exc.value.problems[0]
    assert raw_events(member, "org-admin", "AssumeRoot") == []


def test_longest_duration_is_accepted(member: SandboxInfo, aws_for: ContextFactory) -> None:
    with privileged.assume_root(
        aws_for(member, "org-admin"), member.target_account_id, privileged.AUDIT, 900
    ) as root:
        assert root.duration == 900
        assert state.read_session_devices(root)


# ----------------------------------------------------------------- expiry
def list_devices_raw(aws: AwsContext) -> list[str]:
    """A callback that lets botocore's ClientError through (no runbook wrapping)."""
    devices = aws.client("iam").list_mfa_devices()["MFADevices"]
    return [d["SerialNumber"] for d in devices]


def list_devices_wrapped(aws: AwsContext) -> list[str]:
    """A callback that turns ClientError into the runbook's errors (SessionExpiredError)."""
    devices = call(aws.client("iam"), "list_mfa_devices", "iam:ListMFADevices")["MFADevices"]
    return [d["SerialNumber"] for d in devices]


CALLBACKS = {"raw": list_devices_raw, "wrapped": list_devices_wrapped}


@pytest.mark.parametrize("flavour", list(CALLBACKS))
def test_expired_session_is_reassumed_exactly_once(
    flavour: str, member: SandboxInfo, aws_for: ContextFactory
) -> None:
    fn = CALLBACKS[flavour]
    root = RootSession(
        aws_for(member, "org-admin"), member.target_account_id, privileged.AUDIT, 60, None
    )
    root.assume()
    first_key, first_request = root.access_key_id, root.assume_request_id
    expected = fn(root.aws)
    member.control.advance_clock(61)
    calls: list[str] = []

    def counted(aws: AwsContext) -> list[str]:
        calls.append(aws.session.get_credentials().get_frozen_credentials().access_key)
        return fn(aws)

    assert root.run(counted) == expected
    assert root.reassumed == 1
    assert len(calls) == 2 and calls[0] == first_key and calls[1] != first_key
    assert root.access_key_id == calls[1]
    assert root.assume_request_id and root.assume_request_id != first_request
    assert len(raw_events(member, "org-admin", "AssumeRoot")) == 2


@pytest.mark.parametrize(
    ("flavour", "error"), [("raw", ClientError), ("wrapped", SessionExpiredError)]
)
def test_second_expiry_inside_the_retried_call_propagates(
    flavour: str, error: type[Exception], member: SandboxInfo, aws_for: ContextFactory
) -> None:
    fn = CALLBACKS[flavour]
    root = RootSession(
        aws_for(member, "org-admin"), member.target_account_id, privileged.AUDIT, 60, None
    )
    calls = 0

    def expire_then_list(aws: AwsContext) -> list[str]:
        nonlocal calls
        calls += 1
        member.control.advance_clock(61)
        return fn(aws)

    with pytest.raises(error) as exc:
        root.run(expire_then_list)
    if isinstance(exc.value, ClientError):
        assert exc.value.response["Error"]["Code"] == "ExpiredToken"
    assert calls == 2
    assert root.reassumed == 1
    assert len(raw_events(member, "org-admin", "AssumeRoot")) == 2


def test_other_errors_are_not_retried(member: SandboxInfo, aws_for: ContextFactory) -> None:
    root = RootSession(
        aws_for(member, "org-admin"), member.target_account_id, privileged.AUDIT, 60, None
    )
    with pytest.raises(ClientError) as exc:
        root.run(lambda aws: aws.client("iam").list_users())  # not in the Audit task policy
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    assert root.reassumed == 0
    assert len(raw_events(member, "org-admin", "AssumeRoot")) == 1


# ----------------------------------------------------------------- denial
def test_assume_root_denied_names_sts_assume_root(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRoot",
                "Resource": "*",
                "Condition": {"StringEquals": {"sts:TaskPolicyArn": privileged.AUDIT}},
            }
        ],
    }
    member.add_principal("audit-only", MANAGEMENT_ID, [policy])
    mgmt = aws_for(member, "audit-only")
    before = root_state(member)
    with privileged.assume_root(mgmt, member.target_account_id, privileged.AUDIT) as root:
        assert state.read_session_devices(root)  # the allowed task works
    with pytest.raises(AccessDeniedError) as exc:
        with privileged.assume_root(mgmt, member.target_account_id, privileged.DELETE):
            pytest.fail("the session must not start")
    err = exc.value
    assert err.operation == "AssumeRoot"
    assert err.code == "AccessDenied"
    assert err.request_id
    assert err.hint is not None and "sts:AssumeRoot" in err.hint
    assert "sts:AssumeRoot" in str(err)
    with pytest.raises(AccessDeniedError):
        actions.remove_root_mfa_device(
            mgmt, member.target_account_id, before["devices"][0]["serial"], dry_run=False
        )
    assert root_state(member) == before
