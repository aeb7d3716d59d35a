"""Throwaway SSH keys for the tests: an operator, two approvers, and an outsider.

Made with ``ssh-keygen`` once per test process in a private temporary directory (removed at
exit); never committed. ``allowed_signers`` lists the operator and the approvers (not the
outsider), in the format git uses for SSH signing.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from runbook_lib.signing import Signer, load_key

PRINCIPALS = {
    "operator": "olivia@example.com",
    "alice": "alice@example.com",
    "bob": "bob@example.com",
    "mallory": "mallory@example.com",  # not in allowed_signers
}
TRUSTED = ("operator", "alice", "bob")


@functools.cache
def key_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="runbook-test-keys-"))
    atexit.register(shutil.rmtree, path, True)
    lines = []
    for name, principal in PRINCIPALS.items():
        key = path / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key)],
            check=True,
        )
        if name in TRUSTED:
            kind, blob = key.with_suffix(".pub").read_text().split()[:2]
            lines.append(f"{principal} {kind} {blob}\n")
    (path / "allowed_signers").write_text("".join(lines))
    return path


def key(name: str = "operator") -> Path:
    """The private key file of ``name`` (its .pub beside it)."""
    return key_dir() / name


def allowed_signers() -> Path:
    return key_dir() / "allowed_signers"


def trust_bytes() -> bytes:
    return allowed_signers().read_bytes()


def signer(name: str = "operator") -> Signer:
    """A seal signer for ``name``'s key."""
    return Signer(load_key(key(name)), PRINCIPALS[name])
