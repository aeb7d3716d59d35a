"""CloudTrail for the sandbox: management events recorded from the calls it serves, and
``LookupEvents`` over them in CloudTrail's shape.

Where events land follows AWS: IAM, Organizations and root console sign-in events in us-east-1;
STS events (AssumeRoot among them) in the region of the STS endpoint used, in the caller's account.
LookupEvents answers the caller's account and the request's region only, newest first, one lookup
attribute per call, at most 50 per page, and throttles above its documented rate (2 per second
per account per region; ``World.lookup_rate_per_second``).

Who called (``userIdentity``) follows "CloudTrail userIdentity element" (CloudTrail User Guide,
https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html):
``IAMUser``; ``Root`` (console, long-term keys, AssumeRoot sessions); ``AssumedRole`` for a role
session, ``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`` with ``principalId`` ROLEID:SESSION
and ``sessionContext.sessionIssuer`` (type Role, the role's ARN, id and name) and
``attributes`` (``creationDate``, ``mfaAuthenticated``). LookupEvents' ``Username`` of a role
session is its session name.

Timing. Events are not visible at once: CloudTrail is eventually consistent ("Managing data
consistency in CloudTrail", https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-data-consistency.html)
and "CloudTrail log files aren't an ordered stack trace of the public API calls, so events don't
appear in any specific order" ("CloudTrail concepts",
https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-concepts.html). How long
delivery takes is not given there, so it is a setting: an event becomes visible
``World.cloudtrail_delay`` seconds after the call on the sandbox clock, plus a random part of up
to ``World.cloudtrail_jitter`` (which also reorders close events). The default, 0.3 s with no
jitter, makes every caller poll without slowing a test suite; ``POST /_sandbox/cloudtrail-delay
{seconds, jitter}`` sets realistic minutes, which a test then lets pass by moving the clock.
Every page of one paginated lookup sees the events visible at its first page.

Retention: the sandbox keeps the newest ``World.cloudtrail_max_events`` events (default 10,000;
``runbook-sandbox --cloudtrail-max-events N``, ``POST /_sandbox/cloudtrail-retention
{max_events}``) and none older than the 90 days LookupEvents covers, so its memory does not grow
with the number of calls; an event that drops out is no longer found, as one older than 90 days
is not on AWS. Each event is kept as CloudTrail's JSON text plus the fields LookupEvents filters
on (:class:`._state.StoredEvent`).

The window: "You can look up events that occurred in a Region within the last 90 days"
(LookupEvents, CloudTrail API reference,
https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html): older
events (sandbox clock) are never returned. What a ``StartTime`` (or ``EndTime``) older than 90
days does is not documented beyond InvalidTimeRangeException "Occurs if the timestamp values are
not valid. Either the start time occurs after the end time, or the time range is outside the
range of possible values", so both readings are offered (``World.lookup_window``,
``POST /_sandbox/lookup-window {mode}``): ``"clip"`` (default) answers the part of the range
within the last 90 days, ``"error"`` refuses it with InvalidTimeRangeException.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import sys
import time
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError
from botocore.model import OperationNotFoundError

from ._protocol import AwsError, AwsRequest, Response, render_result, service_model
from ._registry import ControlRouteError, control_route, handles
from ._state import Principal, StoredEvent, World

LOOKUP_WINDOW = dt.timedelta(days=90)
LOOKUP_WINDOW_MODES = ("clip", "error")
MAX_DELIVERY_DELAY = 24 * 3600.0  # refuse a delay in the wrong unit (milliseconds)

RECORDED_SERVICES = {"iam", "sts", "organizations", "cloudtrail"}
GLOBAL_SERVICES = {"iam", "organizations"}
# request parameters CloudTrail leaves out (they would be secrets)
SECRET_PARAMS = {
    "Password",
    "NewPassword",
    "OldPassword",
    "AuthenticationCode1",
    "AuthenticationCode2",
    "SecretAccessKey",
    "SessionToken",
}
LOOKUP_KEYS = {
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
}


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _scalar_types(req: AwsRequest) -> dict[str, str]:
    """Top-level input member name -> botocore type name (integer, boolean, ...)."""
    try:
        shape = service_model(req.service).operation_model(req.action).input_shape
    except (OperationNotFoundError, BotoCoreError):  # an unknown operation keeps its strings
        return {}
    if shape is None:
        return {}
    return {name: member.type_name for name, member in shape.members.items()}


def _typed(value: Any, type_name: str | None) -> Any:
    """Query-protocol values arrive as strings; CloudTrail shows numbers and booleans typed."""
    if not isinstance(value, str):
        return value
    if type_name in ("integer", "long"):
        try:
            return int(value)
        except ValueError:
            return value
    if type_name == "boolean":
        return value.lower() == "true"
    return value


def _request_parameters(req: AwsRequest) -> dict[str, Any] | None:
    if req.protocol == "json":
        return {_lower_camel(k): v for k, v in req.params.items() if k not in SECRET_PARAMS} or None
    types = _scalar_types(req)
    out: dict[str, Any] = {}
    for key, value in req.params.items():
        if key in ("Action", "Version") or key in SECRET_PARAMS:
            continue
        head, _, tail = key.partition(".")
        if tail:
            parts = tail.split(".")
            if parts[0] == "member" and len(parts) == 2:
                # a list (``TagKeys.member.1``): a JSON array in CloudTrail
                listed = out.setdefault(_lower_camel(head), [])
                if isinstance(listed, list):
                    listed.append(value)
                continue
            if parts[0] == "member" and len(parts) == 3 and parts[1].isdigit():
                # a list of structures (``PolicyArns.member.1.arn``): an array of objects
                items = out.setdefault(_lower_camel(head), [])
                if isinstance(items, list):
                    while len(items) < int(parts[1]):
                        items.append({})
                    items[int(parts[1]) - 1][_lower_camel(parts[2])] = value
                continue
            nested = out.setdefault(_lower_camel(head), {})
            if isinstance(nested, dict):
                nested[_lower_camel(parts[-1])] = value
        else:
            out[_lower_camel(key)] = _typed(value, types.get(key))
    return out or None


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def expiration_text(when: dt.datetime) -> str:
    """An expiry as CloudTrail writes it in STS events' ``responseElements.credentials``:
    "Oct 25, 2024, 9:07:11 PM" (IAM User Guide, "Track privileged tasks in AWS CloudTrail",
    https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-track-privileged-tasks.html):
    no zero-padding of the day or the hour, UTC."""
    when = when.astimezone(dt.UTC)
    hour = when.hour % 12 or 12
    return f"{when:%b} {when.day}, {when.year}, {hour}:{when:%M:%S} {when:%p}"


def user_identity(
    principal: Principal,
    *,
    console_key: str | None = None,
    mfa: bool | None = None,
    created: dt.datetime | None = None,
) -> dict[str, Any]:
    """CloudTrail's ``userIdentity`` for ``principal``. ``console_key`` (with ``mfa`` and
    ``created``, the sign-in time) marks a root console session; ``created`` is also the start
    of an AssumeRoot session."""
    if principal.role is not None:
        role = principal.role
        return {
            "type": "AssumedRole",
            "principalId": principal.user_id,
            "arn": principal.arn,
            "accountId": principal.account_id,
            "accessKeyId": principal.access_key_id,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role.role_id,
                    "arn": role.role_arn,
                    "accountId": principal.account_id,
                    "userName": role.role_name,
                },
                "webIdFederationData": {},
                "attributes": {
                    "creationDate": _stamp(role.issued_at),
                    "mfaAuthenticated": "false",
                },
            },
        }
    if principal.kind == "iam-user":
        return {
            "type": "IAMUser",
            "principalId": principal.user_id or principal.access_key_id,
            "arn": principal.arn,
            "accountId": principal.account_id,
            "accessKeyId": principal.access_key_id,
            "userName": principal.user_name,
        }
    ident: dict[str, Any] = {
        "type": "Root",
        "principalId": principal.account_id,
        "arn": principal.arn,
        "accountId": principal.account_id,
    }
    if console_key is not None:
        ident["accessKeyId"] = console_key
        attributes: dict[str, str] = {}
        if created is not None:
            attributes["creationDate"] = _stamp(created)
        attributes["mfaAuthenticated"] = str(bool(mfa)).lower()
        ident["sessionContext"] = {"attributes": attributes}
    elif principal.kind == "assumed-root":
        ident["accessKeyId"] = principal.access_key_id
        start = created or principal.expires_at or dt.datetime.now(dt.UTC)
        ident["sessionContext"] = {
            "attributes": {"creationDate": _stamp(start), "mfaAuthenticated": "false"},
            "assumedRoot": "true",
        }
    elif principal.access_key_id:
        ident["accessKeyId"] = principal.access_key_id
    return ident


def username_of(identity: dict[str, Any]) -> str | None:
    if identity.get("type") == "Root":
        return "root"
    if identity.get("type") == "AssumedRole":
        return str(identity.get("arn", "")).rsplit("/", 1)[-1] or None
    name = identity.get("userName")
    return str(name) if name else None


def _resources(event_name: str, params: dict[str, Any] | None) -> list[dict[str, str]]:
    if not params:
        return []
    out = []
    if params.get("serialNumber"):
        out.append({"ResourceType": "AWS::IAM::MFADevice", "ResourceName": params["serialNumber"]})
    if params.get("userName"):
        out.append({"ResourceType": "AWS::IAM::User", "ResourceName": params["userName"]})
    if params.get("targetPrincipal"):
        target = str(params["targetPrincipal"])
        out.append(
            {
                "ResourceType": "AWS::IAM::Root",
                "ResourceName": target
                if target.startswith("arn:")
                else f"arn:aws:iam::{target}:root",
            }
        )
    if params.get("roleArn"):
        out.append({"ResourceType": "AWS::IAM::Role", "ResourceName": params["roleArn"]})
    return out


def add_event(world: World, account_id: str, region: str, record: dict[str, Any]) -> None:
    """Store one CloudTrail record (a dict in CloudTrail's JSON shape) for LookupEvents: kept
    compact (:class:`StoredEvent`, the record as JSON text), the newest
    ``World.cloudtrail_max_events`` only, none older than LookupEvents' 90 days."""
    record.setdefault("eventVersion", "1.09")
    record.setdefault("eventID", str(uuid.uuid4()))
    record.setdefault("recipientAccountId", account_id)
    record.setdefault("awsRegion", region)
    record.setdefault("managementEvent", True)
    record.setdefault("eventCategory", "Management")
    resources = tuple(
        (str(r["ResourceType"]), str(r["ResourceName"])) for r in record.pop("_resources", [])
    )
    identity = record.get("userIdentity") or {}
    when = dt.datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    text = json.dumps(record)
    with world.lock:
        now = world.clock.now()
        delay = world.cloudtrail_delay + random.uniform(0.0, world.cloudtrail_jitter)
        world.event_seq += 1
        world.events.append(
            StoredEvent(
                seq=world.event_seq,
                account=sys.intern(account_id),  # (the few values many events share: once)
                region=sys.intern(region),
                when=when,
                visible_at=now + dt.timedelta(seconds=delay),
                event_id=str(record["eventID"]),
                event_name=sys.intern(str(record["eventName"])),
                event_source=sys.intern(str(record["eventSource"])),
                read_only=sys.intern(str(record.get("readOnly", False)).lower()),
                access_key_id=identity.get("accessKeyId") or None,
                username=username_of(identity),
                resources=resources,
                text=text,
            )
        )
        # LookupEvents never answers events older than 90 days: they need not be kept either
        oldest = now - LOOKUP_WINDOW
        while world.events and world.events[0].when < oldest:
            world.events.popleft()


def record_call(world: World, req: AwsRequest, principal: Principal, response: Response) -> None:
    """Record an API call served by the sandbox as CloudTrail would (management events only).
    A session the call issued starts at its event's time (``creationDate`` of its calls)."""
    with world.lock:
        issued = world.principals_by_request.pop(req.request_id, None)
    if req.service not in RECORDED_SERVICES or not req.action:
        return
    if req.service == "cloudtrail" and req.action == "LookupEvents":
        return  # kept out so a lookup never sees its own polling
    region = "us-east-1" if req.service in GLOBAL_SERVICES else req.region
    params = _request_parameters(req)
    created = principal.issued_at if principal.kind == "assumed-root" else None
    now = world.clock.now()
    record: dict[str, Any] = {
        "userIdentity": user_identity(principal, created=created),
        "eventTime": _stamp(now),
        "eventSource": f"{req.service}.amazonaws.com",
        "eventName": req.action,
        "sourceIPAddress": req.source_ip,
        "userAgent": req.user_agent,
        "requestParameters": params,
        "responseElements": None,
        "requestID": req.request_id,
        "eventType": "AwsApiCall",
        "readOnly": req.action.startswith(("Get", "List", "Describe", "Lookup", "Generate")),
        "_resources": _resources(req.action, params),
    }
    if response.error_code:
        record["errorCode"] = response.error_code
        if response.error_message:
            record["errorMessage"] = response.error_message
    elif req.action in ("AssumeRoot", "AssumeRole"):
        if issued is not None:
            issued.issued_at = now
            elements: dict[str, Any] = {
                "credentials": {
                    "accessKeyId": issued.access_key_id,
                    "sessionToken": issued.session_token,
                    "expiration": expiration_text(issued.expires_at) if issued.expires_at else None,
                }
            }
            if issued.role is not None:
                elements["assumedRoleUser"] = {
                    "assumedRoleId": issued.user_id,
                    "arn": issued.arn,
                }
            record["responseElements"] = elements
    add_event(world, principal.account_id, region, record)


def _summary(entry: StoredEvent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "EventId": entry.event_id,
        "EventName": entry.event_name,
        "ReadOnly": entry.read_only,
        "EventTime": entry.when,
        "EventSource": entry.event_source,
        "Resources": [{"ResourceType": t, "ResourceName": n} for t, n in entry.resources],
        "CloudTrailEvent": entry.text,
    }
    if entry.access_key_id:
        out["AccessKeyId"] = entry.access_key_id
    if entry.username:
        out["Username"] = entry.username
    return out


def _attribute_value(entry: StoredEvent, key: str) -> list[str]:
    """The values a lookup attribute matches, read from the stored fields (no JSON)."""
    if key == "ResourceType":
        return [t for t, _ in entry.resources]
    if key == "ResourceName":
        return [n for _, n in entry.resources]
    value = {
        "EventId": entry.event_id,
        "EventName": entry.event_name,
        "EventSource": entry.event_source,
        "ReadOnly": entry.read_only,
        "AccessKeyId": entry.access_key_id,
        "Username": entry.username,
    }.get(key)
    return [value] if value is not None else []


def _parse_time(value: Any) -> dt.datetime:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise AwsError("InvalidTimeRangeException", f"Invalid time: {value}", 400) from exc


def _take_token(world: World, account: str, region: str) -> None:
    rate = world.lookup_rate_per_second
    if rate <= 0:
        return
    now = time.monotonic()
    with world.lock:
        tokens, last = world.lookup_buckets.get((account, region), (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens < 1:
            world.lookup_buckets[(account, region)] = (tokens, now)
            raise AwsError("ThrottlingException", "Rate exceeded", 400)
        world.lookup_buckets[(account, region)] = (tokens - 1, now)


@handles("cloudtrail", "LookupEvents")
def lookup_events(world: World, req: AwsRequest, principal: Principal) -> Response:
    params = req.params
    attrs = params.get("LookupAttributes") or []
    if len(attrs) > 1:
        raise AwsError(
            "InvalidLookupAttributesException", "You can only specify one lookup attribute.", 400
        )
    for attr in attrs:
        if attr.get("AttributeKey") not in LOOKUP_KEYS or not attr.get("AttributeValue"):
            raise AwsError(
                "InvalidLookupAttributesException",
                f"Invalid lookup attribute: {attr.get('AttributeKey')}",
                400,
            )
    max_results = int(params.get("MaxResults") or 50)
    if not 1 <= max_results <= 50:
        raise AwsError("InvalidMaxResultsException", "MaxResults must be between 1 and 50.", 400)
    start = _parse_time(params["StartTime"]) if params.get("StartTime") is not None else None
    end = _parse_time(params["EndTime"]) if params.get("EndTime") is not None else None
    if start and end and start > end:
        raise AwsError("InvalidTimeRangeException", "StartTime is after EndTime.", 400)
    now = world.clock.now()
    oldest = now - LOOKUP_WINDOW
    if world.lookup_window == "error" and any(t is not None and t < oldest for t in (start, end)):
        raise AwsError(
            "InvalidTimeRangeException",
            "The time range is outside the range of possible values: events can be looked up "
            "for the last 90 days only.",
            400,
        )
    _take_token(world, principal.account_id, req.region)
    query = json.dumps({"a": attrs, "s": str(start), "e": str(end)}, sort_keys=True)
    offset = 0
    as_of = now
    with world.lock:
        snapshot = world.event_seq  # the newest event recorded so far
    if params.get("NextToken"):
        try:
            token = json.loads(base64.b64decode(params["NextToken"]))
            if token["q"] != query:
                raise ValueError("different query")
            offset = int(token["o"])
            # later pages see the events of the first page's moment: no repeats, no gaps
            snapshot = min(snapshot, int(token["n"]))
            as_of = dt.datetime.fromisoformat(str(token["t"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise AwsError("InvalidNextTokenException", "Invalid NextToken.", 400) from exc
    with world.lock:
        stored = list(world.events)  # the newest kept (World.cloudtrail_max_events)
    floor = max(start, oldest) if start else oldest
    floor = floor.replace(microsecond=0)
    wanted = offset + max_results + 1  # one more than the page tells whether another follows
    matched = []
    for entry in reversed(stored):  # newest first, stop as soon as the page is known
        if entry.seq > snapshot:
            continue  # recorded after the first page of this lookup
        if entry.account != principal.account_id or entry.region != req.region:
            continue
        if entry.visible_at > as_of:
            continue  # not delivered yet
        when = entry.when
        if end and when > end:
            continue
        if when < floor:
            break  # events are stored in time order: everything older is out of the window
        if attrs and attrs[0]["AttributeValue"] not in _attribute_value(
            entry, attrs[0]["AttributeKey"]
        ):
            continue
        matched.append(entry)
        if len(matched) >= wanted:
            break
    page = matched[offset : offset + max_results]
    result: dict[str, Any] = {"Events": [_summary(e) for e in page]}
    if offset + max_results < len(matched):
        token_raw = json.dumps(
            {"q": query, "o": offset + max_results, "n": snapshot, "t": as_of.isoformat()}
        ).encode()
        result["NextToken"] = base64.b64encode(token_raw).decode()
    return render_result(req, result)


# ---------------------------------------------------------------------------- control routes
def _delay_state(world: World) -> dict[str, float]:
    return {"seconds": world.cloudtrail_delay, "jitter": world.cloudtrail_jitter}


@control_route("GET", "cloudtrail-delay")
def get_delivery_delay(world: World, data: dict[str, Any]) -> dict[str, float]:
    return _delay_state(world)


@control_route("POST", "cloudtrail-delay")
def set_delivery_delay(world: World, data: dict[str, Any]) -> dict[str, float]:
    """How long after a call its event becomes visible to LookupEvents (sandbox clock), for
    events recorded from now on; ``jitter`` adds a random part (so events may arrive out of
    order)."""
    seconds = float(data["seconds"])
    jitter = float(data.get("jitter", 0.0))
    for name, value in (("seconds", seconds), ("jitter", jitter)):
        if not 0.0 <= value <= MAX_DELIVERY_DELAY:
            raise ControlRouteError(
                400, "BadRequest", f"{name} must be 0..{MAX_DELIVERY_DELAY:.0f}, got {value}"
            )
    with world.lock:
        world.cloudtrail_delay = seconds
        world.cloudtrail_jitter = jitter
        return _delay_state(world)


@control_route("GET", "lookup-window")
def get_lookup_window(world: World, data: dict[str, Any]) -> dict[str, str]:
    return {"mode": world.lookup_window}


@control_route("POST", "lookup-window")
def set_lookup_window(world: World, data: dict[str, Any]) -> dict[str, str]:
    """What LookupEvents does with a StartTime or EndTime older than 90 days."""
    mode = str(data["mode"])
    if mode not in LOOKUP_WINDOW_MODES:
        raise ControlRouteError(
            400, "BadRequest", f"mode must be one of {', '.join(LOOKUP_WINDOW_MODES)}"
        )
    with world.lock:
        world.lookup_window = mode
    return {"mode": mode}


def _retention(world: World) -> dict[str, int]:
    with world.lock:
        return {"max_events": world.cloudtrail_max_events, "events": len(world.events)}


@control_route("GET", "cloudtrail-retention")
def get_retention(world: World, data: dict[str, Any]) -> dict[str, int]:
    return _retention(world)


@control_route("POST", "cloudtrail-retention")
def set_retention(world: World, data: dict[str, Any]) -> dict[str, int]:
    """Keep the newest ``max_events`` CloudTrail events (the older ones drop out of
    LookupEvents at once); a sandbox (re)starts with ``--cloudtrail-max-events``."""
    count = data["max_events"]
    if isinstance(count, bool) or not isinstance(count, int):
        raise ControlRouteError(400, "BadRequest", f"max_events must be an integer, got {count!r}")
    try:
        world.set_cloudtrail_max_events(count)
    except ValueError as err:
        raise ControlRouteError(400, "BadRequest", str(err)) from err
    return _retention(world)
