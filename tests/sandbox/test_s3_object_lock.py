"""Contract: S3 Object Lock protects archived run records as AWS does.

GetObjectRetention answers; a COMPLIANCE retention can be extended but neither shortened,
downgraded to GOVERNANCE nor removed; a GOVERNANCE retention yields only to
``x-amz-bypass-governance-retention: true``; a locked version cannot be deleted (DeleteObject with
a version id, DeleteObjects) until the sandbox clock passes its retain-until date, while a delete
without a version id only adds a delete marker.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runbook_sandbox import SandboxInfo
from runbook_sandbox._protocol import AwsRequest, parse_request

BUCKET = "run-records"
KEY = "runs/2024-05-01/record.json"


def _now() -> dt.datetime:
    """Whole seconds: what S3 keeps of a retain-until date is compared exactly below."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = exc.value.response
    error = response["Error"]
    return response["ResponseMetadata"]["HTTPStatusCode"], error["Code"], error["Message"]


def _denied(exc: pytest.ExceptionInfo[ClientError]) -> None:
    assert _error(exc) == (403, "AccessDenied", "Access Denied")


def _versions(s3: Any, key: str = KEY) -> list[str]:
    listing = s3.list_object_versions(Bucket=BUCKET, Prefix=key)
    return [v["VersionId"] for v in listing.get("Versions", []) if v["Key"] == key]


def _locked_bucket(s3: Any, bucket: str = BUCKET) -> None:
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)


def _put_locked(s3: Any, mode: str, until: dt.datetime, key: str = KEY) -> str:
    answer = s3.put_object(
        Bucket=BUCKET,
        Key=key,
        Body=b'{"run": "record"}',
        ObjectLockMode=mode,
        ObjectLockRetainUntilDate=until,
    )
    return str(answer["VersionId"])


def _retention(s3: Any, version_id: str, key: str = KEY) -> tuple[str, dt.datetime]:
    answer = s3.get_object_retention(Bucket=BUCKET, Key=key, VersionId=version_id)
    return answer["Retention"]["Mode"], answer["Retention"]["RetainUntilDate"]


@pytest.fixture
def s3(standalone: SandboxInfo) -> Any:
    client = standalone.client("s3")
    _locked_bucket(client)
    return client


def test_get_object_retention_returns_the_retention_put(s3: Any) -> None:
    until = _now() + dt.timedelta(days=30)
    version = _put_locked(s3, "COMPLIANCE", until)
    assert _retention(s3, version) == ("COMPLIANCE", until)
    latest = s3.get_object_retention(Bucket=BUCKET, Key=KEY)["Retention"]
    assert latest == {"Mode": "COMPLIANCE", "RetainUntilDate": until}


def test_object_without_retention_has_no_object_lock_configuration(s3: Any) -> None:
    version = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object_retention(Bucket=BUCKET, Key=KEY, VersionId=version)
    assert _error(exc)[:2] == (404, "NoSuchObjectLockConfiguration")


def test_compliance_retention_can_be_extended(s3: Any) -> None:
    until = _now() + dt.timedelta(days=1)
    version = _put_locked(s3, "COMPLIANCE", until)
    later = until + dt.timedelta(days=365)
    s3.put_object_retention(
        Bucket=BUCKET,
        Key=KEY,
        VersionId=version,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later},
    )
    assert _retention(s3, version) == ("COMPLIANCE", later)


@pytest.mark.parametrize("bypass", [False, True])
def test_compliance_retention_cannot_be_shortened(s3: Any, bypass: bool) -> None:
    until = _now() + dt.timedelta(days=30)
    version = _put_locked(s3, "COMPLIANCE", until)
    with pytest.raises(ClientError) as exc:
        s3.put_object_retention(
            Bucket=BUCKET,
            Key=KEY,
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - dt.timedelta(days=29)},
            BypassGovernanceRetention=bypass,
        )
    _denied(exc)
    assert _retention(s3, version) == ("COMPLIANCE", until)


