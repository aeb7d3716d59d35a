"""The error tree: ClientError mapping, request ids, hints, messages."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from runbook_lib import errors
from runbook_lib.errors import (
    AccessDeniedError,
    AwsActionError,
    RunbookError,
    SessionExpiredError,
    ThrottledError,
    from_client_error,
)


def client_error(code: str | None, message: str = "msg", request_id: str | None = "req-123") -> Any:
    response: dict[str, Any] = {}
    if code is not None:
        response["Error"] = {"Code": code, "Message": message}
    if request_id is not None:
        response["ResponseMetadata"] = {"RequestId": request_id, "HTTPStatusCode": 400}
    return ClientError(response, "SomeOperation")


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("AccessDenied", AccessDeniedError),
        ("AccessDeniedException", AccessDeniedError),
        ("UnauthorizedOperation", AccessDeniedError),
        ("Throttling", ThrottledError),
        ("ThrottlingException", ThrottledError),
        ("TooManyRequestsException", ThrottledError),
        ("SlowDown", ThrottledError),
        ("RequestLimitExceeded", ThrottledError),
        ("ExpiredToken", SessionExpiredError),
        ("ExpiredTokenException", SessionExpiredError),
        ("RequestExpired", SessionExpiredError),
    ],
)
def test_codes_map_to_subclasses_keeping_the_request_id(code: str, cls: type) -> None:
    err = from_client_error(client_error(code, "the message"), "DeactivateMFADevice", "iam:X")
    assert type(err) is cls
    assert isinstance(err, AwsActionError) and isinstance(err, RunbookError)
    assert err.code == code
    assert err.operation == "DeactivateMFADevice"
    assert err.request_id == "req-123"
    assert err.aws_message == "the message"
    assert err.hint
    text = str(err)
    assert text.startswith(f"DeactivateMFADevice failed: {code}: the message (request id req-123)")
    assert err.hint in text


def test_access_denied_hint_names_the_permission() -> None:
    err = from_client_error(
        client_error("AccessDenied"), "ListVirtualMFADevices", "iam:ListVirtualMFADevices"
    )
    assert err.hint == "Grant iam:ListVirtualMFADevices to the caller (see `runbook policies`)"
    bare = from_client_error(client_error("AccessDenied"), "ListVirtualMFADevices")
    assert bare.hint == "The caller lacks a permission for this call"


def test_throttled_and_expired_hints_say_what_to_do() -> None:
    throttled = from_client_error(client_error("Throttling"), "LookupEvents")
    assert "throttling" in (throttled.hint or "") and "re-run" in (throttled.hint or "")
    expired = from_client_error(client_error("ExpiredToken"), "ListMFADevices")
    assert "expired" in (expired.hint or "") and "aws sso login" in (expired.hint or "")


def test_other_codes_stay_generic() -> None:
    err = from_client_error(client_error("NoSuchEntity"), "GetUser", "iam:GetUser")
    assert type(err) is AwsActionError
    assert err.hint is None
    assert str(err) == "GetUser failed: NoSuchEntity: msg (request id req-123)"


def test_missing_error_fields_are_tolerated() -> None:
    err = from_client_error(client_error(None, request_id=None), "GetUser")
    assert err.code == "Unknown"
    assert err.request_id is None
    assert "(request id unknown)" in str(err)


def test_parameter_error_lists_every_problem() -> None:
    err = errors.ParameterError(["a is wrong", "b is missing"])
    assert err.problems == ["a is wrong", "b is missing"]
    assert str(err).startswith("2 parameter problem(s); nothing was run:")
    assert "  - a is wrong\n  - b is missing" in str(err)


def test_other_runbook_errors() -> None:
    ambiguous = errors.AmbiguousDeviceError(["s1", "s2"])
    assert isinstance(ambiguous, errors.PreconditionError)
    assert ambiguous.serials == ["s1", "s2"] and "device_serial" in str(ambiguous)
    gate = errors.GateNotApproved("remove", "the operator said no")
    assert gate.gate == "remove" and "Nothing after it was run" in str(gate)
    timeout = errors.VerificationTimeout("the thing", 12.4, last={"x": 1}, check="Look.")
    assert timeout.last == {"x": 1}
    assert str(timeout) == "Timed out after 12 s waiting for the thing. Look."
    assert issubclass(errors.MethodNotAvailableError, errors.PreconditionError)
    assert issubclass(errors.AccountMismatchError, errors.PreconditionError)
    assert set(errors.__all__) >= {"from_client_error", "AccessDeniedError", "RunbookError"}
