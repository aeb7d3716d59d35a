"""Archive a sealed run record to S3 under Object Lock in COMPLIANCE mode (write once, read many).

``archive_run`` uploads one run's record so that nobody, the bucket owner and the account's root
user included, can delete or overwrite it until the retention date has passed::

    s3://BUCKET/PREFIX/<run_id>/run.json               every file the manifest lists
    s3://BUCKET/PREFIX/<run_id>/events.jsonl
    s3://BUCKET/PREFIX/<run_id>/snapshots/...
    s3://BUCKET/PREFIX/<run_id>/manifest.json          the manifest itself
    s3://BUCKET/PREFIX/<run_id>/ledger-entries.jsonl   this run's lines of runs/ledger.jsonl

Before anything is uploaded the record must be sealed final and pass
:func:`runbook_lib.record.verify`, every listed file is read (never through a symbolic link) and
must still match the manifest's sha256 and size, no file may hold anything that looks like a
secret (:mod:`runbook_lib.secrets_scan`: its patterns, and the fingerprints of the credentials
the run handled, read from its events; a record under COMPLIANCE retention could never be
cleaned), and the bucket must have Object Lock enabled. Any refusal happens before the first
upload, so a refused archive leaves the bucket untouched.

Every object is put with ``ObjectLockMode=COMPLIANCE``, ``ObjectLockRetainUntilDate`` = now +
``retain_days`` (UTC, whole seconds), ``ChecksumSHA256`` = the manifest's digest (S3 refuses
the upload if the bytes it receives differ) and the user metadata ``sha256`` = that digest in hex.
Afterwards each object is checked: GetObjectRetention must show COMPLIANCE until at least the
requested date, and HeadObject must show the uploaded version with the expected size (and
SHA-256 checksum, when the endpoint returns one); a mismatch raises :class:`RunbookError` naming
the key.

Re-archiving is allowed and idempotent in effect: uploading the same run again puts *new
versions* of the same keys, each with its own retention; the versions already locked stay, and
neither they nor their retention can be removed or shortened. A failure part-way (network,
permissions) can leave some objects uploaded; run the archive again, which uploads them all anew.

IAM permissions the caller needs on the bucket (``policies/runbook-archive.json``)::

    s3:GetBucketObjectLockConfiguration   on arn:aws:s3:::BUCKET     (GetObjectLockConfiguration)
    s3:PutObject                          on arn:aws:s3:::BUCKET/*   (PutObject)
    s3:PutObjectRetention                 on arn:aws:s3:::BUCKET/*   (PutObject with lock headers)
    s3:GetObjectRetention                 on arn:aws:s3:::BUCKET/*   (GetObjectRetention)
    s3:GetObject                          on arn:aws:s3:::BUCKET/*   (HeadObject)

HeadObject is asked for the *latest* version and its version id compared with the one uploaded
(a HEAD with a version id would need ``s3:GetObjectVersion`` too); if another writer puts the same
key in between, the check fails and names the key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .aws import AwsContext, call
from .errors import AwsActionError, ParameterError, PreconditionError, RunbookError
from .record import EVENTS_FILE, LEDGER_FILE, MANIFEST_FILE, verify
from .secrets_scan import file_findings, fingerprints_in_events_bytes

__all__ = ["LEDGER_ENTRIES_OBJECT", "MAX_RETAIN_DAYS", "MODE", "archive_run", "parse_destination"]

MODE = "COMPLIANCE"
MAX_RETAIN_DAYS = 36500
LEDGER_ENTRIES_OBJECT = "ledger-entries.jsonl"
CREATE_BUCKET_HINT = (
    "Archive to a bucket created with Object Lock, e.g. `aws s3api create-bucket --bucket NAME "
    "--object-lock-enabled-for-bucket` (add --create-bucket-configuration "
    "LocationConstraint=REGION outside us-east-1), or enable it on a versioned bucket with "
    "`aws s3api put-object-lock-configuration --bucket NAME --object-lock-configuration "
    "ObjectLockEnabled=Enabled`."
)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class _Upload:
    """One object to put: its key, bytes and the digest they must have."""

    key: str
    body: bytes
    sha256: str

    @property
    def size(self) -> int:
        return len(self.body)


def archive_run(
    run_dir: Path,
    destination: str,
    retain_days: int,
    *,
    profile: str | None = None,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    aws: AwsContext | None = None,
) -> dict[str, Any]:
    """Upload the sealed run at ``run_dir`` to ``destination`` (``s3://BUCKET[/PREFIX]``) under a
    COMPLIANCE retention of ``retain_days`` days; return what was archived.

    The result: ``{"run_id", "bucket", "prefix", "objects": [{"key", "version_id", "sha256",
    "size"}], "retain_until", "mode": "COMPLIANCE"}`` (``retain_until`` in ISO 8601, UTC).

    Raises :class:`ParameterError` for a bad destination or ``retain_days`` (not 1..36500),
    :class:`PreconditionError` for a record that is not sealed final, fails verification or
    changed on disk, and for a bucket without Object Lock (nothing is uploaded in these cases),
    :class:`AwsActionError` when an S3 call fails, and :class:`RunbookError` when an uploaded
    object does not show the expected retention, version or size. ``aws`` overrides
    ``profile``/``endpoint_url``/``region`` (tests inject a context). See the module docstring
    for the IAM permissions and what a re-archive does.
    """
    bucket, prefix = _check_parameters(destination, retain_days)
    run_dir = Path(run_dir)
    run_id, uploads = _collect(run_dir, prefix)

    if aws is None:
        aws = AwsContext.from_profile(profile, region, endpoint_url)
    s3 = aws.client("s3")
    _require_object_lock(s3, bucket)

    retain_until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=retain_days)).replace(microsecond=0)
    objects: list[dict[str, Any]] = []
    for upload in uploads:
        answer = call(
            s3,
            "put_object",
            "s3:PutObject and s3:PutObjectRetention",
            Bucket=bucket,
            Key=upload.key,
            Body=upload.body,
            ObjectLockMode=MODE,
            ObjectLockRetainUntilDate=retain_until,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=_b64(upload.sha256),
            Metadata={"sha256": upload.sha256},
        )
        version_id = answer.get("VersionId")
        if not version_id:
            raise RunbookError(
                f"PutObject of s3://{bucket}/{upload.key} returned no version id: the bucket is "
                "not versioned, so it has no Object Lock. Nothing is protected; "
                + CREATE_BUCKET_HINT
            )
        objects.append(
            {
                "key": upload.key,
                "version_id": str(version_id),
                "sha256": upload.sha256,
                "size": upload.size,
            }
        )

    for upload, obj in zip(uploads, objects, strict=True):
        _check_uploaded(s3, bucket, upload, obj["version_id"], retain_until)

    return {
        "run_id": run_id,
        "bucket": bucket,
        "prefix": prefix,
        "objects": objects,
        "retain_until": retain_until.isoformat().replace("+00:00", "Z"),
        "mode": MODE,
    }


# --- parameters -------------------------------------------------------------------------------


def parse_destination(destination: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, prefix without surrounding slashes), or
    :class:`ParameterError` naming every problem."""
    problems: list[str] = []
    bucket, prefix = _parse_destination(destination, problems)
    if problems:
        raise ParameterError(problems)
    return bucket, prefix


def _check_parameters(destination: str, retain_days: int) -> tuple[str, str]:
    problems: list[str] = []
    bucket, prefix = _parse_destination(destination, problems)
    if isinstance(retain_days, bool) or not isinstance(retain_days, int):
        problems.append(f"retain_days must be a whole number of days, not {retain_days!r}")
    elif not 1 <= retain_days <= MAX_RETAIN_DAYS:
        problems.append(
            f"retain_days must be between 1 and {MAX_RETAIN_DAYS} (100 years), not {retain_days}"
        )
    if problems:
        raise ParameterError(problems)
    return bucket, prefix


def _parse_destination(destination: str, problems: list[str]) -> tuple[str, str]:
    if not isinstance(destination, str) or not destination.startswith("s3://"):
        problems.append(
            f"destination {destination!r} must look like s3://BUCKET or s3://BUCKET/PREFIX"
        )
        return "", ""
    bucket, _, prefix = destination[len("s3://") :].partition("/")
    problems.extend(_bucket_problems(bucket))
    prefix = prefix.strip("/")
    if prefix:
        parts = prefix.split("/")
        if any(part in ("", ".", "..") for part in parts):
            problems.append(
                f"destination prefix {prefix!r} must not contain empty, '.' or '..' segments"
            )
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in prefix):
            problems.append(
                f"destination prefix {prefix!r} must not contain control characters or '\\'"
            )
        if len(prefix.encode("utf-8")) > _MAX_KEY_BYTES // 2:
            problems.append(f"destination prefix is longer than {_MAX_KEY_BYTES // 2} bytes")
    return bucket, prefix


