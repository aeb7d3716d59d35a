"""Secrets and whole runs: a kernel that logs botocore at DEBUG level prints the AssumeRoot
credentials into the notebooks, and the sealed record still holds none of them; values that
merely look random (a runs directory, a device name) never stop a run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from runbook_lib.record.secrets import fingerprint, fingerprints_in_events, scan_path
from runbook_lib.record.verify import verify
from tests.conftest import SEEN_SECRETS

from .helpers import Env, events, of_type, run_info

DEVICE_NAME = "RootAuthenticatorForCHG1234+Backup12"
STARTUP = "import logging, boto3\nboto3.set_stream_logger('botocore', logging.DEBUG)\n"
# where a debug log prints credentials, and what must stand there after the redaction
PRINTED = (
    re.compile(r"<SecretAccessKey>([^<]*)</SecretAccessKey>"),
    re.compile(r"<SessionToken>([^<]*)</SessionToken>"),
    re.compile(r"x-amz-security-token:([^\\\s\"]*)"),
    re.compile(r"'X-Amz-Security-Token': b'([^']*)'"),
)


def debug_logging_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An IPython startup file that switches botocore's DEBUG log on in every kernel (the
    kernel reads IPYTHONDIR from the environment)."""
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-debug.py").write_text(STARTUP)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))


def record_text(run_dir: Path) -> dict[str, str]:
    return {
        p.relative_to(run_dir).as_posix(): p.read_text(errors="replace")
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def test_debug_logs_in_notebooks_are_redacted_before_the_seal(
    env_for: Callable[[str], Env], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debug_logging_kernel(tmp_path, monkeypatch)
    env = env_for("member")
    code, run_dir = env.run(env.approved("assume-root"))
    assert code == 0, env.progress
    report = verify(run_dir)
    assert report.ok and report.final, report.problems

    # every session is on the record by its fingerprints, and so are the profiles' keys
    sessions = of_type(run_dir, "session.assumed")
    assert sessions and all(len(s["data"]["secret_fingerprints"]) == 2 for s in sessions)
    (fingerprinted,) = of_type(run_dir, "credentials.fingerprinted")
    data = fingerprinted["data"]
    assert data["profiles"] == {
        "profile": env.profiles["admin"],
        "management_profile": env.profiles["org-admin"],
    }
    assert data["fingerprinted"] == {"profile": 1, "management_profile": 1}  # no token
    keys = {p["secret_access_key"] for p in env.info.principals.values()}
    assert set(data["secret_fingerprints"]) <= {fingerprint(k) for k in keys}
    fingerprints = fingerprints_in_events(events(run_dir))

    # none of them is left anywhere: not by the scanner's word, not where a log prints them
    assert scan_path(run_dir, known=SEEN_SECRETS, fingerprints=fingerprints) == []
    texts = record_text(run_dir)
    for rel, text in texts.items():
        for pattern in PRINTED:
            for value in pattern.findall(text):
                assert value.startswith("[REDACTED"), (rel, pattern.pattern)
        assert not any(k in text for k in SEEN_SECRETS), rel

    # if the kernel did log (someone may isolate it from startup files one day), the
    # redactions are on the record, one event per notebook and kind, and no value
    logged = sorted(
        rel for rel, text in texts.items() if rel.endswith(".ipynb") and "botocore.auth" in text
    )
    redacted = of_type(run_dir, "secret.redacted")
    if logged:
        assert {e["data"]["path"] for e in redacted} >= {
            rel for rel in logged if "[REDACTED" in texts[rel]
        }
        assert {e["data"]["kind"] for e in redacted} == {"secret-access-key", "session-token"}
        assert sum(e["data"]["count"] for e in redacted) >= 10
        assert "notebooks/01-remove-device.ipynb" in {e["data"]["path"] for e in redacted}
    for e in redacted:
        assert set(e["data"]) == {"path", "kind", "count", "where"}


def test_a_runs_directory_that_ends_in_23_alphanumerics(env_for: Callable[[str], Env]) -> None:
    """run dir + run id looked like a 40-character secret key: step 00 failed and the record
    stayed unsealed. A path is not a secret."""
    env = env_for("member")
    env.runs = env.runs.with_name("runs-OpsTeamRootMfaCHG123456")
    code, run_dir = env.run(env.approved("assume-root"))
    assert code == 0, env.progress
    assert re.search(r"OpsTeamRootMfaCHG123456/\d{8}T\d{6}Z", str(run_dir))
    report = verify(run_dir)
    assert report.ok and report.final, report.problems


def test_a_device_name_that_looks_like_a_key_does_not_block_the_rebind(
    env_for: Callable[[str], Env],
) -> None:
    """The operator names the new device RootAuthenticatorForCHG1234+Backup12 (a legal name):
    its serial looked like a secret key, so step 04 failed on every resume after the root MFA
    had already changed, and the run could never close."""
    env = env_for("member")
    control = env.info.control
    code, run_dir = env.run(env.approved("assume-root", sandbox_actor=False))
    assert code == 3 and run_info(run_dir)["halted_at"]["step"] == "03-first-sign-in"
    session = control.sign_in_fully(env.account)
    control.sign_out(session)
    confirmed = ["signed-in-with-email-code"]
    assert env.resume(run_dir, {"confirm": confirmed}) == 3
    assert run_info(run_dir)["halted_at"]["step"] == "04-rebind"

    session = control.sign_in_fully(env.account)
    serial = control.bind_virtual(session, DEVICE_NAME)
    control.sign_out(session)
    assert serial.endswith(f":mfa/{DEVICE_NAME}")
    code = env.resume(run_dir, {"confirm": [*confirmed, "new-device-bound-in-console"]})
    assert code == 0, env.progress
    assert run_info(run_dir)["status"] == "succeeded"
    assert of_type(run_dir, "verification.new-device")[-1]["data"]["new_devices"] == [serial]
    report = verify(run_dir)
    assert report.ok and report.final, report.problems
