"""Throwaway SSH keys for the tests: an operator, two approvers, and an outsider.

Made with ``ssh-keygen`` once per test process in a private temporary directory (removed at
exit); never committed. ``allowed_signers`` lists the operator and the approvers (not the
outsider), in the format git uses for SSH signing.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from runbook_lib.record.signing import Signer, allowed_signers_line, load_key, new_key

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
    made = {name: new_key(path / name, principal) for name, principal in PRINCIPALS.items()}
    (path / "allowed_signers").write_text(
        "".join(allowed_signers_line(PRINCIPALS[name], made[name]) for name in TRUSTED)
    )
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


def with_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with the operator's key and the allowed_signers (olivia operates)."""
    return {**raw, "operator_key": str(key("operator")), "allowed_signers": str(allowed_signers())}


def approved(raw: dict[str, Any], where: Path, approver: str = "alice") -> dict[str, Any]:
    """``raw`` with keys and ``approver``'s signed approval of a new plan of it (mode as given:
    a lab run's plan is planned with mode interactive)."""
    from runbook_demo import sign_approval
    from runbook_lib.runner import plan_for

    params = with_keys(raw)
    _, plan = plan_for({k: v for k, v in params.items() if k != "approvals"}, save=True)
    where.mkdir(parents=True, exist_ok=True)
    approval = sign_approval(
        plan, key(approver), PRINCIPALS[approver], PRINCIPALS["operator"], where
    )
    return {**params, "approvals": [str(approval)]}
