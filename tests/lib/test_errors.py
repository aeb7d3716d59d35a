"""The error tree: ClientError mapping, request ids, hints, messages."""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

import runbook_lib
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


# --- the tree errors.py draws is the tree there is ---------------------------------------------

_DRAWN = re.compile(r"^(?P<lead>[ │├└─]*?)(?P<name>[A-Z]\w+)(?:\s+(?P<text>.*))?$")
_HOME = re.compile(r"^(?P<file>[\w/]+\.py): ")


def _drawing() -> dict[str, tuple[str | None, str]]:
    """class name -> (its parent in the drawing, the module the drawing says defines it)."""
    doc = errors.__doc__ or ""
    block = doc.split("::", 1)[1].split("\n\n")[1]  # the indented block after "::"
    drawn: dict[str, tuple[str | None, str]] = {}
    parents: list[str] = []
    for line in block.splitlines():
        found = _DRAWN.match(line)
        assert found, f"not a line of the drawing: {line!r}"
        depth = (len(found["lead"]) - 4) // 4
        parents[depth:] = [found["name"]]
        home = _HOME.match(found["text"] or "")
        module = home["file"].removesuffix(".py").replace("/", ".") if home else "errors"
        drawn[found["name"]] = (parents[depth - 1] if depth else None, f"runbook_lib.{module}")
    return drawn


def _defined_exceptions() -> dict[str, type[BaseException]]:
    """Every public exception class a module of runbook_lib defines, by name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(runbook_lib.__path__, "runbook_lib."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and not name.startswith("_")
            ):
                assert name not in found, f"two exception classes named {name}"
                found[name] = value
    return found


def test_every_error_the_runbook_defines_is_a_runbook_error_drawn_where_it_lives() -> None:
    defined = _defined_exceptions()
    drawn = _drawing()
    outside = sorted(n for n, cls in defined.items() if not issubclass(cls, RunbookError))
    assert outside == [], "exception classes outside the tree"
    assert set(defined) - set(drawn) == set(), "defined, not drawn"
    assert set(drawn) - set(defined) == set(), "drawn, not defined"
    for name, (parent, module) in drawn.items():
        cls = defined[name]
        assert cls.__module__ == module, f"{name} is defined in {cls.__module__}, drawn in {module}"
        base = cls.__bases__[0]
        if parent is None:
            assert base is Exception, f"{name} is a {base.__name__}, drawn as the root"
        else:
            assert base.__name__ == parent, f"{name} is a {base.__name__}, drawn under {parent}"


def test_the_drawing_reader_sees_a_wrong_parent_and_a_missing_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check above can fail: a class drawn under the wrong parent, and one not drawn."""
    doc = errors.__doc__ or ""
    moved = doc.replace("    │   └── AmbiguousDeviceError", "    ├── AmbiguousDeviceError")
    assert moved != doc
    monkeypatch.setattr(errors, "__doc__", moved)
    assert _drawing()["AmbiguousDeviceError"][0] == "RunbookError"
    monkeypatch.setattr(errors, "__doc__", doc.replace("    ├── GateNotApproved", "    ├── Gate"))
    assert "GateNotApproved" not in _drawing()