@pytest.mark.parametrize("bypass", [False, True])
def test_compliance_retention_cannot_be_downgraded_to_governance(s3: Any, bypass: bool) -> None:
    until = _now() + dt.timedelta(days=30)
    version = _put_locked(s3, "COMPLIANCE", until)
    with pytest.raises(ClientError) as exc:
        s3.put_object_retention(
            Bucket=BUCKET,
            Key=KEY,
            VersionId=version,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until + dt.timedelta(days=1)},
            BypassGovernanceRetention=bypass,
        )
    _denied(exc)
    assert _retention(s3, version) == ("COMPLIANCE", until)


def test_compliance_retention_cannot_be_removed(s3: Any) -> None:
    until = _now() + dt.timedelta(days=30)
    version = _put_locked(s3, "COMPLIANCE", until)
    with pytest.raises(ClientError) as exc:
        s3.put_object_retention(
            Bucket=BUCKET, Key=KEY, VersionId=version, Retention={}, BypassGovernanceRetention=True
        )
    _denied(exc)
    assert _retention(s3, version) == ("COMPLIANCE", until)


@pytest.mark.parametrize("bypass", [None, False, True])
def test_compliance_locked_version_cannot_be_deleted(s3: Any, bypass: bool | None) -> None:
    version = _put_locked(s3, "COMPLIANCE", _now() + dt.timedelta(days=30))
    extra = {} if bypass is None else {"BypassGovernanceRetention": bypass}
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=version, **extra)
    _denied(exc)
    assert _versions(s3) == [version]


@pytest.mark.parametrize("bypass", [False, True])
def test_delete_objects_refuses_a_compliance_locked_version_per_key(s3: Any, bypass: bool) -> None:
    locked = _put_locked(s3, "COMPLIANCE", _now() + dt.timedelta(days=30))
    free = s3.put_object(Bucket=BUCKET, Key="scratch.txt", Body=b"x")["VersionId"]
    answer = s3.delete_objects(
        Bucket=BUCKET,
        Delete={
            "Objects": [
                {"Key": KEY, "VersionId": locked},
                {"Key": "scratch.txt", "VersionId": free},
            ]
        },
        BypassGovernanceRetention=bypass,
    )
    assert [(e["Key"], e["Code"]) for e in answer.get("Errors", [])] == [(KEY, "AccessDenied")]
    assert [(d["Key"], d["VersionId"]) for d in answer["Deleted"]] == [("scratch.txt", free)]
    assert _versions(s3) == [locked]
    assert _versions(s3, "scratch.txt") == []


def test_delete_without_version_id_only_adds_a_delete_marker(s3: Any) -> None:
    version = _put_locked(s3, "COMPLIANCE", _now() + dt.timedelta(days=30))
    answer = s3.delete_object(Bucket=BUCKET, Key=KEY)
    assert answer["DeleteMarker"] is True
    assert answer["VersionId"] != version
    assert _versions(s3) == [version]
    body = s3.get_object(Bucket=BUCKET, Key=KEY, VersionId=version)["Body"].read()
    assert body == b'{"run": "record"}'


def test_default_bucket_retention_locks_a_version_written_without_one(s3: Any) -> None:
    s3.put_object_lock_configuration(
        Bucket=BUCKET,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    version = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x")["VersionId"]
    mode, until = _retention(s3, version)
    assert mode == "COMPLIANCE"
    assert dt.timedelta(hours=23) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=version)
    _denied(exc)
    answer = s3.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": KEY, "VersionId": version}]}
    )
    assert [(e["Key"], e["Code"]) for e in answer.get("Errors", [])] == [(KEY, "AccessDenied")]
    assert _versions(s3) == [version]


def test_governance_retention_is_shortened_only_with_bypass(s3: Any) -> None:
    until = _now() + dt.timedelta(days=30)
    version = _put_locked(s3, "GOVERNANCE", until)
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": until - dt.timedelta(days=29)}
    for refused in ({}, {"BypassGovernanceRetention": False}):
        with pytest.raises(ClientError) as exc:
            s3.put_object_retention(
                Bucket=BUCKET, Key=KEY, VersionId=version, Retention=shorter, **refused
            )
        _denied(exc)
        assert _retention(s3, version) == ("GOVERNANCE", until)
    s3.put_object_retention(
        Bucket=BUCKET, Key=KEY, VersionId=version, Retention=shorter, BypassGovernanceRetention=True
    )
    assert _retention(s3, version) == ("GOVERNANCE", shorter["RetainUntilDate"])