def _bucket_problems(bucket: str) -> list[str]:
    """What makes ``bucket`` an invalid S3 bucket name (general purpose bucket rules)."""
    if not bucket:
        return ["destination has no bucket name: use s3://BUCKET or s3://BUCKET/PREFIX"]
    why: list[str] = []
    if not _BUCKET.fullmatch(bucket):
        why.append(
            "3-63 characters of lowercase letters, digits, '.' and '-', starting and ending "
            "with a letter or digit"
        )
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        why.append("no '..', '.-' or '-.'")
    if _IP_ADDRESS.fullmatch(bucket):
        why.append("not an IP address")
    if bucket.startswith(_BUCKET_PREFIXES) or bucket.endswith(_BUCKET_SUFFIXES):
        why.append("no reserved prefix or suffix (xn--, sthree-, -s3alias, --ol-s3, ...)")
    if not why:
        return []
    return [f"bucket name {bucket!r} is not valid: it must have " + "; ".join(why)]


# --- the record -------------------------------------------------------------------------------


def _collect(run_dir: Path, prefix: str) -> tuple[str, list[_Upload]]:
    """The run id and every object to upload, read and checked against the manifest."""
    report = verify(run_dir)
    problems = list(report.problems)
    if report.sealed and not report.final:
        problems.insert(0, "the run is sealed only as a checkpoint, not final")
    elif not report.sealed and not any("not sealed" in p for p in problems):
        problems.insert(0, "the run is not sealed")
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise PreconditionError(
            f"Refused to archive {run_dir}: only a record sealed final that passes verification "
            f"is archived. Nothing was uploaded. Problems:\n{listing}\n"
            "Seal the run final (or investigate the tampering) and retry."
        )

    manifest_bytes = _read_regular(run_dir, MANIFEST_FILE)
    manifest = json.loads(manifest_bytes.decode("utf-8"))
    run_id = str(manifest["run_id"])
    files: dict[str, Any] = manifest["files"]
    base = f"{prefix}/{run_id}" if prefix else run_id

    uploads: list[_Upload] = []
    changed: list[str] = []
    for rel, meta in sorted(files.items()):
        _check_relpath(rel)
        if rel in (MANIFEST_FILE, LEDGER_ENTRIES_OBJECT):
            changed.append(f"{rel}: the manifest lists a file whose name the archive reserves")
            continue
        body = _read_regular(run_dir, rel)
        sha = hashlib.sha256(body).hexdigest()
        if not isinstance(meta, dict) or meta.get("sha256") != sha or meta.get("size") != len(body):
            changed.append(f"{rel}: changed since the seal (sha256 or size differs)")
            continue
        uploads.append(_Upload(_key(base, rel), body, sha))
    if changed:
        listing = "\n".join(f"  - {p}" for p in changed)
        raise PreconditionError(
            f"Refused to archive {run_dir}: its files changed while being read. Nothing was "
            f"uploaded. Problems:\n{listing}"
        )
    _refuse_secrets(run_dir, base, uploads)

    uploads.append(
        _Upload(
            _key(base, MANIFEST_FILE), manifest_bytes, hashlib.sha256(manifest_bytes).hexdigest()
        )
    )
    ledger = _ledger_entries(run_dir.parent / LEDGER_FILE, run_id, manifest_bytes)
    uploads.append(
        _Upload(_key(base, LEDGER_ENTRIES_OBJECT), ledger, hashlib.sha256(ledger).hexdigest())
    )
    return run_id, uploads


