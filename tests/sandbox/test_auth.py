"""Contract: the sandbox authenticates requests as AWS does.

A request must carry a known access key, be SigV4-signed with that key's secret, and (for a
session) carry the session's token. The first half drives the sandbox over HTTP with boto3 and
the AWS CLI; the second feeds requests signed by botocore's own signers straight to
``_sigv4.check`` to pin down the canonical request (paths, queries, payload hashes, presigning)
and to show that tampering with any signed part is refused.
"""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from runbook_sandbox import SandboxInfo, boto_session
from runbook_sandbox._protocol import AwsError, AwsRequest
from runbook_sandbox._sigv4 import check
from runbook_sandbox._state import Principal

from .helpers import AUDIT, assume_root, error_code, session_client
from .helpers import aws_cli as _aws
from .helpers import aws_cli_json as _aws_json

NO_RETRIES: Any = {"max_attempts": 1, "mode": "standard"}
UNKNOWN_KEY = "AKIA" + "Z" * 16


def _flip(secret: str) -> str:
    """A secret that differs from ``secret`` in its last character only."""
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


def _client(
    info: SandboxInfo,
    service: str,
    principal: str = "admin",
    *,
    key: str | None = None,
    secret: str | None = None,
    **config: Any,
) -> Any:
    """A boto3 client like ``info.client`` but with the key id or the secret replaced."""
    keys = info.principals[principal]
    session: Any = boto_session(
        aws_access_key_id=key or keys["access_key_id"],
        aws_secret_access_key=secret or keys["secret_access_key"],
        region_name=info.region,
    )
    cfg = Config(retries=NO_RETRIES, **config)
    return session.client(service, endpoint_url=info.endpoint, config=cfg)


# Each call is cheap, needs no setup, and is answered for the standalone account's admin.
CALLS: dict[str, Callable[[Any], Any]] = {
    "iam": lambda c: c.list_users(),
    "sts": lambda c: c.get_caller_identity(),
    "cloudtrail": lambda c: c.lookup_events(MaxResults=1),
    "s3": lambda c: c.list_buckets(),
}


