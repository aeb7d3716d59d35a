"""secrets_scan: patterns found, look-alikes left alone, values never echoed."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.record.secrets import (
    file_findings,
    find_secrets,
    findings,
    fingerprint,
    redact_file,
    scan_path,
)

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
        (json.dumps({"Base32StringSeed": FAKE_SEED[:16]}), "authenticator app's secret key"),
        (f"seed: {FAKE_SEED[:16]}", "authenticator app's secret key"),
        (f"x {FAKE_SEED[:32]} y", "authenticator app's secret key"),
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


# --- the reviewer's cases ----------------------------------------------------------------------

SANDBOX_KEY = "OgM2kw5csjs3mWUnFNarRYnf8xx1nHv3FaDEW6rP"  # shaped as the sandbox makes them
SANDBOX_TOKEN = "ZZlb1Ni+bp6WKegzs6UrJhStguD0oWH7l11GznpuT7EX/HjfOLc2IWGU1FL51WpIfPCF7s2mXFMYDPQg"
KEY_ID = "ASIAGOMW77UFZRPVNPGI"


def debug_log_notebook() -> dict[str, Any]:
    """An executed notebook whose cell printed botocore's DEBUG log of an AssumeRoot call and
    of a request signed with its session (as boto3.set_stream_logger('botocore') makes it)."""
    lines = [
        "2026-12-01 17:27:08,357 botocore.parsers [DEBUG] Response body:\n",
        'b\'<AssumeRootResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoot'
        f"Result><Credentials><AccessKeyId>{KEY_ID}</AccessKeyId><SecretAccessKey>{SANDBOX_KEY}"
        f"</SecretAccessKey><SessionToken>{SANDBOX_TOKEN}</SessionToken><Expiration>2026-12-01T"
        "17:32:07Z</Expiration></Credentials></AssumeRootResult></AssumeRootResponse>'\n",
    ]
    canonical = [
        "2026-12-01 17:27:07,943 botocore.auth [DEBUG] CanonicalRequest:\n",
        "POST\n",
        "/\n",
        "\n",
        "host:127.0.0.1:33257\n",
        "x-amz-date:20261201T172707Z\n",
        f"x-amz-security-token:{SANDBOX_TOKEN}\n",
        "\n",
        "content-type;host;x-amz-date;x-amz-security-token\n",
        f"{hashlib.sha256(b'body').hexdigest()}\n",
    ]
    sending = (
        "2026-12-01 17:27:07,947 botocore.endpoint [DEBUG] Sending http request: <AWSPrepared"
        "Request stream_output=False, method=POST, url=http://127.0.0.1:33257/, headers={'X-Amz"
        f"-Date': b'20261201T172707Z', 'X-Amz-Security-Token': b'{SANDBOX_TOKEN}', 'Authorizat"
        f"ion': b'AWS4-HMAC-SHA256 Credential={KEY_ID}/20261201/us-east-1/iam/aws4_request, "
        f"SignedHeaders=host;x-amz-date;x-amz-security-token, Signature={'ab' * 32}'}}>\n"
    )
    outputs: list[dict[str, Any]] = [
        {"output_type": "stream", "name": "stderr", "text": lines},
        {"output_type": "stream", "name": "stderr", "text": canonical},
        {"output_type": "stream", "name": "stderr", "text": sending},
        {
            "output_type": "display_data",
            "data": {"image/png": FAKE_PNG, "text/plain": "<Figure>"},
            "metadata": {},
        },
        {"output_type": "stream", "name": "stdout", "text": ["outcome: removed\n"]},
    ]
    nb = _notebook(outputs, "remove(step)")
    for n, cell in enumerate(nb["cells"]):
        cell["id"] = f"cell-{n}"
    nb["metadata"]["kernelspec"]["display_name"] = "Python 3"
    return nb


def test_an_executed_notebook_with_debug_logs_is_scanned(tmp_path: Path) -> None:
    """Patterns alone find the secret key and every copy of the token; with the run's
    fingerprints too, the same, and nothing else is flagged."""
    path = tmp_path / "notebooks" / "01-remove-device.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(debug_log_notebook(), indent=1))
    fps = {fingerprint(SANDBOX_KEY), fingerprint(SANDBOX_TOKEN)}
    for kwargs in ({}, {"fingerprints": fps}):
        found = scan_path(tmp_path, **kwargs)  # type: ignore[arg-type]
        kinds = Counter(f.split(": ")[2].split(" (")[0] for f in found)
        assert kinds == {"AWS secret access key": 1, "session token": 3} or kinds == {
            "secret access key this run handled": 1,
            "session token this run handled": 3,
        }, found
        assert all(
            f.startswith("notebooks/01-remove-device.ipynb: cell 1 (code) outputs[") for f in found
        )
        assert not any(SANDBOX_KEY in f or SANDBOX_TOKEN in f for f in found)


def test_redacting_a_notebook_keeps_it_a_notebook(tmp_path: Path) -> None:
    import nbformat

    raw = json.dumps(debug_log_notebook(), indent=1).encode()
    fps = {fingerprint(SANDBOX_KEY), fingerprint(SANDBOX_TOKEN)}
    new, found = redact_file(raw, "01-remove-device.ipynb", (), fps)
    assert len(found) == 4
    text = new.decode()
    assert SANDBOX_KEY not in text and SANDBOX_TOKEN not in text
    assert text.count("[REDACTED session-token]") == 3
    assert text.count("[REDACTED secret-access-key]") == 1
    nb = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(nb)  # type: ignore[no-untyped-call]
    assert nb.cells[1].outputs[3]["data"]["image/png"] == FAKE_PNG  # media left alone
    assert nb.cells[1].outputs[0]["text"].startswith("2026-12-01 17:27:08,357 botocore.parsers")
    assert file_findings(new, "01-remove-device.ipynb", (), fps) == []
    assert redact_file(new, "01-remove-device.ipynb", (), fps) == (new, [])


def test_a_20_character_base32_string_is_a_seed() -> None:
    seed = "JBSWY3DPEHPK3PXPJBSW"
    for text in (seed, json.dumps({"value": seed}), f"the seed {seed} is written down"):
        assert [f.kind for f in findings(text)] == ["authenticator-secret"], text
    assert findings("ASIAGOMW77UFZRPVNPGI") == []  # an access key id is not


@pytest.mark.parametrize(
    "text",
    [
        "/tmp/pytest-7/runs-OpsTeamRootMfaCHG123456/20261126T051500Z-3f9a/notebooks",
        json.dumps({"run_dir": "/srv/runs_abcdefghijklmnopqrstuvw/20261126T051500Z-3f9a"}),
        'run_dir = "/srv/x.OpsTeamRootMfaCHG123456/20261126T051500Z-3f9a"',
        json.dumps(
            {"new_devices": ["arn:aws:iam::123456789012:mfa/RootAuthenticatorForCHG1234+Backup12"]}
        ),
        "bound RootAuthenticatorForCHG1234+Backup12 in the console",
        "arn:aws:iam::123456789012:u2f/root/YubiKey-NX80NKIBWTATNX4NKBZEWWWPL1",
    ],
)
def test_the_reviewers_false_positives_are_not_flagged(text: str) -> None:
    assert find_secrets(text) == []


def test_ssh_signatures_and_public_keys_are_public_but_only_genuine_ones() -> None:
    """A seal's or an approval's SSH signature, and a public key, are base64 that looks random:
    not secrets. A block merely shaped like one, holding a session token, still is."""
    from runbook_lib.record.signing import APPROVAL_NAMESPACE, sign
    from tests import keys

    key = keys.signer("alice").key
    signature = sign(key, b"statement", APPROVAL_NAMESPACE).decode()
    assert find_secrets(signature) == []
    assert find_secrets(json.dumps({"sig": signature, "key": key.public_key})) == []
    fake = f"-----BEGIN SSH SIGNATURE-----\n{FAKE_SESSION_TOKEN}\n-----END SSH SIGNATURE-----\n"
    assert find_secrets(fake), "a token inside a fake signature block must still be found"
    assert find_secrets(f"ssh-ed25519 {FAKE_SESSION_TOKEN}")