def test_governance_retention_is_extended_and_made_compliance_as_aws_allows(s3: Any) -> None:
    until = _now() + dt.timedelta(days=1)
    version = _put_locked(s3, "GOVERNANCE", until)
    later = until + dt.timedelta(days=1)
    s3.put_object_retention(
        Bucket=BUCKET,
        Key=KEY,
        VersionId=version,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later},
    )
    assert _retention(s3, version) == ("GOVERNANCE", later)
    stricter = {"Mode": "COMPLIANCE", "RetainUntilDate": later}
    with pytest.raises(ClientError) as exc:
        s3.put_object_retention(Bucket=BUCKET, Key=KEY, VersionId=version, Retention=stricter)
    _denied(exc)
    s3.put_object_retention(
        Bucket=BUCKET,
        Key=KEY,
        VersionId=version,
        Retention=stricter,
        BypassGovernanceRetention=True,
    )
    assert _retention(s3, version) == ("COMPLIANCE", later)


def test_governance_locked_version_is_deleted_only_with_bypass_true(s3: Any) -> None:
    version = _put_locked(s3, "GOVERNANCE", _now() + dt.timedelta(days=30))
    for refused in ({}, {"BypassGovernanceRetention": False}):
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=version, **refused)
        _denied(exc)
        assert _versions(s3) == [version]
    s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=version, BypassGovernanceRetention=True)
    assert _versions(s3) == []


def test_retain_until_date_in_the_past_is_refused(s3: Any) -> None:
    version = _put_locked(s3, "GOVERNANCE", _now() + dt.timedelta(days=1))
    past = _now() - dt.timedelta(hours=1)
    with pytest.raises(ClientError) as exc:
        s3.put_object_retention(
            Bucket=BUCKET,
            Key=KEY,
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": past},
        )
    assert _error(exc) == (400, "InvalidArgument", "The retain until date must be in the future!")
    with pytest.raises(ClientError) as exc:
        _put_locked(s3, "COMPLIANCE", past, key="other.json")
    assert _error(exc)[:2] == (400, "InvalidArgument")
    assert _versions(s3, "other.json") == []


def test_bucket_without_object_lock_refuses_retention(standalone: SandboxInfo) -> None:
    s3 = standalone.client("s3")
    s3.create_bucket(Bucket="plain-bucket")
    s3.put_object(Bucket="plain-bucket", Key=KEY, Body=b"x")
    retention = {"Mode": "COMPLIANCE", "RetainUntilDate": _now() + dt.timedelta(days=1)}
    with pytest.raises(ClientError) as exc:
        s3.put_object_retention(Bucket="plain-bucket", Key=KEY, Retention=retention)
    assert _error(exc)[:2] == (400, "InvalidRequest")
    with pytest.raises(ClientError) as exc:
        s3.get_object_retention(Bucket="plain-bucket", Key=KEY)
    assert _error(exc)[:2] == (400, "InvalidRequest")


def test_locked_version_can_be_deleted_once_the_sandbox_clock_passes_retain_until(
    standalone: SandboxInfo, s3: Any
) -> None:
    until = _now() + dt.timedelta(minutes=10)
    one = _put_locked(s3, "COMPLIANCE", until)
    two = _put_locked(s3, "COMPLIANCE", until, key="second.json")
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=one)
    _denied(exc)
    standalone.control.advance_clock(11 * 60)
    # the retention is over: it may be replaced by any future one, and the versions deleted
    s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=one)
    answer = s3.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": "second.json", "VersionId": two}]}
    )
    assert answer.get("Errors", []) == []
    assert _versions(s3) == []
    assert _versions(s3, "second.json") == []


def test_retention_set_after_the_clock_moved_is_judged_by_the_sandbox_clock(
    standalone: SandboxInfo, s3: Any
) -> None:
    version = _put_locked(s3, "COMPLIANCE", _now() + dt.timedelta(minutes=10))
    standalone.control.advance_clock(2 * 86400)
    # wall time says the old retention still runs, the sandbox clock says it ended
    with pytest.raises(ClientError) as exc:
        s3.put_object_retention(
            Bucket=BUCKET,
            Key=KEY,
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": _now() + dt.timedelta(days=1)},
        )
    assert _error(exc)[:2] == (400, "InvalidArgument")
    s3.put_object_retention(
        Bucket=BUCKET,
        Key=KEY,
        VersionId=version,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": _now() + dt.timedelta(days=3)},
    )
    assert _retention(s3, version)[0] == "GOVERNANCE"


