"""credential_fingerprints: a profile's secret key and token as sha256, never the secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.aws.privileged import credential_fingerprints
from runbook_lib.record.secrets import fingerprint
from tests.conftest import isolate_aws_env

KEY = "OgM2kw5csjs3mWUnFNarRYnf8xx1nHv3FaDEW6rP"
TOKEN = "ZZlb1Ni+bp6WKegzs6UrJhStguD0oWH7l11GznpuT7EX/HjfOLc2IWGU1FL51WpIfPCF7s2mXFMYDPQg"


@pytest.fixture(autouse=True)
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_aws_env(tmp_path, monkeypatch)
    (tmp_path / "aws-credentials").write_text(
        "[static]\naws_access_key_id = AKIAGOMW77UFZRPVNPGI\n"
        f"aws_secret_access_key = {KEY}\n\n"
        "[session]\naws_access_key_id = ASIAGOMW77UFZRPVNPGI\n"
        f"aws_secret_access_key = {KEY}\naws_session_token = {TOKEN}\n"
    )


def test_a_profiles_credentials_are_fingerprinted() -> None:
    assert credential_fingerprints("static", None) == [fingerprint(KEY)]
    assert credential_fingerprints("session", "http://127.0.0.1:1") == [
        fingerprint(KEY),
        fingerprint(TOKEN),
    ]


def test_no_credentials_no_fingerprints(monkeypatch: pytest.MonkeyPatch) -> None:
    assert credential_fingerprints("no-such-profile", None) == []
    assert credential_fingerprints(None, None) == []  # the default chain finds nothing here
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAGOMW77UFZRPVNPGI")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEY)
    assert credential_fingerprints(None, None) == [fingerprint(KEY)]
