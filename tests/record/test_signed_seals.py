"""Signed seals: someone who can run the project's code but lacks the operator's key cannot
re-chain a record, move it into another ledger, or strip the signature undetected; an auditor
checks a seal with OpenSSH and coreutils only."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.errors import RecordError
from runbook_lib.record.chain import canonical, entry_hash
from runbook_lib.record.layout import (
    EVENTS_FILE,
    LEDGER_ENTRIES_FILE,
    LEDGER_FILE,
    MANIFEST_FILE,
    SUMS_FILE,
    SUMS_SIG_FILE,
)
from runbook_lib.record.run import RunRecord, sums_bytes
from runbook_lib.record.signing import SEAL_NAMESPACE, Signer, load_key, sign
from runbook_lib.record.verify import verify
from tests import keys
from tests.keys import signer

from .helpers import make_run


@pytest.fixture
def sealed(tmp_path: Path) -> RunRecord:
    rec = make_run(tmp_path / "runs")
    rec.seal(signer=signer())
    return rec


def _rechain(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    prev = "0" * 64
    out = []
    for entry in lines:
        entry = {**entry, "prev": prev}
        entry["hash"] = entry_hash(entry)
        prev = entry["hash"]
        out.append(entry)
    return out


def _write_chain(path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_text("".join(canonical(e) + "\n" for e in entries))


def _read_chain(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _forge(rec: RunRecord, *, resign: str | None = None, claim: str | None = None) -> None:
    """Rewrite the approver in an event, then re-chain events, manifest, SHA256SUMS and
    ledger with the project's own functions, as an attacker able to run the code would; sign
    with ``resign``'s key (claiming ``claim``) if given, else leave the old signature."""
    events = _read_chain(rec.path / EVENTS_FILE)
    for event in events:
        if event["type"] == "gate.approved":
            event["data"]["who"] = "mallory@example.com"
    events = _rechain(events)
    _write_chain(rec.path / EVENTS_FILE, events)
    manifest = json.loads((rec.path / MANIFEST_FILE).read_text())
    data = (rec.path / EVENTS_FILE).read_bytes()
    manifest["files"][EVENTS_FILE] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest["events"]["head"] = events[-1]["hash"]
    if resign:
        key = keys.signer(resign).key
        manifest["signer"] = {
            "principal": claim or keys.PRINCIPALS[resign],
            "fingerprint": key.fingerprint,
            "key_type": key.key_type,
        }
    raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (rec.path / MANIFEST_FILE).write_bytes(raw)
    sums = sums_bytes(manifest["files"], hashlib.sha256(raw).hexdigest())
    (rec.path / SUMS_FILE).write_bytes(sums)
    if resign:
        (rec.path / SUMS_SIG_FILE).write_bytes(sign(keys.signer(resign).key, sums, SEAL_NAMESPACE))
    ledger = _read_chain(rec.ledger_path)
    ledger[-1]["manifest_sha256"] = hashlib.sha256(raw).hexdigest()
    if resign:
        ledger[-1]["signer"] = manifest["signer"]["fingerprint"]
    _write_chain(rec.ledger_path, _rechain(ledger))


def test_a_signed_seal_verifies_and_names_its_signer(sealed: RunRecord) -> None:
    report = verify(sealed.path)
    assert report.ok, report.problems
    assert report.signer is not None and report.signer["principal"] == "olivia@example.com"
    assert report.signer["fingerprint"] == signer().key.fingerprint
    assert "RUNBOOK_ALLOWED_SIGNERS" in report.trust
    assert "seal signed by olivia@example.com" in str(report)


def test_forged_and_rechained_record_without_the_key_is_detected(sealed: RunRecord) -> None:
    _forge(sealed)
    report = verify(sealed.path)
    assert not report.ok
    assert any(
        p.startswith(f"{SUMS_SIG_FILE}:") and "changed after signing" in p for p in report.problems
    ), report.problems
    # everything else agrees: only the signature gives the forgery away
    assert len(report.problems) == 1, report.problems


def test_forgery_signed_with_a_key_not_in_allowed_signers_is_detected(sealed: RunRecord) -> None:
    _forge(sealed, resign="mallory")
    report = verify(sealed.path)
    assert not report.ok
    assert any("does not list" in p for p in report.problems), report.problems


def test_forgery_claiming_the_operator_with_another_key_is_detected(sealed: RunRecord) -> None:
    _forge(sealed, resign="mallory", claim="olivia@example.com")
    report = verify(sealed.path)
    assert not report.ok
    assert any("does not list" in p or "not for" in p for p in report.problems), report.problems


def test_forgery_signed_by_another_trusted_person_verifies_only_as_theirs(
    sealed: RunRecord,
) -> None:
    """alice is trusted (an approver): a forgery she signs verifies, but names her, not the
    operator: the report says who sealed, and the approvals check (runner) compares."""
    _forge(sealed, resign="alice")
    report = verify(sealed.path)
    assert report.ok, report.problems
    assert report.signer and report.signer["principal"] == "alice@example.com"


def test_an_unsigned_seal_is_a_problem(tmp_path: Path) -> None:
    rec = make_run(tmp_path / "runs")
    rec.seal()
    report = verify(rec.path)
    assert not report.ok
    assert any("not signed" in p for p in report.problems), report.problems


def test_stripping_the_signature_is_detected(sealed: RunRecord) -> None:
    (sealed.path / SUMS_SIG_FILE).unlink()
    report = verify(sealed.path)
    assert any(p.startswith(SUMS_SIG_FILE) for p in report.problems), report.problems


