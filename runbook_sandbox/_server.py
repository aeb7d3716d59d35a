"""The sandbox's HTTP front: a WSGI layer in front of moto's server application.

Each request goes through, in order:

1. ``/_sandbox/...``: the control API (console actor, mailbox, clock, faults), JSON over HTTP.
   Routes registered with :func:`._registry.control_route` (roles, CloudTrail delivery, the
   task policy variant) are answered first; the rest go to ``_console.ControlApi``.
2. Authentication as AWS does it: the SigV4 credential's access key must belong to a known
   principal (an IAM user, the root user, an AssumeRoot or an AssumeRole session), a session's
   token must match and must not have expired on the sandbox clock.
3. Injected faults for the operation: latency first (before authentication: a round trip every
   call pays), throttling and AccessDenied once the caller is known.
4. Authorization: an AssumeRoot session may do only what its task policy allows; a role session
   what its role's IAM policies (and session policies) allow; a principal with policies only
   what they allow.
5. Scope: a service outside :data:`_protocol.SERVED_SERVICES` is answered with a NotImplemented
   error in the caller's protocol, never with moto's invented data (an EC2 instance list, an
   Identity Center instance that does not exist).
6. The sandbox's own handlers for root-user behaviour (``_iam``, ``_sts``, ``_cloudtrail``, ...);
   anything they do not take goes to moto, told which account is calling.
7. Management events are recorded for CloudTrail's LookupEvents. A moto failure (an HTML 500) is
   turned into an AWS-shaped error, so boto3 always gets a ``ClientError``.

Control routes answered here (JSON in, JSON out; see also ``_console``)::

  POST /_sandbox/roles                {name, account_id, policies?, trusted?, path?,
                                       max_session_duration?}   an IAM role to assume
  GET|POST /_sandbox/cloudtrail-delay {seconds, jitter?}        CloudTrail delivery delay
  GET|POST /_sandbox/lookup-window    {mode: clip | error}      StartTime older than 90 days
  GET|POST /_sandbox/cloudtrail-retention {max_events}          the newest events kept
  GET|POST /_sandbox/task-policy-variant {variant: allow | deny}
  POST /_sandbox/root-credentials     {account_id?, access_key?, signing_certificate?}
                                      long-term root credentials (_iam)
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import _authz, _cloudtrail, _protocol, _sigv4
from ._protocol import AwsError, AwsRequest, Response
from ._registry import (
    CONTROL_ROUTES,
    HANDLERS,
    POST_HANDLERS,
    ControlRoute,
    ControlRouteError,
    control_route,
)
from ._state import Principal, World

CONTROL_PREFIX = "/_sandbox/"


StartResponse = Callable[..., Any]


class SandboxApp:
    """The WSGI application: our layer, then moto."""

    def __init__(self, world: World, moto_app: Any, control: Any) -> None:
        self.world = world
        self.moto_app = moto_app
        self.control = control

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if path.startswith(CONTROL_PREFIX):
            route = CONTROL_ROUTES.get(
                (environ.get("REQUEST_METHOD", "GET"), path[len(CONTROL_PREFIX) :].strip("/"))
            )
            if route is not None:
                return self._send(start_response, self._control(route, body))
            return self._send(start_response, self.control.handle(environ, path, body))
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        req = AwsRequest(
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path,
            query_string=environ.get("QUERY_STRING", ""),
            headers=headers,
            body=body,
            source_ip=environ.get("REMOTE_ADDR", "127.0.0.1"),
            user_agent=headers.get("user-agent", ""),
        )
        response = self.handle(req, environ)
        return self._send(start_response, response)

    def _control(self, route: ControlRoute, body: bytes) -> Response:
        try:
            data = json.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ControlRouteError(400, "BadRequest", "the body must be a JSON object")
            return json_response(200, route(self.world, data))
        except ControlRouteError as err:
            return json_response(err.status, {"error": err.code, "message": err.message})
        except (ValueError, KeyError, TypeError) as err:
            return json_response(400, {"error": "BadRequest", "message": str(err)})

    @staticmethod
    def _send(start_response: StartResponse, response: Response) -> list[bytes]:
        reason = {
            200: "OK",
            204: "No Content",
            400: "Bad Request",
            403: "Forbidden",
            404: "Not Found",
            409: "Conflict",
            501: "Not Implemented",
        }
        original = next((v for k, v in response.headers if k.lower() == "content-length"), None)
        headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
        # a HEAD answer has no body but tells the length of the object (moto's header)
        length = original if original is not None and not response.body else len(response.body)
        headers.append(("Content-Length", str(length)))
        start_response(f"{response.status} {reason.get(response.status, 'Status')}", headers)
        return [response.body]

    # ------------------------------------------------------------------ pipeline
    def handle(self, req: AwsRequest, environ: dict[str, Any]) -> Response:
        key, region, service = _protocol.parse_auth(req.headers)
        if key is None:
            key, region, service = _presigned_scope(req)
        req.access_key_id = key
        req.region = region or "us-east-1"
        req.service = (service or "").lower()
        _protocol.parse_request(req)
        principal: Principal | None = None
        try:
            self.apply_latency(req)
            principal = self.authenticate(req)
            self.world.record_key_use(principal, req.service, req.region)
            self.apply_faults(req)
            _authz.authorize(self.world, req, principal)
            if req.service not in _protocol.SERVED_SERVICES:
                raise _out_of_scope(req)
            handler = HANDLERS.get((req.service, req.action))
            response = handler(self.world, req, principal) if handler else None
            if response is None:
                response = self.forward(req, environ, principal)
                post = POST_HANDLERS.get((req.service, req.action))
                if post is not None and response.status == 200:
                    response = post(self.world, req, principal, response)
        except AwsError as err:
            response = _protocol.render_error(req, err)
        if principal is not None:
            _cloudtrail.record_call(self.world, req, principal, response)
        return response

    def authenticate(self, req: AwsRequest) -> Principal:
        if req.access_key_id is None:
            raise AwsError(
                "MissingAuthenticationToken", "Request is missing Authentication Token", 403
            )
        with self.world.lock:
            principal = self.world.principals.get(req.access_key_id)
        if principal is None and req.access_key_id.startswith("ASIA"):
            # an STS session the sandbox no longer keeps: expired (its token says so) or unknown
            self._expired_session(req)
        elif principal is None:
            principal = _moto_user_principal(self.world, req.access_key_id)
        if principal is None:
            raise _unknown_key(req)
        _sigv4.check(req, principal)
        if principal.session_token is not None:
            token = req.header("x-amz-security-token")
            if token != principal.session_token:
                raise AwsError(
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                    403,
                )
            if principal.expires_at is not None and self.world.clock.now() >= principal.expires_at:
                self.world.drop_expired()
                raise _expired()
        return principal

    def _expired_session(self, req: AwsRequest) -> None:
        """An ``ASIA`` key the sandbox does not hold: ExpiredToken when the request's session
        token is one this world issued for that key and it has expired (the session was dropped
        at expiry, as AWS stops honouring it); otherwise the key is unknown."""
        token = req.header("x-amz-security-token") or ""
        expiry = self.world.token_expiry(req.access_key_id or "", token)
        if expiry is not None and self.world.clock.now() >= expiry:
            raise _expired()
        raise _unknown_key(req)

    def apply_latency(self, req: AwsRequest) -> None:
        """Latency rules: the longest matching one delays the call, before anything else (so a
        rule on ``*`` is a round trip every call pays, refused ones included)."""
        op = f"{req.service}:{req.action or req.method}"
        delay = 0.0
        with self.world.lock:
            for rule in self.world.faults:
                if rule.kind == "latency" and rule.matches(op):
                    delay = max(delay, rule.seconds)
                    rule.act()
        if delay:
            time.sleep(delay)

    def apply_faults(self, req: AwsRequest) -> None:
        """Throttle and deny rules, after authentication: the first that is due acts (every
        matching rule counts the call, so an ``every`` pattern stays regular)."""
        op = f"{req.service}:{req.action or req.method}"
        with self.world.lock:
            fired = None
            for rule in self.world.faults:
                if rule.kind == "latency" or not rule.matches(op):
                    continue
                if rule.due() and fired is None:
                    fired = rule
                    rule.act()
        if fired is None:
            return
        if fired.kind == "throttle":
            code = "ThrottlingException" if req.protocol == "json" else "Throttling"
            if req.service == "s3":
                code = "SlowDown"
            raise AwsError(code, "Rate exceeded", 503 if req.service == "s3" else 400)
        if fired.kind == "deny":
            raise _authz.access_denied(req, None, injected=True)

    def forward(self, req: AwsRequest, environ: dict[str, Any], principal: Principal) -> Response:
        """Hand the request to moto as the principal's account and capture its answer."""
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(req.body)
        env["CONTENT_LENGTH"] = str(len(req.body))
        env["HTTP_X_MOTO_ACCOUNT_ID"] = principal.account_id
        captured: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers
            return lambda data: None

        try:
            chunks = self.moto_app(env, start_response)
            body = b"".join(chunks)
            if hasattr(chunks, "close"):
                chunks.close()
        except Exception as exc:  # noqa: BLE001 - any moto crash must still answer in AWS's shape
            traceback.print_exc()
            raise _unsupported(req, f"moto failed: {type(exc).__name__}") from exc
        status = int(captured.get("status", 500))
        headers = list(captured.get("headers", []))
        ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
        if status >= 500 and ("html" in ctype or b"<html" in body[:200].lower() or not body):
            raise _unsupported(req, "moto answered an internal error")
        if status == 404 and "html" in ctype:
            raise _unsupported(req, "no such endpoint")
        code = _error_code(body) if status >= 400 else None
        if not any(k.lower() == "x-amzn-requestid" for k, _ in headers):
            headers.append(("x-amzn-RequestId", req.request_id))
        return Response(status, headers, body, code)


