"""Archive a sealed run record to S3 under Object Lock in COMPLIANCE mode (write once, read many),
and check a local record against that copy: an anchor outside the operator's reach.

``archive_run`` uploads one run's record so that nobody, the bucket owner and the account's root
user included, can delete its versions or shorten their retention until the retention date::

    s3://BUCKET/PREFIX/<run_id>/manifest.json          the seal files first: manifest.json,
    s3://BUCKET/PREFIX/<run_id>/SHA256SUMS             SHA256SUMS and SHA256SUMS.sig (those
    s3://BUCKET/PREFIX/<run_id>/SHA256SUMS.sig         that exist)
    s3://BUCKET/PREFIX/<run_id>/ledger-entries.jsonl   this run's lines of runs/ledger.jsonl
    s3://BUCKET/PREFIX/<run_id>/run.json               every file the manifest lists, except
    s3://BUCKET/PREFIX/<run_id>/events.jsonl           the empty lock file run.json.lock
    s3://BUCKET/PREFIX/<run_id>/snapshots/...
    s3://BUCKET/PREFIX/<run_id>/ledger-head.json       the ledger's last entry when archived
    s3://BUCKET/PREFIX/ledger-heads/<seq:08d>-<hash>-<run_id>.json   the same, beside every
                                                                     other archive's heads

A ledger head is ``{"seq", "hash", "run_id", "archived_at"}``: the runs dir's ledger's last
entry at archive time (``run_id`` names the run being archived). The ledger is append-only, so
every head ever archived must stay an entry of it; a run later deleted from the local ledger
(its entries removed and the ledger re-chained, which the local record alone cannot tell) shows
as heads the ledger no longer holds. Archive one runs dir (one ledger) per PREFIX.

Before anything is uploaded the record must be sealed final and pass
:func:`~runbook_lib.record.verify.verify`, every listed file is read (never through a symbolic
link) and must still match the manifest's sha256 and size, no file may hold anything that looks
like a secret (:mod:`runbook_lib.record.secrets`: its patterns, and the fingerprints of the
credentials the run handled, read from its events; a record under COMPLIANCE retention could
never be cleaned), and the bucket must have Object Lock enabled.

Then what is already archived under ``PREFIX/<run_id>/`` decides (ListObjectVersions; each key is
compared by its bytes with its *first* version ever written, the anchor):

* nothing: everything is uploaded (``status`` ``"archived"``);
* every key byte-identical to the local copy: nothing is uploaded (``"already archived,
  identical"``); the anchors' retention is checked, and extended if shorter than asked;
* the archived manifest.json identical but some files missing (an archive that failed part-way:
  the seal files go first, so the manifest binds every missing file), or no ledger head yet (an
  archive made before heads were archived): those are uploaded (``"completed"``);
* anything else (a file that differs, exists only locally or only in the archive): refused with
  :class:`PreconditionError` naming each, and nothing is uploaded. A forged record cannot be put
  over an archived one.

Every object is put with ``If-None-Match: *`` (S3 conditional write: it fails with 412
PreconditionFailed if the key's current version exists, closing the race between that check and
the upload; 409 ConditionalRequestConflict is retried), ``ObjectLockMode=COMPLIANCE``,
``ObjectLockRetainUntilDate`` = now + ``retain_days`` (UTC, whole seconds), ``ChecksumSHA256``
(S3 refuses the upload if the bytes it receives differ) and the user metadata ``sha256``.
Afterwards each uploaded version is checked: GetObjectRetention must show COMPLIANCE until at
least the requested date, HeadObject of that version the expected size (and SHA-256 checksum,
when the endpoint returns one), and a last listing that it is still the key's latest version; a
mismatch raises :class:`RunbookError` naming the key. Someone else's write between the listing
and the upload stops the archive (:class:`PreconditionError`) with what was uploaded so far
named; ``runbook verify RUN --against`` then shows the state.

``verify_against`` (``runbook verify RUN --against s3://BUCKET/PREFIX``) lists every version under
``PREFIX/<run_id>/`` and ``PREFIX/ledger-heads/`` and returns an :class:`ArchiveReport`: a key
with more than one version (overwritten, or hidden by a delete marker: with dates), a latest
version that differs from the first, a local file that differs from the first version, files
only local (the lock file aside) or only archived, a first version not under COMPLIANCE
retention, and every archived ledger head the local ledger (``run_dir.parent/ledger.jsonl``)
does not hold with the same seq and hash.

IAM permissions of ``runbook archive`` on the bucket (``policies/runbook-archive.json``)::

    s3:GetBucketObjectLockConfiguration   on arn:aws:s3:::BUCKET     (GetObjectLockConfiguration)
    s3:ListBucketVersions                 on arn:aws:s3:::BUCKET     (ListObjectVersions)
    s3:PutObject                          on arn:aws:s3:::BUCKET/*   (PutObject, If-None-Match)
    s3:PutObjectRetention                 on arn:aws:s3:::BUCKET/*   (lock headers; extending)
    s3:GetObjectRetention                 on arn:aws:s3:::BUCKET/*   (GetObjectRetention)
    s3:GetObjectVersion                   on arn:aws:s3:::BUCKET/*   (Get/HeadObject of a version)

and of ``runbook verify --against``, read only (``policies/runbook-verify-archive.json``)::

    s3:ListBucketVersions                 on arn:aws:s3:::BUCKET     (ListObjectVersions)
    s3:GetObjectVersion                   on arn:aws:s3:::BUCKET/*   (GetObject of a version)
    s3:GetObjectRetention                 on arn:aws:s3:::BUCKET/*   (GetObjectRetention)

Limits: the anchor is as good as the bucket. Retention ends on its date (then versions can be
deleted); whoever may write the prefix can add versions (verify reports them, and the first
version stays the anchor), and a key whose only version was deleted after its retention ended
reads as never archived. Versions are ordered as ListObjectVersions lists them (latest first).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from ..aws.session import AwsContext, call
from ..errors import (
    AwsActionError,
    ParameterError,
    PreconditionError,
    RunbookError,
    from_client_error,
)
from .chain import canonical
from .layout import (
    EVENTS_FILE,
    LEDGER_ENTRIES_FILE,
    LEDGER_FILE,
    LEDGER_HEAD_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    SEAL_FILES,
)
from .ledger import parse_entry, split_ledger
from .secrets import file_findings, fingerprints_in_events_bytes
from .verify import verify

__all__ = [
    "LEDGER_ENTRIES_OBJECT",
    "LEDGER_HEADS_PREFIX",
    "MAX_RETAIN_DAYS",
    "MODE",
    "STATUS_ARCHIVED",
    "STATUS_COMPLETED",
    "STATUS_IDENTICAL",
    "ArchiveReport",
    "archive_run",
    "parse_destination",
    "verify_against",
]

MODE = "COMPLIANCE"
MAX_RETAIN_DAYS = 36500
LEDGER_ENTRIES_OBJECT = LEDGER_ENTRIES_FILE
LEDGER_HEADS_PREFIX = "ledger-heads"
STATUS_ARCHIVED = "archived"
STATUS_IDENTICAL = "already archived, identical"
STATUS_COMPLETED = "completed"
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
# names an archived run copy reserves: a manifest may not list them
_RESERVED = {LEDGER_ENTRIES_FILE, LEDGER_HEAD_FILE, *SEAL_FILES}
_CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class _Upload:
    """One object to put: its key, bytes and the digest they must have."""

    key: str
    body: bytes
    sha256: str

    @property
    def size(self) -> int:
        return len(self.body)


def _upload(key: str, body: bytes) -> _Upload:
    return _Upload(key, body, hashlib.sha256(body).hexdigest())


@dataclass(frozen=True)
class _Version:
    """One entry of ListObjectVersions for a key (listed latest first)."""

    version_id: str
    last_modified: dt.datetime | None
    delete_marker: bool

    @property
    def when(self) -> str:
        return _iso(self.last_modified) if self.last_modified else "an unknown time"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "last_modified": _iso(self.last_modified) if self.last_modified else None,
            "delete_marker": self.delete_marker,
        }


@dataclass(frozen=True)
class _Collected:
    run_id: str
    base: str
    uploads: list[_Upload]  # the run's copy, seal files first
    head: dict[str, Any]  # the ledger's last entry


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
    """Archive the sealed run at ``run_dir`` to ``destination`` (``s3://BUCKET[/PREFIX]``) under a
    COMPLIANCE retention of ``retain_days`` days, unless it is archived there already; return
    what the archive holds.

    The result: ``{"run_id", "bucket", "prefix", "status", "uploaded", "objects": [{"key",
    "version_id", "sha256", "size", "uploaded"}], "ledger_head": {"key", "seq", "hash"} | None,
    "retain_until", "mode": "COMPLIANCE", "retention_extended": [key...], "warnings": [...]}``;
    ``status`` is ``"archived"``, ``"already archived, identical"`` (nothing uploaded; the
    objects are the archived first versions) or ``"completed"`` (a partial archive completed);
    ``retain_until`` in ISO 8601, UTC; ``warnings`` names keys with later versions.

    Raises :class:`ParameterError` for a bad destination or ``retain_days`` (not 1..36500),
    :class:`PreconditionError` for a record that is not sealed final, fails verification or
    changed on disk, for a bucket without Object Lock, and for an archived copy that differs
    from the record (nothing is uploaded in these cases) or a key someone else wrote during
    the upload, :class:`AwsActionError` when an S3 call fails, and :class:`RunbookError` when
    an uploaded object does not show the expected retention, version or size. ``aws``
    overrides ``profile``/``endpoint_url``/``region`` (tests inject a context). See the
    module docstring for the IAM permissions.
    """
    bucket, prefix = _check_parameters(destination, retain_days)
    run_dir = Path(run_dir)
    collected = _collect(run_dir, prefix)
    base = collected.base

    if aws is None:
        aws = AwsContext.from_profile(profile, region, endpoint_url)
    s3 = aws.client("s3")
    _require_object_lock(s3, bucket)
    retain_until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=retain_days)).replace(microsecond=0)

    archived = _survey(s3, bucket, f"{base}/")
    todo, anchors, warnings = _plan(s3, bucket, run_dir, collected, archived)
    head_body = _head_body(collected.head, collected.run_id)
    head_key = _key(
        prefix,
        f"{LEDGER_HEADS_PREFIX}/{int(collected.head['seq']):08d}-{collected.head['hash']}-"
        f"{collected.run_id}.json",
    )
    heads: list[_Upload] = []
    if _anchor(archived.get(_key(base, LEDGER_HEAD_FILE), [])) is None:
        # a first archive, or one made before ledger heads were archived: anchor it now
        heads = [_upload(_key(base, LEDGER_HEAD_FILE), head_body), _upload(head_key, head_body)]
    if not archived:
        status = STATUS_ARCHIVED
    elif todo or heads:
        status = STATUS_COMPLETED
    else:
        status = STATUS_IDENTICAL

    objects: list[dict[str, Any]] = []
    uploaded: list[tuple[_Upload, str]] = []
    for upload in [*todo, *heads]:
        version_id = _put(s3, bucket, upload, retain_until, uploaded, head=upload.key == head_key)
        if version_id is None:  # a ledger head already there (same seq, hash and run)
            continue
        uploaded.append((upload, version_id))
    for upload, version_id in uploaded:
        _check_uploaded(s3, bucket, upload, version_id, retain_until)
    _check_still_latest(s3, bucket, base, uploaded)

    extended: list[str] = []
    for upload, version_id in anchors:
        if _ensure_retention(s3, bucket, upload.key, version_id, retain_until):
            extended.append(upload.key)
        objects.append(_object(upload, version_id, uploaded=False))
    objects += [_object(upload, version_id, uploaded=True) for upload, version_id in uploaded]
    objects.sort(key=lambda o: o["key"])

    return {
        "run_id": collected.run_id,
        "bucket": bucket,
        "prefix": prefix,
        "status": status,
        "uploaded": len(uploaded),
        "objects": objects,
        "ledger_head": (
            {"key": head_key, "seq": collected.head["seq"], "hash": collected.head["hash"]}
            if heads
            else None
        ),
        "retain_until": _iso(retain_until),
        "mode": MODE,
        "retention_extended": extended,
        "warnings": warnings,
    }


def _object(upload: _Upload, version_id: str, *, uploaded: bool) -> dict[str, Any]:
    return {
        "key": upload.key,
        "version_id": version_id,
        "sha256": upload.sha256,
        "size": upload.size,
        "uploaded": uploaded,
    }


def _plan(
    s3: Any,
    bucket: str,
    run_dir: Path,
    collected: _Collected,
    archived: dict[str, list[_Version]],
) -> tuple[list[_Upload], list[tuple[_Upload, str]], list[str]]:
    """What to upload, the archived anchors that match (upload, version id), and warnings; or
    PreconditionError naming every difference between the record and the archived copy."""
    base = collected.base
    local = {upload.key: upload for upload in collected.uploads}
    differences: list[str] = []
    anchors: list[tuple[_Upload, str]] = []
    warnings: list[str] = []
    for key, versions in sorted(archived.items()):
        rel = key[len(base) + 1 :]
        if rel in (LEDGER_HEAD_FILE, LOCK_FILE):
            continue
        anchor = _anchor(versions)
        if len(versions) > 1:
            warnings.append(
                f"{key}: {len(versions)} versions in the archive (first written "
                f"{versions[-1].when}): someone wrote over it; run `runbook verify RUN "
                "--against` to see them"
            )
        if key not in local:
            differences.append(f"{rel}: only in the archive")
        elif anchor is None:
            continue  # only delete markers: as if never archived (named below if missing)
        elif _sha256(_get_version(s3, bucket, key, anchor.version_id)) != local[key].sha256:
            differences.append(
                f"{rel}: differs from the archived copy (first written {anchor.when})"
            )
        else:
            anchors.append((local[key], anchor.version_id))
    missing = [u for u in collected.uploads if _anchor(archived.get(u.key, [])) is None]
    manifest_key = _key(base, MANIFEST_FILE)
    manifest_anchored = any(u.key == manifest_key for u, _ in anchors)
    if archived and missing and (differences or not manifest_anchored):
        differences += [f"{u.key[len(base) + 1 :]}: only in the local record" for u in missing]
    if differences:
        listing = "\n".join(f"  - {d}" for d in differences)
        raise PreconditionError(
            f"Refused to archive {run_dir}: s3://{bucket}/{base}/ already holds an archived copy "
            f"of run {collected.run_id} that differs from this record. Nothing was uploaded. "
            f"Differences (against the first version of each key):\n{listing}\nThe archived "
            "copy is the anchor: find out which record is genuine (`runbook verify RUN "
            "--against`)."
        )
    return missing, anchors, warnings


def _anchor(versions: list[_Version]) -> _Version | None:
    """The first version ever written that is an object (listings are latest first)."""
    objects = [v for v in versions if not v.delete_marker]
    return objects[-1] if objects else None


def _head_body(head: dict[str, Any], run_id: str) -> bytes:
    body = {
        "seq": head["seq"],
        "hash": head["hash"],
        "run_id": run_id,
        "archived_at": _iso(dt.datetime.now(dt.UTC).replace(microsecond=0)),
    }
    return (canonical(body) + "\n").encode("utf-8")


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


def _collect(run_dir: Path, prefix: str) -> _Collected:
    """The run id and every object to upload (seal files first), read and checked against the
    manifest, and the ledger's last entry."""
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
    if run_id == LEDGER_HEADS_PREFIX:
        raise PreconditionError(
            f"Refused to archive: a run id {run_id!r} would collide with the archive's ledger "
            "heads. Nothing was uploaded."
        )
    files: dict[str, Any] = manifest["files"]
    base = f"{prefix}/{run_id}" if prefix else run_id

    uploads: list[_Upload] = []
    changed: list[str] = []
    for rel, meta in sorted(files.items()):
        _check_relpath(rel)
        if rel in _RESERVED:
            changed.append(f"{rel}: the manifest lists a file whose name the archive reserves")
            continue
        if rel == LOCK_FILE:
            continue  # empty, holds nothing: never archived
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

    seal = [_upload(_key(base, MANIFEST_FILE), manifest_bytes)]
    for name in SEAL_FILES:
        if name != MANIFEST_FILE and os.path.lexists(run_dir / name):
            seal.append(_upload(_key(base, name), _read_regular(run_dir, name)))
    ledger, head = _ledger_entries(run_dir.parent / LEDGER_FILE, run_id, manifest_bytes)
    seal.append(_upload(_key(base, LEDGER_ENTRIES_FILE), ledger))
    return _Collected(run_id, base, [*seal, *uploads], head)


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


def _ledger_entries(
    ledger: Path, run_id: str, manifest_bytes: bytes
) -> tuple[bytes, dict[str, Any]]:
    """This run's lines of the ledger, byte for byte (the last one must name the manifest), and
    the ledger's last entry."""
    try:
        raw = ledger.read_bytes()
    except OSError as err:
        raise PreconditionError(
            f"Refused to archive: cannot read the ledger {ledger}: {err}. Nothing was uploaded."
        ) from err
    mine, last, head = split_ledger(raw, run_id)
    if last is None or last.get("manifest_sha256") != hashlib.sha256(manifest_bytes).hexdigest():
        raise PreconditionError(
            f"Refused to archive run {run_id}: the ledger {ledger} changed while being read (its "
            "latest entry for the run does not name manifest.json). Nothing was uploaded."
        )
    if (
        head is None
        or not isinstance(head.get("seq"), int)
        or not isinstance(head.get("hash"), str)
    ):
        raise PreconditionError(
            f"Refused to archive run {run_id}: the ledger {ledger} has no valid last entry. "
            "Nothing was uploaded."
        )
    return mine, head


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


def _survey(s3: Any, bucket: str, prefix: str) -> dict[str, list[_Version]]:
    """Every version (delete markers included) of every key under ``prefix``, latest first."""
    found: dict[str, list[tuple[bool, float, _Version]]] = {}
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for kind, marker in (("Versions", False), ("DeleteMarkers", True)):
                for item in page.get(kind, []) or []:
                    when = item.get("LastModified")
                    when = _utc(when) if isinstance(when, dt.datetime) else None
                    version = _Version(str(item.get("VersionId")), when, marker)
                    stamp = when.timestamp() if when else 0.0
                    found.setdefault(str(item["Key"]), []).append(
                        (bool(item.get("IsLatest")), stamp, version)
                    )
    except ClientError as err:
        raise from_client_error(err, "ListObjectVersions", "s3:ListBucketVersions") from err
    # objects keep their listed order, so do delete markers; merged by date, the latest first
    return {
        key: [v for _, _, v in sorted(items, key=lambda t: (not t[0], -t[1]))]
        for key, items in sorted(found.items())
    }


def _get_version(s3: Any, bucket: str, key: str, version_id: str) -> bytes:
    answer = call(
        s3, "get_object", "s3:GetObjectVersion", Bucket=bucket, Key=key, VersionId=version_id
    )
    body: bytes = answer["Body"].read()
    return body


def _put(
    s3: Any,
    bucket: str,
    upload: _Upload,
    retain_until: dt.datetime,
    done: list[tuple[_Upload, str]],
    *,
    head: bool = False,
) -> str | None:
    """Put ``upload`` if its key has no current version; its version id. None for a ledger
    ``head`` already archived (its key names seq, hash and run)."""
    for attempt in range(_CONFLICT_RETRIES + 1):
        try:
            answer = call(
                s3,
                "put_object",
                "s3:PutObject and s3:PutObjectRetention",
                Bucket=bucket,
                Key=upload.key,
                Body=upload.body,
                IfNoneMatch="*",
                ObjectLockMode=MODE,
                ObjectLockRetainUntilDate=retain_until,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(upload.sha256),
                Metadata={"sha256": upload.sha256},
            )
            break
        except AwsActionError as err:
            if err.code == "ConditionalRequestConflict" and attempt < _CONFLICT_RETRIES:
                continue  # a concurrent write to the key: AWS asks to retry
            if err.code != "PreconditionFailed":
                raise
            if head:
                return None
            own = _own_earlier_write(s3, bucket, upload)
            if own is not None:
                return own
            so_far = ", ".join(u.key for u, _ in done) or "none"
            raise PreconditionError(
                f"s3://{bucket}/{upload.key} was written by someone else between the check and "
                "the upload; it was not overwritten. The archive stopped. Objects uploaded "
                f"before it: {so_far}. Run `runbook verify RUN_DIR --against "
                f"s3://{bucket}/...` to see what the archive holds."
            ) from err
    else:  # pragma: no cover - the loop breaks or raises
        raise AssertionError("unreachable")
    version_id = answer.get("VersionId")
    if not version_id:
        raise RunbookError(
            f"PutObject of s3://{bucket}/{upload.key} returned no version id: the bucket is "
            "not versioned, so it has no Object Lock. Nothing is protected; " + CREATE_BUCKET_HINT
        )
    return str(version_id)


def _own_earlier_write(s3: Any, bucket: str, upload: _Upload) -> str | None:
    """The version id if the key's only version holds exactly our bytes (a retried request
    whose first attempt was written), else None."""
    versions = _survey(s3, bucket, upload.key).get(upload.key, [])
    if len(versions) != 1 or versions[0].delete_marker:
        return None
    body = _get_version(s3, bucket, upload.key, versions[0].version_id)
    return versions[0].version_id if _sha256(body) == upload.sha256 else None


def _retention(s3: Any, bucket: str, key: str, version_id: str) -> tuple[Any, Any]:
    """(mode, retain-until date) of a version; (None, None) when it has no retention."""
    try:
        retention = call(
            s3,
            "get_object_retention",
            "s3:GetObjectRetention",
            Bucket=bucket,
            Key=key,
            VersionId=version_id,
        ).get("Retention", {})
    except AwsActionError as err:
        if err.code == "NoSuchObjectLockConfiguration":
            return None, None
        raise
    return retention.get("Mode"), retention.get("RetainUntilDate")


def _check_retention(
    s3: Any, bucket: str, key: str, version_id: str, retain_until: dt.datetime
) -> None:
    where = f"s3://{bucket}/{key} (version {version_id})"
    mode, until = _retention(s3, bucket, key, version_id)
    if mode != MODE:
        raise RunbookError(
            f"{where} has retention mode {mode!r}, not {MODE}: it is not protected as asked."
        )
    if not isinstance(until, dt.datetime) or _utc(until) < retain_until:
        raise RunbookError(
            f"{where} is retained until {until}, earlier than the requested "
            f"{retain_until.isoformat()}."
        )


def _ensure_retention(
    s3: Any, bucket: str, key: str, version_id: str, retain_until: dt.datetime
) -> bool:
    """Extend an archived version's COMPLIANCE retention to ``retain_until`` if it is shorter
    (never shortened); whether it was extended."""
    mode, until = _retention(s3, bucket, key, version_id)
    if mode == MODE and isinstance(until, dt.datetime) and _utc(until) >= retain_until:
        return False
    call(
        s3,
        "put_object_retention",
        "s3:PutObjectRetention",
        Bucket=bucket,
        Key=key,
        VersionId=version_id,
        Retention={"Mode": MODE, "RetainUntilDate": retain_until},
    )
    _check_retention(s3, bucket, key, version_id, retain_until)
    return True


def _check_uploaded(
    s3: Any, bucket: str, upload: _Upload, version_id: str, retain_until: dt.datetime
) -> None:
    """RunbookError naming the key unless the version is locked as asked and has our bytes."""
    where = f"s3://{bucket}/{upload.key} (version {version_id})"
    _check_retention(s3, bucket, upload.key, version_id, retain_until)
    head = call(
        s3,
        "head_object",
        "s3:GetObjectVersion",
        Bucket=bucket,
        Key=upload.key,
        VersionId=version_id,
        ChecksumMode="ENABLED",
    )
    if head.get("ContentLength") != upload.size:
        raise RunbookError(
            f"{where} holds {head.get('ContentLength')} bytes, not the {upload.size} uploaded."
        )
    checksum = head.get("ChecksumSHA256")
    if checksum is not None and checksum != _b64(upload.sha256):
        raise RunbookError(f"{where} has a SHA-256 checksum that differs from the manifest's.")


def _check_still_latest(
    s3: Any, bucket: str, base: str, uploaded: list[tuple[_Upload, str]]
) -> None:
    """RunbookError naming every uploaded key whose latest version is not ours any more."""
    listed = _survey(s3, bucket, f"{base}/")
    for upload, _ in uploaded:
        if not upload.key.startswith(f"{base}/"):
            listed.update(_survey(s3, bucket, upload.key))
    late = [
        upload.key
        for upload, version_id in uploaded
        if not listed.get(upload.key) or listed[upload.key][0].version_id != version_id
    ]
    if late:
        raise RunbookError(
            f"s3://{bucket}: the latest version of {', '.join(late)} is not the one just "
            "uploaded: someone else wrote these keys meanwhile. Run `runbook verify RUN_DIR "
            "--against` to see the versions."
        )


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _iso(value: dt.datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")


# --- verify against the archive ---------------------------------------------------------------


@dataclass
class ArchiveReport:
    """What :func:`verify_against` found. ``ok`` only if ``problems`` is empty.

    ``keys``: one per archived key of the run, ``{"rel", "key", "versions": [{"version_id",
    "last_modified", "delete_marker"}] (latest first), "matches_local": bool | None}``
    (``None``: not compared, e.g. the archive's own ledger-head.json). ``ledger_heads``: one
    per archived head, ``{"seq", "hash", "runs": [run ids whose archive wrote it], "keys",
    "in_local_ledger": bool}``. ``notes``: facts that are not problems (a retention that has
    ended).
    """

    run_id: str
    bucket: str
    prefix: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    ledger_heads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def destination(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "run_id": self.run_id,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "keys": self.keys,
            "ledger_heads": self.ledger_heads,
        }

    def __str__(self) -> str:
        where = f"run {self.run_id} against {self.destination}"
        if self.ok:
            head = (
                f"OK: {where}: intact ({len(self.keys)} archived objects, every first version "
                f"equal to the local file; {len(self.ledger_heads)} ledger head(s), all in the "
                "local ledger)"
            )
        else:
            head = f"DIFFERS: {where}: {len(self.problems)} problem(s)"
        lines = [head, *(f"  - {p}" for p in self.problems)]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def verify_against(
    run_dir: Path,
    destination: str,
    *,
    profile: str | None = None,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    aws: AwsContext | None = None,
) -> ArchiveReport:
    """Compare the local record at ``run_dir`` with its WORM copy under ``destination``
    (``s3://BUCKET[/PREFIX]``), file by file against each key's first version, and the archived
    ledger heads with the local ledger; every difference is a problem in the report.

    Reads only (see the module docstring for the permissions). Raises :class:`ParameterError`
    for a bad destination or a ``run_dir`` that is not a directory (nothing is called), and
    :class:`AwsActionError` when an S3 call fails.
    """
    bucket, prefix = parse_destination(destination)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ParameterError([f"{run_dir} is not a run directory"])
    run_id = run_dir.name
    base = f"{prefix}/{run_id}" if prefix else run_id
    report = ArchiveReport(run_id, bucket, prefix)
    local = _local_copy(run_dir, report.problems)
    ledger_raw = _read_ledger(run_dir.parent / LEDGER_FILE, report.problems)
    if ledger_raw is not None:
        local[LEDGER_ENTRIES_FILE] = split_ledger(ledger_raw, run_id)[0]
    ledger = {
        (entry.get("seq"), entry.get("hash"))
        for entry in (parse_entry(line) for line in (ledger_raw or b"").splitlines())
        if entry is not None
    }

    if aws is None:
        aws = AwsContext.from_profile(profile, region, endpoint_url)
    s3 = aws.client("s3")
    archived = _survey(s3, bucket, f"{base}/")
    if not archived:
        report.problems.append(
            f"nothing is archived under s3://{bucket}/{base}/: this run was never archived there "
            "(or its versions were deleted after their retention ended)"
        )
    heads: dict[tuple[Any, Any], dict[str, Any]] = {}
    for key, versions in archived.items():
        rel = key[len(base) + 1 :]
        if rel == LOCK_FILE:
            continue
        _compare_key(s3, report, bucket, key, rel, versions, local, heads)
    for rel in sorted(set(local) - {k[len(base) + 1 :] for k in archived}):
        report.problems.append(f"{rel}: only in the local record (not archived)")
    heads_prefix = f"{prefix}/{LEDGER_HEADS_PREFIX}/" if prefix else f"{LEDGER_HEADS_PREFIX}/"
    for key, versions in _survey(s3, bucket, heads_prefix).items():
        rel = key[len(heads_prefix) :]
        _versions_problems(report, f"{LEDGER_HEADS_PREFIX}/{rel}", versions)
        for version in versions:
            if not version.delete_marker:
                body = _get_version(s3, bucket, key, version.version_id)
                _add_head(report, heads, key, body)
    for (seq, digest), head in sorted(heads.items(), key=lambda kv: str(kv[0])):
        head["in_local_ledger"] = (seq, digest) in ledger
        report.ledger_heads.append(head)
        if not head["in_local_ledger"]:
            report.problems.append(
                f"ledger head seq {seq} (hash {str(digest)[:16]}...), anchored when run(s) "
                f"{', '.join(head['runs'])} were archived ({', '.join(head['archived_at'])}), is "
                "not an entry of the local ledger: the local ledger was rewritten or a run was "
                "deleted since that archive"
            )
    return report


def _compare_key(
    s3: Any,
    report: ArchiveReport,
    bucket: str,
    key: str,
    rel: str,
    versions: list[_Version],
    local: dict[str, bytes],
    heads: dict[tuple[Any, Any], dict[str, Any]],
) -> None:
    entry: dict[str, Any] = {
        "rel": rel,
        "key": key,
        "versions": [v.to_dict() for v in versions],
        "matches_local": None,
    }
    report.keys.append(entry)
    _versions_problems(report, rel, versions)
    anchor = _anchor(versions)
    if anchor is None:
        report.problems.append(f"{rel}: only delete markers in the archive, no archived copy")
        return
    first = _get_version(s3, bucket, key, anchor.version_id)
    latest = versions[0]
    if latest.delete_marker:
        report.problems.append(
            f"{rel}: its latest version is a delete marker (since {latest.when}): the archived "
            "copy is hidden from plain reads"
        )
    elif latest.version_id != anchor.version_id:
        if _get_version(s3, bucket, key, latest.version_id) != first:
            report.problems.append(
                f"{rel}: the latest version differs from the first (written {anchor.when}); "
                "the first is the anchor"
            )
    mode, until = _retention(s3, bucket, key, anchor.version_id)
    if mode != MODE:
        report.problems.append(
            f"{rel}: its first version is not under {MODE} retention (mode {mode!r})"
        )
    elif isinstance(until, dt.datetime) and _utc(until) <= dt.datetime.now(dt.UTC):
        report.notes.append(f"{rel}: its retention ended on {_iso(until)}")
    if rel == LEDGER_HEAD_FILE:
        _add_head(report, heads, key, first)
        return
    if rel not in local:
        report.problems.append(f"{rel}: only in the archive (deleted locally)")
        entry["matches_local"] = False
        return
    entry["matches_local"] = local[rel] == first
    if not entry["matches_local"]:
        report.problems.append(
            f"{rel}: the local file differs from the archived copy (its first version)"
        )


def _versions_problems(report: ArchiveReport, rel: str, versions: list[_Version]) -> None:
    if len(versions) <= 1:
        return
    later = "; ".join(
        f"{v.when}{' (delete marker)' if v.delete_marker else ''}" for v in reversed(versions[:-1])
    )
    report.problems.append(
        f"{rel}: overwritten: {len(versions)} versions in the archive (first written "
        f"{versions[-1].when}; later: {later})"
    )


def _add_head(
    report: ArchiveReport, heads: dict[tuple[Any, Any], dict[str, Any]], key: str, body: bytes
) -> None:
    try:
        head = json.loads(body.decode("utf-8"))
        seq, digest = head["seq"], head["hash"]
    except (ValueError, KeyError, TypeError):
        report.problems.append(f"{key}: not a ledger head (no seq and hash)")
        return
    found = heads.setdefault(
        (seq, digest),
        {"seq": seq, "hash": digest, "runs": [], "archived_at": [], "keys": []},
    )
    found["keys"].append(key)
    for name, value in (("runs", head.get("run_id")), ("archived_at", head.get("archived_at"))):
        if str(value) not in found[name]:
            found[name].append(str(value))


def _local_copy(run_dir: Path, problems: list[str]) -> dict[str, bytes]:
    """Every regular file of the record (relative posix path -> bytes), the lock file aside;
    what cannot be read plainly (a link, a FIFO) is a problem."""
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(run_dir):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(filenames) + [d for d in dirnames if (here / d).is_symlink()]:
            path = here / name
            rel = path.relative_to(run_dir).as_posix()
            if rel == LOCK_FILE:
                continue
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                problems.append(f"{rel}: not a regular file (a symbolic link?); not compared")
                continue
            try:
                files[rel] = _read_regular(run_dir, rel)
            except PreconditionError:
                problems.append(f"{rel}: cannot be read without following a link; not compared")
    return files


def _read_ledger(ledger: Path, problems: list[str]) -> bytes | None:
    try:
        st = os.lstat(ledger)
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{LEDGER_FILE}: not a regular file")
            return None
        return ledger.read_bytes()
    except FileNotFoundError:
        problems.append(f"{LEDGER_FILE}: missing beside the run directory")
    except OSError as err:
        problems.append(f"{LEDGER_FILE}: not read ({err.strerror or err})")
    return None
