"""secrets_scan: patterns found, look-alikes left alone, values never echoed."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.secrets_scan import find_secrets, scan_path

from .helpers import FAKE_SECRET_KEY, FAKE_SEED, FAKE_SESSION_TOKEN, NOTEBOOK

FAKE_PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + random.Random(7).randbytes(600)).decode()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (json.dumps({"SecretAccessKey": FAKE_SECRET_KEY}), "secret access key"),
        (f"aws_secret_access_key = {FAKE_SECRET_KEY.replace('/', 'a')}", "secret access key"),
        (f"the key is {FAKE_SECRET_KEY} ok", "secret access key"),
        (json.dumps({"SessionToken": FAKE_SESSION_TOKEN}), "session token"),
        (FAKE_SESSION_TOKEN, "session token"),
        (json.dumps({"Base32StringSeed": FAKE_SEED[:16]}), "TOTP seed"),
        (f"seed: {FAKE_SEED[:16]}", "TOTP seed"),
        (f"x {FAKE_SEED[:32]} y", "TOTP seed"),
        (f"otpauth://totp/AWS:root@123456789012?secret={FAKE_SEED}&issuer=AWS", "otpauth"),
        (json.dumps({"AuthenticationCode1": "123456"}), "one-time"),
        (json.dumps({"AuthenticationCode2": 654321}), "one-time"),
        ("Enter the MFA code 031337 now", "one-time"),
        ("otp=482913", "one-time"),
    ],
)
def test_finds_secrets_without_echoing_them(text: str, kind: str) -> None:
    findings = find_secrets(text)
    assert findings and any(kind in f for f in findings), findings
    assert all("line 1, col" in f for f in findings)
    for token in (FAKE_SECRET_KEY, FAKE_SESSION_TOKEN, FAKE_SEED[:16], "123456", "031337"):
        assert all(token not in f for f in findings)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"sha256": hashlib.sha256(b"x").hexdigest(), "secret_sha256": "0" * 64}),
        json.dumps({"manifest_sha512": hashlib.sha512(b"x").hexdigest()}),
        json.dumps({"commit": hashlib.sha1(b"x").hexdigest(), "secret_ref": "f" * 40}),
        json.dumps({"account_id": "123456789012", "code": "OK", "port": 8080, "status_code": 200}),
        json.dumps({"code_sent_at": "2026-11-26T05:15:00.123456+00:00", "epoch": 1764134100}),
        "run 20261126T051500Z-3f9a, code version 1.2.3, listening on localhost:123456",
        "arn:aws:iam::123456789012:mfa/root-account-mfa-device",
        json.dumps({"SecretAccessKey": "<redacted>", "AccessKeyId": "AKIAIOSFODNN7EXAMPLE"}),
        "/home/operator/work/main/runs/20261126T051500Z-3f9a/snapshots/before.json",
        "request id 5b5c0f4e-2a51-4c54-8f1c-9d2f0d7b1c3a, error code 403",
        "ROOT_ACCOUNT_MFA_DEVICE_IS_DISABLED_NOW_AND_HERE",
    ],
)
def test_leaves_look_alikes_alone(text: str) -> None:
    assert find_secrets(text) == []


def test_json_escapes_do_not_hide_tokens() -> None:
    text = json.dumps({"log": f"line one\n{FAKE_SECRET_KEY}\ncode\n123456"})
    findings = find_secrets(text)
    assert [f.split(" (")[0] for f in findings] == ["AWS secret access key", "one-time MFA code"]


def test_long_inputs_stay_fast() -> None:
    start = time.monotonic()
    for text in ("a" * 16_000, "secret" * 200, "code-" * 3_000, "A2" * 5_000):
        find_secrets(text)
    assert time.monotonic() - start < 1.5


def test_known_strings() -> None:
    text = "line one\npassword is hunter2-long and hunter2-long again"
    findings = find_secrets(text, known=["hunter2-long", "abc"])  # "abc" is too short to use
    assert findings == ["known secret #1 at line 2, col 13", "known secret #1 at line 2, col 30"]
    assert find_secrets("abc abc", known=["abc"]) == []


def _notebook(outputs: list[dict[str, Any]], source: str) -> dict[str, Any]:
    nb: dict[str, Any] = json.loads(json.dumps(NOTEBOOK))
    nb["cells"].append(
        {
            "cell_type": "code",
            "metadata": {},
            "source": source,
            "outputs": outputs,
            "execution_count": 2,
        }
    )
    return nb


def test_scan_path_skips_png_outputs_but_scans_text_outputs(tmp_path: Path) -> None:
    assert find_secrets(FAKE_PNG)  # would be flagged if the scan did not skip images
    png_output: dict[str, Any] = {
        "output_type": "display_data",
        "data": {"image/png": FAKE_PNG, "text/plain": "<Figure size 640x480>"},
        "metadata": {},
    }
    clean = _notebook([png_output], "print(digest)")
    clean["cells"][1]["outputs"].append(
        {
            "output_type": "stream",
            "name": "stdout",
            "text": [f"sha256 {hashlib.sha256(b'x').hexdigest()}\n", "account 123456789012\n"],
        }
    )
    (tmp_path / "clean.ipynb").write_text(json.dumps(clean, indent=1))
    assert scan_path(tmp_path) == []

    leaky = _notebook(
        [
            png_output,
            {
                "output_type": "execute_result",
                "data": {"text/plain": json.dumps({"SessionToken": FAKE_SESSION_TOKEN})},
                "metadata": {},
                "execution_count": 2,
            },
        ],
        "code = '123456'",
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "leaky.ipynb").write_text(json.dumps(leaky, indent=1))
    findings = scan_path(tmp_path)
    assert len(findings) == 2, findings
    assert findings[0].startswith("sub/leaky.ipynb: cell 1 (code) source: one-time MFA code")
    assert findings[1].startswith("sub/leaky.ipynb: cell 1 (code) outputs[1] text/plain: session")
    assert scan_path(tmp_path / "sub" / "leaky.ipynb")[0].startswith("leaky.ipynb: ")


def test_scan_path_finds_known_strings_and_patterns_in_files(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"note": "device pin tiger-lily-42"}))
    (tmp_path / "creds.ini").write_text(f"[p]\naws_secret_access_key = {FAKE_SECRET_KEY}\n")
    (tmp_path / "blob.bin").write_bytes(b"\0\1\2tiger-lily-42\0")
    (tmp_path / "fine.json").write_text(json.dumps({"sha256": hashlib.sha256(b"").hexdigest()}))
    findings = scan_path(tmp_path, known=["tiger-lily-42"])
    assert findings == [
        "blob.bin: known secret #1 in binary content",
        "creds.ini: AWS secret access key (value of a secret key name) at line 2, col 25",
        "run.json: known secret #1 at line 1, col 22",
    ]
    assert not any("tiger-lily-42" in f or FAKE_SECRET_KEY in f for f in findings)