# ---------------------------------------------------------------------------- the right keys
def test_iam_calls_with_the_right_keys(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    assert "Users" in iam.list_users()
    assert iam.get_account_summary()["SummaryMap"]
    devices = iam.list_virtual_mfa_devices(AssignmentStatus="Assigned")["VirtualMFADevices"]
    assert all(d["SerialNumber"].startswith("arn:aws:iam::") for d in devices)
    user = iam.get_user()["User"]
    assert user["Arn"] == standalone.principals["admin"]["arn"]


def test_sts_and_assume_root_with_the_right_keys(member: SandboxInfo) -> None:
    sts = member.client("sts", "org-admin")
    assert sts.get_caller_identity()["Arn"] == member.principals["org-admin"]["arn"]
    creds = assume_root(member, AUDIT)
    identity = session_client(member, creds, "sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:iam::{member.target_account_id}:root"


def test_cloudtrail_and_organizations_with_the_right_keys(member: SandboxInfo) -> None:
    member.client("iam", "org-admin").list_users()
    events = member.client("cloudtrail", "org-admin").lookup_events()["Events"]
    assert any(e["EventName"] == "ListUsers" for e in events)
    org = member.client("organizations", "org-admin").describe_organization()["Organization"]
    assert org["MasterAccountId"] == member.principals["org-admin"]["account_id"]


def test_s3_object_round_trip_with_an_awkward_key(standalone: SandboxInfo) -> None:
    s3 = standalone.client("s3")
    key = "dir/a b+c~!*'()&=?;ü.txt"  # every character botocore percent-encodes differently
    s3.create_bucket(Bucket="auth-bucket")
    s3.put_object(Bucket="auth-bucket", Key=key, Body=b"payload" * 2000, Metadata={"k": "v  w"})
    assert s3.get_object(Bucket="auth-bucket", Key=key)["Body"].read() == b"payload" * 2000
    listed = s3.list_objects_v2(Bucket="auth-bucket", Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == [key]
    s3.delete_object(Bucket="auth-bucket", Key=key)
    assert s3.list_objects_v2(Bucket="auth-bucket").get("KeyCount") == 0


def test_signing_ignores_the_sandbox_clock(standalone: SandboxInfo) -> None:
    standalone.control.advance_clock(6 * 3600)
    arn = standalone.client("sts").get_caller_identity()["Arn"]
    assert arn == standalone.principals["admin"]["arn"]


# ---------------------------------------------------------------------------- presigned URLs
def _presigned_get(info: SandboxInfo, secret: str | None = None) -> str:
    s3 = _client(info, "s3", signature_version="s3v4")
    s3.create_bucket(Bucket="presign-bucket")
    s3.put_object(Bucket="presign-bucket", Key="report 1.csv", Body=b"a,b\n")
    signer = _client(info, "s3", secret=secret, signature_version="s3v4")
    url: str = signer.generate_presigned_url(
        "get_object", Params={"Bucket": "presign-bucket", "Key": "report 1.csv"}, ExpiresIn=300
    )
    assert "X-Amz-Signature=" in url
    return url


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, bytes(err.read())


def test_presigned_get_object_url_works(standalone: SandboxInfo) -> None:
    assert _fetch(_presigned_get(standalone)) == (200, b"a,b\n")


def test_presigned_url_signed_with_a_wrong_secret_is_refused(standalone: SandboxInfo) -> None:
    secret = _flip(standalone.principals["admin"]["secret_access_key"])
    status, body = _fetch(_presigned_get(standalone, secret=secret))
    assert status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in body


def test_presigned_url_for_another_object_is_refused(standalone: SandboxInfo) -> None:
    url = _presigned_get(standalone).replace("report%201.csv", "report%202.csv")
    status, body = _fetch(url)
    assert status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in body


# ---------------------------------------------------------------------------- the wrong keys
@pytest.mark.parametrize("service", sorted(CALLS))
def test_wrong_secret_is_signature_does_not_match(standalone: SandboxInfo, service: str) -> None:
    secret = _flip(standalone.principals["admin"]["secret_access_key"])
    client = _client(standalone, service, secret=secret)
    with pytest.raises(ClientError) as exc:
        CALLS[service](client)
    assert error_code(exc) == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    expected = "Check your key" if service == "s3" else "Check your AWS Secret Access Key"
    assert expected in exc.value.response["Error"]["Message"]


def test_wrong_secret_for_organizations(member: SandboxInfo) -> None:
    secret = _flip(member.principals["org-admin"]["secret_access_key"])
    client = _client(member, "organizations", "org-admin", secret=secret)
    with pytest.raises(ClientError) as exc:
        client.describe_organization()
    assert error_code(exc) == "SignatureDoesNotMatch"


def test_wrong_secret_on_an_s3_upload(standalone: SandboxInfo) -> None:
    standalone.client("s3").create_bucket(Bucket="upload-bucket")
    secret = _flip(standalone.principals["admin"]["secret_access_key"])
    s3 = _client(standalone, "s3", secret=secret)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="upload-bucket", Key="k", Body=b"x")
    assert error_code(exc) == "SignatureDoesNotMatch"
    assert standalone.client("s3").list_objects_v2(Bucket="upload-bucket")["KeyCount"] == 0


@pytest.mark.parametrize("service", sorted(CALLS))
def test_unknown_access_key(standalone: SandboxInfo, service: str) -> None:
    client = _client(standalone, service, key=UNKNOWN_KEY)
    with pytest.raises(ClientError) as exc:
        CALLS[service](client)
    expected = "InvalidAccessKeyId" if service == "s3" else "InvalidClientTokenId"
    assert error_code(exc) == expected
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def _session(member: SandboxInfo, **replace: str) -> Any:
    creds = dict(assume_root(member, AUDIT))
    creds.update(replace)
    return session_client(member, creds, "sts")


def test_session_token_that_does_not_match(member: SandboxInfo) -> None:
    sts = _session(member, SessionToken="not-the-session-token")
    with pytest.raises(ClientError) as exc:
        sts.get_caller_identity()
    assert error_code(exc) == "InvalidClientTokenId"


def test_session_keys_with_a_wrong_secret(member: SandboxInfo) -> None:
    creds = assume_root(member, AUDIT)
    sts = _session(member, SecretAccessKey=_flip(creds["SecretAccessKey"]))
    with pytest.raises(ClientError) as exc:
        sts.get_caller_identity()
    assert error_code(exc) == "SignatureDoesNotMatch"


# ---------------------------------------------------------------------------- the AWS CLI
@pytest.mark.awscli
def test_cli_get_caller_identity(standalone: SandboxInfo) -> None:
    identity = _aws_json(standalone, "sts", "get-caller-identity")
    assert identity["Arn"] == standalone.principals["admin"]["arn"]


@pytest.mark.awscli
def test_cli_list_assigned_virtual_mfa_devices(standalone: SandboxInfo) -> None:
    answer = _aws_json(
        standalone, "iam", "list-virtual-mfa-devices", "--assignment-status", "Assigned"
    )
    via_boto3 = standalone.client("iam").list_virtual_mfa_devices(AssignmentStatus="Assigned")
    serials = [d["SerialNumber"] for d in answer["VirtualMFADevices"]]
    assert serials == [d["SerialNumber"] for d in via_boto3["VirtualMFADevices"]]
    assert serials


@pytest.mark.awscli
def test_cli_get_account_summary(standalone: SandboxInfo) -> None:
    summary = _aws_json(standalone, "iam", "get-account-summary")["SummaryMap"]
    via_boto3 = standalone.client("iam").get_account_summary()["SummaryMap"]
    assert summary["AccountMFAEnabled"] == via_boto3["AccountMFAEnabled"]
    assert summary.keys() == via_boto3.keys()


@pytest.mark.awscli
def test_cli_with_a_wrong_secret_is_refused(standalone: SandboxInfo) -> None:
    secret = _flip(standalone.principals["admin"]["secret_access_key"])
    proc = _aws(standalone, "sts", "get-caller-identity", secret=secret)
    assert proc.returncode != 0
    assert "SignatureDoesNotMatch" in proc.stderr


# ---------------------------------------------------------------------------- check() itself
KEY_ID = "AKIAUNITTEST00000001"
SECRET = "unit-test-secret-" + "s" * 23
ENDPOINT = "http://127.0.0.1:4566"
PRINCIPAL = Principal(
    name="unit",
    kind="iam-user",
    account_id="123456789012",
    arn="arn:aws:iam::123456789012:user/unit",
    access_key_id=KEY_ID,
    secret_access_key=SECRET,
)
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
JSON = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
}


def _received(signed: AWSRequest) -> AwsRequest:
    """``signed`` as the sandbox's WSGI layer hands it over: path percent-decoded (latin-1),
    header names lower-cased, Content-Length moved out of the headers."""
    parts = urlsplit(str(signed.url))
    headers = {name.lower(): str(value) for name, value in signed.headers.items()}
    headers.setdefault("host", parts.netloc)
    headers.pop("content-length", None)
    body = signed.body or b""
    return AwsRequest(
        method=str(signed.method),
        path=unquote_to_bytes(parts.path).decode("latin-1"),
        query_string=parts.query,
        headers=headers,
        body=body.encode() if isinstance(body, str) else bytes(body),
    )


def _sign(
    method: str,
    path: str,
    service: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    secret: str = SECRET,
    s3: bool = False,
    presign: bool = False,
    unsigned_payload: bool = False,
) -> AwsRequest:
    request = AWSRequest(method=method, url=ENDPOINT + path, data=body, headers=headers or {})
    if unsigned_payload:
        request.context["payload_signing_enabled"] = False
    credentials = Credentials(KEY_ID, secret)
    auth: SigV4Auth
    if presign:
        auth = (S3SigV4QueryAuth if s3 else SigV4QueryAuth)(credentials, service, "us-east-1")
    else:
        auth = (S3SigV4Auth if s3 else SigV4Auth)(credentials, service, "us-east-1")
    auth.add_auth(request)
    return _received(request)


SHAPES: dict[str, Callable[..., AwsRequest]] = {
    "query-form": lambda **kw: _sign(
        "POST", "/", "sts", b"Action=GetCallerIdentity&Version=2011-06-15", FORM, **kw
    ),
    "query-get": lambda **kw: _sign(
        "GET", "/?Action=ListUsers&Version=2010-05-08&PathPrefix=%2Fa%20b%2F", "iam", **kw
    ),
    "json": lambda **kw: _sign("POST", "/", "cloudtrail", b'{"MaxResults": 1}', JSON, **kw),
    "s3-put": lambda **kw: _sign(
        "PUT",
        "/bkt/dir/a%20b%2Bc~%21%C3%BC.txt",
        "s3",
        b"data",
        {"Content-Length": "4"},
        s3=True,
        **kw,
    ),
    "s3-list": lambda **kw: _sign(
        "GET", "/bkt?list-type=2&prefix=a%2Fb&delimiter=%2F", "s3", s3=True, **kw
    ),
    "s3-subresource": lambda **kw: _sign("GET", "/bkt?versioning", "s3", s3=True, **kw),
    "s3-unsigned-payload": lambda **kw: _sign(
        "PUT", "/bkt/k", "s3", b"data", unsigned_payload=True, **kw
    ),
    "s3-streaming": lambda **kw: _sign(
        "PUT",
        "/bkt/k",
        "s3",
        b"4;chunk-signature=x\r\ndata\r\n0\r\n",
        {
            "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": "4",
        },
        **kw,
    ),
    "s3-presigned": lambda **kw: _sign(
        "GET", "/bkt/report%201.csv", "s3", s3=True, presign=True, **kw
    ),
    "sts-presigned": lambda **kw: _sign(
        "GET", "/?Action=GetCallerIdentity&Version=2011-06-15", "sts", presign=True, **kw
    ),
}


def _refused(req: AwsRequest) -> AwsError:
    with pytest.raises(AwsError) as exc:
        check(req, PRINCIPAL)
    return exc.value


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_check_accepts_botocore_signatures(shape: str) -> None:
    check(SHAPES[shape](), PRINCIPAL)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_check_refuses_a_wrong_secret(shape: str) -> None:
    err = _refused(SHAPES[shape](secret=_flip(SECRET)))
    assert (err.code, err.status) == ("SignatureDoesNotMatch", 403)
    s3_message = "Check your key and signing method."
    assert err.message.endswith(s3_message) == shape.startswith("s3")


def _tamper_time(req: AwsRequest) -> None:
    """Move X-Amz-Date by a second, keeping its day (the credential scope's date)."""
    stamp = req.headers.get("x-amz-date") or req.query_string.split("X-Amz-Date=", 1)[1][:16]
    moved = stamp[:9] + ("000001Z" if stamp[9:] != "000001Z" else "000002Z")
    if "x-amz-date" in req.headers:
        req.headers["x-amz-date"] = moved
    else:
        req.query_string = req.query_string.replace(stamp, moved)


def _tamper_signature(req: AwsRequest) -> None:
    """Change the last hex digit of the signature, in the header or the presigned query."""
    if "authorization" in req.headers:
        auth = req.headers["authorization"]
        req.headers["authorization"] = auth[:-1] + ("1" if auth[-1] == "0" else "0")
    else:
        query = req.query_string
        digit = query.split("X-Amz-Signature=", 1)[1][0]
        replaced = "X-Amz-Signature=" + ("1" if digit == "0" else "0")
        req.query_string = query.replace("X-Amz-Signature=" + digit, replaced)


TAMPERING: dict[str, Callable[[AwsRequest], None]] = {
    "method": lambda r: setattr(r, "method", "DELETE" if r.method != "DELETE" else "GET"),
    "path": lambda r: setattr(r, "path", r.path + "x"),
    "query": lambda r: setattr(r, "query_string", r.query_string + "&extra=1"),
    "host": lambda r: r.headers.update(host="127.0.0.1:4567"),
    "date": lambda r: _tamper_time(r),
    "signature": lambda r: _tamper_signature(r),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_check_refuses_a_tampered_request(shape: str, how: str) -> None:
    req = SHAPES[shape]()
    TAMPERING[how](req)
    assert _refused(req).code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("shape", ["query-form", "json", "s3-put"])
def test_check_refuses_a_tampered_body(shape: str) -> None:
    req = SHAPES[shape]()
    req.body = req.body[:-1] + b"X"
    expected = "XAmzContentSHA256Mismatch" if shape.startswith("s3") else "SignatureDoesNotMatch"
    assert _refused(req).code == expected


def test_check_refuses_a_signed_header_changed_in_transit() -> None:
    req = SHAPES["json"]()
    req.headers["x-amz-target"] = req.headers["x-amz-target"].replace("LookupEvents", "StopLogging")
    assert _refused(req).code == "SignatureDoesNotMatch"


def test_check_refuses_another_principals_credential() -> None:
    req = SHAPES["query-form"]()
    other = dataclasses.replace(PRINCIPAL, access_key_id="AKIAUNITTEST00000002")
    with pytest.raises(AwsError) as exc:
        check(req, other)
    assert exc.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=AKIAUNITTEST00000001/20240101/us-east-1/sts/aws4_request",
        "AWS4-ECDSA-P256-SHA256 Credential=AKIAUNITTEST00000001/20240101/us-east-1/sts/"
        "aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAUNITTEST00000001/20240101/us-east-1/sts, "
        "SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAUNITTEST00000001/20240101/us-east-1/sts/aws4_request, "
        "SignedHeaders=x-amz-date, Signature=00",
    ],
    ids=["no-signature", "sigv4a", "short-scope", "host-not-signed"],
)
def test_check_fails_closed_on_shapes_it_cannot_verify(authorization: str) -> None:
    req = SHAPES["query-form"]()
    req.headers["authorization"] = authorization
    assert _refused(req).code == "IncompleteSignature"


def test_check_refuses_a_request_without_any_signature() -> None:
    req = SHAPES["query-form"]()
    del req.headers["authorization"]
    assert _refused(req).code == "IncompleteSignature"
