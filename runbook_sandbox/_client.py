"""Clients for a running sandbox: its start line, the control API, and boto3 clients."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config


@functools.cache
def _data_loader() -> botocore.loaders.Loader:
    """One botocore data loader for the process's sandbox clients: it keeps what it has parsed
    (endpoints.json, each service model: megabytes of JSON), so a new session does not parse
    them again. (runbook_lib.aws.session has its own: this package imports nothing of it.)"""
    loader = botocore.loaders.create_loader(os.environ.get("AWS_DATA_PATH"))
    # boto3 appends its data directory on every Session: keep it once
    paths: list[str] = loader.search_paths
    loader._search_paths = _OncePaths(paths)  # type: ignore[attr-defined]
    return loader


class _OncePaths(list[str]):
    def append(self, item: str) -> None:
        if item not in self:
            super().append(item)


def boto_session(**kwargs: Any) -> boto3.Session:
    """``boto3.Session(**kwargs)`` on the process's shared data loader (:func:`_data_loader`)."""
    core = botocore.session.Session()
    core.register_component("data_loader", _data_loader())
    return boto3.Session(botocore_session=core, **kwargs)


class ControlApiError(RuntimeError):
    """The control API refused a request (status, code and message as it answered)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


#: the header that carries the control token: without it the control API answers 403, so no
#: other local user can read the principals' keys or the mailbox's one-time codes
CONTROL_TOKEN_HEADER = "X-Runbook-Sandbox-Token"
#: the key under which write_profiles puts the token into each profile (botocore ignores it)
PROFILE_TOKEN_KEY = "sandbox_control_token"


class ControlClient:
    """The sandbox's control API (``/_sandbox/``): console actor, mailbox, clock, faults."""

    def __init__(self, endpoint: str, timeout: float = 30.0, token: str | None = None) -> None:
        self.base = endpoint.rstrip("/") + "/_sandbox/"
        self.timeout = timeout
        self.token = token

    def __repr__(self) -> str:
        return f"ControlClient({self.base!r})"  # never the token

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header(CONTROL_TOKEN_HEADER, self.token)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as err:
            body = json.loads(err.read() or b"{}")
            raise ControlApiError(
                err.code, body.get("error", "Error"), body.get("message", "")
            ) from None

    # knobs
    def info(self) -> dict[str, Any]:
        return dict(self.call("GET", "info"))

    def reset(self) -> dict[str, Any]:
        return dict(self.call("POST", "reset", {}))

    def state(self, account_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"state/{account_id}"))

    def advance_clock(self, seconds: float) -> str:
        return str(self.call("POST", "clock", {"advance_seconds": seconds})["now"])

    def add_fault(
        self,
        kind: str,
        operation: str,
        count: int | None = None,
        seconds: float = 0.0,
        every: int | None = None,
    ) -> None:
        """A fault rule: ``kind`` throttle | deny | latency (``seconds``) on ``operation``
        (``iam:ListMFADevices``, ``iam:*``, ``*`` for every call), for ``count`` calls (None:
        until cleared); ``every``: throttle or deny only every k-th matching call."""
        payload: dict[str, Any] = {"kind": kind, "operation": operation, "count": count}
        payload["seconds"] = seconds
        if every is not None:
            payload["every"] = every
        self.call("POST", "faults", payload)

    def faults(self) -> list[dict[str, Any]]:
        """The fault rules, each with ``seen`` (matching calls) and ``fired`` (calls it acted
        on)."""
        return list(self.call("GET", "faults")["faults"])

    def clear_faults(self) -> None:
        self.call("DELETE", "faults")

    def stats(self) -> dict[str, int]:
        """What the sandbox holds: ``sessions`` (live STS sessions; expired ones are dropped),
        ``events`` (CloudTrail events kept) of ``max_events``, ``accounts_built``."""
        return dict(self.call("GET", "stats"))

    def set_cloudtrail_retention(self, max_events: int) -> dict[str, int]:
        """Keep only the newest ``max_events`` CloudTrail events (default 10,000)."""
        return dict(self.call("POST", "cloudtrail-retention", {"max_events": max_events}))

    def set_iam_lag(self, seconds: float) -> None:
        self.call("POST", "iam-lag", {"seconds": seconds})

    def set_lookup_rate(self, per_second: float) -> None:
        self.call("POST", "lookup-rate", {"per_second": per_second})

    def set_credential_report_time(self, seconds: float) -> None:
        """How long generating a credential report takes, in seconds of the sandbox clock."""
        self.call("POST", "credential-report-time", {"seconds": seconds})

    def switches(self) -> dict[str, str]:
        """The undocumented-behaviour switches and the variant each one is set to."""
        return dict(self.call("GET", "switches")["switches"])

    def set_switch(self, name: str, value: str) -> None:
        self.call("POST", "switches", {"name": name, "value": value})

    def add_principal(
        self, name: str, account_id: str, policies: list[dict[str, Any]] | None = None
    ) -> dict[str, str]:
        return dict(
            self.call(
                "POST", "principals", {"name": name, "account_id": account_id, "policies": policies}
            )
        )

    def add_root_credentials(
        self,
        account_id: str | None = None,
        access_key: bool = True,
        signing_certificate: bool = True,
    ) -> dict[str, Any]:
        """Give a root user (default: the target's) an active access key and/or an X.509
        signing certificate; the new key's principal and the certificate id."""
        payload: dict[str, Any] = {
            "access_key": access_key,
            "signing_certificate": signing_certificate,
        }
        if account_id:
            payload["account_id"] = account_id
        return dict(self.call("POST", "root-credentials", payload))

    def add_role(
        self,
        name: str,
        account_id: str,
        policies: list[dict[str, Any]] | None = None,
        trusted: list[str] | None = None,
        **options: Any,
    ) -> dict[str, str]:
        """An IAM role (``policies`` inline) that ``trusted`` (default: its account) may
        assume with sts:AssumeRole; options: ``path``, ``max_session_duration``."""
        payload: dict[str, Any] = {"name": name, "account_id": account_id}
        payload.update(policies=policies, trusted=trusted, **options)
        return dict(self.call("POST", "roles", payload))

    def set_cloudtrail_delay(self, seconds: float, jitter: float = 0.0) -> None:
        """CloudTrail delivery: events become visible this long after the call (sandbox
        clock), plus up to ``jitter``; for events recorded from now on."""
        self.call("POST", "cloudtrail-delay", {"seconds": seconds, "jitter": jitter})

    def set_lookup_window(self, mode: str) -> None:
        """LookupEvents with a StartTime older than 90 days: ``clip`` or ``error``."""
        self.call("POST", "lookup-window", {"mode": mode})

    def set_task_policy_variant(self, variant: str) -> None:
        """DeleteVirtualMFADevice in an IAMDeleteRootUserCredentials session: ``allow`` or
        ``deny`` (the task policy's NotResource statement read literally)."""
        self.call("POST", "task-policy-variant", {"variant": variant})

    def mailbox(self, account_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"mailbox/{account_id}")["messages"])

    def authenticator_codes(self, serial: str) -> list[str]:
        return list(self.call("GET", "authenticator/" + quote(serial, safe=""))["codes"])

    # the simulated console actor
    def sign_in(
        self,
        account_id: str,
        mfa_serial: str | None = None,
        email_code: str | None = None,
        mfa_code: str | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"account_id": account_id}
        if mfa_serial:
            payload["mfa_serial"] = mfa_serial
        if email_code:
            payload["email_code"] = email_code
        if mfa_code:
            payload["mfa_code"] = mfa_code
        return dict(self.call("POST", "console/sign-in", payload))

    def sign_in_answer(self, account_id: str) -> tuple[str, dict[str, Any]]:
        """Sign in as the operator would: first MFA device, or the e-mailed code. The second
        factor used ("mfa", "email-code" or "password") and the final answer."""
        answer = self.sign_in(account_id)
        used = "password"
        if answer["status"] == "mfa_required":
            used = "mfa"
            answer = self.sign_in(account_id, mfa_serial=answer["devices"][0])
        elif answer["status"] == "email_code_sent":
            used = "email-code"
            code = self.mailbox(account_id)[-1]["code"]
            answer = self.sign_in(account_id, email_code=code)
        return used, answer

    def sign_in_fully(self, account_id: str) -> str:
        """Sign in as the operator would (see :meth:`sign_in_answer`). Session id."""
        return str(self.sign_in_answer(account_id)[1]["session_id"])

    def sign_out(self, session_id: str) -> None:
        self.call("POST", "console/sign-out", {"session_id": session_id})

    def remove_mfa(self, session_id: str, serial: str) -> dict[str, Any]:
        return dict(
            self.call("POST", "console/remove-mfa", {"session_id": session_id, "serial": serial})
        )

    def bind_virtual(self, session_id: str, name: str) -> str:
        """Start binding, let the simulated app scan the QR code, enter two consecutive codes."""
        serial = str(
            self.call(
                "POST", "console/bind-virtual/start", {"session_id": session_id, "name": name}
            )["serial"]
        )
        code1, code2 = self.authenticator_codes(serial)
        self.call(
            "POST",
            "console/bind-virtual/finish",
            {"session_id": session_id, "serial": serial, "code1": code1, "code2": code2},
        )
        return serial

    def bind_security_key(self, session_id: str, name: str) -> str:
        return str(
            self.call(
                "POST", "console/bind-security-key", {"session_id": session_id, "name": name}
            )["bound"]
        )


