# ruff: noqa: E501  (a corpus: log lines and responses are kept whole, as they are printed)
"""A corpus for the secret scanner: legitimate values in the project's real formats, and
secrets in the contexts they leak in (botocore debug logs, responses, reprs, files, shells).

Everything is generated from a seeded RNG, so the corpus is the same on every run; the
alphabets and lengths are the sandbox's (``runbook_sandbox._state``: 40-character secret
keys, ``ASIA`` + 16 key ids, 80-character session tokens) and AWS's (STS session tokens that
start ``IQoJb3JpZ2luX2Vj`` / ``FwoGZXIvYXdz``, base32 TOTP seeds of 16/20/26/32 characters).

``legitimate()`` and ``secrets()`` return :class:`Sample` lists; a secret sample names the
value that must be found (``secret``) and its kind. ``tests/record/test_scan_corpus.py``
asserts no false positive and no miss; ``bench/scan_bench.py`` measures precision, recall and
speed on the same corpus, for this scanner and for detect-secrets.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random
import string
import uuid
from dataclasses import dataclass

B64 = string.ascii_letters + string.digits + "+/"  # runbook_sandbox._state.new_secret
B32 = string.ascii_uppercase + "234567"  # new_key_id, new_totp_seed
SEED = 20261126

WORDS = (
    "root authenticator backup primary spare device mfa yubi key ops team security admin "
    "change ticket remove bind audit close preflight verify sign first virtual hardware "
    "token phone laptop office main north south prod staging account member management "
    "runbook record snapshot evidence notebook report ledger manifest session policy"
).split()


@dataclass(frozen=True)
class Sample:
    """One text to scan. ``kind`` None: legitimate, nothing may be found; otherwise the kind
    of the secret ``secret`` inside it, which must be found."""

    text: str
    case: str
    kind: str | None = None
    secret: str = ""


class _Gen:
    def __init__(self, seed: int = SEED) -> None:
        self.r = random.Random(seed)

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def key(self) -> str:
        return self.chars(B64, 40)

    def key_id(self, prefix: str = "ASIA") -> str:
        return prefix + self.chars(B32, 16)

    def sandbox_token(self) -> str:
        return self.key() + self.key()

    def sts_token(self) -> str:
        head = self.r.choice([b"!\n\torigin_ec", b"\x17\n\x06er/aws", b"\x01\n\x03aws"])
        body = head + self.r.randbytes(self.r.randrange(250, 700))
        return base64.b64encode(body).decode().rstrip("=" if self.r.random() < 0.5 else "")

    def seed(self, n: int) -> str:
        return self.chars(B32, n)

    def code(self) -> str:
        return f"{self.r.randrange(0, 1_000_000):06d}"

    def account(self) -> str:
        return f"{self.r.randrange(10**11, 10**12)}"

    def time(self) -> dt.datetime:
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        return start + dt.timedelta(seconds=self.r.randrange(0, 365 * 86400), microseconds=1)

    def run_id(self) -> str:
        return self.time().strftime("%Y%m%dT%H%M%SZ") + "-" + self.chars("0123456789abcdef", 4)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    def sha(self, n: int = 256) -> str:
        data = self.r.randbytes(16)
        return {1: hashlib.sha1, 256: hashlib.sha256, 512: hashlib.sha512}[n](data).hexdigest()

    def camel(self, n_words: int) -> str:
        return "".join(self.r.choice(WORDS).capitalize() for _ in range(n_words))

    def device_name(self) -> str:
        """A legal virtual MFA device name ([\\w+=,.@-]), the way people name them."""
        pick = self.r.randrange(7)
        ticket = f"CHG{self.r.randrange(1000, 99999)}"
        if pick == 0:
            return "RootAuthenticatorForCHG1234+Backup12"
        if pick == 1:
            return f"root-authenticator-{ticket}"
        if pick == 2:
            return f"{self.camel(3)}For{ticket}+{self.camel(1)}{self.r.randrange(1, 99)}"
        if pick == 3:
            return f"{self.camel(2)}.{self.r.choice(WORDS)}@{self.r.choice(WORDS)}"
        if pick == 4:
            return (self.camel(4) + "+" + self.camel(3))[:64]
        if pick == 5:
            return f"{self.r.choice(WORDS).upper()}{self.r.choice(WORDS).upper()}{self.r.randrange(2, 8)}"
        return self.chars(string.ascii_letters + string.digits + "+=,.@_-", self.r.randrange(8, 64))

    def alnum(self, n: int) -> str:
        return self.chars(string.ascii_letters + string.digits, n)

    def ticket(self) -> str:
        return self.r.choice(
            [
                f"CHG-{self.r.randrange(1000, 9999)}",
                f"CHG{self.r.randrange(1000, 99999)}",
                f"INC{self.r.randrange(10**6, 10**7):07d}",
                f"JIRA:OPS-{self.r.randrange(100, 9999)}",
                f"SR#{self.r.randrange(100000, 999999)}",
                f"OPS/ROOT-{self.r.randrange(1, 999)}",
                "CHGQ4ROOTMFAREMOVAL",
                f"RITM{self.r.randrange(10**6, 10**7)}",
            ]
        )


# --- legitimate values ------------------------------------------------------------------------


def legitimate(seed: int = SEED) -> list[Sample]:
    g = _Gen(seed)
    out: list[Sample] = []

    def add(case: str, text: str) -> None:
        out.append(Sample(text, case))

    for _ in range(25):
        run_id = g.run_id()
        alnum23 = g.alnum(23)
        for sep in ("_", "-", ".", " ", "/"):
            runs = f"/srv/runbook{sep}{alnum23}"
            add("run dir, runs dir ending in 23 alphanumerics", f"{runs}/{run_id}")
            add(
                "run dir in an event",
                json.dumps({"run_dir": f"{runs}/{run_id}", "notebook": "00-preflight"}),
            )
            add("next step", f"next: runbook resume {runs}/{run_id}")
        add("run id", run_id)
        add(
            "papermill parameters cell",
            f'run_dir = "/home/operator/work/runs-{alnum23}/{run_id}"\naccount_id = "{g.account()}"\n',
        )
        add("relative path", f"runs/{run_id}/notebooks/attempts/01-remove-device.attempt-2.ipynb")
    for _ in range(20):
        add("sha256", g.sha())
        add(
            "file event",
            json.dumps(
                {
                    "path": "snapshots/before.json",
                    "sha256": g.sha(),
                    "size": g.r.randrange(100, 999999),
                }
            ),
        )
        add("sha1 / commit", f"commit {g.sha(1)}")
        add("sha512", json.dumps({"manifest_sha512": g.sha(512)}))
        add("plan digest", f"runbook run -f params.yml --approve {g.sha()}")
        add(
            "secret digest",
            json.dumps({"secret_sha256": g.sha(), "secret_fingerprints": [g.sha(), g.sha()]}),
        )
    for _ in range(40):
        acct = g.account()
        name = g.device_name()
        serial = f"arn:aws:iam::{acct}:mfa/{name}"
        add("virtual device serial", serial)
        add(
            "serial in an event",
            json.dumps(
                {"new_devices": [serial], "removed": f"arn:aws:iam::{acct}:mfa/root-authenticator"}
            ),
        )
        add(
            "device name (labelled)",
            json.dumps({"virtualMFADeviceName": name, "serialNumber": serial}),
        )
        add("device name in YAML", f"new device:\n- {serial}\nnote: bound in the console\n")
        suffix = g.chars(string.ascii_uppercase + string.digits, 26)
        add("FIDO serial", f"arn:aws:iam::{acct}:u2f/root/YubiKey-{suffix}")
        add(
            "hardware serial",
            json.dumps({"serial": f"GAHT{g.r.randrange(10**7, 10**8)}", "kind": "hardware"}),
        )
    for _ in range(20):
        add(
            "device name alone in text",
            f"bound {g.camel(3)}For{g.ticket().replace('#', '')} in the console",
        )
        add(
            "upper-case name",
            f"device {g.r.choice(WORDS).upper()}{g.r.choice(WORDS).upper()}{g.r.choice(WORDS).upper()}{g.r.randrange(2, 8)}",
        )
        add("task policy", "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials")
        add(
            "event names",
            "DeactivateMFADevice DeleteVirtualMFADevice EnableMFADevice IAMDELETEROOTUSERCREDENTIALS",
        )
    for _ in range(30):
        acct = g.account()
        add(
            "access key id",
            json.dumps(
                {
                    "access_key_id": g.key_id(),
                    "request_id": g.uuid(),
                    "expires_at": g.time().isoformat(),
                }
            ),
        )
        add("key id in text", f"session key {g.key_id()} expires {g.time().isoformat()}")
        add(
            "IAM user id",
            json.dumps(
                {
                    "UserId": g.key_id("AIDA") + "X",
                    "Account": acct,
                    "Arn": f"arn:aws:iam::{acct}:user/runbook-admin",
                }
            ),
        )
        add("ticket", json.dumps({"change_ticket": g.ticket()}))
        add("ticket in text", f"Change {g.ticket()} approved by alice@example.com")
        add("ISO time", g.time().isoformat(timespec="microseconds"))
        add(
            "epoch and code label",
            json.dumps(
                {
                    "code_sent_at": g.time().isoformat(timespec="microseconds"),
                    "epoch": int(g.time().timestamp()),
                }
            ),
        )
        add("UUIDs", f"request id {g.uuid()}, event id {g.uuid()}, error code 403")
        add("CloudTrail time", g.time().strftime("%b %d, %Y, %I:%M:%S %p"))
    for _ in range(20):
        text = f"{g.camel(3)}-for-{g.ticket()}".encode()
        add("base64 of a name", base64.b64encode(text).decode())
        long_name = (g.camel(6) + "+" + g.camel(6))[:40]
        add("40-character CamelCase name", f"name: {long_name}")
        add(
            "base64 of a 30-char name",
            f"label {base64.b64encode(g.camel(6).encode()[:30].ljust(30, b'x')).decode()} ok",
        )
        page = base64.b64encode(
            json.dumps(
                {
                    "q": "EventName=ConsoleLogin",
                    "o": g.r.randrange(50, 500),
                    "n": g.r.randrange(1000),
                }
            ).encode()
        ).decode()
        add("CloudTrail NextToken", json.dumps({"NextToken": page}))
        add("NextToken alone", f"next page: {page}")
        csv = f"user,arn,user_creation_time,password_enabled,mfa_active\n<root_account>,arn:aws:iam::{g.account()}:root,{g.time().isoformat()},true,true\n"
        add("credential report", f"<Content>{base64.b64encode(csv.encode()).decode()}</Content>")
        add(
            "checksum", json.dumps({"ChecksumSHA256": base64.b64encode(g.r.randbytes(32)).decode()})
        )
        add(
            "profile names",
            f"profile sandbox-org-admin, management_profile {g.camel(2)}.{g.r.choice(WORDS)}+ops",
        )
    for _ in range(15):
        kid = g.key_id()
        date = g.time()
        add(
            "sigv4 header",
            f"'Authorization': b'AWS4-HMAC-SHA256 Credential={kid}/{date:%Y%m%d}/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={g.sha()}'",
        )
        add(
            "canonical request without a token",
            f"CanonicalRequest:\nPOST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:127.0.0.1:33257\nx-amz-date:{date:%Y%m%dT%H%M%SZ}\n\ncontent-type;host;x-amz-date\n{g.sha()}\n",
        )
        add(
            "botocore debug",
            f"{date:%Y-%m-%d %H:%M:%S},{g.r.randrange(1000):03d} botocore.hooks [DEBUG] Event before-parameter-build.iam.ListMFADevices: calling handler <function generate_idempotent_uuid at 0x7fc4da4c5a80>",
        )
        add(
            "response headers",
            f"botocore.parsers [DEBUG] Response headers: {{'Server': 'Werkzeug/3.1.9 Python/3.11.7', 'x-amzn-RequestId': '{g.uuid()}', 'Content-Type': 'text/xml', 'Content-Length': '{g.r.randrange(200, 900)}'}}",
        )
        add(
            "user agent",
            "User-Agent: Boto3/1.44.8 md/Botocore#1.44.8 ua/2.1 os/linux#6.18.44-fc-v657 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/Z,e,b,C,N,F cfg/retry-mode#adaptive Botocore/1.44.8 root-mfa-runbook/0.1.0",
        )
        add(
            "invocation id",
            f"'amz-sdk-invocation-id': b'{g.uuid()}', 'amz-sdk-request': b'attempt=1; max=8'",
        )
        add(
            "traceback",
            f'  File "/work/main/.venv/lib/python3.11/site-packages/botocore/client.py", line {g.r.randrange(100, 1200)}, in _make_api_call\n    raise error_class(parsed_response, operation_name)',
        )
        add(
            "credentials file path",
            "botocore.credentials [INFO] Found credentials in shared credentials file: /tmp/runbook-demo-mth8f5d8/credentials",
        )
        add(
            "redacted",
            json.dumps(
                {
                    "SecretAccessKey": "[REDACTED secret-access-key]",
                    "SessionToken": "<redacted>",
                    "AuthenticationCode1": "<not recorded>",
                }
            ),
        )
    for _ in range(15):
        n = g.r.randrange(100000, 999999)
        add("six digits, no code", json.dumps({"path": "notebooks/03-code.ipynb", "size": n}))
        add(
            "six digits after an error code",
            json.dumps({"code": "AccessDenied", "status_code": 403, "size": n}),
        )
        add("microseconds", f"code sent at {g.time().isoformat(timespec='microseconds')}")
        add("ticket with six digits", f"ticket SR#{n}")
        add("error code", f"HTTP status code 200 after {n} bytes; exit code 0")
        add("account id with code", f"code for account {g.account()}")
        add("version", f"code version 1.2.3, listening on localhost:{n}")
    add(
        "YAML snapshot",
        "AccountMFAEnabled: 1\nvirtual devices: arn:aws:iam::123456789012:mfa/root-authenticator\nroot password: true\n",
    )
    add(
        "instructions",
        "2. Choose Authenticator app; name the device (e.g. root-authenticator-CHG-1042).\nNever paste the QR code, its secret or a code into this notebook.",
    )
    add("constant", "ROOT_ACCOUNT_MFA_DEVICE_IS_DISABLED_NOW_AND_HERE")
    return out


# --- secrets, in the contexts they leak in ----------------------------------------------------

KEY_CONTEXTS = (
    (
        "debug log: AssumeRoot response",
        "botocore.parsers [DEBUG] Response body:\nb'<AssumeRootResponse><AssumeRootResult><Credentials><AccessKeyId>{kid}</AccessKeyId><SecretAccessKey>{s}</SecretAccessKey>",
    ),
    (
        "JSON response",
        '{{"Credentials": {{"AccessKeyId": "{kid}", "SecretAccessKey": "{s}", "Expiration": "2026-12-01T17:32:07Z"}}}}',
    ),
    ("Python repr", "{{'AccessKeyId': '{kid}', 'SecretAccessKey': '{s}'}}"),
    (
        "credentials file",
        "[sandbox-admin]\naws_access_key_id = {kid}\naws_secret_access_key = {s}\n",
    ),
    ("shell", "export AWS_ACCESS_KEY_ID={kid}\nexport AWS_SECRET_ACCESS_KEY={s}\n"),
    ("YAML", "Credentials:\n  AccessKeyId: {kid}\n  SecretAccessKey: {s}\n"),
    ("boto3 Credentials", "Credentials(access_key='{kid}', secret_key='{s}', token=None)"),
    ("aws configure", "aws configure set aws_secret_access_key {s} --profile ops"),
    ("CLI --output text", "CREDENTIALS\t{kid}\t2026-12-01T17:32:07+00:00\t{s}\tnone"),
    ("printed alone", "{s}\n"),
    ("in a sentence", "the key is {s} and it works"),
    ("JSON in a notebook output", "{js}"),
)
TOKEN_CONTEXTS = (
    (
        "debug log: AssumeRoot response",
        "<SecretAccessKey>[REDACTED]</SecretAccessKey><SessionToken>{s}</SessionToken><Expiration>",
    ),
    (
        "debug log: header",
        "headers={{'X-Amz-Date': b'20261201T172707Z', 'X-Amz-Security-Token': b'{s}', 'Authorization': b'AWS4-HMAC-SHA256 Credential={kid}/20261201/us-east-1/iam/aws4_request'}}",
    ),
    (
        "debug log: canonical request",
        "host:127.0.0.1:33257\nx-amz-date:20261201T172707Z\nx-amz-security-token:{s}\n\ncontent-type;host;x-amz-date;x-amz-security-token\n",
    ),
    ("JSON response", '{{"Credentials": {{"AccessKeyId": "{kid}", "SessionToken": "{s}"}}}}'),
    ("credentials file", "aws_session_token = {s}\n"),
    ("shell", "export AWS_SESSION_TOKEN={s}\n"),
    (
        "presigned URL",
        "https://iam.amazonaws.com/?Action=ListMFADevices&X-Amz-Security-Token={url}&X-Amz-Signature=abc",
    ),
    (
        "CloudTrail responseElements",
        '{{"credentials": {{"accessKeyId": "{kid}", "sessionToken": "{s}", "expiration": "Dec 01, 2026, 05:32:07 PM"}}}}',
    ),
    ("printed alone", "{s}\n"),
    ("CLI --output text", "CREDENTIALS\t{kid}\t2026-12-01T17:32:07+00:00\tsecret\t{s}"),
)
SEED_CONTEXTS = (
    (
        "CreateVirtualMFADevice response",
        '{{"VirtualMFADevice": {{"SerialNumber": "arn:aws:iam::123456789012:mfa/root", "Base32StringSeed": "{s}"}}}}',
    ),
    (
        "bytes repr",
        "{{'SerialNumber': 'arn:aws:iam::123456789012:mfa/root', 'Base32StringSeed': b'{s}'}}",
    ),
    ("debug log XML", "<VirtualMFADevice><Base32StringSeed>{s}</Base32StringSeed>"),
    ("pyotp", "totp = pyotp.TOTP('{s}')"),
    ("assignment", 'seed = "{s}"'),
    ("YAML", "secret: {s}\n"),
    ("printed alone", "{s}\n"),
    ("event value", '{{"note": "{s}"}}'),
)
CODE_CONTEXTS = (
    (
        "EnableMFADevice JSON",
        '{{"SerialNumber": "arn:aws:iam::123456789012:mfa/root", "AuthenticationCode1": "{c}", "AuthenticationCode2": "{c2}"}}',
    ),
    (
        "EnableMFADevice query",
        "Action=EnableMFADevice&SerialNumber=arn%3Aaws%3Aiam&AuthenticationCode1={c}&AuthenticationCode2={c2}",
    ),
    ("prompt", "Enter the MFA code {c} now"),
    ("otp", "otp={c}"),
    (
        "CLI",
        "aws sts get-session-token --serial-number arn:aws:iam::123456789012:mfa/x --token-code {c}",
    ),
    ("e-mail", "Your AWS verification code is: {c}"),
    ("one-time", "one-time code {c} (valid 10 minutes)"),
    ("variable", "mfa_code = '{c}'"),
    ("YAML", "TokenCode: {c}\n"),
)


def secrets(seed: int = SEED) -> list[Sample]:
    g = _Gen(seed + 1)
    out: list[Sample] = []
    for i in range(48):
        s, kid = g.key(), g.key_id(g.r.choice(["AKIA", "ASIA"]))
        case, template = KEY_CONTEXTS[i % len(KEY_CONTEXTS)]
        js = json.dumps({"text": [f"SecretAccessKey: {s}\n"]})
        out.append(
            Sample(template.format(s=s, kid=kid, js=js), f"key: {case}", "secret-access-key", s)
        )
    out.append(
        Sample(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "key: AWS docs example",
            "secret-access-key",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
    )
    for i in range(40):
        s = g.sandbox_token() if i % 2 else g.sts_token()
        kid = g.key_id()
        case, template = TOKEN_CONTEXTS[i % len(TOKEN_CONTEXTS)]
        url = s.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        style = "sandbox" if i % 2 else "STS"
        out.append(
            Sample(
                template.format(s=s, kid=kid, url=url),
                f"token ({style}): {case}",
                "session-token",
                s,
            )
        )
    for i in range(64):
        n = (16, 20, 26, 32)[i % 4]
        s = g.seed(n)
        case, template = SEED_CONTEXTS[(i // 4) % len(SEED_CONTEXTS)]
        out.append(Sample(template.format(s=s), f"seed {n}: {case}", "authenticator-secret", s))
    for i in range(12):
        s = g.seed((16, 20, 26, 32)[i % 4])
        uri = f"otpauth://totp/Amazon%20Web%20Services:root-account-mfa-device@{g.account()}?secret={s}&issuer=Amazon%20Web%20Services"
        if i % 3 == 1:
            uri = uri.replace("://", "%3A%2F%2F", 1)
        text = uri if i % 2 else json.dumps({"qr": uri})
        out.append(Sample(text, "otpauth URI", "otpauth-uri", s))
    for i in range(36):
        c, c2 = g.code(), g.code()
        case, template = CODE_CONTEXTS[i % len(CODE_CONTEXTS)]
        out.append(Sample(template.format(c=c, c2=c2), f"code: {case}", "one-time-code", c))
    return out
