"""The control API under ``/_sandbox/``: the simulated console actor and the test knobs.

Real AWS has no such API; it stands in for the human steps of the procedure (a person in the AWS
console) and for what a test must steer (the clock, faults, the root mailbox). Each console action
records the CloudTrail events AWS records for it. Routes (JSON in, JSON out):

  GET  /_sandbox/info                          the start line (endpoint, scenario, principals)
  GET  /_sandbox/state/ACCOUNT                 the root user's true state (no IAM lag)
  POST /_sandbox/reset                         rebuild the scenario from scratch
  POST /_sandbox/clock        {advance_seconds}
  GET  /_sandbox/faults                        the fault rules, with the calls each saw and acted on
  POST /_sandbox/faults       {kind, operation, count?, seconds?, every?}   DELETE clears them
  GET  /_sandbox/stats                         what the sandbox holds: live STS sessions, events,
                                               accounts built
  POST /_sandbox/iam-lag      {seconds}
  POST /_sandbox/lookup-rate  {per_second}     0 turns LookupEvents throttling off
  POST /_sandbox/credential-report-time {seconds}   how long generating a report takes
  GET  /_sandbox/switches                      the undocumented-behaviour switches
  POST /_sandbox/switches     {name, value}    choose one variant
  POST /_sandbox/principals   {name, account_id, policies?}
  POST /_sandbox/root-credentials {account_id?, access_key?, signing_certificate?}  (_iam)
  GET  /_sandbox/mailbox/ACCOUNT               e-mails sent to the root address
  POST /_sandbox/console/sign-in               {account_id, mfa_serial? | email_code?}
  POST /_sandbox/console/sign-out              {session_id}
  POST /_sandbox/console/remove-mfa            {session_id, serial}
  POST /_sandbox/console/bind-virtual/start    {session_id, name}
  POST /_sandbox/console/bind-virtual/finish   {session_id, serial, code1, code2}
  POST /_sandbox/console/bind-security-key     {session_id, name}
  GET  /_sandbox/authenticator/SERIAL          the simulated phone app: two consecutive codes

Root MFA enforcement (IAM User Guide, "Use multi-factor authentication with your identities":
"All AWS account types (standalone, management, and members accounts) require MFA to be
configured for their root user. Users must register MFA within 35 days of their first sign-in
attempt to access the AWS Management Console if MFA is not already enabled"; "Multi-factor
authentication for AWS account root user": users "can postpone MFA registration for up to 35
days by skipping the prompt. After 35 days, enabling MFA becomes mandatory to proceed with
sign-in"). A sign-in without MFA answers ``mfa_prompt`` (register now or skip, and the
deadline); past the deadline it answers ``mfa_registration_required`` and its session may only
register a device. Whether the window restarts after root registers MFA and loses it again is
undocumented: switch ``root-mfa-window``. ``GET /_sandbox/state/ACCOUNT`` shows the deadline.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import secrets
import string
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pyotp

from . import _cloudtrail
from ._iam import consecutive_codes_valid, deactivate_root_device
from ._protocol import Response
from ._scenarios import add_iam_principal
from ._server import json_response
from ._state import (
    MAX_ROOT_MFA_DEVICES,
    SWITCHES,
    Account,
    ConsoleSession,
    FaultRule,
    MfaDevice,
    PendingSignIn,
    Principal,
    World,
    fido_serial,
    new_key_id,
    new_totp_seed,
)

EMAIL_CODE_TTL = dt.timedelta(minutes=10)
CONSOLE_URL = "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true"


class ControlError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ControlApi:
    """Routes ``/_sandbox/...`` requests; ``rebuild`` re-creates the scenario on reset."""

    def __init__(
        self,
        world: World,
        info: Callable[[], dict[str, Any]],
        rebuild: Callable[[], None],
        token: str = "",
    ) -> None:
        self.world = world
        self.info = info
        self.rebuild = rebuild
        self.token = token

    def handle(self, environ: dict[str, Any], path: str, body: bytes) -> Response:
        method = environ.get("REQUEST_METHOD", "GET")
        given = str(environ.get("HTTP_X_RUNBOOK_SANDBOX_TOKEN") or "")
        if not self.token or not hmac.compare_digest(given.encode(), self.token.encode()):
            # the control API hands out secret keys and one-time codes: only whoever started
            # the sandbox (its start line, its profiles file) may use it
            return json_response(
                403,
                {
                    "error": "Forbidden",
                    "message": "the sandbox control API needs the control token of the sandbox's "
                    "start line (header X-Runbook-Sandbox-Token)",
                },
            )
        parts = [unquote(p) for p in path[len("/_sandbox/") :].split("/") if p]
        try:
            data = json.loads(body) if body else {}
            if not isinstance(data, dict):
                raise ControlError(400, "BadRequest", "the body must be a JSON object")
            return json_response(200, self.route(method, parts, data))
        except ControlError as err:
            return json_response(err.status, {"error": err.code, "message": err.message})
        except (ValueError, KeyError, TypeError) as err:
            return json_response(400, {"error": "BadRequest", "message": str(err)})

    def route(self, method: str, parts: list[str], data: dict[str, Any]) -> Any:
        world = self.world
        head = parts[0] if parts else ""
        if head == "info" and method == "GET":
            return self.info()
        if head == "state" and len(parts) == 2:
            return root_state(world, self._account(parts[1]))
        if head == "reset" and method == "POST":
            self.rebuild()
            return self.info()
        if head == "clock" and method == "POST":
            with world.lock:
                now = world.clock.advance(float(data.get("advance_seconds", 0)))
            return {"now": now.isoformat()}
        if head == "clock":
            return {"now": world.clock.now().isoformat()}
        if head == "faults":
            return self.faults(method, data)
        if head == "stats" and method == "GET":
            with world.lock:
                return {
                    "sessions": world.drop_expired(),
                    "events": len(world.events),
                    "max_events": world.cloudtrail_max_events,
                    "accounts_built": len(world.accounts),
                }
        if head == "iam-lag" and method == "POST":
            with world.lock:
                world.iam_read_lag = float(data["seconds"])
            return {"iam_read_lag": world.iam_read_lag}
        if head == "lookup-rate" and method == "POST":
            with world.lock:
                world.lookup_rate_per_second = float(data["per_second"])
            return {"per_second": world.lookup_rate_per_second}
        if head == "credential-report-time" and method == "POST":
            seconds = float(data["seconds"])
            if seconds < 0:
                raise ControlError(400, "BadRequest", "seconds must not be negative")
            with world.lock:
                world.credential_report_seconds = seconds
            return {"seconds": seconds}
        if head == "switches":
            return self.switches(method, data)
        if head == "principals" and method == "POST":
            principal = add_iam_principal(
                world, str(data["account_id"]), str(data["name"]), data.get("policies")
            )
            return principal.public()
        if head == "mailbox" and len(parts) == 2:
            with world.lock:
                return {"messages": list(world.mailbox.get(parts[1], []))}
        if head == "authenticator" and len(parts) >= 2:
            return self.authenticator("/".join(parts[1:]))
        if head == "console" and method == "POST":
            return self.console("/".join(parts[1:]), data)
        raise ControlError(
            404, "NotFound", f"no control route {method} /_sandbox/{'/'.join(parts)}"
        )

    # ----------------------------------------------------------------- knobs
    def faults(self, method: str, data: dict[str, Any]) -> Any:
        with self.world.lock:
            if method == "DELETE":
                self.world.faults.clear()
                return {"faults": []}
            if method == "POST":
                kind = str(data["kind"])
                if kind not in ("throttle", "deny", "latency"):
                    raise ControlError(400, "BadRequest", f"unknown fault kind {kind!r}")
                count = data.get("count")
                every = data.get("every")
                if every is not None and (int(every) < 1 or kind == "latency"):
                    raise ControlError(
                        400, "BadRequest", "every is a whole number >= 1, for throttle or deny"
                    )
                rule = FaultRule(
                    kind,
                    str(data.get("operation", "*")),
                    None if count is None else int(count),
                    float(data.get("seconds", 0.0)),
                    None if every is None else int(every),
                )
                self.world.faults.append(rule)
            return {"faults": [vars(r) for r in self.world.faults]}

    def switches(self, method: str, data: dict[str, Any]) -> dict[str, Any]:
        world = self.world
        with world.lock:
            if method == "POST":
                name, value = str(data["name"]), str(data["value"])
                if name not in SWITCHES:
                    raise ControlError(
                        400, "BadRequest", f"unknown switch {name!r}; known: {sorted(SWITCHES)}"
                    )
                choices = SWITCHES[name][1]
                if value not in choices:
                    raise ControlError(
                        400, "BadRequest", f"switch {name} is one of {list(choices)}, not {value!r}"
                    )
                world.switches[name] = value
            return {
                "switches": dict(world.switches),
                "choices": {name: list(spec[1]) for name, spec in SWITCHES.items()},
            }

    def _account(self, account_id: str) -> Account:
        account = self.world.account(account_id)
        if account is None:
            raise ControlError(404, "NoSuchAccount", f"no account {account_id} in this scenario")
        return account

    def authenticator(self, serial: str) -> dict[str, Any]:
        """The simulated authenticator app: the codes of the previous and current windows."""
        world = self.world
        with world.lock:
            seed = world.authenticator_seeds.get(serial)
            now = world.clock.now()
        if seed is None:
            raise ControlError(404, "NoSuchDevice", f"no authenticator holds {serial}")
        totp = pyotp.TOTP(seed)
        return {"serial": serial, "codes": [totp.at(now - dt.timedelta(seconds=30)), totp.at(now)]}

    # ----------------------------------------------------------------- console actor
    def console(self, action: str, data: dict[str, Any]) -> Any:
        world = self.world
        with world.lock:
            if action == "sign-in":
                return self.sign_in(data)
            session = world.console_sessions.get(str(data.get("session_id", "")))
            if session is None:
                raise ControlError(401, "NotSignedIn", "sign in to the console first")
            account = self._account(session.account_id)
            if action == "sign-out":
                world.console_sessions.pop(session.session_id, None)
                return {"signed_out": True}
            if session.registration_only and not action.startswith("bind-"):
                raise ControlError(
                    403,
                    "MfaRegistrationRequired",
                    "The 35 days to register MFA for the root user have passed: register an "
                    "MFA device to proceed with sign-in.",
                )
            if action == "remove-mfa":
                return self.remove_mfa(session, account, str(data["serial"]))
            if action == "bind-virtual/start":
                return self.bind_start(session, account, str(data.get("name", "root-mfa")))
            if action == "bind-virtual/finish":
                return self.bind_finish(
                    session, account, str(data["serial"]), str(data["code1"]), str(data["code2"])
                )
            if action == "bind-security-key":
                return self.bind_security_key(session, account, str(data.get("name", "key")))
        raise ControlError(404, "NotFound", f"no console action {action}")

    def _console_event(
        self,
        session: ConsoleSession,
        name: str,
        params: dict[str, Any] | None,
        error: tuple[str, str] | None = None,
        response: dict[str, Any] | None = None,
    ) -> None:
        account = session.account_id
        root = Principal("root-console", "root", account, f"arn:aws:iam::{account}:root", "", "")
        record: dict[str, Any] = {
            "userIdentity": _cloudtrail.user_identity(
                root,
                console_key=session.console_key,
                mfa=session.mfa_used,
                created=session.signed_in_at,
            ),
            "eventTime": self.world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "iam.amazonaws.com",
            "eventName": name,
            "sourceIPAddress": "AWS Internal",
            "userAgent": "AWS Internal",
            "requestParameters": params,
            "responseElements": response,
            "requestID": str(uuid.uuid4()),
            "eventType": "AwsApiCall",
            "readOnly": False,
            "sessionCredentialFromConsole": "true",
            "_resources": [
                {"ResourceType": "AWS::IAM::MFADevice", "ResourceName": params["serialNumber"]}
            ]
            if params and params.get("serialNumber")
            else [],
        }
        if error:
            record["errorCode"], record["errorMessage"] = error
        _cloudtrail.add_event(self.world, account, "us-east-1", record)

    def _login_event(
        self, account: Account, success: bool, mfa: MfaDevice | None, message: str | None = None
    ) -> None:
        extra: dict[str, Any] = {
            "LoginTo": CONSOLE_URL,
            "MobileVersion": "No",
            "MFAUsed": "Yes" if mfa else "No",
        }
        if mfa is not None:
            extra["MFAIdentifier"] = mfa.serial
        record: dict[str, Any] = {
            "userIdentity": {
                "type": "Root",
                "principalId": account.account_id,
                "arn": account.root.arn,
                "accountId": account.account_id,
            },
            "eventTime": self.world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "sourceIPAddress": "127.0.0.1",
            "userAgent": "root-mfa-runbook-sandbox-console",
            "requestParameters": None,
            "responseElements": {"ConsoleLogin": "Success" if success else "Failure"},
            "additionalEventData": extra,
            "eventType": "AwsConsoleSignIn",
            "readOnly": False,
            "_resources": [],
        }
        if message:
            record["errorMessage"] = message
        _cloudtrail.add_event(self.world, account.account_id, "us-east-1", record)

    def sign_in(self, data: dict[str, Any]) -> dict[str, Any]:
        """Root sign-in: password (the actor knows it), then the MFA device (``mfa_serial``; with
        ``mfa_code`` the code is checked, without it the simulated device answers), or, with no
        MFA right after a removal, the one-time code AWS e-mails to the root address. Without
        MFA the answer carries ``mfa_prompt`` (see the module docstring); past the deadline the
        status is ``mfa_registration_required`` and the session may only register a device."""
        world = self.world
        account = self._account(str(data["account_id"]))
        root = account.root
        if not root.has_password:
            raise ControlError(
                409,
                "NoRootPassword",
                "The root user has no password. Sign-in needs a password reset by the owner "
                "of the root mailbox (or IAMCreateRootUserPassword from the management account).",
            )
        devices = root.devices()
        mfa_device: MfaDevice | None = None
        if devices:
            serial = data.get("mfa_serial")
            if not serial:
                return {"status": "mfa_required", "devices": [d.serial for d in devices]}
            mfa_device = next((d for d in devices if d.serial == serial), None)
            code = data.get("mfa_code")
            if mfa_device is not None and code is not None and mfa_device.seed is not None:
                if not totp_code_valid(mfa_device.seed, str(code), world.clock.now()):
                    self._login_event(account, False, None, "Failed authentication")
                    raise ControlError(403, "FailedAuthentication", "the MFA code is not valid")
            if mfa_device is None:
                self._login_event(account, False, None, "Failed authentication")
                raise ControlError(
                    403, "FailedAuthentication", f"{serial} is not an MFA device of this root user"
                )
        else:
            # a sign-in attempt without MFA: it starts the 35-day window to register MFA
            root.first_attempt_without_mfa = root.first_attempt_without_mfa or world.clock.now()
            root.attempt_since_last_mfa = root.attempt_since_last_mfa or world.clock.now()
        if (
            not devices
            and root.email_verification_pending
            and world.switch("first-sign-in-without-mfa") == "email-code"
        ):
            code = data.get("email_code")
            pending = world.pending_sign_ins.get(account.account_id)
            if not code:
                new_code = "".join(secrets.choice(string.digits) for _ in range(6))
                world.pending_sign_ins[account.account_id] = PendingSignIn(
                    account.account_id, new_code, world.clock.now()
                )
                world.mailbox.setdefault(account.account_id, []).append(
                    {
                        "to": root.email,
                        "subject": "AWS sign-in verification code",
                        "code": new_code,
                        "sent_at": world.clock.now().isoformat(),
                    }
                )
                return {"status": "email_code_sent", "to": root.email}
            if (
                pending is None
                or pending.code != str(code)
                or world.clock.now() - pending.sent_at > EMAIL_CODE_TTL
            ):
                self._login_event(account, False, None, "Failed authentication")
                raise ControlError(
                    403, "FailedAuthentication", "the verification code is wrong or has expired"
                )
            world.pending_sign_ins.pop(account.account_id, None)
            root.email_verification_pending = False
        session = ConsoleSession(
            uuid.uuid4().hex,
            account.account_id,
            world.clock.now(),
            mfa_device is not None,
            console_key=new_key_id("ASIA"),
        )
        world.console_sessions[session.session_id] = session
        root.password_last_used = world.clock.now()
        self._login_event(account, True, mfa_device)
        answer: dict[str, Any] = {
            "status": "signed_in",
            "session_id": session.session_id,
            "mfa_used": mfa_device is not None,
        }
        if mfa_device is None:
            prompt = mfa_prompt(world, account)
            answer["mfa_prompt"] = prompt
            if prompt["enforced"]:
                session.registration_only = True
                answer["status"] = "mfa_registration_required"
        return answer

    def remove_mfa(self, session: ConsoleSession, account: Account, serial: str) -> dict[str, Any]:
        device = next((d for d in account.root.devices() if d.serial == serial), None)
        if (
            device is not None
            and device.console_session == session.session_id
            and self.world.switch("remove-device-bound-this-session") == "refused"
        ):
            message = (
                "This MFA device was assigned in the current session. Sign out and sign "
                "in again before you remove it."
            )
            self._console_event(
                session,
                "DeactivateMFADevice",
                {"serialNumber": serial},
                ("EntityTemporarilyUnmodifiable", message),
            )
            raise ControlError(409, "EntityTemporarilyUnmodifiable", message)
        if device is None:
            raise ControlError(404, "NoSuchEntity", f"MFA device {serial} is not assigned to root")
        deactivate_root_device(self.world, account, serial)
        self._console_event(session, "DeactivateMFADevice", {"serialNumber": serial})
        if device.kind == "virtual":
            account.root.unassigned_virtual.pop(serial, None)
            self.world.authenticator_seeds.pop(serial, None)
            self._console_event(session, "DeleteVirtualMFADevice", {"serialNumber": serial})
        return {"removed": serial, "kind": device.kind}

    def _check_room(self, account: Account) -> None:
        if len(account.root.devices()) >= MAX_ROOT_MFA_DEVICES:
            raise ControlError(
                409,
                "LimitExceeded",
                f"the root user already has {MAX_ROOT_MFA_DEVICES} MFA devices",
            )

    def bind_start(self, session: ConsoleSession, account: Account, name: str) -> dict[str, Any]:
        self._check_room(account)
        serial = f"arn:aws:iam::{account.account_id}:mfa/{name}"
        if serial in account.root.unassigned_virtual or any(
            d.serial == serial for d in account.root.devices()
        ):
            raise ControlError(409, "EntityAlreadyExists", f"MFA device {serial} already exists")
        seed = new_totp_seed()
        session.pending_binds[serial] = MfaDevice(
            serial,
            "virtual",
            name,
            self.world.clock.now(),
            seed=seed,
            console_session=session.session_id,
        )
        # the "phone" scans the QR code: only the simulated authenticator keeps the seed
        self.world.authenticator_seeds[serial] = seed
        self._console_event(
            session,
            "CreateVirtualMFADevice",
            {"virtualMFADeviceName": name},
            response={"virtualMFADevice": {"serialNumber": serial}},
        )
        return {"serial": serial, "scanned": True}

    def bind_finish(
        self, session: ConsoleSession, account: Account, serial: str, code1: str, code2: str
    ) -> dict[str, Any]:
        pending = session.pending_binds.get(serial)
        if pending is None or pending.seed is None:
            raise ControlError(404, "NoSuchEntity", f"no pending binding for {serial}")
        now = self.world.clock.now()
        params = {"serialNumber": serial}
        if not consecutive_codes_valid(pending.seed, code1, code2, now):
            message = "Authentication code for device is not valid."
            self._console_event(
                session, "EnableMFADevice", params, ("InvalidAuthenticationCode", message)
            )
            raise ControlError(403, "InvalidAuthenticationCode", message)
        self._check_room(account)
        del session.pending_binds[serial]
        device = MfaDevice(
            serial,
            "virtual",
            pending.name,
            now.replace(microsecond=0),
            seed=pending.seed,
            console_session=session.session_id,
        )
        account.root.set_devices(now, (*account.root.devices(), device))
        account.root.email_verification_pending = False
        session.registration_only = False
        self._console_event(session, "EnableMFADevice", params)
        return {"bound": serial, "kind": "virtual"}

    def bind_security_key(
        self, session: ConsoleSession, account: Account, name: str
    ) -> dict[str, Any]:
        self._check_room(account)
        now = self.world.clock.now()
        serial = fido_serial(account.account_id, name)
        device = MfaDevice(
            serial, "fido", name, now.replace(microsecond=0), console_session=session.session_id
        )
        account.root.set_devices(now, (*account.root.devices(), device))
        account.root.email_verification_pending = False
        session.registration_only = False
        self._console_event(session, "EnableMFADevice", {"serialNumber": serial})
        return {"bound": serial, "kind": "fido"}


def totp_code_valid(seed: str, code: str, now: dt.datetime) -> bool:
    """A sign-in code is accepted in the current 30 s window or one either side (clock skew),
    as AWS does; anything else is refused."""
    totp = pyotp.TOTP(seed)
    return any(totp.at(now + dt.timedelta(seconds=30 * step)) == code for step in (-1, 0, 1))


def mfa_prompt(world: World, account: Account) -> dict[str, Any]:
    """What the console shows after a sign-in without MFA: register now or skip until the
    deadline (35 days from the first attempt without MFA); past it, only register."""
    with world.lock:
        root = account.root
        mode = world.switch("root-mfa-window")
        deadline = root.mfa_deadline(mode)
        if deadline is None:  # not yet attempted without MFA (e.g. it is bound)
            return {"shown": False, "deadline": None, "enforced": False, "choices": []}
        enforced = world.clock.now() >= deadline
        return {
            "shown": True,
            "window": mode,
            "window_started": _iso(root.mfa_window_start(mode)),
            "deadline": _iso(deadline),
            "enforced": enforced,
            "choices": ["register"] if enforced else ["register", "skip"],
        }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def root_state(world: World, account: Account) -> dict[str, Any]:
    """The root user's true state, for tests and the demo; no seed or code leaves here."""
    with world.lock:
        root = account.root
        has_mfa = bool(root.devices())
        prompt = mfa_prompt(world, account) if not has_mfa else None
        return {
            "account_id": account.account_id,
            "kind": account.kind,
            "has_password": root.has_password,
            "email_verification_pending": root.email_verification_pending,
            "devices": [
                {
                    "serial": d.serial,
                    "kind": d.kind,
                    "name": d.name,
                    "enable_date": d.enable_date.isoformat(),
                }
                for d in root.devices()
            ],
            "unassigned_virtual": sorted(root.unassigned_virtual),
            "access_keys": [k.access_key_id for k in root.access_keys],
            "signing_certificates": [c.certificate_id for c in root.signing_certificates],
            "access_keys_last_used": {
                k.access_key_id: {
                    "date": _iso(k.last_used),
                    "service": k.last_used_service,
                    "region": k.last_used_region,
                }
                for k in root.access_keys
            },
            # root MFA enforcement: None while root has MFA or has not tried to sign in without
            "mfa_registration_deadline": prompt["deadline"] if prompt else None,
            "mfa_registration": {
                "window": world.switch("root-mfa-window"),
                "first_attempt_without_mfa": _iso(root.first_attempt_without_mfa),
                "attempt_since_last_mfa": _iso(root.attempt_since_last_mfa),
                "deadline": prompt["deadline"] if prompt else None,
                "enforced": bool(prompt and prompt["enforced"]),
            },
        }