@dataclass
class SandboxInfo:
    """What a sandbox prints on its first line, with helpers to reach it."""

    endpoint: str
    region: str
    scenario: str
    target_account_id: str
    principals: dict[str, dict[str, str]] = field(default_factory=dict)
    control_token: str = ""

    def __repr__(self) -> str:
        # the principals' secret keys are sandbox-only, but never print a secret anyway
        names = ", ".join(sorted(self.principals))
        return (
            f"SandboxInfo(endpoint={self.endpoint!r}, scenario={self.scenario!r}, "
            f"target_account_id={self.target_account_id!r}, principals=[{names}])"
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxInfo:
        return cls(
            data["endpoint"],
            data["region"],
            data["scenario"],
            data["target_account_id"],
            dict(data["principals"]),
            str(data.get("control_token") or ""),
        )

    @property
    def control(self) -> ControlClient:
        return ControlClient(self.endpoint, token=self.control_token)

    def add_principal(
        self, name: str, account_id: str | None = None, policies: list[dict[str, Any]] | None = None
    ) -> dict[str, str]:
        """Create an IAM principal (limited to ``policies`` if given) and make it usable here
        as ``client(service, name)``."""
        keys = self.control.add_principal(name, account_id or self.target_account_id, policies)
        self.principals[name] = keys
        return keys

    def session(self, principal: str = "admin", region: str | None = None) -> boto3.Session:
        keys = self.principals[principal]
        return boto_session(
            aws_access_key_id=keys["access_key_id"],
            aws_secret_access_key=keys["secret_access_key"],
            region_name=region or self.region,
        )

    def client(
        self, service: str, principal: str = "admin", region: str | None = None, **config: Any
    ) -> Any:
        """A boto3 client of ``principal`` pointed at the sandbox (no retries unless asked)."""
        cfg = Config(
            retries=config.pop("retries", {"total_max_attempts": 1, "mode": "standard"}), **config
        )
        session: Any = self.session(principal, region)
        return session.client(service, endpoint_url=self.endpoint, config=cfg)


def write_profiles(
    path: Path, principals: dict[str, dict[str, str]], control_token: str | None = None
) -> None:
    """An AWS credentials file with one ``sandbox-NAME`` profile per sandbox principal (and the
    control token, which the sandbox's console actor reads from the run's profile)."""
    lines: list[str] = []
    for name, keys in principals.items():
        lines += [
            f"[sandbox-{name}]",
            f"aws_access_key_id = {keys['access_key_id']}",
            f"aws_secret_access_key = {keys['secret_access_key']}",
        ]
        if control_token:
            lines.append(f"{PROFILE_TOKEN_KEY} = {control_token}")
        lines.append("")
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines))


def control_token_of(profile: str | None) -> str | None:
    """The sandbox control token written into ``profile``: its section in the shared
    credentials file, or ``[profile NAME]`` in the config file (role and ``credential_process``
    profiles live there)."""
    import configparser

    section = profile or os.environ.get("AWS_PROFILE") or "default"
    places = (
        (os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials", section),
        (
            os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config",
            section if section == "default" else f"profile {section}",
        ),
    )
    for name, where in places:
        parser = configparser.RawConfigParser()
        try:
            parser.read(Path(name).expanduser())
        except configparser.Error:
            continue
        if parser.has_section(where) and parser.has_option(where, PROFILE_TOKEN_KEY):
            return parser.get(where, PROFILE_TOKEN_KEY)
    return None


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a child (a sandbox), wait, kill it if it lingers; close its stdout pipe."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