def test_a_run_moved_into_another_ledger_is_detected(sealed: RunRecord, tmp_path: Path) -> None:
    other = make_run(tmp_path / "elsewhere", run_id="20261126T060000Z-aaaa")
    other.seal(signer=signer())
    target = tmp_path / "elsewhere" / sealed.run_id
    shutil.copytree(sealed.path, target)
    # rebuild the other ledger with this run's entries appended, re-chained
    mine = [e for e in _read_chain(sealed.ledger_path) if e["run_id"] == sealed.run_id]
    ledger = _read_chain(other.ledger_path) + mine
    _write_chain(other.ledger_path, _rechain(ledger))
    report = verify(target)
    assert not report.ok
    assert any("ledger was rebuilt" in p for p in report.problems), report.problems


def test_a_deleted_earlier_run_breaks_the_later_runs_seal(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = make_run(runs, run_id="20261126T050000Z-0001")
    first.seal(signer=signer())
    second = make_run(runs, run_id="20261126T050100Z-0002")
    second.seal(signer=signer())
    shutil.rmtree(first.path)
    kept = [e for e in _read_chain(runs / LEDGER_FILE) if e["run_id"] != first.run_id]
    for n, entry in enumerate(kept, 1):
        entry["seq"] = n
    _write_chain(runs / LEDGER_FILE, _rechain(kept))
    report = verify(second.path)
    assert not report.ok
    assert any("ledger was rebuilt" in p for p in report.problems), report.problems


def test_an_auditors_own_allowed_signers_decides(sealed: RunRecord, tmp_path: Path) -> None:
    only_alice = tmp_path / "allowed_signers"
    only_alice.write_text(
        "".join(
            line for line in keys.allowed_signers().read_text().splitlines(True) if "alice" in line
        )
    )
    report = verify(sealed.path, allowed_signers=only_alice)
    assert not report.ok and f"{only_alice} (given)" in report.trust
    assert any("does not list" in p for p in report.problems), report.problems


def test_an_archived_copy_verifies_on_its_own(sealed: RunRecord, tmp_path: Path) -> None:
    copy = tmp_path / "download" / sealed.run_id
    shutil.copytree(sealed.path, copy)
    mine = [
        line
        for line in sealed.ledger_path.read_text().splitlines(True)
        if json.loads(line)["run_id"] == sealed.run_id
    ]
    (copy / LEDGER_ENTRIES_FILE).write_text("".join(mine))
    report = verify(copy)
    assert report.ok and report.archived_copy, report.problems
    # and its ledger entries are checked: an edited one is named
    entry = json.loads(mine[-1])
    entry["final"] = False
    (copy / LEDGER_ENTRIES_FILE).write_text("".join(mine[:-1]) + canonical(entry) + "\n")
    problems = verify(copy).problems
    assert any(LEDGER_ENTRIES_FILE in p and "hash does not match" in p for p in problems), problems


def test_a_copy_without_ledger_entries_is_not_verified(sealed: RunRecord, tmp_path: Path) -> None:
    copy = tmp_path / "download" / sealed.run_id
    shutil.copytree(sealed.path, copy)
    assert not verify(copy).ok


def test_ledger_entries_planted_in_a_run_of_a_runs_dir_are_named(sealed: RunRecord) -> None:
    (sealed.path / LEDGER_ENTRIES_FILE).write_text("")
    problems = verify(sealed.path).problems
    assert any(p.startswith(LEDGER_ENTRIES_FILE) and "archived copy" in p for p in problems)


def test_the_auditors_procedure_with_openssh_and_coreutils(sealed: RunRecord) -> None:
    """What the README tells an auditor, run exactly: ssh-keygen -Y verify, sha256sum -c."""
    allowed = keys.allowed_signers()
    principal = json.loads((sealed.path / MANIFEST_FILE).read_text())["signer"]["principal"]
    sums = (sealed.path / SUMS_FILE).read_bytes()
    good = subprocess.run(
        [
            "ssh-keygen",
            "-Y",
            "verify",
            "-f",
            str(allowed),
            "-I",
            principal,
            "-n",
            SEAL_NAMESPACE,
            "-s",
            SUMS_SIG_FILE,
        ],
        input=sums,
        cwd=sealed.path,
        capture_output=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    check = subprocess.run(
        ["sha256sum", "--strict", "-c", SUMS_FILE],
        cwd=sealed.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{MANIFEST_FILE}: OK" in check.stdout and f"{EVENTS_FILE}: OK" in check.stdout
    # one byte changed in any file: sha256sum names it
    target = sealed.path / "snapshots" / "before.json"
    target.write_bytes(target.read_bytes().replace(b"mfa", b"mfb"))
    bad = subprocess.run(
        ["sha256sum", "-c", SUMS_FILE], cwd=sealed.path, capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0 and "snapshots/before.json: FAILED" in bad.stdout


def test_a_seal_the_key_cannot_sign_writes_nothing(tmp_path: Path) -> None:
    """Only the public half at hand (no private key, no agent): ssh-keygen cannot sign; the
    seal is refused and the record (ledger, manifest) is as it was."""
    rec = make_run(tmp_path / "runs")
    rec.seal(final=False, signer=signer())
    before = {p: p.read_bytes() for p in sorted((tmp_path / "runs").rglob("*")) if p.is_file()}
    public_only = tmp_path / "keys" / "olivia.pub"
    public_only.parent.mkdir()
    shutil.copy(keys.key("operator").with_name("operator.pub"), public_only)
    lone = Signer(load_key(public_only), "olivia@example.com")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SSH_AUTH_SOCK", raising=False)  # no agent to hold the private half
        with pytest.raises(RecordError, match="Refused to seal"):
            rec.seal(signer=lone)
    after = {p: p.read_bytes() for p in sorted((tmp_path / "runs").rglob("*")) if p.is_file()}
    assert after == before