def _refuse_secrets(run_dir: Path, base: str, uploads: list[_Upload]) -> None:
    """PreconditionError naming each file and kind if any file holds what looks like a secret
    (patterns, and the fingerprints the record's events carry); never the value."""
    bodies = {upload.key[len(base) + 1 :]: upload.body for upload in uploads}
    fingerprints = fingerprints_in_events_bytes(bodies.get(EVENTS_FILE, b""))
    problems = [
        f"{rel}: {located.finding.kind} ({located})"
        for rel, body in bodies.items()
        for located in file_findings(body, rel, (), fingerprints)
    ]
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise PreconditionError(
            f"Refused to archive {run_dir}: it holds what looks like a secret, and an archive "
            "under COMPLIANCE retention could never be cleaned. Nothing was uploaded. "
            f"Findings (the values are not shown):\n{listing}{more}\nFind out how it got "
            "there; rotate the credential; do not archive this record as it is."
        )


def _check_relpath(rel: str) -> None:
    pure = PurePosixPath(rel)
    if (
        not rel
        or pure.is_absolute()
        or "\\" in rel
        or any(part in ("", ".", "..") for part in rel.split("/"))
    ):
        raise PreconditionError(f"Refused to archive: the manifest lists an unsafe path {rel!r}")


def _key(base: str, rel: str) -> str:
    key = f"{base}/{rel}"
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise ParameterError([f"object key {key!r} would be longer than {_MAX_KEY_BYTES} bytes"])
    return key


