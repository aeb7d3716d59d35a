"""S3 Object Lock as AWS enforces it, on top of moto 5.2.5's S3 (read in-process).

Moto stores a version's retention (``lock_mode``, ``lock_until``) and legal hold, and refuses to
delete a locked version, but judges "locked" by wall time and checks nothing else. This module
answers or vets these operations (path-style requests, classified by ``_protocol``):

* GetObjectRetention (moto has none): the version's ``Mode`` and ``RetainUntilDate``; 404
  NoSuchObjectLockConfiguration when it has none, 400 InvalidRequest when the bucket has no Object
  Lock, 404 NoSuchBucket / NoSuchKey / NoSuchVersion, 405 MethodNotAllowed on a delete marker.
* PutObjectRetention: 400 InvalidRequest "Bucket is missing Object Lock Configuration" without
  Object Lock; 400 MalformedXML for a body that is not XML, has only one of Mode and
  RetainUntilDate, or a Mode other than GOVERNANCE | COMPLIANCE (an empty ``<Retention/>`` asks to
  remove the retention); 400 InvalidArgument for a RetainUntilDate not in the future. While a
  COMPLIANCE retention is in force it can only be kept or extended: shortening it, switching it
  to GOVERNANCE or removing it is 403 AccessDenied "Access Denied", with or without
  ``x-amz-bypass-governance-retention``. While a GOVERNANCE retention is in force, shortening
  it, removing it or switching it to COMPLIANCE needs ``x-amz-bypass-governance-retention: true``
  (else 403 AccessDenied); extending it does not.
* DeleteObject with a version id: 403 AccessDenied "Access Denied" while the version is under a
  legal hold, a COMPLIANCE retention, or a GOVERNANCE retention without the bypass header set to
  exactly ``true`` (moto takes any non-empty value, even ``false``, as a bypass). Without a version
  id, moto adds a delete marker and the locked version survives, as on AWS.
* DeleteObjects: moto refuses locked versions per key (``AccessDenied`` in the result's Errors)
  and reads the bypass header exactly; this module only brings the sandbox clock in (below).
* PutObject with lock headers: 400 InvalidRequest without Object Lock, 400 InvalidArgument when
  only one of mode and retain-until date is given, for an unknown mode, or for a date not in the
  future. An object that takes the bucket's default retention gets its retain-until date counted
  from the sandbox clock (moto counts from wall time).
* PutObject with ``If-None-Match: *`` (conditional write, moto's own check): 412
  PreconditionFailed when the key's current version is an object; a delete marker as the current
  version lets it through, as AWS documents (the header looks at the current version only).

"In force" is judged by the sandbox clock (``world.clock.now()``), so a test that advances it past
a retain-until date may then delete the version. Moto still judges by wall time, so when the
sandbox clock says a retention has ended but moto's would not, the retention is cleared from that
version just before the delete is handed to moto (a version under a legal hold keeps it).

Not enforced here (moto's behaviour, or unsupported): PutObjectLegalHold / GetObjectLegalHold
checks, CopyObject and multipart uploads with lock headers, PutObjectLockConfiguration validation
(moto's), the per-version ``VersionId`` in DeleteObjects' errors (moto gives the key only),
IAM permissions ``s3:BypassGovernanceRetention`` / ``s3:PutObjectRetention`` (any principal allowed
to call may bypass), and virtual-hosted-style URLs. Writing over a locked object's key adds a
version, on AWS as in moto. Conditional writes are not atomic in moto (it checks, then writes,
without a lock), so two conditional writes racing on one key can both succeed here, where AWS
answers the loser 412 or 409 ConditionalRequestConflict.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

from ._protocol import AwsError, AwsRequest, Response
from ._registry import after_moto, handles
from ._state import Principal, World

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MODES = ("GOVERNANCE", "COMPLIANCE")
NO_LOCK_CONFIG = "Bucket is missing Object Lock Configuration"
NOT_FUTURE = "The retain until date must be in the future!"
MALFORMED = (
    "The XML you provided was not well-formed or did not validate against our published schema"
)


def _access_denied() -> AwsError:
    return AwsError("AccessDenied", "Access Denied", 403)


def _backend(principal: Principal) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[principal.account_id]["aws"]


def _bucket(principal: Principal, req: AwsRequest) -> Any | None:
    return _backend(principal).buckets.get(req.params.get("Bucket", ""))


def _is_delete_marker(version: Any) -> bool:
    from moto.s3.models import FakeDeleteMarker

    return isinstance(version, FakeDeleteMarker)


def _find_version(bucket: Any, key: str, version_id: str | None) -> Any | None:
    """The addressed version (the latest without a version id), or None if there is none."""
    versions = bucket.keys.getlist(key, []) or []
    if version_id is None:
        return versions[-1] if versions else None
    return next((v for v in versions if str(v.version_id) == version_id), None)


def _version_or_error(bucket: Any, req: AwsRequest) -> Any:
    """The addressed object version, or the error AWS answers when there is no such object."""
    key = req.params.get("Key", "")
    version_id = req.params.get("VersionId")
    version = _find_version(bucket, key, version_id)
    if version is None:
        if version_id is not None and bucket.keys.getlist(key, []):
            raise AwsError("NoSuchVersion", "The specified version does not exist.", 404)
        raise AwsError("NoSuchKey", "The specified key does not exist.", 404)
    if _is_delete_marker(version):
        if version_id is None:
            raise AwsError("NoSuchKey", "The specified key does not exist.", 404)
        raise AwsError(
            "MethodNotAllowed", "The specified method is not allowed against this resource.", 405
        )
    return version


def _parse_date(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _moto_date(value: dt.datetime) -> str:
    """A retain-until date in the form moto stores and parses."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _retention(version: Any) -> tuple[str | None, dt.datetime | None]:
    """The version's (mode, retain-until date), either None when it has no retention."""
    mode = version.lock_mode if version.lock_mode in MODES else None
    until = _parse_date(version.lock_until) if version.lock_until else None
    return mode, until