def _unknown_key(req: AwsRequest) -> AwsError:
    if req.service == "s3":
        return AwsError(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            403,
        )
    return AwsError(
        "InvalidClientTokenId", "The security token included in the request is invalid.", 403
    )


def _expired() -> AwsError:
    return AwsError("ExpiredToken", "The security token included in the request is expired", 403)


def _error_code(body: bytes) -> str | None:
    match = re.search(rb"<Code>([^<]+)</Code>", body) or re.search(
        rb'"__type"\s*:\s*"([^"]+)"', body
    )
    return match.group(1).decode().rsplit("#", 1)[-1] if match else "Error"


def _unsupported(req: AwsRequest, why: str) -> AwsError:
    op = f"{req.service or 'unknown'}:{req.action or req.method}"
    return AwsError(
        "NotImplemented",
        f"The root-mfa-runbook sandbox does not support {op} ({why}).",
        501,
        sender=False,
    )


def _out_of_scope(req: AwsRequest) -> AwsError:
    op = (
        f"{req.service or 'unknown'}:{req.action}"
        if req.action
        else (f"{req.service or 'unknown'} {req.method} {req.path}")
    )
    served = ", ".join(sorted(_protocol.SERVED_SERVICES))
    return AwsError(
        "NotImplemented",
        f"The root-mfa-runbook sandbox does not implement {op}: it serves only the services of "
        f"the root MFA procedure ({served}).",
        501,
        sender=False,
    )


