"""Sessions and clients, built from the standard AWS configuration chain.

An :class:`AwsContext` wraps one ``boto3.Session`` (profile, SSO, environment, instance role:
whatever boto3 resolves) plus an optional ``endpoint_url`` (any AWS-compatible endpoint; the
local sandbox is one) and makes clients with adaptive retries and a user-agent suffix naming the
runbook. Nothing here builds a client at import time; callers pass contexts in.

IAM, Organizations and CloudTrail's IAM/sign-in events are global and live in us-east-1;
``sts:AssumeRoot`` must go to a *regional* STS endpoint, which :meth:`AwsContext.sts_regional`
guarantees (it refuses the global endpoint).
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlparse

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, Credentials
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from .. import __version__
from ..errors import ParameterError, PreconditionError, from_client_error

USER_AGENT = f"root-mfa-runbook/{__version__}"
GLOBAL_REGION = "us-east-1"  # where IAM and sign-in events are recorded
GLOBAL_STS_HOSTS = {"sts.amazonaws.com", "sts.us-gov.amazonaws.com"}


class _UniquePaths(list[str]):
    """boto3 appends its own data directory to the loader's search paths on every Session:
    a shared loader keeps it once."""

    def append(self, item: str) -> None:
        if item not in self:
            super().append(item)


@functools.cache
def shared_loader() -> botocore.loaders.Loader:
    """One botocore data loader per process: it caches the service models it has parsed
    (JSON of several MB for IAM), so the second session's clients do not parse them again.
    The data is read-only; a concurrent first load at worst parses a model twice."""
    loader = botocore.loaders.create_loader(os.environ.get("AWS_DATA_PATH"))
    loader._search_paths = _UniquePaths(loader.search_paths)  # type: ignore[attr-defined]
    return loader


def new_session(**kwargs: Any) -> boto3.Session:
    """``boto3.Session(**kwargs)`` on the process's shared data loader."""
    core = botocore.session.Session()
    core.register_component("data_loader", shared_loader())
    return boto3.Session(botocore_session=core, **kwargs)


MAX_ATTEMPTS_ENV = "RUNBOOK_MAX_ATTEMPTS"
DEFAULT_MAX_ATTEMPTS = 8


def max_attempts() -> int:
    """Attempts per AWS call, retries included (adaptive mode): ``$RUNBOOK_MAX_ATTEMPTS``
    (1-20) or :data:`DEFAULT_MAX_ATTEMPTS`. The notebooks' kernel sees the variable too
    (RUNBOOK_* settings pass its environment allow-list). ParameterError for another value."""
    raw = os.environ.get(MAX_ATTEMPTS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_ATTEMPTS
    if not raw.isdigit() or not 1 <= int(raw) <= 20:
        raise ParameterError(
            [f"{MAX_ATTEMPTS_ENV}={raw[:20]!r} must be a whole number from 1 to 20 (or unset)"]
        )
    return int(raw)


RETRY_MODE_ENV = "RUNBOOK_RETRY_MODE"
RETRY_MODES = ("adaptive", "standard")


def retry_mode() -> Literal["adaptive", "standard"]:
    """botocore's retry mode: ``$RUNBOOK_RETRY_MODE`` or ``adaptive`` (retries with back-off,
    and a client-side rate limit that drops after throttling and recovers slowly; ``standard``
    retries without the rate limit). ParameterError for another value."""
    raw = os.environ.get(RETRY_MODE_ENV, "").strip() or RETRY_MODES[0]
    if raw == "standard":
        return "standard"
    if raw != "adaptive":
        raise ParameterError(
            [f"{RETRY_MODE_ENV}={raw[:20]!r} must be one of {', '.join(RETRY_MODES)} (or unset)"]
        )
    return "adaptive"


def profile_not_found(name: str) -> str:
    """What to do about an AWS profile that is not configured here."""
    return (
        f"AWS profile {name!r} is not configured here (nothing was run): create it with "
        f"aws configure --profile {name} (or aws configure sso --profile {name}), or point "
        "AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE at the files that define it"
    )


def check_profile(profile: str | None) -> None:
    """Refuse (ParameterError) a ``profile`` (or ``AWS_PROFILE``) that the AWS config and
    credentials files do not define; no credentials are resolved, nothing is called."""
    AwsContext.from_profile(profile)


@dataclass
class AwsContext:
    """One set of credentials and where to reach AWS with them."""

    session: boto3.Session
    region: str = GLOBAL_REGION
    endpoint_url: str | None = None
    max_attempts: int = field(default_factory=lambda: max_attempts())
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    # boto3 sessions are not thread-safe: two threads making clients of one session at once
    # can fail to resolve its profile (ProfileNotFound) or credentials
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_profile(
        cls,
        profile: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        **keys: str,
    ) -> AwsContext:
        """Build from the standard chain (``profile`` or AWS_PROFILE, SSO, env, role).

        ``keys`` may carry explicit ``aws_access_key_id``/``aws_secret_access_key``/
        ``aws_session_token`` (tests and the sandbox demo); they are never stored elsewhere.
        """
        try:
            session = new_session(profile_name=profile or None, region_name=region, **keys)
            # a profile that does not exist shows when its configuration is first read
            region = region or session.region_name or GLOBAL_REGION
        except ProfileNotFound as err:
            raise ParameterError([profile_not_found(str(err.kwargs.get("profile")))]) from err
        except BotoCoreError as err:
            raise ParameterError([f"AWS profile {profile!r}: {err}"]) from err
        return cls(session, region, endpoint_url or None)

    def config(self) -> Config:
        return Config(
            retries={"mode": retry_mode(), "total_max_attempts": self.max_attempts},
            user_agent_extra=USER_AGENT,
            connect_timeout=10,
            read_timeout=30,
        )

    def client(self, service: str, region: str | None = None) -> Any:
        """A cached client; IAM and Organizations always in us-east-1."""
        if service in ("iam", "organizations"):
            region = GLOBAL_REGION
        region = region or self.region
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                session: Any = self.session
                self._clients[key] = session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    config=self.config(),
                )
            return self._clients[key]

    def sts_regional(self, region: str | None = None) -> Any:
        """An STS client on a regional endpoint, as AssumeRoot requires (cached per region)."""
        region = region or self.region
        key = ("sts-regional", region)
        with self._lock:
            if key in self._clients:
                return self._clients[key]
        if not region or region == "aws-global":
            raise ParameterError(
                [
                    "AssumeRoot needs a regional STS endpoint; set region to e.g. us-east-1 "
                    "(not aws-global)."
                ]
            )
        endpoint = self.endpoint_url or f"https://sts.{region}.amazonaws.com"
        host = urlparse(endpoint).hostname or ""
        if host in GLOBAL_STS_HOSTS:
            raise ParameterError(
                [
                    f"endpoint {endpoint} is the global STS endpoint; AssumeRoot works only on a "
                    f"regional one such as https://sts.{region}.amazonaws.com."
                ]
            )
        session: Any = self.session
        with self._lock:
            if key not in self._clients:
                self._clients[key] = session.client(
                    "sts", region_name=region, endpoint_url=endpoint, config=self.config()
                )
            return self._clients[key]

    def with_credentials(
        self, access_key_id: str, secret_access_key: str, session_token: str
    ) -> AwsContext:
        """A context on temporary credentials, same endpoint and region."""
        session = new_session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=self.region,
        )
        return AwsContext(session, self.region, self.endpoint_url, self.max_attempts)


