"""SigV4 signature verification: refuse a request not signed with the principal's secret key.

AWS recomputes every request's Signature Version 4 signature with the secret key it holds for
the access key and refuses the request when the two differ; so does the sandbox, which is how a
script that holds a wrong or stale secret learns it here and not first against AWS.

Verified (any failure is ``SignatureDoesNotMatch``, 403, with AWS's message; S3 has its own):

* Header-signed requests (``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
  Signature=...``) for every protocol: Query (IAM, STS: form body), JSON (CloudTrail,
  Organizations) and rest-xml (S3). The canonical request is rebuilt from the method, the path
  (S3: as sent; other services: dot-segments removed and encoded once more, as botocore does),
  the query string (decoded, RFC 3986 re-encoded, sorted), exactly the headers named in
  SignedHeaders (``host`` must be one of them; ``content-length`` is taken from the body the
  WSGI layer read), and the payload hash: the ``x-amz-content-sha256`` header's value when sent
  (``UNSIGNED-PAYLOAD``, ``STREAMING-*`` or a hex digest), otherwise SHA-256 of the body. A hex
  digest in that header must also match the body (S3: ``XAmzContentSHA256Mismatch``).
* Query-string presigned URLs (``X-Amz-Algorithm``, ``-Credential``, ``-Date``,
  ``-SignedHeaders``, ``-Signature`` in the query): same canonical request without
  ``X-Amz-Signature``; payload ``UNSIGNED-PAYLOAD`` for S3 as botocore presigns it.
* The credential scope must end in ``aws4_request``, its date must be X-Amz-Date's date, and its
  access key must be the principal's. Signatures are compared with ``hmac.compare_digest``.
* A malformed Authorization header or presigned query, an algorithm other than
  ``AWS4-HMAC-SHA256`` (SigV4a, SigV2 in a header with a Credential), or a request with neither
  header nor presigned signature is refused (``IncompleteSignature``; S3:
  ``AuthorizationHeaderMalformed``): the sandbox fails closed on shapes it cannot verify.

Not verified:

* Clock skew, X-Amz-Date freshness and a presigned URL's ``X-Amz-Expires`` (tests move the
  sandbox clock by hours; a real SDK signs with the host's clock).
* The per-chunk signatures of ``aws-chunked`` bodies (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``)
  and trailing checksums: only the seed signature over the headers is checked.
* The session token: the caller (``SandboxApp.authenticate``) compares ``x-amz-security-token``.

The path is rebuilt from the WSGI ``PATH_INFO``, which the server has already percent-decoded,
by re-encoding it the way botocore encodes S3 keys (``quote(key, safe="/~")``). A client that
percent-encodes a path differently (e.g. ``!`` or ``'`` as ``%21``/``%27``) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_to_bytes

from botocore.utils import normalize_url_path

from ._protocol import AwsError, AwsRequest
from ._state import Principal

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
S3_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"\d{8}T\d{6}Z")
_PRESIGN_SIGNATURE = "X-Amz-Signature"


@dataclass(frozen=True)
class _Claim:
    """What the client says it signed, from the Authorization header or a presigned query."""

    access_key_id: str
    scope: str  # date/region/service/aws4_request
    service: str
    signed_headers: str  # as sent: lower-case names joined by ";"
    signature: str
    timestamp: str
    presigned: bool


def check(req: AwsRequest, principal: Principal) -> None:
    """Raise ``AwsError(SignatureDoesNotMatch)`` unless ``req`` was signed with the principal's
    secret key (see the module docstring for what is and is not verified)."""
    claim = _claim(req)
    if claim.access_key_id != principal.access_key_id:
        raise _mismatch(claim.service)
    canonical = canonical_request(req, claim)
    string_to_sign = "\n".join(
        [ALGORITHM, claim.timestamp, claim.scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    expected = signature(principal.secret_access_key, claim.scope, string_to_sign)
    if not hmac.compare_digest(expected.encode(), claim.signature.encode()):
        raise _mismatch(claim.service)
    declared = req.header("x-amz-content-sha256")
    if declared is not None and _HEX_SHA256.fullmatch(declared):
        actual = hashlib.sha256(req.body).hexdigest()
        if not hmac.compare_digest(actual, declared):
            if claim.service == "s3":
                raise AwsError(
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    400,
                )
            raise _mismatch(claim.service)


def signature(secret_access_key: str, scope: str, string_to_sign: str) -> str:
    """The hex SigV4 signature of ``string_to_sign`` under the key derived for ``scope``."""
    date, region, service, terminator = scope.split("/")
    key = ("AWS4" + secret_access_key).encode()
    for part in (date, region, service, terminator):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def canonical_request(req: AwsRequest, claim: _Claim) -> str:
    """The SigV4 canonical request, as the client must have built it for ``claim``."""
    names = claim.signed_headers.split(";")
    header_lines = [f"{name}:{_header_value(req, name, claim.service)}\n" for name in names]
    return "\n".join(
        [
            req.method.upper(),
            _canonical_uri(req.path, claim.service),
            _canonical_query(req.query_string, claim.presigned),
            "".join(header_lines),
            claim.signed_headers,
            _payload_hash(req, claim),
        ]
    )


# ---------------------------------------------------------------------------- parsing the claim
def _claim(req: AwsRequest) -> _Claim:
    auth = req.header("authorization")
    if auth is not None:
        return _header_claim(auth, req)
    query = _query_params(req.query_string)
    if _PRESIGN_SIGNATURE in query:
        return _presigned_claim(query, req)
    raise _malformed(req.service, "Request is missing a signature.")


def _header_claim(auth: str, req: AwsRequest) -> _Claim:
    algorithm, _, rest = auth.strip().partition(" ")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name] = value.strip()
    timestamp = req.header("x-amz-date") or ""
    return _make_claim(
        algorithm,
        fields.get("Credential"),
        fields.get("SignedHeaders"),
        fields.get("Signature"),
        timestamp,
        presigned=False,
        fallback_service=req.service,
    )


def _presigned_claim(query: dict[str, str], req: AwsRequest) -> _Claim:
    return _make_claim(
        query.get("X-Amz-Algorithm", ""),
        query.get("X-Amz-Credential"),
        query.get("X-Amz-SignedHeaders"),
        query.get(_PRESIGN_SIGNATURE),
        query.get("X-Amz-Date", ""),
        presigned=True,
        fallback_service=req.service,
    )


def _make_claim(
    algorithm: str,
    credential: str | None,
    signed_headers: str | None,
    sig: str | None,
    timestamp: str,
    *,
    presigned: bool,
    fallback_service: str,
) -> _Claim:
    scope_parts = (credential or "").split("/")
    service = scope_parts[3].lower() if len(scope_parts) == 5 else fallback_service
    if algorithm != ALGORITHM:
        raise _malformed(service, f"Unsupported AWS 'algorithm': '{algorithm}'.")
    if not credential or not signed_headers or not sig:
        raise _malformed(
            service,
            "Authorization requires 'Credential', 'SignedHeaders' and 'Signature' parameters.",
        )
    if len(scope_parts) != 5 or scope_parts[4] != "aws4_request" or not all(scope_parts):
        raise _malformed(service, f"Credential '{credential}' is not a valid SigV4 scope.")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise _malformed(service, "A valid X-Amz-Date (YYYYMMDD'T'HHMMSS'Z') is required.")
    names = signed_headers.split(";")
    if "host" not in names or any(not n or n != n.lower() for n in names):
        raise _malformed(service, "SignedHeaders must be lower-case and include 'host'.")
    if scope_parts[1] != timestamp[:8]:
        raise _mismatch(service)
    return _Claim(
        access_key_id=scope_parts[0],
        scope="/".join(scope_parts[1:]),
        service=service,
        signed_headers=signed_headers,
        signature=sig,
        timestamp=timestamp,
        presigned=presigned,
    )


def _query_params(query_string: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in query_string.split("&"):
        key, _, value = pair.partition("=")
        if key:
            out[unquote(key)] = unquote(value)
    return out


# ---------------------------------------------------------------------------- canonical parts
def _canonical_uri(path: str, service: str) -> str:
    try:
        raw = quote(path.encode("latin-1"), safe="/~") or "/"  # PEP 3333: bytes as latin-1
    except UnicodeEncodeError:
        raise _mismatch(service) from None
    if service == "s3":
        return raw
    return quote(normalize_url_path(raw), safe="/~")


def _canonical_query(query_string: str, presigned: bool) -> str:
    pairs: list[tuple[str, str]] = []
    for pair in query_string.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        name = quote(unquote_to_bytes(key), safe="-_.~")
        if presigned and name == _PRESIGN_SIGNATURE:
            continue
        pairs.append((name, quote(unquote_to_bytes(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _header_value(req: AwsRequest, name: str, service: str) -> str:
    value = req.headers.get(name)
    if value is None and name == "content-length":
        value = str(len(req.body))  # WSGI keeps it as CONTENT_LENGTH, not an HTTP_ header
    if value is None:
        raise _mismatch(service)  # signed a header that did not arrive
    return " ".join(value.split())


def _payload_hash(req: AwsRequest, claim: _Claim) -> str:
    declared = req.header("x-amz-content-sha256")
    if declared is not None:
        return declared
    if claim.presigned and claim.service == "s3":
        return UNSIGNED_PAYLOAD
    return hashlib.sha256(req.body).hexdigest()


# ---------------------------------------------------------------------------- errors
def _mismatch(service: str) -> AwsError:
    message = S3_MISMATCH_MESSAGE if service == "s3" else MISMATCH_MESSAGE
    return AwsError("SignatureDoesNotMatch", message, 403)


def _malformed(service: str, detail: str) -> AwsError:
    if service == "s3":
        return AwsError(
            "AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}", 400
        )
    return AwsError("IncompleteSignature", detail, 400)