def _presigned_scope(req: AwsRequest) -> tuple[str | None, str | None, str | None]:
    """(access key, region, service) of a SigV4 presigned URL's X-Amz-Credential; its session
    token, if any, is moved where the header-signed path looks for it."""
    query = dict(parse_qsl(req.query_string, keep_blank_values=True))
    token = query.get("X-Amz-Security-Token")
    if token and "x-amz-security-token" not in req.headers:
        req.headers["x-amz-security-token"] = token
    parts = query.get("X-Amz-Credential", "").split("/")
    if len(parts) < 5:
        return None, None, None
    return parts[0], parts[2], parts[3]


def _moto_user_principal(world: World, key: str) -> Principal | None:
    """A principal for an access key created through the IAM API (moto keeps those)."""
    from moto.iam.models import iam_backends

    for account_id, partitions in list(iam_backends.items()):
        backend = partitions["aws"]
        access_key = backend.access_keys.get(key)
        if access_key is None:
            continue
        user = backend.users.get(access_key.user_name or "")
        if user is None:
            return None
        principal = Principal(
            name=f"iam-user/{user.name}",
            kind="iam-user",
            account_id=account_id,
            arn=user.arn,
            access_key_id=key,
            secret_access_key=access_key.secret_access_key,
            user_name=user.name,
            user_id=user.id,
        )
        return world.add_principal(principal)
    return None


POLL_INTERVAL = 0.02
"""How often the serving loop checks for shutdown (seconds)."""


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return


class SandboxServer:
    """Serves a :class:`SandboxApp` on 127.0.0.1 in a background thread."""

    def __init__(self, app: SandboxApp, port: int = 0) -> None:
        self.app = app
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        # shutdown() waits for the serving loop's next poll: 20 ms, not socketserver's 0.5 s
        self._server.serve_forever(poll_interval=POLL_INTERVAL)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def json_response(status: int, payload: Any) -> Response:
    body = json.dumps(payload, default=str).encode()
    return Response(status, [("Content-Type", "application/json")], body)


@control_route("GET", "task-policy-variant")
def get_task_policy_variant(world: World, data: dict[str, Any]) -> dict[str, str]:
    return {"variant": world.task_policy_variant}


@control_route("POST", "task-policy-variant")
def set_task_policy_variant(world: World, data: dict[str, Any]) -> dict[str, str]:
    """Whether an IAMDeleteRootUserCredentials session may DeleteVirtualMFADevice (``_authz``):
    ``deny`` reads the task policy's NotResource statement literally, ``allow`` does not."""
    variant = str(data["variant"])
    if variant not in _authz.TASK_POLICY_VARIANTS:
        raise ControlRouteError(
            400, "BadRequest", f"variant must be one of {', '.join(_authz.TASK_POLICY_VARIANTS)}"
        )
    with world.lock:
        world.task_policy_variant = variant
    return {"variant": variant}
