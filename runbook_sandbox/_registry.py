"""What the sandbox's handlers register, and where the server looks them up.

The handler modules (``_iam``, ``_sts``, ``_cloudtrail``, ``_s3lock``) decorate their functions
with :func:`handles` (answer an AWS action, or return None to defer to moto), :func:`after_moto`
(rewrite moto's answer) and :func:`control_route` (``METHOD /_sandbox/NAME``); ``_server``
dispatches through the tables. Both sides import this module, never each other: the server
records calls for CloudTrail (``_cloudtrail.record_call``), and CloudTrail's handlers register
here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._protocol import AwsRequest, Response
from ._state import Principal, World

__all__ = [
    "CONTROL_ROUTES",
    "HANDLERS",
    "POST_HANDLERS",
    "ControlRoute",
    "ControlRouteError",
    "Handler",
    "PostHandler",
    "after_moto",
    "control_route",
    "handles",
]

Handler = Callable[[World, AwsRequest, Principal], Response | None]
HANDLERS: dict[tuple[str, str], Handler] = {}
PostHandler = Callable[[World, AwsRequest, Principal, Response], Response]
POST_HANDLERS: dict[tuple[str, str], PostHandler] = {}
ControlRoute = Callable[[World, dict[str, Any]], Any]
CONTROL_ROUTES: dict[tuple[str, str], ControlRoute] = {}


class ControlRouteError(Exception):
    """A control route refused its input (answered as ``{"error", "message"}``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def control_route(method: str, name: str) -> Callable[[ControlRoute], ControlRoute]:
    """Register ``METHOD /_sandbox/NAME``; the function gets the world and the JSON body."""

    def register(fn: ControlRoute) -> ControlRoute:
        CONTROL_ROUTES[(method, name)] = fn
        return fn

    return register


def handles(service: str, *actions: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``service`` actions; it may return None to defer to moto."""

    def register(fn: Handler) -> Handler:
        for action in actions:
            HANDLERS[(service, action)] = fn
        return fn

    return register


def after_moto(service: str, *actions: str) -> Callable[[PostHandler], PostHandler]:
    """Register a rewrite of moto's successful answer (e.g. to add the root user's state)."""

    def register(fn: PostHandler) -> PostHandler:
        for action in actions:
            POST_HANDLERS[(service, action)] = fn
        return fn

    return register
