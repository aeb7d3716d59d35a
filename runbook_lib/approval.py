"""Four-eyes approvals as signed files: a plan file a reviewer reads, an approval they sign.

``runbook plan -f P.yml`` writes a **plan file**: the text ``runbook plan`` prints, then the
plan itself as canonical JSON between two marker lines::

    <describe(plan)>

    -----BEGIN ROOT-MFA-RUNBOOK PLAN-----
    {"account_id":"123456789012",...}
    -----END ROOT-MFA-RUNBOOK PLAN-----

Reading one (:func:`read_plan_file`) trusts nothing in it: the digest is recomputed from the
JSON the way :func:`runbook_lib.plan.make_plan` computes it (:func:`content_digest`), the human
part must be exactly what :func:`runbook_lib.plan.describe` says of that JSON (a hand-edited
text that lies about the plan is refused), and an expired plan is refused.

``runbook approve PLAN_FILE --key KEY`` writes an **approval file**: a short statement naming
the plan (its digest, the SHA-256 of the plan file, its id and expiry, the account, the ticket,
the operator and the approver, when), followed by the reviewer's SSH signature of exactly the
statement's bytes in namespace :data:`~runbook_lib.record.signing.APPROVAL_NAMESPACE`::

    root-mfa-runbook approval v1
    plan-digest: <64 hex>
    ...
    approved-at: 2026-01-02T03:04:05Z
    -----BEGIN SSH SIGNATURE-----
    ...
    -----END SSH SIGNATURE-----

An auditor checks one with OpenSSH alone: cut the statement (the lines before ``-----BEGIN``)
and ``ssh-keygen -Y verify -f allowed_signers -I APPROVER -n approval@root-mfa-runbook -s SIG
< STATEMENT``.

A run counts approvals with :func:`verify_approvals` under a :class:`Policy` (how many distinct
approvers, whether the operator may approve their own plan): every problem is reported at once
(:class:`ApprovalRefused`), each in one line saying what to do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ParameterError, RunbookError, SignatureInvalid, SigningError
from .plan import GateInfo, Plan, PlanIdentity, describe, gates_for
from .record import signing
from .record.signing import SK_USER_PRESENT, sk_flags

__all__ = [
    "APPROVAL_HEADER",
    "DIGEST_KEYS",
    "PLAN_BEGIN",
    "PLAN_END",
    "Approval",
    "ApprovalError",
    "ApprovalRefused",
    "ApprovalSet",
    "PlanFile",
    "PlanFileInvalid",
    "Policy",
    "approval_digest",
    "sign_approval",
    "approval_file_name",
    "sk_flags",
    "build_statement",
    "content_digest",
    "digest_content",
    "parse_statement",
    "plan_from_dict",
    "policy_event",
    "read_approval",
    "read_plan_file",
    "render_plan_file",
    "split_approval",
    "verify_approvals",
    "write_new_file",
    "write_plan_file",
]

PLAN_BEGIN = "-----BEGIN ROOT-MFA-RUNBOOK PLAN-----"
PLAN_END = "-----END ROOT-MFA-RUNBOOK PLAN-----"
APPROVAL_HEADER = "root-mfa-runbook approval v1"
SIGNATURE_BEGIN = b"-----BEGIN SSH SIGNATURE-----"
SIGNATURE_END = b"-----END SSH SIGNATURE-----"
MAX_PLAN_FILE_BYTES = 1 << 20
MAX_APPROVAL_FILE_BYTES = 64 << 10
CLOCK_SKEW = dt.timedelta(minutes=5)

DIGEST_KEYS: tuple[str, ...] = (
    "parameters",
    "notebooks",
    "library",
    "dependencies",
    "account_id",
    "identity",
)
"""The top-level keys of a plan's dict that its digest always covers (``make_plan``'s content).
A plan dict may name more in ``digest_covers`` (a list of keys: a superset of these)."""

STATEMENT_KEYS: tuple[str, ...] = (
    "plan-digest",
    "plan-file-sha256",
    "plan-id",
    "plan-expires",
    "account",
    "change-ticket",
    "operator",
    "approver",
    "approved-at",
)
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)
_STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", re.ASCII)
_FILE_SAFE = re.compile(r"[^A-Za-z0-9@._+-]")


class ApprovalError(RunbookError):
    """A plan file or an approval cannot be used (says why and what to do, in one line)."""


class PlanFileInvalid(ApprovalError):
    """Not a plan file, or one whose parts do not agree (digest, human text), or expired."""


class ApprovalRefused(ApprovalError):
    """The approvals presented do not satisfy the policy; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"approvals refused ({len(self.problems)} problem(s)):\n{lines}")