def _read_regular(run_dir: Path, rel: str) -> bytes:
    """The bytes of ``run_dir/rel``, opening every component without following symbolic links;
    PreconditionError if any component is a link or the file is not a regular file."""
    parts = rel.split("/")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        dir_fd = os.open(run_dir, flags | os.O_DIRECTORY)
    except OSError as err:
        raise PreconditionError(f"Refused to archive: cannot open {run_dir}: {err}") from err
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, flags | os.O_DIRECTORY, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        fd = os.open(parts[-1], flags, dir_fd=dir_fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PreconditionError(f"Refused to archive: {rel} is not a regular file")
            chunks: list[bytes] = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    except OSError as err:
        raise PreconditionError(
            f"Refused to archive: cannot read {rel} without following a symbolic link: "
            f"{err.strerror or err}. Nothing was uploaded."
        ) from err
    finally:
        os.close(dir_fd)


def _ledger_entries(ledger: Path, run_id: str, manifest_bytes: bytes) -> bytes:
    """This run's lines of the ledger, byte for byte; the last one must name the manifest."""
    try:
        raw = ledger.read_bytes()
    except OSError as err:
        raise PreconditionError(
            f"Refused to archive: cannot read the ledger {ledger}: {err}. Nothing was uploaded."
        ) from err
    mine: list[bytes] = []
    last: dict[str, Any] | None = None
    for line in raw.splitlines(keepends=True):
        try:
            entry = json.loads(line.decode("utf-8"))
        except ValueError:
            continue  # verify() already accepted the ledger; torn lines belong to no run
        if isinstance(entry, dict) and entry.get("run_id") == run_id:
            mine.append(line if line.endswith(b"\n") else line + b"\n")
            last = entry
    if last is None or last.get("manifest_sha256") != hashlib.sha256(manifest_bytes).hexdigest():
        raise PreconditionError(
            f"Refused to archive run {run_id}: the ledger {ledger} changed while being read (its "
            "latest entry for the run does not name manifest.json). Nothing was uploaded."
        )
    return b"".join(mine)


# --- S3 ---------------------------------------------------------------------------------------


def _require_object_lock(s3: Any, bucket: str) -> None:
    try:
        answer = call(
            s3,
            "get_object_lock_configuration",
            "s3:GetBucketObjectLockConfiguration",
            Bucket=bucket,
        )
    except AwsActionError as err:
        if err.code == "ObjectLockConfigurationNotFoundError":
            raise PreconditionError(
                f"Bucket {bucket} does not have Object Lock enabled, so an archive there could be "
                f"deleted or overwritten. Nothing was uploaded. {CREATE_BUCKET_HINT}"
            ) from err
        if err.code == "NoSuchBucket":
            raise PreconditionError(
                f"Bucket {bucket} does not exist. Nothing was uploaded. {CREATE_BUCKET_HINT}"
            ) from err
        raise
    enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
    if enabled != "Enabled":
        raise PreconditionError(
            f"Bucket {bucket} does not have Object Lock enabled (ObjectLockEnabled is "
            f"{enabled!r}). Nothing was uploaded. {CREATE_BUCKET_HINT}"
        )


def _check_uploaded(
    s3: Any, bucket: str, upload: _Upload, version_id: str, retain_until: dt.datetime
) -> None:
    """RunbookError naming the key unless the version is locked as asked and has our bytes."""
    where = f"s3://{bucket}/{upload.key} (version {version_id})"
    retention = call(
        s3,
        "get_object_retention",
        "s3:GetObjectRetention",
        Bucket=bucket,
        Key=upload.key,
        VersionId=version_id,
    ).get("Retention", {})
    mode, until = retention.get("Mode"), retention.get("RetainUntilDate")
    if mode != MODE:
        raise RunbookError(
            f"{where} has retention mode {mode!r}, not {MODE}: it is not protected as asked."
        )
    if not isinstance(until, dt.datetime) or _utc(until) < retain_until:
        raise RunbookError(
            f"{where} is retained until {until}, earlier than the requested "
            f"{retain_until.isoformat()}."
        )
    head = call(
        s3, "head_object", "s3:GetObject", Bucket=bucket, Key=upload.key, ChecksumMode="ENABLED"
    )
    if str(head.get("VersionId")) != version_id:
        raise RunbookError(
            f"s3://{bucket}/{upload.key}: its latest version is {head.get('VersionId')}, not the "
            f"one just uploaded ({version_id}): someone else wrote this key meanwhile. Check the "
            "versions and archive again."
        )
    if head.get("ContentLength") != upload.size:
        raise RunbookError(
            f"{where} holds {head.get('ContentLength')} bytes, not the {upload.size} uploaded."
        )
    checksum = head.get("ChecksumSHA256")
    if checksum is not None and checksum != _b64(upload.sha256):
        raise RunbookError(f"{where} has a SHA-256 checksum that differs from the manifest's.")


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
