"""SSH signatures (OpenSSH's ``ssh-keygen -Y``) for approvals and seals.

Who may sign is an ``allowed_signers`` file, the format git uses for SSH commit signing
(ssh-keygen(1), "ALLOWED SIGNERS")::

    alice@example.com namespaces="approval@root-mfa-runbook" ssh-ed25519 AAAAC3Nza... alice
    olivia@example.com ssh-ed25519 AAAAC3Nza... olivia (operator)

Signing and verifying are done by ``ssh-keygen`` itself, so any key OpenSSH can use works
unchanged: a key file, a public key whose private half is in ``ssh-agent``, a passphrase (asked
on the terminal by ssh-keygen), or a hardware-backed ``sk-ssh-ed25519`` key (touch it when
asked). This module only reads public material: it parses allowed_signers (to name the principal
of a key before anything is signed) and the signature's embedded public key (to say *which* key
signed when a signature is refused); no private key is read or stored.

Two namespaces keep a signature made for one purpose from being replayed for the other:
:data:`APPROVAL_NAMESPACE` (a reviewer approves a plan) and :data:`SEAL_NAMESPACE` (the operator
seals a record). An auditor checks either with OpenSSH alone::

    ssh-keygen -Y verify -f allowed_signers -I PRINCIPAL -n NAMESPACE -s FILE.sig < FILE
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SignatureInvalid, SigningError

__all__ = [
    "APPROVAL_NAMESPACE",
    "SEAL_NAMESPACE",
    "SK_USER_PRESENT",
    "AllowedSigner",
    "Signer",
    "SignerKey",
    "Verified",
    "fingerprint",
    "allowed_signers_line",
    "load_key",
    "new_key",
    "principals_for",
    "read_allowed_signers",
    "sign",
    "signature_key",
    "sk_flags",
    "verify",
]

APPROVAL_NAMESPACE = "approval@root-mfa-runbook"
SEAL_NAMESPACE = "seal@root-mfa-runbook"
SIGN_TIMEOUT = 300.0  # a hardware key waits for a touch; a passphrase for typing
VERIFY_TIMEOUT = 30.0
MAX_ALLOWED_SIGNERS_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 64 << 10
_ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_ARMOR_END = "-----END SSH SIGNATURE-----"
_KEY_TYPE = re.compile(r"(ssh-|ecdsa-|sk-)[A-Za-z0-9@._-]+")
_GOOD = re.compile(
    r'Good "[^"]*" signature for (?P<principal>.+) with (?P<type>\S+) key (?P<fp>\S+)'
)


@dataclass(frozen=True)
class SignerKey:
    """An SSH key to sign with: ``path`` is what ``ssh-keygen -Y sign -f`` gets (a private key,
    or a public key whose private half is in ssh-agent); the rest is its public half."""

    path: Path
    public_key: str  # "ssh-ed25519 AAAA..." (type and base64 blob, no comment)
    fingerprint: str  # "SHA256:..." as ssh-keygen -l prints it
    key_type: str


@dataclass(frozen=True)
class Signer:
    """A key and the principal allowed_signers names for it: what signs a seal."""

    key: SignerKey
    principal: str

    def sign(self, data: bytes, namespace: str) -> bytes:
        return sign(self.key, data, namespace)

    def describe(self) -> dict[str, str]:
        """What a manifest says about its signer (public information only)."""
        return {
            "principal": self.principal,
            "fingerprint": self.key.fingerprint,
            "key_type": self.key.key_type,
        }


@dataclass(frozen=True)
class AllowedSigner:
    """One line of an allowed_signers file."""

    principals: tuple[str, ...]
    key_type: str
    key_blob: str  # base64
    namespaces: tuple[str, ...] | None = None  # None: any namespace
    cert_authority: bool = False
    options: dict[str, str] = field(default_factory=dict)
    line: int = 0

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key_blob)


@dataclass(frozen=True)
class Verified:
    """A good signature: by ``principal`` (as allowed_signers names it) with this key."""

    principal: str
    fingerprint: str
    key_type: str


def ssh_keygen() -> str:
    """The ssh-keygen executable, or SigningError saying how to install it."""
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise SigningError(
            "ssh-keygen (OpenSSH 8.2 or later) is not installed: approvals and seals are SSH "
            "signatures. Install it (Debian/Ubuntu: apt-get install openssh-client; macOS has it)."
        )
    return exe


def fingerprint(blob_b64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (base64), e.g. ``SHA256:abc...``."""
    try:
        raw = base64.b64decode(blob_b64, validate=True)
    except ValueError as err:
        raise SigningError("not a valid SSH public key (its base64 does not decode)") from err
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def _parse_public_key(text: str, what: str) -> tuple[str, str]:
    parts = text.strip().split()
    if len(parts) < 2 or not _KEY_TYPE.fullmatch(parts[0]):
        raise SigningError(f"{what} is not an OpenSSH public key (expected 'TYPE BASE64 ...')")
    fingerprint(parts[1])  # validates the base64
    return parts[0], parts[1]