# ----------------------------------------------------------------------------- the digest
def digest_content(plan_dict: dict[str, Any]) -> dict[str, Any]:
    """What the digest of ``plan_dict`` covers: :data:`DIGEST_KEYS`, and every further key
    its ``digest_covers`` names."""
    covers = plan_dict.get("digest_covers")
    keys: list[str] = list(DIGEST_KEYS)
    if covers is not None:
        if not isinstance(covers, list) or not all(isinstance(k, str) for k in covers):
            raise PlanFileInvalid("the plan's digest_covers is not a list of names")
        missing_base = [k for k in DIGEST_KEYS if k not in covers]
        if missing_base:
            raise PlanFileInvalid(
                f"the plan's digest_covers leaves out {', '.join(missing_base)}: not a plan "
                "runbook plan made. Ask the operator for the file runbook plan wrote."
            )
        keys += [k for k in covers if k not in keys]
    missing = [k for k in keys if k not in plan_dict]
    if missing:
        raise PlanFileInvalid(
            f"the plan has no {', '.join(missing)}: not a plan runbook plan made. Ask the "
            "operator for the file runbook plan wrote."
        )
    return {k: plan_dict[k] for k in keys}


def content_digest(plan_dict: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of :func:`digest_content`, as ``make_plan`` computes it."""
    canonical = json.dumps(digest_content(plan_dict), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def plan_from_dict(data: dict[str, Any]) -> Plan:
    """The :class:`~runbook_lib.plan.Plan` a ``Plan.to_dict()`` describes (``Plan.from_dict``
    when plan.py has one)."""
    from_dict = getattr(Plan, "from_dict", None)
    if from_dict is not None:
        plan: Plan = from_dict(data)
        return plan
    return Plan(
        str(data["digest"]),
        str(data["account_id"]),
        dict(data["parameters"]),
        {str(k): str(v) for k, v in dict(data["notebooks"]).items()},
        str(data["library"]["version"]),
        str(data["library"]["sha256"]),
        tuple(GateInfo(**g) for g in data["gates"]),
        PlanIdentity.from_dict(data["identity"]),
        str(data["dependencies"]["sha256"]),
    )


# ------------------------------------------------------------------------------ plan file
@dataclass(frozen=True)
class PlanFile:
    """A plan file, checked: ``text`` (the human part), ``plan`` (the dict), ``digest``,
    ``sha256`` (of the file's bytes, which an approval names), ``raw`` (the bytes)."""

    path: Path
    text: str
    plan: dict[str, Any]
    digest: str
    sha256: str
    raw: bytes

    @property
    def identity(self) -> PlanIdentity:
        return PlanIdentity.from_dict(self.plan["identity"])

    @property
    def account_id(self) -> str:
        return str(self.plan["account_id"])

    @property
    def trust(self) -> dict[str, Any]:
        trust = self.plan.get("trust")
        return trust if isinstance(trust, dict) else {}


def _canonical(plan_dict: dict[str, Any]) -> str:
    return json.dumps(plan_dict, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def render_plan_file(plan: Plan | dict[str, Any]) -> bytes:
    """The bytes of the plan file of ``plan`` (a Plan, or its dict)."""
    data = plan.to_dict() if isinstance(plan, Plan) else dict(plan)
    text = describe(plan if isinstance(plan, Plan) else plan_from_dict(data))
    return f"{text}\n\n{PLAN_BEGIN}\n{_canonical(data)}\n{PLAN_END}\n".encode()


def write_new_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path``, which must not exist (never overwrites, never follows a
    link): FileExistsError otherwise."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        if fd != -1:
            os.close(fd)
        path.unlink(missing_ok=True)
        raise


def write_plan_file(plan: Plan | dict[str, Any], path: Path) -> bytes:
    """Write the plan file of ``plan`` to ``path`` (FileExistsError if it exists); its bytes."""
    data = render_plan_file(plan)
    write_new_file(Path(path), data)
    return data


def _read_bounded(path: Path, limit: int, what: str, error: type[ApprovalError]) -> bytes:
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            raise error(f"{what} {path}: a symbolic link; give the file itself")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {path}: not a regular file")
        if info.st_size > limit:
            raise error(f"{what} {path}: larger than {limit >> 10} KiB; is it the right file?")
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as err:
        raise error(f"{what} {path}: cannot be read ({err.strerror or err})") from err
    if len(raw) > limit:
        raise error(f"{what} {path}: larger than {limit >> 10} KiB; is it the right file?")
    return raw


def read_plan_file(
    path: str | os.PathLike[str], now: dt.datetime | None = None, check_expiry: bool = True
) -> PlanFile:
    """Read and check a plan file; :class:`PlanFileInvalid` saying what is wrong and what to do
    when it is not one, its digest does not match its content, its human part is not what the
    plan says, or (``check_expiry``) the plan expired at ``now`` (default now)."""
    path = Path(path)
    raw = _read_bounded(path, MAX_PLAN_FILE_BYTES, "plan file", PlanFileInvalid)
    ask = "Ask the operator for the file runbook plan wrote, unchanged."
    try:
        text_all = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PlanFileInvalid(f"plan file {path}: not UTF-8 text. {ask}") from err
    if "\r" in text_all:
        raise PlanFileInvalid(f"plan file {path}: its line endings were changed (CR LF); {ask}")
    marker = f"\n\n{PLAN_BEGIN}\n"
    if text_all.count(marker) != 1 or not text_all.endswith(f"\n{PLAN_END}\n"):
        raise PlanFileInvalid(
            f"plan file {path}: not a plan file (no {PLAN_BEGIN} ... {PLAN_END} block). {ask}"
        )
    text, _, rest = text_all.partition(marker)
    body = rest[: -len(f"\n{PLAN_END}\n")]
    if "\n" in body:
        raise PlanFileInvalid(f"plan file {path}: the plan block is not one JSON line. {ask}")
    try:
        data = json.loads(body)
    except ValueError as err:
        raise PlanFileInvalid(f"plan file {path}: the plan block is not JSON. {ask}") from err
    if not isinstance(data, dict):
        raise PlanFileInvalid(f"plan file {path}: the plan block is not a plan. {ask}")
    if _canonical(data) != body:
        raise PlanFileInvalid(
            f"plan file {path}: the plan block was edited (it is not the canonical JSON runbook "
            f"plan writes, e.g. a key given twice). {ask}"
        )
    stated = data.get("digest")
    if not isinstance(stated, str) or not _HEX64.fullmatch(stated):
        raise PlanFileInvalid(f"plan file {path}: the plan has no digest. {ask}")
    try:
        actual = content_digest(data)
    except PlanFileInvalid as err:
        raise PlanFileInvalid(f"plan file {path}: {err}") from err
    if actual != stated:
        raise PlanFileInvalid(
            f"plan file {path}: its content does not match its digest (digest {stated[:12]}…, "
            f"content {actual[:12]}…): it was changed after runbook plan wrote it. {ask}"
        )
    try:
        plan = plan_from_dict(data)
        described = describe(plan)
        identity = plan.identity
        expired = identity.expired(now)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise PlanFileInvalid(
            f"plan file {path}: the plan is malformed ({type(err).__name__}: {err}): not a "
            f"plan runbook plan made. {ask}"
        ) from err
    if "gates" not in digest_content(data):
        _check_gates(path, data, plan, ask)
    if described != text:
        raise PlanFileInvalid(
            f"plan file {path}: its text part is not what its plan says (edited by hand?). "
            f"Do not approve it. {ask}"
        )
    if expired and check_expiry:
        raise PlanFileInvalid(
            f"plan file {path}: plan {stated[:12]}… expired at {identity.expires_at}; an "
            "approval is not a standing permission. The operator plans again (runbook plan) "
            "and sends the new plan file."
        )
    return PlanFile(path, text, data, stated, hashlib.sha256(raw).hexdigest(), raw)


def _check_gates(path: Path, data: dict[str, Any], plan: Plan, ask: str) -> None:
    """The gates are not in the digest (they follow from the parameters): they must be the
    gates these parameters give, or the text could show other gates than the run meets."""
    from .params import validate

    try:
        expected = [g.__dict__ for g in gates_for(validate(dict(data["parameters"])))]
    except ParameterError as err:
        raise PlanFileInvalid(
            f"plan file {path}: its parameters do not validate with this version of the "
            f"runbook ({err.problems[0] if err.problems else err}). {ask}"
        ) from err
    if expected != [g.__dict__ for g in plan.gates]:
        raise PlanFileInvalid(
            f"plan file {path}: its gates are not the ones its parameters give (edited?). "
            f"Do not approve it. {ask}"
        )


# ------------------------------------------------------------------------------ approvals
def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _single_line(name: str, value: str) -> str:
    if not value or any(not ch.isprintable() for ch in value) or value != value.strip():
        raise ApprovalError(f"cannot state {name} {value!r}: not one printable line")
    return value


def build_statement(
    plan_file: PlanFile, approver: str, operator: str, approved_at: dt.datetime | None = None
) -> bytes:
    """The approval statement (spec: ``root-mfa-runbook approval v1``) of ``plan_file`` by
    ``approver``, at ``approved_at`` (default now)."""
    when = approved_at or dt.datetime.now(dt.UTC)
    identity = plan_file.identity
    values = {
        "plan-digest": plan_file.digest,
        "plan-file-sha256": plan_file.sha256,
        "plan-id": identity.plan_id,
        "plan-expires": identity.expires_at,
        "account": plan_file.account_id,
        "change-ticket": str(plan_file.plan["parameters"].get("change_ticket", "")),
        "operator": operator,
        "approver": approver,
        "approved-at": _stamp(when),
    }
    lines = [APPROVAL_HEADER] + [f"{k}: {_single_line(k, values[k])}" for k in STATEMENT_KEYS]
    return ("\n".join(lines) + "\n").encode()


def sign_approval(
    plan_file: PlanFile, key: signing.SignerKey, approver: str, operator: str
) -> bytes:
    """The approval file's bytes: the statement of ``plan_file`` by ``approver`` (now), then
    ``key``'s signature of it in the approval namespace (ssh-keygen may ask for a touch or a
    passphrase)."""
    statement = build_statement(plan_file, approver, operator, dt.datetime.now(dt.UTC))
    return statement + signing.sign(key, statement, signing.APPROVAL_NAMESPACE)


def parse_statement(statement: bytes) -> dict[str, str]:
    """The fields of an approval statement; ValueError saying what is malformed."""
    try:
        text = statement.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError("the statement is not UTF-8 text") from err
    if not text.endswith("\n") or "\r" in text:
        raise ValueError("the statement's lines are malformed")
    lines = text[:-1].split("\n")
    if lines[0] != APPROVAL_HEADER:
        raise ValueError(f"it does not begin with {APPROVAL_HEADER!r}")
    if len(lines) != 1 + len(STATEMENT_KEYS):
        raise ValueError(f"the statement has {len(lines) - 1} fields, not {len(STATEMENT_KEYS)}")
    fields: dict[str, str] = {}
    for key, line in zip(STATEMENT_KEYS, lines[1:], strict=True):
        name, sep, value = line.partition(": ")
        if name != key or not sep:
            raise ValueError(f"expected the field {key!r}, found {line[:40]!r}")
        if not value or any(not ch.isprintable() for ch in value):
            raise ValueError(f"the field {key!r} is empty or not printable")
        fields[key] = value
    for key in ("plan-digest", "plan-file-sha256"):
        if not _HEX64.fullmatch(fields[key]):
            raise ValueError(f"{key} is not 64 hex digits")
    if not _ACCOUNT.fullmatch(fields["account"]):
        raise ValueError("account is not 12 digits")
    if not _STAMP.fullmatch(fields["approved-at"]):
        raise ValueError("approved-at is not YYYY-MM-DDTHH:MM:SSZ")
    if any(ch.isspace() for ch in fields["approver"]):
        raise ValueError("approver is not a principal (it has spaces)")
    return fields


def split_approval(raw: bytes) -> tuple[bytes, bytes]:
    """(statement, signature) of an approval file: the statement is every byte before the
    ``-----BEGIN SSH SIGNATURE-----`` line; ValueError if the file is not shaped so."""
    if raw.count(SIGNATURE_BEGIN) != 1:
        raise ValueError("it does not hold exactly one SSH signature")
    at = raw.index(SIGNATURE_BEGIN)
    if at == 0 or raw[at - 1 : at] != b"\n":
        raise ValueError("its signature does not follow a statement")
    signature = raw[at:]
    if not signature.rstrip(b"\n").endswith(SIGNATURE_END):
        raise ValueError("its signature is not closed by -----END SSH SIGNATURE-----")
    return raw[:at], signature


def approval_file_name(plan_file: Path, principal: str) -> Path:
    """``<plan file stem>.<principal>.approval`` beside the plan file."""
    safe = _FILE_SAFE.sub("_", principal).lstrip(".") or "approver"
    return plan_file.with_name(f"{plan_file.stem}.{safe}.approval")


@dataclass(frozen=True)
class Policy:
    """How many distinct approvers a plan needs, and whether the operator may be one."""

    required: int
    self_approval: bool
    operator_principal: str
    operator_fingerprint: str


@dataclass(frozen=True)
class Approval:
    """An approval whose signature verified: by ``principal`` with that key."""

    path: Path
    statement: bytes
    signature: bytes
    fields: dict[str, str]
    principal: str
    key_fingerprint: str
    key_type: str
    approved_at: dt.datetime
    by_operator: bool

    @property
    def plan_digest(self) -> str:
        return self.fields["plan-digest"]

    def to_dict(self) -> dict[str, Any]:
        """The ``approval.verified`` event's data, less the record paths (file, statement,
        signature), which the record adds."""
        return {
            "principal": self.principal,
            "key_fingerprint": self.key_fingerprint,
            "key_type": self.key_type,
            "approved_at": _stamp(self.approved_at),
            "plan_digest": self.plan_digest,
            "by_operator": self.by_operator,
        }


@dataclass(frozen=True)
class ApprovalSet:
    """The approvals counted (one per distinct approver, distinct keys), in file order."""

    approvals: tuple[Approval, ...]
    self_approved: bool
    approvers: tuple[str, ...]
    duplicates: tuple[Approval, ...] = field(default=())


def policy_event(
    approvals: ApprovalSet | None,
    policy: Policy,
    plan_digest: str,
    allowed_signers_sha256: str,
) -> dict[str, Any]:
    """The ``approval.policy`` event's data (``approvals`` None: refused, not satisfied)."""
    return {
        "plan_digest": plan_digest,
        "required": policy.required,
        "self_approval": policy.self_approval,
        "operator": {
            "principal": policy.operator_principal,
            "fingerprint": policy.operator_fingerprint,
        },
        "allowed_signers_sha256": allowed_signers_sha256,
        "approvers": list(approvals.approvers) if approvals else [],
        "satisfied": approvals is not None,
        "self_approved": bool(approvals and approvals.self_approved),
    }


def read_approval(
    path: Path,
    plan_digest: str,
    policy: Policy,
    allowed_signers: Path,
    now: dt.datetime | None = None,
    plan_file_sha256: str | None = None,
    issued_at: str | None = None,
) -> Approval:
    """One approval file, verified; :class:`ApprovalError` (one line, what to do) otherwise."""
    now = now or dt.datetime.now(dt.UTC)
    name = str(path)
    raw = _read_bounded(path, MAX_APPROVAL_FILE_BYTES, "approval", ApprovalError)
    try:
        statement, signature = split_approval(raw)
        fields = parse_statement(statement)
    except ValueError as err:
        raise ApprovalError(
            f"approval {name}: not an approval file ({err}); ask the approver for the file "
            "runbook approve wrote"
        ) from err
    approver = fields["approver"]
    approved_at = dt.datetime.strptime(fields["approved-at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.UTC
    )
    if fields["plan-digest"] != plan_digest:
        raise ApprovalError(
            f"approval {name} by {approver} approves plan {fields['plan-digest'][:12]}…, not "
            f"this plan {plan_digest[:12]}…: leave it out, and have this plan's file approved"
        )
    if plan_file_sha256 is not None and fields["plan-file-sha256"] != plan_file_sha256:
        raise ApprovalError(
            f"approval {name} by {approver} names plan file {fields['plan-file-sha256'][:12]}…, "
            f"not this run's {plan_file_sha256[:12]}…: give the run the plan file that was "
            "approved"
        )
    if approved_at > now + CLOCK_SKEW:
        raise ApprovalError(
            f"approval {name} by {approver} is dated {fields['approved-at']}, in the future: the "
            "approver's clock is wrong; they fix it and approve again"
        )
    if issued_at is not None and approved_at < dt.datetime.fromisoformat(issued_at) - CLOCK_SKEW:
        raise ApprovalError(
            f"approval {name} by {approver} is dated {fields['approved-at']}, before the plan "
            f"was issued ({issued_at}): backdated, or the approver's clock is wrong; they fix "
            "it and approve again"
        )
    try:
        expires = dt.datetime.fromisoformat(fields["plan-expires"])
    except ValueError:
        expires = None
    if expires is None or expires.tzinfo is None or approved_at >= expires:
        raise ApprovalError(
            f"approval {name} by {approver} was given at {fields['approved-at']}, when the plan "
            f"had expired ({fields['plan-expires']}): plan again and have the new plan approved"
        )
    try:
        verified = signing.verify(
            statement,
            signature,
            approver,
            signing.APPROVAL_NAMESPACE,
            allowed_signers,
            at=approved_at,
        )
    except SignatureInvalid as err:
        raise ApprovalError(
            f"approval {name} by {approver}: signature refused ({err}); not counted: the "
            "approver signs again with a key allowed_signers lists for them (runbook approve)"
        ) from err
    flags = sk_flags(signature)
    if flags is not None and not flags & SK_USER_PRESENT:
        raise ApprovalError(
            f"approval {name} by {approver}: made by hardware key {verified.fingerprint} without "
            "a touch (no user presence); not counted: the approver signs again and touches the "
            "key when asked (an approval needs the touch: a key made with no-touch-required "
            "cannot approve)"
        )
    if verified.principal != approver:
        raise ApprovalError(
            f"approval {name} names {approver} but verified for {verified.principal}: not "
            "counted; the approver signs again (runbook approve)"
        )
    operator = fields["operator"]
    if operator not in ("unknown", policy.operator_principal):
        raise ApprovalError(
            f"approval {name} by {approver} was given for operator {operator}, but this run's "
            f"operator is {policy.operator_principal}: the approver approves again for this "
            "operator's plan"
        )
    by_operator = (
        approver == policy.operator_principal or verified.fingerprint == policy.operator_fingerprint
    )
    return Approval(
        path,
        statement,
        signature,
        fields,
        verified.principal,
        verified.fingerprint,
        verified.key_type,
        approved_at,
        by_operator,
    )


def approval_digest(files: list[Path]) -> str:
    """The plan digest the approval files name, read but not verified (the run looks up the
    plan by it; :func:`verify_approvals` then checks them); ApprovalRefused when a file is not
    an approval or they name different plans."""
    digests: dict[str, str] = {}
    problems = []
    for path in files:
        try:
            raw = _read_bounded(
                path.expanduser(), MAX_APPROVAL_FILE_BYTES, "approval", ApprovalError
            )
            statement, _ = split_approval(raw)
            digests[str(path)] = parse_statement(statement)["plan-digest"]
        except (ValueError, ApprovalError, KeyError) as err:
            problems.append(f"{path}: not a readable approval file ({err})")
    if not problems and len(set(digests.values())) > 1:
        problems.append(
            "the approval files approve different plans ("
            + ", ".join(f"{p}: {d[:12]}…" for p, d in digests.items())
            + "); give the approvals of one plan"
        )
    if problems:
        raise ApprovalRefused(problems)
    return next(iter(digests.values()))


def verify_approvals(
    files: list[Path],
    plan_digest: str,
    policy: Policy,
    allowed_signers: Path,
    now: dt.datetime | None = None,
    plan_file_sha256: str | None = None,
    issued_at: str | None = None,
) -> ApprovalSet:
    """Verify every approval file for the plan ``plan_digest`` against ``allowed_signers``
    and count them under ``policy``: the :class:`ApprovalSet`, or :class:`ApprovalRefused`
    listing every problem (each one line, what to do).

    Each signature is verified at its statement's ``approved-at`` (so an allowed_signers
    ``valid-before`` ends a key's approvals from then on); an approval dated more than
    :data:`CLOCK_SKEW` after ``now``, before the plan's ``issued_at`` (when given: a key
    expired since cannot backdate an approval of a newer plan) or after the plan expired is
    refused. ``plan_file_sha256``, when given, must be the plan file the approval names.

    An approval counts once per approver: a second one by the same principal, or by the same
    key under another name, is not counted (``duplicates``; a problem only if too few are
    left). Under four-eyes (``self_approval`` false) an approval by the operator (same
    principal, or the operator's key) is a problem; with ``self_approval`` it counts and the
    set is ``self_approved``."""
    now = now or dt.datetime.now(dt.UTC)
    problems: list[str] = []
    if policy.required < 1:
        problems.append(
            f"the policy requires {policy.required} approvals: at least 1 (approvals_required)"
        )
    valid: list[Approval] = []
    for path in files:
        try:
            valid.append(
                read_approval(
                    Path(path),
                    plan_digest,
                    policy,
                    allowed_signers,
                    now,
                    plan_file_sha256,
                    issued_at,
                )
            )
        except ApprovalError as err:
            problems.append(str(err))
        except SigningError as err:  # ssh-keygen missing or unusable allowed_signers
            problems.append(f"approval {path}: cannot be verified ({err})")
    counted: list[Approval] = []
    duplicates: list[Approval] = []
    for approval in valid:
        if approval.by_operator and not policy.self_approval:
            problems.append(
                f"approval {approval.path} is by the operator ({approval.principal}, key "
                f"{approval.key_fingerprint}): under four-eyes someone else approves; leave it "
                "out and ask a reviewer (runbook approve)"
            )
            continue
        if any(
            c.principal == approval.principal or c.key_fingerprint == approval.key_fingerprint
            for c in counted
        ):
            duplicates.append(approval)
            continue
        counted.append(approval)
    if policy.required >= 1 and len(counted) < policy.required:
        dup = (
            f" ({len(duplicates)} more by an approver already counted: "
            + ", ".join(f"{d.principal} in {d.path}" for d in duplicates)
            + ")"
            if duplicates
            else ""
        )
        problems.append(
            f"{len(counted)} valid approval(s) by distinct approvers{dup}, {policy.required} "
            f"required: ask {policy.required - len(counted)} more reviewer(s) listed in "
            "allowed_signers to approve the plan file (runbook approve)"
        )
    if problems:
        raise ApprovalRefused(problems)
    return ApprovalSet(
        tuple(counted),
        any(a.by_operator for a in counted),
        tuple(a.principal for a in counted),
        tuple(duplicates),
    )
