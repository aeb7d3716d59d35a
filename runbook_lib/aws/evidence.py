"""CloudTrail evidence: find the events that prove what happened, and state what they prove.

Where to look (AWS): IAM and root console sign-in events are recorded in **us-east-1** of the
account acted on; ``AssumeRoot`` in the management account, in the region of the STS endpoint
used. ``LookupEvents`` takes one lookup attribute per call and allows about two requests per
second per account and region: :class:`RateLimiter` keeps under that, and the SDK's adaptive
retries absorb the rest.

Events are returned with secrets removed (an AssumeRoot record carries the session token in
``responseElements``), so they can go into the run record as they are.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from .session import GLOBAL_REGION, AwsContext, call
from .state import poll_until

SECRET_KEYS = {
    "sessionToken",
    "secretAccessKey",
    "SessionToken",
    "SecretAccessKey",
    "password",
    "Password",
    "authenticationCode1",
    "authenticationCode2",
}


class RateLimiter:
    """At most ``rate`` calls per second per key, across threads (a token bucket)."""

    def __init__(
        self,
        rate: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            at = max(now, self._next.get(key, now))
            self._next[key] = at + 1.0 / self.rate
        if at > now:
            self.sleep(at - now)


LOOKUP_LIMITER = RateLimiter(2.0)


def redact(value: Any) -> Any:
    """A copy of a CloudTrail record with secret-bearing fields replaced."""
    if isinstance(value, dict):
        return {
            k: ("<redacted>" if k in SECRET_KEYS and v else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True)
class TrailEvent:
    event_id: str
    event_name: str
    event_time: str
    event_source: str
    username: str | None
    access_key_id: str | None
    region: str
    record: dict[str, Any]

    @property
    def identity_type(self) -> str | None:
        ident = self.record.get("userIdentity") or {}
        return ident.get("type")

    @property
    def error_code(self) -> str | None:
        return self.record.get("errorCode")


def lookup(
    aws: AwsContext,
    *,
    region: str = GLOBAL_REGION,
    event_name: str | None = None,
    access_key_id: str | None = None,
    username: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limiter: RateLimiter = LOOKUP_LIMITER,
) -> list[TrailEvent]:
    """``cloudtrail:LookupEvents`` with at most one attribute (AWS's rule), paginated and rate
    limited. Newest first."""
    attrs = [
        (k, v)
        for k, v in (
            ("EventName", event_name),
            ("AccessKeyId", access_key_id),
            ("Username", username),
        )
        if v
    ]
    if len(attrs) > 1:
        raise ValueError(
            "LookupEvents takes one lookup attribute per call; filter the rest "
            "locally (see find_events)"
        )
    kwargs: dict[str, Any] = {}
    if attrs:
        kwargs["LookupAttributes"] = [{"AttributeKey": attrs[0][0], "AttributeValue": attrs[0][1]}]
    if start is not None:
        kwargs["StartTime"] = start
    if end is not None:
        kwargs["EndTime"] = end
    client = aws.client("cloudtrail", region)
    limiter.wait(f"{region}")
    raw = _paginate_limited(client, kwargs, limiter, region)
    events = []
    for item in raw:
        record = redact(json.loads(item.get("CloudTrailEvent") or "{}"))
        when = item["EventTime"]
        events.append(
            TrailEvent(
                event_id=item["EventId"],
                event_name=item["EventName"],
                event_time=when.isoformat() if hasattr(when, "isoformat") else str(when),
                event_source=item.get("EventSource", ""),
                username=item.get("Username"),
                access_key_id=item.get("AccessKeyId"),
                region=region,
                record=record,
            )
        )
    return events


def _paginate_limited(
    client: Any, kwargs: dict[str, Any], limiter: RateLimiter, region: str
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page_args = dict(kwargs, MaxResults=50)
        if token:
            page_args["NextToken"] = token
            limiter.wait(region)
        page = paginate_page(client, page_args)
        items.extend(page.get("Events", []))
        token = page.get("NextToken")
        if not token:
            return items


def paginate_page(client: Any, args: dict[str, Any]) -> dict[str, Any]:
    return dict(call(client, "lookup_events", "cloudtrail:LookupEvents", **args))


@dataclass
class Evidence:
    """The events that prove a claim, and the facts read from them."""

    claim: str
    found: bool
    event_ids: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    events: list[TrailEvent] = field(default_factory=list)
    # for a finder that filters by access key: the keys looked for (None: any caller) and the
    # keys of the events found (access key ids are not secrets)
    access_key_ids: list[str] | None = None
    matched_access_key_ids: list[str] | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "claim": self.claim,
            "found": self.found,
            "event_ids": self.event_ids,
            "event_times": [str(e.event_time) for e in self.events],
            "facts": self.facts,
        }
        if self.matched_access_key_ids is not None:
            out["access_key_ids"] = self.access_key_ids
            out["matched_access_key_ids"] = self.matched_access_key_ids
        return out


def _is_root(event: TrailEvent, account_id: str) -> bool:
    ident = event.record.get("userIdentity") or {}
    return ident.get("type") == "Root" and ident.get("accountId", account_id) == account_id


def _serial_of(event: TrailEvent) -> str | None:
    params = event.record.get("requestParameters") or {}
    return params.get("serialNumber")


def _wanted_keys(
    access_key_id: str | None, access_key_ids: Collection[str] | None
) -> list[str] | None:
    """The keys an event may be made by, in the order given (None: any caller)."""
    if access_key_id is None and access_key_ids is None:
        return None
    if isinstance(access_key_ids, str):
        raise TypeError("access_key_ids takes a collection of keys, not one key: use access_key_id")
    keys = [] if access_key_id is None else [access_key_id]
    keys += [k for k in access_key_ids or () if k not in keys]
    if not keys:
        raise ValueError(
            "access_key_ids is empty: no event could match; pass None to accept any caller"
        )
    return keys


def find_deactivation(
    aws: AwsContext,
    account_id: str,
    serial: str,
    since: dt.datetime,
    access_key_id: str | None = None,
    *,
    access_key_ids: Collection[str] | None = None,
) -> Evidence:
    """``DeactivateMFADevice`` of ``serial`` by the root user (console, or an AssumeRoot
    session's access key), after ``since``. Permission: ``cloudtrail:LookupEvents``.

    ``access_key_id`` / ``access_key_ids``: accept only events made by one of these keys (both
    together: any of them), e.g. every session key ``remove_root_mfa_device`` reported through
    ``on_session``; a re-assumed session deactivates with another key than the first. Both
    None: any caller. The summary names the keys looked for and the keys that matched."""
    claim = f"root deactivated {serial}"
    wanted = _wanted_keys(access_key_id, access_key_ids)
    events = lookup(aws, event_name="DeactivateMFADevice", start=since)
    hits = [
        e
        for e in events
        if _serial_of(e) == serial
        and _is_root(e, account_id)
        and not e.error_code
        and (wanted is None or e.access_key_id in wanted)
    ]
    found = _evidence(
        claim,
        hits,
        lambda e: (
            f"{e.event_time}: DeactivateMFADevice of {serial} by Root"
            + (" in an AssumeRoot session" if _assumed_root(e) else " (console)")
            + (f", access key ...{e.access_key_id[-4:]}" if e.access_key_id else "")
            + (
                f" (key {wanted.index(e.access_key_id) + 1} of the {len(wanted)} looked for)"
                if wanted is not None and len(wanted) > 1 and e.access_key_id
                else ""
            )
        ),
    )
    found.access_key_ids = wanted
    matched: list[str] = []
    for e in hits:
        if e.access_key_id and e.access_key_id not in matched:
            matched.append(e.access_key_id)
    found.matched_access_key_ids = matched
    return found


def find_enable(
    aws: AwsContext, account_id: str, since: dt.datetime, exclude_serial: str | None = None
) -> Evidence:
    """``EnableMFADevice`` by the root user after ``since`` for a device other than the one
    removed."""
    claim = "root bound a new MFA device"
    events = lookup(aws, event_name="EnableMFADevice", start=since)
    hits = [
        e
        for e in events
        if _is_root(e, account_id) and not e.error_code and _serial_of(e) != exclude_serial
    ]
    return _evidence(
        claim, hits, lambda e: f"{e.event_time}: EnableMFADevice of {_serial_of(e)} by Root"
    )


def mfa_used(event: TrailEvent) -> bool | None:
    """ConsoleLogin's ``additionalEventData.MFAUsed`` ("Yes"/"YES"/"No": any case)."""
    value = (event.record.get("additionalEventData") or {}).get("MFAUsed")
    if value is None:
        return None
    return str(value).strip().lower() == "yes"


def find_console_login(
    aws: AwsContext, account_id: str, since: dt.datetime, mfa: bool | None = None
) -> Evidence:
    """A successful root ``ConsoleLogin`` after ``since`` (optionally with MFAUsed = ``mfa``)."""
    wanted = {None: "", True: " with MFA", False: " without MFA"}[mfa]
    claim = f"root signed in to the console{wanted}"
    events = lookup(aws, event_name="ConsoleLogin", start=since)

    def ok(e: TrailEvent) -> bool:
        success = (e.record.get("responseElements") or {}).get("ConsoleLogin") == "Success"
        return success and _is_root(e, account_id) and (mfa is None or mfa_used(e) is mfa)

    hits = [e for e in events if ok(e)]
    return _evidence(
        claim,
        hits,
        lambda e: (
            f"{e.event_time}: ConsoleLogin by Root, MFAUsed="
            f"{(e.record.get('additionalEventData') or {}).get('MFAUsed')}"
        ),
    )


def find_assume_root(
    management: AwsContext, account_id: str, since: dt.datetime, region: str
) -> Evidence:
    """``AssumeRoot`` calls for ``account_id`` in the management account, in ``region``."""
    claim = f"AssumeRoot into {account_id}"
    events = lookup(management, region=region, event_name="AssumeRoot", start=since)
    hits = [
        e
        for e in events
        if (e.record.get("requestParameters") or {}).get("targetPrincipal") == account_id
    ]
    return _evidence(
        claim,
        hits,
        lambda e: (
            f"{e.event_time}: AssumeRoot by "
            f"{(e.record.get('userIdentity') or {}).get('arn')} with "
            f"{((e.record.get('requestParameters') or {}).get('taskPolicyArn') or {})}"
        ),
    )


def _assumed_root(event: TrailEvent) -> bool:
    ctx = (event.record.get("userIdentity") or {}).get("sessionContext") or {}
    return str(ctx.get("assumedRoot", "")).lower() == "true"


def _evidence(
    claim: str, hits: Iterable[TrailEvent], fact: Callable[[TrailEvent], str]
) -> Evidence:
    found = list(hits)
    return Evidence(
        claim, bool(found), [e.event_id for e in found], [fact(e) for e in found], found
    )


def wait_for_evidence(
    find: Callable[[], Evidence], timeout: float = 300.0, interval: float = 5.0
) -> Evidence:
    """CloudTrail delivers events within minutes: poll ``find`` until it finds something."""
    return poll_until(
        find,
        lambda ev: ev.found,
        timeout=timeout,
        interval=interval,
        what="the CloudTrail event",
        max_interval=30.0,
        check="CloudTrail usually shows events within 5 minutes; re-run the "
        "step later, or check Event history in us-east-1.",
    )
