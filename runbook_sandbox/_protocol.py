"""Wire formats: parse AWS requests and render AWS-shaped responses and errors.

The sandbox answers some operations itself (root-user behaviour moto lacks). Its answers must be
indistinguishable, to botocore, from AWS's: the Query protocol (IAM, STS) answers XML shaped by the
operation's output shape; the JSON protocol (CloudTrail, Organizations) answers JSON. Rendering is
driven by botocore's own service models, so a field name or a list wrapper cannot drift from what
the SDK parses.

Errors are rendered in the protocol the caller speaks, for every service, also those the sandbox
does not serve (:data:`SERVED_SERVICES`): a request's protocol is read from the request itself
(``smithy-protocol: rpc-v2-cbor``, ``X-Amz-Target`` for JSON, a form body with ``Action`` for
Query and EC2, else REST: XML for the signing names of botocore's rest-xml services, JSON for the
rest), so botocore always finds the error code and message where its parser for that protocol
looks (the body's ``Error/Code`` for Query, ``Errors/Error/Code`` for EC2, ``x-amzn-ErrorType``
and ``message`` for JSON and rest-json, a CBOR map with ``__type`` and ``message`` for
Smithy RPC v2 CBOR, ``Error/Code`` for rest-xml).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

QUERY_NAMESPACES = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}

# botocore's signing names -> the service model names we load
SIGNING_TO_SERVICE = {
    "iam": "iam",
    "sts": "sts",
    "cloudtrail": "cloudtrail",
    "organizations": "organizations",
    "s3": "s3",
    "sqs": "sqs",
}

# The services the sandbox serves: those of the root MFA procedure (and the runbook's evidence
# archive in S3), plus SQS for the SQSUnlockQueuePolicy root task. Any other service is answered
# with a NotImplemented error in its own protocol rather than with moto's invented data.
SERVED_SERVICES = frozenset(SIGNING_TO_SERVICE)

# signing names of botocore's rest-xml services (cloudfront, route53, s3, s3control); every
# other REST service speaks rest-json (tests/sandbox/test_protocols.py checks this list)
REST_XML_SIGNING_NAMES = frozenset({"cloudfront", "route53", "s3"})


@cache
def service_model(service: str) -> ServiceModel:
    """The botocore service model for ``service`` (cached: loading one costs ~50 ms)."""
    return botocore.session.get_session().get_service_model(service)


def new_request_id() -> str:
    return str(uuid.uuid4())


@dataclass
class AwsRequest:
    """One incoming AWS API request, as far as the sandbox needs to understand it."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    service: str = ""
    region: str = "us-east-1"
    access_key_id: str | None = None
    action: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    protocol: str = "rest-xml"
    request_id: str = field(default_factory=new_request_id)
    source_ip: str = "127.0.0.1"
    user_agent: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def parse_auth(headers: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """(access key id, region, service) from a SigV4 Authorization header, if any."""
    auth = headers.get("authorization", "")
    if "Credential=" not in auth:
        return None, None, None
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
    parts = scope.split("/")
    if len(parts) < 5:
        return None, None, None
    return parts[0], parts[2], parts[3]


def parse_request(req: AwsRequest) -> None:
    """Fill ``protocol``, ``action`` and ``params`` from the headers and body."""
    model_name = SIGNING_TO_SERVICE.get(req.service)
    if model_name is None:
        _detect_protocol(req)
        return
    model = service_model(model_name)
    req.protocol = model.protocol
    if req.protocol == "query":
        pairs = parse_qsl(req.query_string, keep_blank_values=True)
        ctype = req.header("content-type") or ""
        if req.body and "x-www-form-urlencoded" in ctype:
            pairs += parse_qsl(req.body.decode("utf-8"), keep_blank_values=True)
        req.params = dict(pairs)
        req.action = str(req.params.get("Action", ""))
    elif req.protocol == "json":
        target = req.header("x-amz-target") or ""
        req.action = target.rsplit(".", 1)[-1]
        try:
            req.params = json.loads(req.body or b"{}")
        except ValueError:
            req.params = {}
    elif req.protocol == "rest-xml" and req.service == "s3":
        _classify_s3(req)


def _detect_protocol(req: AwsRequest) -> None:
    """``protocol`` and ``action`` of a request for a service the sandbox has no model loaded
    for, from what botocore puts on the wire for each protocol."""
    ctype = req.header("content-type") or ""
    if (req.header("smithy-protocol") or "").lower() == "rpc-v2-cbor":
        req.protocol = "smithy-rpc-v2-cbor"
        req.action = req.path.rsplit("/operation/", 1)[-1] if "/operation/" in req.path else ""
    elif req.header("x-amz-target"):
        req.protocol = "json"
        req.action = str(req.header("x-amz-target")).rsplit(".", 1)[-1]
    elif "x-www-form-urlencoded" in ctype or "Action=" in req.query_string:
        pairs = parse_qsl(req.query_string, keep_blank_values=True)
        if req.body and "x-www-form-urlencoded" in ctype:
            pairs += parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        req.params = dict(pairs)
        req.action = str(req.params.get("Action", ""))
        req.protocol = "ec2" if req.service == "ec2" else "query"
    elif req.service in REST_XML_SIGNING_NAMES:
        req.protocol = "rest-xml"
    else:
        req.protocol = "rest-json"


# S3 operations by (method, addresses an object, query flag); the first matching rule wins. A
# rule without a flag matches only a request with none of S3_SUBRESOURCES (``?acl`` is not
# PutObject). Path-style URLs only (``/bucket/key``): the sandbox's clients reach it by IP
# address, so botocore never puts the bucket in the host name. Unlisted operations get "".
S3_RULES: tuple[tuple[str, bool, str, str], ...] = (
    ("PUT", True, "retention", "PutObjectRetention"),
    ("PUT", True, "legal-hold", "PutObjectLegalHold"),
    ("PUT", True, "tagging", "PutObjectTagging"),
    ("PUT", True, "uploadId", "UploadPart"),
    ("PUT", True, "", "PutObject"),  # CopyObject when x-amz-copy-source is set, below
    ("GET", True, "retention", "GetObjectRetention"),
    ("GET", True, "legal-hold", "GetObjectLegalHold"),
    ("GET", True, "tagging", "GetObjectTagging"),
    ("GET", True, "", "GetObject"),
    ("HEAD", True, "", "HeadObject"),
    ("DELETE", True, "tagging", "DeleteObjectTagging"),
    ("DELETE", True, "uploadId", "AbortMultipartUpload"),
    ("DELETE", True, "", "DeleteObject"),
    ("POST", True, "uploads", "CreateMultipartUpload"),
    ("POST", True, "uploadId", "CompleteMultipartUpload"),
    ("PUT", False, "object-lock", "PutObjectLockConfiguration"),
    ("PUT", False, "policy", "PutBucketPolicy"),
    ("PUT", False, "versioning", "PutBucketVersioning"),
    ("PUT", False, "", "CreateBucket"),
    ("GET", False, "object-lock", "GetObjectLockConfiguration"),
    ("GET", False, "policy", "GetBucketPolicy"),
    ("GET", False, "versioning", "GetBucketVersioning"),
    ("GET", False, "versions", "ListObjectVersions"),
    ("GET", False, "list-type", "ListObjectsV2"),
    ("GET", False, "", "ListObjects"),
    ("HEAD", False, "", "HeadBucket"),
    ("DELETE", False, "policy", "DeleteBucketPolicy"),
    ("DELETE", False, "", "DeleteBucket"),
    ("POST", False, "delete", "DeleteObjects"),
)
S3_SUBRESOURCES = frozenset(
    "accelerate acl analytics attributes cors delete encryption intelligent-tiering inventory"
    " legal-hold lifecycle list-type location logging metrics notification object-lock"
    " ownershipControls policy policyStatus publicAccessBlock replication requestPayment"
    " restore retention select tagging torrent uploadId uploads versioning versions"
    " website".split()
)
# request headers worth a handler's attention, by boto3's parameter name
S3_HEADER_PARAMS = {
    "x-amz-bypass-governance-retention": "BypassGovernanceRetention",
    "x-amz-object-lock-mode": "ObjectLockMode",
    "x-amz-object-lock-retain-until-date": "ObjectLockRetainUntilDate",
    "x-amz-object-lock-legal-hold": "ObjectLockLegalHoldStatus",
    "x-amz-bucket-object-lock-enabled": "ObjectLockEnabledForBucket",
    "x-amz-copy-source": "CopySource",
}


def _classify_s3(req: AwsRequest) -> None:
    """``action`` and ``params`` (Bucket, Key, VersionId, lock headers) of a path-style S3 call."""
    path = req.path
    try:  # WSGI hands PATH_INFO over percent-decoded, as latin-1; keys are UTF-8
        path = path.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass
    bucket, _, key = path.lstrip("/").partition("/")
    query = dict(parse_qsl(req.query_string, keep_blank_values=True))
    params: dict[str, Any] = {}
    if bucket:
        params["Bucket"] = bucket
    if key:
        params["Key"] = key
    if "versionId" in query:
        params["VersionId"] = query["versionId"]
    for header, name in S3_HEADER_PARAMS.items():
        value = req.header(header)
        if value is not None:
            params[name] = value
    req.params = params
    method = req.method.upper()
    if not bucket:
        req.action = "ListBuckets" if method == "GET" else ""
        return
    plain = S3_SUBRESOURCES.isdisjoint(query)
    req.action = next(
        (
            action
            for rule_method, on_object, flag, action in S3_RULES
            if rule_method == method
            and on_object == bool(key)
            and (flag in query if flag else plain)
        ),
        "",
    )
    if req.action == "PutObject" and "CopySource" in params:
        req.action = "CopyObject"


def query_list(params: dict[str, Any], prefix: str) -> list[str]:
    """Values of a Query-protocol list parameter (``Prefix.member.N``)."""
    out: list[tuple[int, str]] = []
    for key, value in params.items():
        if key.startswith(prefix + ".member."):
            tail = key[len(prefix) + 8 :]
            if tail.isdigit():
                out.append((int(tail), value))
    return [v for _, v in sorted(out)]


class AwsError(Exception):
    """An error the sandbox answers in AWS's shape (the caller sees a botocore ClientError)."""

    def __init__(self, code: str, message: str, status: int = 400, sender: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    error_code: str | None = None
    error_message: str | None = None


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _xml_value(shape: Shape, value: Any) -> str:
    if isinstance(shape, StructureShape):
        parts = []
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                tag = member.serialization.get("name", name)
                parts.append(f"<{tag}>{_xml_value(member, value[name])}</{tag}>")
        return "".join(parts)
    if isinstance(shape, ListShape):
        tag = shape.member.serialization.get("name", "member")
        return "".join(f"<{tag}>{_xml_value(shape.member, item)}</{tag}>" for item in value)
    if isinstance(shape, MapShape):
        return "".join(
            f"<entry><key>{escape(str(k))}</key><value>{_xml_value(shape.value, v)}</value></entry>"
            for k, v in value.items()
        )
    if shape.type_name == "timestamp":
        return _iso(value) if isinstance(value, dt.datetime) else escape(str(value))
    if shape.type_name == "boolean":
        return "true" if value else "false"
    if shape.type_name == "blob":
        raw = value if isinstance(value, bytes) else str(value).encode()
        return base64.b64encode(raw).decode()
    return escape(str(value))


def _json_value(shape: Shape, value: Any) -> Any:
    if isinstance(shape, StructureShape):
        return {
            name: _json_value(member, value[name])
            for name, member in shape.members.items()
            if name in value and value[name] is not None
        }
    if isinstance(shape, ListShape):
        return [_json_value(shape.member, item) for item in value]
    if isinstance(shape, MapShape):
        return {k: _json_value(shape.value, v) for k, v in value.items()}
    if shape.type_name == "timestamp" and isinstance(value, dt.datetime):
        return value.timestamp()
    if shape.type_name == "blob":
        raw = value if isinstance(value, bytes) else str(value).encode()
        return base64.b64encode(raw).decode()
    return value


def operation(service: str, action: str) -> OperationModel:
    return service_model(service).operation_model(action)


def render_result(req: AwsRequest, result: dict[str, Any]) -> Response:
    """Render ``result`` (a dict shaped like boto3's answer) in the request's protocol."""
    op = operation(SIGNING_TO_SERVICE[req.service], req.action)
    headers = [("x-amzn-RequestId", req.request_id)]
    if req.protocol == "json":
        payload = _json_value(op.output_shape, result) if op.output_shape else {}
        headers.append(("Content-Type", "application/x-amz-json-1.1"))
        return Response(200, headers, json.dumps(payload).encode())
    ns = QUERY_NAMESPACES[req.service]
    inner = _xml_value(op.output_shape, result) if op.output_shape else ""
    result_xml = f"<{req.action}Result>{inner}</{req.action}Result>" if op.output_shape else ""
    body = (
        f'<{req.action}Response xmlns="{ns}">{result_xml}'
        f"<ResponseMetadata><RequestId>{req.request_id}</RequestId></ResponseMetadata>"
        f"</{req.action}Response>"
    )
    headers.append(("Content-Type", "text/xml"))
    return Response(200, headers, body.encode())


def render_error(req: AwsRequest, err: AwsError) -> Response:
    """An error in the request's protocol: what botocore turns into a ``ClientError``."""
    headers = [("x-amzn-RequestId", req.request_id)]
    if req.protocol == "json":
        headers.append(("Content-Type", "application/x-amz-json-1.1"))
        headers.append(("x-amzn-ErrorType", err.code))
        body = json.dumps({"__type": err.code, "message": err.message}).encode()
    elif req.protocol == "rest-json":
        headers.append(("Content-Type", "application/json"))
        headers.append(("x-amzn-ErrorType", err.code))
        body = json.dumps({"message": err.message}).encode()
    elif req.protocol == "smithy-rpc-v2-cbor":
        headers.append(("Content-Type", "application/cbor"))
        headers.append(("smithy-protocol", "rpc-v2-cbor"))
        body = cbor_text_map({"__type": err.code, "message": err.message})
    elif req.protocol == "ec2":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message>"
            f"</Error></Errors><RequestID>{req.request_id}</RequestID></Response>"
        ).encode()
        headers.append(("Content-Type", "text/xml;charset=UTF-8"))
    elif req.protocol == "query":
        ns = QUERY_NAMESPACES.get(req.service, "")
        kind = "Sender" if err.sender else "Receiver"
        body = (
            f'<ErrorResponse xmlns="{ns}"><Error><Type>{kind}</Type><Code>{escape(err.code)}</Code>'
            f"<Message>{escape(err.message)}</Message></Error>"
            f"<RequestId>{req.request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers.append(("Content-Type", "text/xml"))
    else:  # rest-xml (S3)
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(err.code)}</Code>'
            f"<Message>{escape(err.message)}</Message><RequestId>{req.request_id}</RequestId>"
            f"</Error>"
        ).encode()
        headers.append(("Content-Type", "application/xml"))
    return Response(err.status, headers, body, err.code, err.message)


def cbor_text_map(values: dict[str, str]) -> bytes:
    """A CBOR (RFC 8949) map of text strings: what a Smithy RPC v2 CBOR error body holds."""

    def head(major: int, length: int) -> bytes:
        if length < 24:
            return bytes([major << 5 | length])
        for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if length < 256**size:
                return bytes([major << 5 | extra]) + length.to_bytes(size, "big")
        raise ValueError("too long for CBOR")

    out = bytearray(head(5, len(values)))
    for key, value in values.items():
        for text in (key, value):
            raw = text.encode()
            out += head(3, len(raw)) + raw
    return bytes(out)