def test_default_retention_counts_from_the_sandbox_clock(standalone: SandboxInfo, s3: Any) -> None:
    s3.put_object_lock_configuration(
        Bucket=BUCKET,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    standalone.control.advance_clock(2 * 86400)
    version = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x")["VersionId"]
    _, until = _retention(s3, version)
    assert until - _now() > dt.timedelta(days=2, hours=23)
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=version)
    _denied(exc)


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "action", "params"),
    [
        ("PUT", "/b/k", "retention", {}, "PutObjectRetention", {"Bucket": "b", "Key": "k"}),
        (
            "GET",
            "/b/a/k",
            "retention&versionId=v1",
            {},
            "GetObjectRetention",
            {"Bucket": "b", "Key": "a/k", "VersionId": "v1"},
        ),
        (
            "DELETE",
            "/b/k",
            "versionId=v1",
            {"x-amz-bypass-governance-retention": "true"},
            "DeleteObject",
            {"Bucket": "b", "Key": "k", "VersionId": "v1", "BypassGovernanceRetention": "true"},
        ),
        ("POST", "/b", "delete", {}, "DeleteObjects", {"Bucket": "b"}),
        (
            "PUT",
            "/b/k",
            "",
            {"x-amz-object-lock-mode": "COMPLIANCE"},
            "PutObject",
            {"Bucket": "b", "Key": "k", "ObjectLockMode": "COMPLIANCE"},
        ),
        ("PUT", "/b/k", "acl", {}, "", {"Bucket": "b", "Key": "k"}),
        ("PUT", "/b", "", {}, "CreateBucket", {"Bucket": "b"}),
        ("PUT", "/b", "object-lock", {}, "PutObjectLockConfiguration", {"Bucket": "b"}),
        ("GET", "/", "", {}, "ListBuckets", {}),
    ],
)
def test_s3_requests_are_classified(
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    action: str,
    params: dict[str, str],
) -> None:
    req = AwsRequest(method=method, path=path, query_string=query, headers=headers, body=b"")
    req.service = "s3"
    parse_request(req)
    assert (req.action, req.params) == (action, params)


# --- conditional writes ------------------------------------------------------------------------
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html: If-None-Match: *
# makes the write fail when an object with the key exists; in a versioned bucket (every Object
# Lock bucket is one) it looks at the current version only. PutObject's API reference
# (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html, IfNoneMatch): 412
# Precondition Failed when the key exists; 409 ConditionalRequestConflict when a conflicting
# operation happens during the upload (retry).


def test_conditional_put_writes_a_new_key_with_its_lock(s3: Any) -> None:
    until = _now() + dt.timedelta(days=1)
    answer = s3.put_object(
        Bucket=BUCKET,
        Key=KEY,
        Body=b"first",
        IfNoneMatch="*",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )
    assert _versions(s3) == [answer["VersionId"]]
    assert _retention(s3, answer["VersionId"]) == ("COMPLIANCE", until)


@pytest.mark.parametrize("locked", [False, True])
def test_conditional_put_over_an_existing_key_is_412_and_adds_no_version(
    s3: Any, locked: bool
) -> None:
    first = _put_locked(s3, "COMPLIANCE", _now() + dt.timedelta(days=1))
    lock: dict[str, Any] = {}
    if locked:
        lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": _now()}
        lock["ObjectLockRetainUntilDate"] += dt.timedelta(days=2)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"forged", IfNoneMatch="*", **lock)
    status, code, _ = _error(exc)
    assert (status, code) == (412, "PreconditionFailed")
    assert _versions(s3) == [first]
    assert s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b'{"run": "record"}'


def test_conditional_put_looks_at_the_current_version_only(s3: Any) -> None:
    """A delete marker as the current version lets the conditional write through; the locked
    version stays, under the new one."""
    first = _put_locked(s3, "COMPLIANCE", _now() + dt.timedelta(days=1))
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    second = s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"again", IfNoneMatch="*")["VersionId"]
    assert _versions(s3) == [second, first]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"third", IfNoneMatch="*")
    assert _error(exc)[:2] == (412, "PreconditionFailed")
