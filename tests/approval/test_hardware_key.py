"""Hardware-backed keys (sk-ssh-ed25519@openssh.com) verify unchanged.

There is no FIDO authenticator here, so the test makes a genuine sk-ssh-ed25519 SSHSIG itself
(PROTOCOL.sshsig + PROTOCOL.u2f, with ``cryptography``'s Ed25519) and has ssh-keygen -Y verify
check it, through signing.verify and verify_approvals."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runbook_lib.approval import (
    ApprovalRefused,
    Policy,
    build_statement,
    read_plan_file,
    sk_flags,
    verify_approvals,
)
from runbook_lib.errors import SignatureInvalid
from runbook_lib.record import signing

from .helpers import OLIVIA, Keys, plan_dict, plan_file, sk_public_key, sk_signature

DAVE = "dave@example.com"


def test_sk_signature_verifies_with_ssh_keygen(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    public = sk_public_key(private.public_key().public_bytes_raw())
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'{DAVE} namespaces="{signing.APPROVAL_NAMESPACE}" {public} yubikey\n')
    message = b"an approval statement\n"
    signature = sk_signature(private, message, signing.APPROVAL_NAMESPACE)
    key_type, fp, namespace = signing.signature_key(signature)
    assert key_type == "sk-ssh-ed25519@openssh.com" and namespace == signing.APPROVAL_NAMESPACE
    assert fp == signing.fingerprint(public.split()[1])
    verified = signing.verify(message, signature, DAVE, signing.APPROVAL_NAMESPACE, signers)
    assert verified == signing.Verified(DAVE, fp, "sk-ssh-ed25519@openssh.com")
    assert signing.principals_for(
        signing.read_allowed_signers(signers), public, signing.APPROVAL_NAMESPACE
    ) == [DAVE]
    with pytest.raises(SignatureInvalid, match="changed after signing"):
        signing.verify(message[:-2] + b"?\n", signature, DAVE, signing.APPROVAL_NAMESPACE, signers)
    # the same signature, the namespace swapped inside: ssh-keygen refuses it too
    with pytest.raises(SignatureInvalid, match="namespace"):
        signing.verify(message, signature, DAVE, signing.SEAL_NAMESPACE, signers)


def test_sk_approval_counts_and_a_changed_byte_is_refused(tmp_path: Path, keys: Keys) -> None:
    private = Ed25519PrivateKey.generate()
    public = sk_public_key(private.public_key().public_bytes_raw())
    signers = tmp_path / "allowed_signers"
    signers.write_text(
        keys.allowed_signers.read_text()
        + f'{DAVE} namespaces="{signing.APPROVAL_NAMESPACE}" {public}\n'
    )
    plan = read_plan_file(plan_file(tmp_path, plan_dict(keys)))
    statement = build_statement(plan, DAVE, OLIVIA)
    signature = sk_signature(private, statement, signing.APPROVAL_NAMESPACE)
    good = tmp_path / "dave.approval"
    good.write_bytes(statement + signature)
    policy = Policy(1, False, OLIVIA, keys.olivia.fingerprint)
    result = verify_approvals([good], plan.digest, policy, signers)
    assert result.approvers == (DAVE,)
    assert result.approvals[0].key_type == "sk-ssh-ed25519@openssh.com"
    # one byte of the statement changed
    index = statement.index(b"account: ") + len(b"account: ")
    changed = statement[:index] + b"2" + statement[index + 1 :]
    assert changed != statement and len(changed) == len(statement)
    bad = tmp_path / "bad.approval"
    bad.write_bytes(changed + signature)
    with pytest.raises(ApprovalRefused, match="changed after signing"):
        verify_approvals([bad], plan.digest, policy, signers)


def test_sk_approval_without_a_touch_is_refused(tmp_path: Path, keys: Keys) -> None:
    """ssh-keygen -Y verify (OpenSSH 9.2) accepts an sk signature without the user-presence
    flag (allowed_signers has no no-touch-required option); an approval needs the touch."""
    private = Ed25519PrivateKey.generate()
    public = sk_public_key(private.public_key().public_bytes_raw())
    plan = read_plan_file(plan_file(tmp_path, plan_dict(keys)))
    statement = build_statement(plan, DAVE, OLIVIA)
    untouched = sk_signature(private, statement, signing.APPROVAL_NAMESPACE, flags=0x00)
    assert sk_flags(untouched) == 0
    assert sk_flags(sk_signature(private, b"m", signing.APPROVAL_NAMESPACE)) == 1
    assert sk_flags(signing.sign(keys.alice, b"m", signing.APPROVAL_NAMESPACE)) is None
    file = tmp_path / "dave.approval"
    file.write_bytes(statement + untouched)
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"{DAVE} {public}\n")
    assert signing.verify(statement, untouched, DAVE, signing.APPROVAL_NAMESPACE, signers)
    policy = Policy(1, False, OLIVIA, keys.olivia.fingerprint)
    with pytest.raises(ApprovalRefused, match="without a touch"):
        verify_approvals([file], plan.digest, policy, signers)