def load_key(path: str | os.PathLike[str]) -> SignerKey:
    """The key at ``path``: a private key with its ``.pub`` beside it, or a ``.pub`` file
    (the private half then comes from ssh-agent). Only the public half is read here."""
    path = Path(path).expanduser()
    pub = path if path.suffix == ".pub" else path.with_name(path.name + ".pub")
    if path.suffix != ".pub" and not path.exists():
        raise SigningError(
            f"signing key {path}: no such file. Give the path of your SSH private key (its .pub "
            "beside it), or of a public key whose private half is loaded in ssh-agent."
        )
    try:
        text = pub.read_text(encoding="utf-8", errors="strict")[:16384]
    except FileNotFoundError as err:
        raise SigningError(
            f"signing key {path}: its public half {pub} is missing; recreate it with "
            f"ssh-keygen -y -f {path} > {pub}"
        ) from err
    except (OSError, UnicodeError) as err:
        raise SigningError(f"signing key {path}: cannot read {pub} ({err})") from err
    key_type, blob = _parse_public_key(text, str(pub))
    return SignerKey(path, f"{key_type} {blob}", fingerprint(blob), key_type)


def new_key(path: str | os.PathLike[str], comment: str) -> SignerKey:
    """A new ed25519 key without passphrase at ``path`` (and ``path``.pub), for throwaway
    keys only: the sandbox demo's two people, tests. Real keys are the users' own."""
    path = Path(path)
    done = subprocess.run(
        [ssh_keygen(), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise SigningError(f"ssh-keygen could not make a key at {path}: {_last_line(done.stderr)}")
    return load_key(path)


def allowed_signers_line(
    principal: str, key: SignerKey, namespaces: tuple[str, ...] | None = None
) -> str:
    """The allowed_signers line naming ``principal`` for ``key`` (in ``namespaces`` only, if
    given)."""
    options = f' namespaces="{",".join(namespaces)}"' if namespaces else ""
    return f"{principal}{options} {key.public_key}\n"


def sign(key: SignerKey, data: bytes, namespace: str) -> bytes:
    """The armored SSH signature of ``data`` by ``key`` in ``namespace`` (ssh-keygen -Y sign).

    ssh-keygen may ask for the key's passphrase or a touch of the hardware key on the
    terminal; nothing of the key is read by this process."""
    with tempfile.TemporaryDirectory(prefix="runbook-sign-") as tmp:
        message = Path(tmp) / "message"
        message.write_bytes(data)
        try:
            done = subprocess.run(
                [
                    ssh_keygen(),
                    "-Y",
                    "sign",
                    "-q",
                    "-f",
                    str(key.path),
                    "-n",
                    namespace,
                    str(message),
                ],
                stdin=subprocess.DEVNULL if not os.isatty(0) else None,
                capture_output=True,
                timeout=SIGN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise SigningError(
                f"signing with {key.path} timed out after {SIGN_TIMEOUT:.0f} s (a hardware key "
                "waits for a touch). Nothing was signed."
            ) from err
        sig = Path(tmp) / "message.sig"
        if done.returncode != 0 or not sig.exists():
            reason = _last_line(done.stderr) or f"exit status {done.returncode}"
            raise SigningError(f"ssh-keygen could not sign with {key.path}: {reason}")
        signature = sig.read_bytes()
    found = signature_key(signature)
    if found[1] != key.fingerprint:
        raise SigningError(
            f"ssh-keygen signed with key {found[1]}, not {key.fingerprint} ({key.path}): the "
            "agent holds another key for this public key file?"
        )
    return signature


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _read_string(raw: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(raw):
        raise ValueError("truncated")
    (length,) = struct.unpack(">I", raw[offset : offset + 4])
    end = offset + 4 + length
    if end > len(raw):
        raise ValueError("truncated")
    return raw[offset + 4 : end], end


SK_USER_PRESENT = 0x01  # PROTOCOL.u2f: the authenticator saw a touch


def sk_flags(signature: bytes) -> int | None:
    """The authenticator flags of a hardware-backed key's SSH signature (``sk-*`` key types,
    PROTOCOL.u2f: bit 0 user present), None for other keys or an unreadable signature.
    ``ssh-keygen -Y verify`` (OpenSSH 9.2) does not require the user-presence flag."""
    text = signature.decode("ascii", "replace").strip()
    body = "".join(text.removeprefix(_ARMOR_BEGIN).removesuffix(_ARMOR_END).split())
    try:
        raw = base64.b64decode(body, validate=True)
        offset = 10  # "SSHSIG" + uint32 version
        for _ in range(4):  # public key, namespace, reserved, hash algorithm
            _, offset = _read_string(raw, offset)
        blob, _ = _read_string(raw, offset)
        key_type, offset = _read_string(blob, 0)
        if not key_type.startswith(b"sk-"):
            return None
        _, offset = _read_string(blob, offset)
        return blob[offset] if offset < len(blob) else None
    except (ValueError, IndexError):
        return None


def signature_key(signature: bytes) -> tuple[str, str, str]:
    """(key type, fingerprint, namespace) of an armored SSH signature, read from the public key
    it embeds (PROTOCOL.sshsig). Says nothing about validity: see :func:`verify`."""
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise SignatureInvalid("not an SSH signature (too large)")
    text = signature.decode("ascii", "replace").strip()
    if not text.startswith(_ARMOR_BEGIN) or not text.endswith(_ARMOR_END):
        raise SignatureInvalid("not an armored SSH signature (-----BEGIN SSH SIGNATURE-----)")
    body = "".join(text[len(_ARMOR_BEGIN) : -len(_ARMOR_END)].split())
    try:
        raw = base64.b64decode(body, validate=True)
        if raw[:6] != b"SSHSIG":
            raise ValueError("magic")
        pubkey, offset = _read_string(raw, 10)
        namespace, offset = _read_string(raw, offset)
        key_type, _ = _read_string(pubkey, 0)
    except ValueError as err:
        raise SignatureInvalid("not a well-formed SSH signature") from err
    blob = base64.b64encode(pubkey).decode()
    return (
        key_type.decode("ascii", "replace"),
        fingerprint(blob),
        namespace.decode("utf-8", "replace"),
    )


def _split_fields(line: str) -> list[str]:
    """Whitespace-separated fields; double quotes protect spaces (options like
    namespaces="a,b" or a quoted principals list)."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch.isspace() and not quoted:
            if current:
                fields.append("".join(current))
                current = []
        else:
            current.append(ch)
    if quoted:
        raise ValueError("unbalanced quotes")
    if current:
        fields.append("".join(current))
    return fields


def _parse_options(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in re.findall(r'(?:[^,"]|"[^"]*")+', text):
        name, _, value = item.partition("=")
        options[name.strip().lower()] = value.strip().strip('"')
    return options


def read_allowed_signers(path: str | os.PathLike[str]) -> list[AllowedSigner]:
    """Parse an allowed_signers file; SigningError naming the line of anything malformed."""
    path = Path(path).expanduser()
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_ALLOWED_SIGNERS_BYTES + 1)
    except OSError as err:
        raise SigningError(
            f"allowed_signers {path}: cannot be read ({err.strerror or err}). It lists who may "
            "approve and seal (ssh-keygen(1) ALLOWED SIGNERS); get it from your security team."
        ) from err
    if len(raw) > MAX_ALLOWED_SIGNERS_BYTES:
        raise SigningError(f"allowed_signers {path}: larger than 1 MiB; is it the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SigningError(f"allowed_signers {path}: not UTF-8 text") from err
    signers: list[AllowedSigner] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            fields = _split_fields(stripped)
            if len(fields) < 3:
                raise ValueError("expected PRINCIPALS [OPTIONS] KEYTYPE BASE64")
            principals, rest = fields[0].strip('"'), fields[1:]
            options: dict[str, str] = {}
            if not _KEY_TYPE.fullmatch(rest[0]):
                options = _parse_options(rest[0])
                rest = rest[1:]
            if len(rest) < 2 or not _KEY_TYPE.fullmatch(rest[0]):
                raise ValueError("no key type (ssh-ed25519, sk-ssh-ed25519@openssh.com, ...)")
            fingerprint(rest[1])
        except (ValueError, SigningError) as err:
            raise SigningError(f"allowed_signers {path}, line {number}: {err}") from err
        namespaces = options.get("namespaces")
        signers.append(
            AllowedSigner(
                tuple(p for p in principals.split(",") if p),
                rest[0],
                rest[1],
                tuple(n for n in namespaces.split(",") if n) if namespaces is not None else None,
                "cert-authority" in options,
                options,
                number,
            )
        )
    return signers


def _matches(pattern_list: tuple[str, ...], value: str) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(value, p) for p in pattern_list if not p.startswith("!"))


def principals_for(signers: list[AllowedSigner], public_key: str, namespace: str) -> list[str]:
    """The principals allowed_signers names for ``public_key`` ("TYPE BASE64") in
    ``namespace``, in file order (literal names; wildcard patterns are not expanded)."""
    key_type, blob = _parse_public_key(public_key, "public key")
    out: list[str] = []
    for signer in signers:
        if signer.cert_authority or signer.key_blob != blob or signer.key_type != key_type:
            continue
        if signer.namespaces is not None and not _matches(signer.namespaces, namespace):
            continue
        out += [p for p in signer.principals if p not in out]
    return out


def verify(
    data: bytes,
    signature: bytes,
    principal: str,
    namespace: str,
    allowed_signers: str | os.PathLike[str],
    at: dt.datetime | None = None,
) -> Verified:
    """Check that ``signature`` is ``principal``'s signature of ``data`` in ``namespace``, with
    a key ``allowed_signers`` lists for that principal (valid at ``at``, default now); the
    :class:`Verified` signer, or :class:`SignatureInvalid` saying why."""
    key_type, key_fp, sig_namespace = signature_key(signature)
    if sig_namespace != namespace:
        raise SignatureInvalid(
            f"the signature is for namespace {sig_namespace!r}, not {namespace!r} (a signature "
            "made for another purpose)"
        )
    if not principal or any(ch.isspace() or not ch.isprintable() for ch in principal):
        raise SignatureInvalid(f"the signer's name {principal!r} is not a valid principal")
    command = [ssh_keygen(), "-Y", "verify", "-f", str(allowed_signers), "-I", principal]
    command += ["-n", namespace]
    if at is not None:
        stamp = at.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ")
        command += ["-O", f"verify-time={stamp}"]
    with tempfile.TemporaryDirectory(prefix="runbook-verify-") as tmp:
        sig_path = Path(tmp) / "signature"
        sig_path.write_bytes(signature)
        try:
            done = subprocess.run(
                [*command, "-s", str(sig_path)],
                input=data,
                capture_output=True,
                timeout=VERIFY_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise SigningError("ssh-keygen -Y verify did not answer in 30 s") from err
    good = _GOOD.search(done.stdout.decode("utf-8", "replace"))
    if done.returncode == 0 and good and good.group("fp") == key_fp:
        return Verified(good.group("principal"), key_fp, key_type)
    try:
        signers = read_allowed_signers(allowed_signers)
    except SigningError as err:
        raise SignatureInvalid(str(err)) from err
    listed = [s for s in signers if s.fingerprint == key_fp and not s.cert_authority]
    if not listed:
        raise SignatureInvalid(
            f"signed by {key_type} key {key_fp}, which allowed_signers does not list"
        )
    names = [p for s in listed for p in s.principals]
    if not any(_matches(s.principals, principal) for s in listed):
        raise SignatureInvalid(
            f"signed by key {key_fp}, which allowed_signers lists for {', '.join(names)}, "
            f"not for {principal}"
        )
    if not any(s.namespaces is None or _matches(s.namespaces, namespace) for s in listed):
        raise SignatureInvalid(
            f"key {key_fp} ({principal}) may not sign in namespace {namespace} (allowed_signers "
            "restricts its namespaces)"
        )
    reason = _last_line(done.stderr)
    if any(s.options.get("valid-after") or s.options.get("valid-before") for s in listed):
        raise SignatureInvalid(
            f"key {key_fp} ({principal}) is not valid at that time per allowed_signers, or the "
            f"signature does not match ({reason})"
        )
    raise SignatureInvalid(
        f"the signature by {principal} (key {key_fp}) does not match the data: it was changed "
        "after signing"
    )