class _SlotProvider(CredentialProvider):
    """A credential provider that always answers the slot's one (mutable) credentials."""

    METHOD = "runbook-slot"
    CANONICAL_NAME = "runbook-slot"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


class CredentialSlot:
    """One thread's clients for a succession of short-lived sessions (the fleet audit's
    AssumeRoot sessions, one account after another), so that a session does not cost a new
    boto3 session, new clients and their service models.

    The clients sign every request with the slot's :class:`botocore.credentials.Credentials`,
    read at signing time; :meth:`load` puts the next session's keys in it and :meth:`clear`
    blanks them (a client of a cleared slot cannot sign). One session at a time: a slot is
    not shared between threads. The keys live in memory only, as any boto3 session's do."""

    def __init__(self, base: AwsContext) -> None:
        self._credentials = Credentials("", "", "")
        core = botocore.session.Session()
        core.register_component("data_loader", shared_loader())
        resolver = core.get_component("credential_provider")
        resolver.insert_before("env", _SlotProvider(self._credentials))
        session = boto3.Session(botocore_session=core, region_name=base.region)
        self._context = AwsContext(session, base.region, base.endpoint_url, base.max_attempts)

    def load(self, access_key_id: str, secret_access_key: str, session_token: str) -> AwsContext:
        creds = self._credentials
        creds.access_key, creds.secret_key, creds.token = (
            access_key_id,
            secret_access_key,
            session_token,
        )
        return self._context

    def clear(self) -> None:
        creds = self._credentials
        creds.access_key, creds.secret_key, creds.token = "", "", ""


def call(client: Any, operation: str, permission: str | None = None, **kwargs: Any) -> Any:
    """Call ``client.<operation>(**kwargs)``; a ClientError becomes the runbook's error type.

    ``operation`` is the boto3 method name; ``permission`` the IAM action for the hint.
    """
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as err:
        raise from_client_error(err, _api_name(operation), permission) from err


def paginate(
    client: Any, operation: str, key: str, permission: str | None = None, **kwargs: Any
) -> list[Any]:
    """Every item of ``key`` across all pages of a list call (boto3's paginator)."""
    items: list[Any] = []
    try:
        for page in client.get_paginator(operation).paginate(**kwargs):
            items.extend(page.get(key, []))
    except ClientError as err:
        raise from_client_error(err, _api_name(operation), permission) from err
    return items


@functools.cache
def _api_name(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_")).replace("Mfa", "MFA")


def request_id(answer: dict[str, Any]) -> str | None:
    value = answer.get("ResponseMetadata", {}).get("RequestId")
    return str(value) if value else None


def require(condition: bool, message: str) -> None:
    if not condition:
        raise PreconditionError(message)