def _bypass(req: AwsRequest) -> bool:
    return str(req.params.get("BypassGovernanceRetention", "")).strip().lower() == "true"


def _deletion_refused(world: World, version: Any, bypass: bool) -> bool:
    """Whether AWS would refuse to delete ``version`` now (by the sandbox clock)."""
    if version.lock_legal_status == "ON":
        return True
    mode, until = _retention(version)
    if mode is None or until is None or until <= world.clock.now():
        return False
    return not (mode == "GOVERNANCE" and bypass)


def _release_expired(world: World, version: Any) -> None:
    """Clear a retention the sandbox clock has seen end, so moto (wall time) deletes too."""
    mode, until = _retention(version)
    if version.lock_legal_status == "ON" or mode is None or until is None:
        return
    if until <= world.clock.now():
        version.lock_mode = None
        version.lock_until = None


def _local(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rpartition("}")[2]


def _retention_body(body: bytes) -> tuple[str | None, dt.datetime | None]:
    """(Mode, RetainUntilDate) of a PutObjectRetention body; both None asks for removal."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise AwsError("MalformedXML", MALFORMED) from exc
    if _local(root.tag) != "Retention":
        raise AwsError("MalformedXML", MALFORMED)
    values = {_local(child.tag): (child.text or "").strip() for child in root}
    mode, until_text = values.get("Mode"), values.get("RetainUntilDate")
    if mode is None and until_text is None:
        return None, None
    if mode not in MODES or not until_text:
        raise AwsError("MalformedXML", MALFORMED)
    try:
        return mode, _parse_date(until_text)
    except ValueError as exc:
        raise AwsError("MalformedXML", MALFORMED) from exc


@handles("s3", "GetObjectRetention")
def get_object_retention(world: World, req: AwsRequest, principal: Principal) -> Response:
    bucket = _bucket(principal, req)
    if bucket is None:
        raise AwsError("NoSuchBucket", "The specified bucket does not exist", 404)
    if not bucket.object_lock_enabled:
        raise AwsError("InvalidRequest", NO_LOCK_CONFIG)
    with world.lock:
        version = _version_or_error(bucket, req)
        mode, until = _retention(version)
    if mode is None or until is None:
        raise AwsError(
            "NoSuchObjectLockConfiguration",
            "The specified object does not have a ObjectLock configuration",
            404,
        )
    stamp = until.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Retention xmlns="{S3_NS}"><Mode>{mode}</Mode>'
        f"<RetainUntilDate>{stamp}</RetainUntilDate></Retention>"
    )
    headers = [("x-amz-request-id", req.request_id), ("Content-Type", "application/xml")]
    return Response(200, headers, body.encode())


@handles("s3", "PutObjectRetention")
def put_object_retention(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    bucket = _bucket(principal, req)
    if bucket is None:
        return None  # moto answers NoSuchBucket
    if not bucket.object_lock_enabled:
        raise AwsError("InvalidRequest", NO_LOCK_CONFIG)
    new_mode, new_until = _retention_body(req.body)
    now = world.clock.now()
    if new_until is not None and new_until <= now:
        raise AwsError("InvalidArgument", NOT_FUTURE)
    with world.lock:
        version = _version_or_error(bucket, req)
        mode, until = _retention(version)
    if mode is None or until is None or until <= now:
        return None  # no retention in force: any new one may be set
    loosens = new_mode != mode or new_until is None or new_until < until
    if loosens and (mode == "COMPLIANCE" or not _bypass(req)):
        raise _access_denied()
    return None


@handles("s3", "DeleteObject")
def delete_object(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    version_id = req.params.get("VersionId")
    bucket = _bucket(principal, req)
    if version_id is None or bucket is None or not bucket.object_lock_enabled:
        return None  # a delete marker, or nothing lock-related: moto's answer is AWS's
    with world.lock:
        version = _find_version(bucket, req.params.get("Key", ""), version_id)
        if version is None or _is_delete_marker(version):
            return None
        if _deletion_refused(world, version, _bypass(req)):
            raise _access_denied()
        _release_expired(world, version)
    return None


@handles("s3", "DeleteObjects")
def delete_objects(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    bucket = _bucket(principal, req)
    if bucket is None or not bucket.object_lock_enabled:
        return None
    try:
        root = ET.fromstring(req.body)
    except ET.ParseError:
        return None  # moto answers MalformedXML
    with world.lock:
        for obj in root:
            if _local(obj.tag) != "Object":
                continue
            fields = {_local(child.tag): (child.text or "") for child in obj}
            key, version_id = fields.get("Key"), fields.get("VersionId")
            if key is None or version_id is None:
                continue
            version = _find_version(bucket, key, version_id)
            if version is not None and not _is_delete_marker(version):
                _release_expired(world, version)
    return None


@handles("s3", "PutObject")
def put_object(world: World, req: AwsRequest, principal: Principal) -> Response | None:
    mode = req.params.get("ObjectLockMode")
    until_text = req.params.get("ObjectLockRetainUntilDate")
    if mode is None and until_text is None:
        return None
    bucket = _bucket(principal, req)
    if bucket is None:
        return None
    if not bucket.object_lock_enabled:
        raise AwsError("InvalidRequest", NO_LOCK_CONFIG)
    if mode is None or until_text is None:
        raise AwsError(
            "InvalidArgument",
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
        )
    if mode not in MODES:
        raise AwsError("InvalidArgument", "Unknown wormMode directive.")
    try:
        until = _parse_date(until_text)
    except ValueError as exc:
        raise AwsError(
            "InvalidArgument", "The retain until date must be provided in ISO 8601 format"
        ) from exc
    if until <= world.clock.now():
        raise AwsError("InvalidArgument", NOT_FUTURE)
    return None


@after_moto("s3", "PutObject")
def default_retention_by_sandbox_clock(
    world: World, req: AwsRequest, principal: Principal, response: Response
) -> Response:
    """Count a default retention from the sandbox clock, as AWS counts it from the upload."""
    if "ObjectLockMode" in req.params or "ObjectLockRetainUntilDate" in req.params:
        return response
    bucket = _bucket(principal, req)
    if bucket is None or not bucket.has_default_lock:
        return response
    version_id = next((v for k, v in response.headers if k.lower() == "x-amz-version-id"), None)
    with world.lock:
        version = _find_version(bucket, req.params.get("Key", ""), version_id)
        if version is None or _is_delete_marker(version):
            return response
        days = int(bucket.default_lock_days or 0) + 365 * int(bucket.default_lock_years or 0)
        version.lock_mode = bucket.default_lock_mode
        version.lock_until = _moto_date(world.clock.now() + dt.timedelta(days=days))
    return response
