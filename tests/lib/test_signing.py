"""runbook_lib.record.signing: the ssh-keygen -Y wrapper (real ssh-keygen, per-session keys)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from runbook_lib.errors import SignatureInvalid, SigningError
from runbook_lib.record import signing
from runbook_lib.record.signing import (
    APPROVAL_NAMESPACE,
    SEAL_NAMESPACE,
    load_key,
    principals_for,
    read_allowed_signers,
    sign,
    signature_key,
    verify,
)


def _keygen(path: Path) -> signing.SignerKey:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return load_key(path)


@pytest.fixture(scope="session")
def two_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[signing.SignerKey, ...]:
    directory = tmp_path_factory.mktemp("signing-keys")
    return _keygen(directory / "alice"), _keygen(directory / "bob")


def test_load_key(tmp_path: Path, two_keys: tuple[signing.SignerKey, ...]) -> None:
    alice = two_keys[0]
    assert alice.key_type == "ssh-ed25519" and alice.public_key.startswith("ssh-ed25519 AAAA")
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(alice.path)], capture_output=True, text=True, check=True
    )
    assert alice.fingerprint == listed.stdout.split()[1]
    # the .pub itself (private half in ssh-agent): the same public key, the .pub as path
    by_pub = load_key(alice.path.with_name("alice.pub"))
    assert by_pub.public_key == alice.public_key and by_pub.path.name == "alice.pub"
    assert by_pub.fingerprint == alice.fingerprint


def test_load_key_problems(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="no such file"):
        load_key(tmp_path / "nothing")
    lonely = tmp_path / "lonely"
    lonely.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(SigningError, match=r"public half .*lonely.pub is missing; recreate it"):
        load_key(lonely)
    with pytest.raises(SigningError, match="public half"):
        load_key(tmp_path / "nothing.pub")
    bad = tmp_path / "bad"
    bad.write_text("x")
    (tmp_path / "bad.pub").write_text("hello world\n")
    with pytest.raises(SigningError, match="is not an OpenSSH public key"):
        load_key(bad)
    (tmp_path / "bad.pub").write_text("ssh-ed25519 not*base64\n")
    with pytest.raises(SigningError, match="base64"):
        load_key(bad)
    (tmp_path / "bin.pub").write_bytes(b"\xff\xfe")
    with pytest.raises(SigningError, match="cannot read"):
        load_key(tmp_path / "bin.pub")


def test_allowed_signers_parsing(tmp_path: Path, two_keys: tuple[signing.SignerKey, ...]) -> None:
    alice, bob = two_keys
    path = tmp_path / "allowed_signers"
    path.write_text(
        "# reviewers\n"
        "\n"
        f'alice@example.com namespaces="{APPROVAL_NAMESPACE}" {alice.public_key} alice laptop\n'
        f'  "bob@example.com,robert@example.com" {bob.public_key}\n'
        f'ops@example.com cert-authority,namespaces="{SEAL_NAMESPACE},x@y" {bob.public_key}\n'
        f'old@example.com valid-after="20200101",valid-before="20210101" {alice.public_key}\n'
    )
    signers = read_allowed_signers(path)
    assert [s.line for s in signers] == [3, 4, 5, 6]
    first, second, third, fourth = signers
    assert first.principals == ("alice@example.com",)
    assert first.namespaces == (APPROVAL_NAMESPACE,) and not first.cert_authority
    assert first.fingerprint == alice.fingerprint
    assert second.principals == ("bob@example.com", "robert@example.com")
    assert second.namespaces is None and second.key_type == "ssh-ed25519"
    assert third.cert_authority and third.namespaces == (SEAL_NAMESPACE, "x@y")
    assert fourth.options == {"valid-after": "20200101", "valid-before": "20210101"}
    assert principals_for(signers, alice.public_key, APPROVAL_NAMESPACE) == [
        "alice@example.com",
        "old@example.com",
    ]
    assert principals_for(signers, alice.public_key, SEAL_NAMESPACE) == ["old@example.com"]
    # a cert-authority line names no key's principal
    assert principals_for(signers, bob.public_key, SEAL_NAMESPACE) == [
        "bob@example.com",
        "robert@example.com",
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("alice@example.com", "line 2: expected PRINCIPALS"),
        ("alice@example.com opt=1 AAAA", "line 2: no key type"),
        ('alice@example.com namespaces="a ssh-ed25519 AAAA', "line 2: unbalanced quotes"),
        ("alice@example.com ssh-ed25519 !!!", "line 2: not a valid SSH public key"),
    ],
)
def test_allowed_signers_malformed_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "allowed_signers"
    path.write_text(f"# first line\n{line}\n")
    with pytest.raises(SigningError, match=f"allowed_signers {path}, {message}"):
        read_allowed_signers(path)


def test_allowed_signers_unreadable(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="cannot be read"):
        read_allowed_signers(tmp_path / "missing")
    (tmp_path / "big").write_bytes(b"#" * ((1 << 20) + 1))
    with pytest.raises(SigningError, match="larger than 1 MiB"):
        read_allowed_signers(tmp_path / "big")
    (tmp_path / "bin").write_bytes(b"\xff\n")
    with pytest.raises(SigningError, match="not UTF-8"):
        read_allowed_signers(tmp_path / "bin")


def _signers(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(text)
    return path


def test_sign_and_verify(tmp_path: Path, two_keys: tuple[signing.SignerKey, ...]) -> None:
    alice, bob = two_keys
    signers = _signers(
        tmp_path, f"alice@example.com {alice.public_key}\nbob@example.com {bob.public_key}\n"
    )
    signature = sign(alice, b"data\n", APPROVAL_NAMESPACE)
    assert signature.startswith(b"-----BEGIN SSH SIGNATURE-----\n")
    assert signature_key(signature) == ("ssh-ed25519", alice.fingerprint, APPROVAL_NAMESPACE)
    verified = verify(b"data\n", signature, "alice@example.com", APPROVAL_NAMESPACE, signers)
    assert verified == signing.Verified("alice@example.com", alice.fingerprint, "ssh-ed25519")
    # an auditor's check with OpenSSH alone gives the same verdict
    (tmp_path / "data").write_bytes(b"data\n")
    (tmp_path / "data.sig").write_bytes(signature)
    with (tmp_path / "data").open("rb") as data:
        done = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "alice@example.com"]
            + ["-n", APPROVAL_NAMESPACE, "-s", str(tmp_path / "data.sig")],
            stdin=data,
            capture_output=True,
            check=False,
        )
    assert done.returncode == 0


def test_verify_reasons(tmp_path: Path, two_keys: tuple[signing.SignerKey, ...]) -> None:
    alice, bob = two_keys
    signers = _signers(tmp_path, f"bob@example.com {bob.public_key}\n")
    by_alice = sign(alice, b"data", APPROVAL_NAMESPACE)
    by_bob = sign(bob, b"data", APPROVAL_NAMESPACE)
    with pytest.raises(SignatureInvalid, match="which allowed_signers does not list"):
        verify(b"data", by_alice, "alice@example.com", APPROVAL_NAMESPACE, signers)
    with pytest.raises(SignatureInvalid, match="lists for bob@example.com, not for alice"):
        verify(b"data", by_bob, "alice@example.com", APPROVAL_NAMESPACE, signers)
    with pytest.raises(SignatureInvalid, match="changed after signing"):
        verify(b"dat4", by_bob, "bob@example.com", APPROVAL_NAMESPACE, signers)
    with pytest.raises(SignatureInvalid, match="for namespace 'approval@root-mfa-runbook', not"):
        verify(b"data", by_bob, "bob@example.com", SEAL_NAMESPACE, signers)
    with pytest.raises(SignatureInvalid, match="not a valid principal"):
        verify(b"data", by_bob, "bob @example.com", APPROVAL_NAMESPACE, signers)
    with pytest.raises(SignatureInvalid, match="not an armored SSH signature"):
        verify(b"data", b"hello", "bob@example.com", APPROVAL_NAMESPACE, signers)
    with pytest.raises(SignatureInvalid, match="not a well-formed"):
        verify(
            b"data",
            b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
            "bob@example.com",
            APPROVAL_NAMESPACE,
            signers,
        )
    with pytest.raises(SignatureInvalid, match="too large"):
        signature_key(b"x" * (65 << 10))


def test_a_key_for_one_namespace_only(
    tmp_path: Path, two_keys: tuple[signing.SignerKey, ...]
) -> None:
    alice = two_keys[0]
    signers = _signers(
        tmp_path, f'alice@example.com namespaces="{SEAL_NAMESPACE}" {alice.public_key}\n'
    )
    seal = sign(alice, b"sums", SEAL_NAMESPACE)
    assert verify(b"sums", seal, "alice@example.com", SEAL_NAMESPACE, signers)
    approval = sign(alice, b"sums", APPROVAL_NAMESPACE)
    with pytest.raises(SignatureInvalid, match="may not sign in namespace approval@"):
        verify(b"sums", approval, "alice@example.com", APPROVAL_NAMESPACE, signers)
    assert principals_for(read_allowed_signers(signers), alice.public_key, APPROVAL_NAMESPACE) == []


def test_verify_at_a_time(tmp_path: Path, two_keys: tuple[signing.SignerKey, ...]) -> None:
    alice = two_keys[0]
    signers = _signers(tmp_path, f'alice@example.com valid-before="20200101" {alice.public_key}\n')
    signature = sign(alice, b"data", APPROVAL_NAMESPACE)
    then = dt.datetime(2019, 6, 1, tzinfo=dt.UTC)
    assert verify(b"data", signature, "alice@example.com", APPROVAL_NAMESPACE, signers, at=then)
    with pytest.raises(SignatureInvalid, match="not valid at that time"):
        verify(b"data", signature, "alice@example.com", APPROVAL_NAMESPACE, signers)


def test_sign_problems(
    tmp_path: Path, two_keys: tuple[signing.SignerKey, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = two_keys[0]
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    # a .pub whose private half is nowhere (no agent here)
    pub = tmp_path / "agent.pub"
    pub.write_text(alice.public_key + "\n")
    with pytest.raises(SigningError, match="could not sign"):
        sign(load_key(pub), b"data", APPROVAL_NAMESPACE)
