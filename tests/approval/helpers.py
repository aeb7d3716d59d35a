"""Keys, plans and approvals for the approval tests (real ssh-keygen, no FIDO device)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook_lib.approval import PlanFile, build_statement, content_digest, write_plan_file
from runbook_lib.params import validate
from runbook_lib.plan import PlanIdentity, make_plan
from runbook_lib.record import signing
from tests import keys as test_keys

BASE: dict[str, Any] = {
    "account_id": "123456789012",
    "change_ticket": "CHG-1234",
    "method": "console",
    "profile": "sandbox-admin",
    "dry_run": False,
    # the operator of tests/keys.py; plan_dict(keys) names these tests' own keys instead
    "operator_key": str(test_keys.key("operator")),
    "allowed_signers": str(test_keys.allowed_signers()),
}
ALICE, BOB, OLIVIA, MALLORY, CAROL = (
    "alice@example.com",
    "bob@example.com",
    "olivia@example.com",
    "mallory@example.com",
    "carol@example.com",
)


def keygen(path: Path, comment: str = "test") -> signing.SignerKey:
    """A new ed25519 key without passphrase at ``path`` (and ``path``.pub)."""
    return signing.new_key(path, comment)


@dataclass(frozen=True)
class Keys:
    """alice, bob: reviewers; olivia: the operator; mallory: not listed; carol: listed for
    seals only. ``allowed_signers`` lists alice and bob for approvals, olivia for any
    namespace, carol for seals."""

    dir: Path
    alice: signing.SignerKey
    bob: signing.SignerKey
    olivia: signing.SignerKey
    mallory: signing.SignerKey
    carol: signing.SignerKey
    allowed_signers: Path


def make_keys(directory: Path) -> Keys:
    keys = {
        name: keygen(directory / name, name)
        for name in ("alice", "bob", "olivia", "mallory", "carol")
    }
    signers = directory / "allowed_signers"
    signers.write_text(
        "# who may approve and seal\n"
        f'{ALICE} namespaces="{signing.APPROVAL_NAMESPACE}" {keys["alice"].public_key} alice\n'
        f'{BOB} namespaces="{signing.APPROVAL_NAMESPACE}" {keys["bob"].public_key}\n'
        f"{OLIVIA} {keys['olivia'].public_key} olivia (operator)\n"
        f'{CAROL} namespaces="{signing.SEAL_NAMESPACE}" {keys["carol"].public_key}\n'
    )
    return Keys(directory, **keys, allowed_signers=signers)


def plan_dict(
    keys: Keys | None = None,
    self_approval: bool = False,
    identity: PlanIdentity | None = None,
    **params: Any,
) -> dict[str, Any]:
    """A plan's dict (``make_plan(validate(...)).to_dict()``); the operator is olivia (these
    tests' keys, or tests/keys.py's when ``keys`` is None)."""
    if keys is not None:
        trust = {
            "operator_key": str(keys.dir / "olivia"),
            "allowed_signers": str(keys.allowed_signers),
            "self_approval": self_approval,
        }
    else:
        trust = {}
    return make_plan(validate({**BASE, **trust, **params}), identity).to_dict()


def redigest(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its digest recomputed from its content (a forger who knows how)."""
    return {**data, "digest": content_digest(data)}


def plan_file(directory: Path, data: dict[str, Any], name: str = "plan.txt") -> Path:
    path = directory / name
    write_plan_file(data, path)
    return path


def approval_bytes(
    plan: PlanFile,
    key: signing.SignerKey,
    approver: str,
    operator: str = OLIVIA,
    at: dt.datetime | None = None,
    namespace: str = signing.APPROVAL_NAMESPACE,
) -> bytes:
    statement = build_statement(plan, approver, operator, at)
    return statement + signing.sign(key, statement, namespace)


def write_approval(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def cli(
    *args: str, cwd: Path, stdin: Any = subprocess.DEVNULL, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m runbook_lib.cli ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "runbook_lib.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        stdin=None if input is not None else stdin,
        input=input,
        check=False,
    )


# --------------------------------------------------------------- a hardware-backed key's SSHSIG
def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


SK_TYPE = b"sk-ssh-ed25519@openssh.com"


def sk_public_key(public: bytes, application: bytes = b"ssh:") -> str:
    """The OpenSSH public key line of an sk-ssh-ed25519 key (PROTOCOL.u2f)."""
    blob = _string(SK_TYPE) + _string(public) + _string(application)
    return f"{SK_TYPE.decode()} {base64.b64encode(blob).decode()}"


def sk_signature(
    private: Any,
    message: bytes,
    namespace: str,
    application: bytes = b"ssh:",
    flags: int = 0x01,
    counter: int = 7,
) -> bytes:
    """A genuine SSHSIG (PROTOCOL.sshsig) by an sk-ssh-ed25519 key, as a FIDO authenticator
    makes it (PROTOCOL.u2f): the Ed25519 signature is over sha256(application) || flags ||
    counter || sha256(the SSHSIG signed data)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    pubkey_blob = _string(SK_TYPE) + _string(public) + _string(application)
    signed_data = (
        b"SSHSIG"
        + _string(namespace.encode())
        + _string(b"")
        + _string(b"sha512")
        + _string(hashlib.sha512(message).digest())
    )
    u2f_message = (
        hashlib.sha256(application).digest()
        + bytes([flags])
        + struct.pack(">I", counter)
        + hashlib.sha256(signed_data).digest()
    )
    sig64 = private.sign(u2f_message)
    sig_blob = _string(SK_TYPE) + _string(sig64) + bytes([flags]) + struct.pack(">I", counter)
    sshsig = (
        b"SSHSIG"
        + struct.pack(">I", 1)
        + _string(pubkey_blob)
        + _string(namespace.encode())
        + _string(b"")
        + _string(b"sha512")
        + _string(sig_blob)
    )
    body = base64.b64encode(sshsig).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return (
        "-----BEGIN SSH SIGNATURE-----\n" + "\n".join(lines) + "\n-----END SSH SIGNATURE-----\n"
    ).encode()


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
