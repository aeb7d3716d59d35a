"""Shared fixtures: sandboxes run as child processes, reached over HTTP like AWS.

One sandbox process per scenario is started on first use and kept for the session; every test
that asks for one gets it freshly reset (moto and the sandbox's own state rebuilt), so tests do
not see each other's changes. All processes are stopped when the session ends.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runbook_lib.record.secrets import fingerprints_in_events_bytes, scan_path
from runbook_sandbox import SandboxInfo, sandbox_process
from tests import keys

# the host's AWS settings that must never reach a test (nor a kernel it starts)
HOST_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_RETRY_MODE",
    "AWS_MAX_ATTEMPTS",
    "RUNBOOK_NOTEBOOKS",
)


def isolate_aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear the host's AWS settings; point the AWS config and credentials files into tmp."""
    for name in HOST_AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def configure_profiles(*names: str) -> None:
    """AWS profiles ``names`` in the (isolated) credentials file, with made-up keys: for tests
    that plan without a sandbox (a plan refuses a profile that is not configured)."""
    path = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    path.write_text(
        "".join(
            f"[{name}]\naws_access_key_id = AKIAEXAMPLEEXAMPLE00\n"
            f"aws_secret_access_key = made-up-{name}-made-up-made-up-made-up\n"
            for name in names
        )
    )


def pytest_configure(config: pytest.Config) -> None:
    """Seals are checked against the test keys' allowed_signers (tests/keys.py): set for the
    whole process (a test's monkeypatch.undo() must not take it away), subprocesses inherit it."""
    os.environ["RUNBOOK_ALLOWED_SIGNERS"] = str(keys.allowed_signers())


@pytest.fixture(autouse=True)
def _private_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own lease / approval / plan store (runbook_lib.lease), so no test
    sees another's leases, and none touches the user's real state directory."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(state / "runbook"))
    # the kernels' private bytecode cache, shared by every test of this and later sessions
    # (compiled once, not once per `pytest` call): beside pytest's numbered base temps, in the
    # user's own pytest-of-USER directory (0700), which pytest does not clean
    base = tmp_path_factory.getbasetemp()
    session = base.parent if base.name.startswith("popen-gw") else base
    numbered = re.fullmatch(r"pytest-\d+", session.name) is not None  # not a --basetemp
    cache = session.parent / "runbook-pycache" if numbered else session / "pycache"
    monkeypatch.setenv("RUNBOOK_PYCACHE_DIR", str(cache))
    return state / "runbook"


# every secret key any sandbox of this session handed out (the scanner's exact strings)
SEEN_SECRETS: set[str] = set()


@pytest.fixture(scope="session")
def _sandbox_pool() -> Iterator[dict[str, SandboxInfo]]:
    with contextlib.ExitStack() as stack:
        pool: dict[str, SandboxInfo] = {}
        pool["__stack__"] = stack  # type: ignore[assignment]
        yield pool


@pytest.fixture
def sandbox_factory(_sandbox_pool: dict[str, SandboxInfo]) -> Callable[[str], SandboxInfo]:
    """``sandbox_factory(scenario)`` -> a freshly reset sandbox of that scenario."""
    stack: contextlib.ExitStack = _sandbox_pool["__stack__"]  # type: ignore[assignment]

    def get(scenario: str) -> SandboxInfo:
        if scenario not in _sandbox_pool:
            info = stack.enter_context(sandbox_process(scenario))
        else:
            info = SandboxInfo.from_json(_sandbox_pool[scenario].control.reset())
        _sandbox_pool[scenario] = info
        SEEN_SECRETS.update(p["secret_access_key"] for p in info.principals.values())
        SEEN_SECRETS.add(info.control_token)
        return info

    return get


@pytest.fixture
def standalone(sandbox_factory: Callable[[str], SandboxInfo]) -> SandboxInfo:
    return sandbox_factory("standalone")


@pytest.fixture
def member(sandbox_factory: Callable[[str], SandboxInfo]) -> SandboxInfo:
    return sandbox_factory("member")


@pytest.fixture
def management(sandbox_factory: Callable[[str], SandboxInfo]) -> SandboxInfo:
    return sandbox_factory("management")


@pytest.fixture(autouse=True)
def _no_secret_in_any_record(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every run record a test leaves behind is scanned: no secret key of any sandbox, and
    nothing that looks like a secret key, session token, TOTP seed or one-time code."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    tmp = request.getfixturevalue("tmp_path")
    yield
    for events in sorted(tmp.rglob("events.jsonl")):
        if events.is_symlink() or not events.is_file():
            continue  # a test planted a FIFO or a link there: reading it would block or escape
        # the sandbox's secrets, the patterns, and the record's own credential fingerprints
        fingerprints = fingerprints_in_events_bytes(events.read_bytes())
        findings = scan_path(events.parent, known=SEEN_SECRETS, fingerprints=fingerprints)
        assert not findings, f"secrets in the record {events.parent}: {findings}"
