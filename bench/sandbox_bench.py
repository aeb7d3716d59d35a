"""Benchmark the local AWS sandbox against bare moto (a benchmark, not a test).

Measures, in one run:

1. start-to-first-answer: wall time from spawning the server process to the first successful
   ``sts.get_caller_identity``; the sandbox (``standalone``, ``member``, ``fleet-5000``) and bare
   ``moto_server``.
2. per-call latency, sandbox vs bare moto, calls alternated one by one between the two servers,
   for calls both serve through moto, and for the calls the sandbox answers itself.
3. memory: the sandbox's peak RSS (``VmHWM`` of ``/proc/PID/status``) over two passes of a bare
   boto3 audit loop (per member: AssumeRoot with IAMAuditRootUserCredentials, then
   ListMFADevices and GetLoginProfile in the session) over ``fleet-1000`` and ``fleet-5000``;
   target: fleet-5000 within 1.5 x fleet-1000.

Writes ``bench/RESULTS.md`` (overwritten each run) and prints the same summary.

Run: ``.venv/bin/python bench/sandbox_bench.py [--calls N] [--quick]`` (``make bench``);
``--quick`` leaves the memory section out (it takes some minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import select
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from runbook_sandbox import stop_process

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BIN = Path(sys.executable).parent
START_TARGET_S = 2.0
OVERHEAD_TARGET_PCT = 20.0
START_TIMEOUT_S = 120.0
MEMORY_FLEETS = (1000, 5000)
MEMORY_PASSES = 2
MEMORY_TARGET_RATIO = 1.5
AUDIT_POLICY = "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials"
AUDIT_SESSION_S = 300  # the fleet probe's AssumeRoot duration (runbook_lib/fleet/probe.py)
REGION = "us-east-1"
BENCH_USER = "bench-user"

# A bare moto server in a child process: moto's own threaded werkzeug server (the same server
# class the sandbox uses), request logging off so neither side pays for it. Prints its endpoint.
BARE_MOTO_CHILD = """
import json, logging, signal, threading
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(json.dumps({"endpoint": f"http://{host}:{port}"}), flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
signal.signal(signal.SIGINT, lambda *a: stop.set())
while not stop.wait(0.5):
    pass
server.stop()
"""


# --------------------------------------------------------------------------- helpers
def _config() -> Config:
    """boto3 config: no retries, short timeouts, keep-alive connections."""
    return Config(
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=2,
        read_timeout=30,
        region_name=REGION,
    )


def make_client(service: str, endpoint: str, key: str, secret: str) -> Any:
    """A boto3 client for ``service`` at ``endpoint`` with retries off."""
    session = boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=REGION)
    return session.client(service, endpoint_url=endpoint, config=_config())  # type: ignore[call-overload]


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (for ``moto_server -p``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_start_line(proc: subprocess.Popen[bytes], what: str) -> dict[str, Any]:
    """The JSON object a child prints on its first stdout line."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
    line = proc.stdout.readline() if ready else b""
    if not line:
        raise RuntimeError(f"{what} did not start (exit code {proc.poll()})")
    data: dict[str, Any] = json.loads(line)
    return data


def child_env() -> dict[str, str]:
    """Environment for the server children (no MOTO_ACCOUNT_ID leaking in)."""
    env = dict(os.environ)
    env.pop("MOTO_ACCOUNT_ID", None)
    return env


def first_answer(client: Any, deadline: float) -> None:
    """Call ``get_caller_identity`` until it succeeds (connection refused -> retry quickly)."""
    while True:
        try:
            client.get_caller_identity()
            return
        except Exception:  # noqa: BLE001 - server not listening yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest-rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# --------------------------------------------------------------------------- start times
def sandbox_start_once(scenario: str) -> float:
    """Seconds from spawning the sandbox to its first successful get_caller_identity.

    Raises RuntimeError with the last line of the child's stderr when it does not start.
    """
    cmd = [sys.executable, "-m", "runbook_sandbox", "--scenario", scenario, "--port", "0"]
    with tempfile.TemporaryFile() as errors:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=errors, env=child_env(), cwd=ROOT
        )
        try:
            try:
                info = read_start_line(proc, f"sandbox {scenario}")
            except RuntimeError as err:
                proc.wait(timeout=10)
                errors.seek(0)
                tail = errors.read().decode(errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(f"{err}: {' '.join(tail)}") from None
            admin = info["principals"]["admin"]
            sts = make_client(
                "sts", info["endpoint"], admin["access_key_id"], admin["secret_access_key"]
            )
            first_answer(sts, t0 + START_TIMEOUT_S)
            return time.monotonic() - t0
        finally:
            stop_process(proc)


def moto_start_once() -> float:
    """Seconds from spawning ``moto_server`` to its first successful get_caller_identity."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(), cwd=ROOT
    )
    try:
        sts = make_client("sts", endpoint, "testing", "testing")
        first_answer(sts, t0 + START_TIMEOUT_S)
        return time.monotonic() - t0
    finally:
        stop_process(proc)


@dataclass
class StartRow:
    """Start-to-first-answer samples for one server; ``error`` when it failed to start."""

    name: str
    samples: list[float] = field(default_factory=list)
    error: str | None = None
    reference: bool = False

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def worst(self) -> float:
        return max(self.samples)

    @property
    def met(self) -> bool:
        return self.error is None and bool(self.samples) and self.worst < START_TARGET_S


def _sample(row: StartRow, measure: Callable[[], float]) -> None:
    """Add one start sample to ``row``, or record why it failed (then stop sampling it)."""
    if row.error is not None:
        return
    try:
        row.samples.append(measure())
    except Exception as err:  # noqa: BLE001 - a broken scenario is a result, not a crash
        row.error = str(err)


def measure_starts(repeats: int, heavy_repeats: int, fleet: bool) -> list[StartRow]:
    """Start times, sandbox and bare moto alternated so both see the same machine load."""
    sandbox = StartRow("sandbox standalone")
    moto = StartRow("bare moto_server", reference=True)
    for _ in range(repeats):
        _sample(sandbox, lambda: sandbox_start_once("standalone"))
        _sample(moto, moto_start_once)
    rows = [sandbox, moto]
    for scenario in ("member", "fleet-5000") if fleet else ("member",):
        row = StartRow(f"sandbox {scenario}")
        for _ in range(heavy_repeats):
            _sample(row, lambda s=scenario: sandbox_start_once(s))  # type: ignore[misc]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- per-call latency
@dataclass
class Server:
    """A running server with its clients."""

    name: str
    endpoint: str
    clients: dict[str, Any]
    control_token: str = ""  # the sandbox's (its control API answers 403 without it)


@contextmanager
def running_sandbox() -> Iterator[Server]:
    """The sandbox (standalone) in a child process, clients as its ``admin`` principal."""
    cmd = [sys.executable, "-m", "runbook_sandbox", "--scenario", "standalone", "--port", "0"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env(), cwd=ROOT
    )
    try:
        info = read_start_line(proc, "sandbox standalone")
        admin = info["principals"]["admin"]
        endpoint = info["endpoint"]
        clients = {
            svc: make_client(svc, endpoint, admin["access_key_id"], admin["secret_access_key"])
            for svc in ("iam", "s3", "sts", "cloudtrail")
        }
        yield Server("sandbox", endpoint, clients, info["control_token"])
    finally:
        stop_process(proc)


@contextmanager
def running_moto() -> Iterator[Server]:
    """Bare moto (ThreadedMotoServer) in a child process; any keys work."""
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE_MOTO_CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=child_env(),
        cwd=ROOT,
    )
    try:
        endpoint = read_start_line(proc, "bare moto")["endpoint"]
        clients = {
            svc: make_client(svc, endpoint, "testing", "testing") for svc in ("iam", "s3", "sts")
        }
        yield Server("moto", endpoint, clients)
    finally:
        stop_process(proc)


Call = Callable[[dict[str, Any]], Any]

SHARED_CALLS: dict[str, Call] = {
    "iam.list_users": lambda c: c["iam"].list_users(),
    "iam.get_user": lambda c: c["iam"].get_user(UserName=BENCH_USER),
    "s3.list_buckets": lambda c: c["s3"].list_buckets(),
}

SANDBOX_CALLS: dict[str, Call] = {
    "sts.get_caller_identity": lambda c: c["sts"].get_caller_identity(),
    "iam.get_account_summary": lambda c: c["iam"].get_account_summary(),
    "iam.list_virtual_mfa_devices": lambda c: c["iam"].list_virtual_mfa_devices(),
    "cloudtrail.lookup_events": lambda c: c["cloudtrail"].lookup_events(MaxResults=50),
}


def prepare(server: Server) -> None:
    """Create the IAM user and a bucket the shared calls read."""
    server.clients["iam"].create_user(UserName=BENCH_USER)
    server.clients["s3"].create_bucket(Bucket="bench-bucket")


def timed(fn: Call, clients: dict[str, Any]) -> float:
    """Milliseconds one call takes, client side."""
    t0 = time.perf_counter()
    fn(clients)
    return (time.perf_counter() - t0) * 1000.0


@dataclass
class LatencyRow:
    """Per-call samples (ms) for one operation; ``moto`` is empty for sandbox-only calls."""

    call: str
    sandbox: list[float]
    moto: list[float]

    @property
    def overhead_pct(self) -> float | None:
        if not self.moto:
            return None
        return (statistics.median(self.sandbox) / statistics.median(self.moto) - 1.0) * 100.0


def measure_calls(calls: int, warmup: int) -> list[LatencyRow]:
    """Per-call latency: shared calls alternated sandbox/moto, then the sandbox-only calls."""
    rows: list[LatencyRow] = []
    with running_sandbox() as sandbox, running_moto() as moto:
        from runbook_sandbox import ControlClient

        ControlClient(sandbox.endpoint, token=sandbox.control_token).set_lookup_rate(0)
        for server in (sandbox, moto):
            prepare(server)
        for name, fn in SHARED_CALLS.items():
            for _ in range(warmup):
                fn(sandbox.clients)
                fn(moto.clients)
            row = LatencyRow(name, [], [])
            for index in range(calls):
                # alternate which side goes first so neither always gets the warmer cache
                if index % 2:
                    row.sandbox.append(timed(fn, sandbox.clients))
                    row.moto.append(timed(fn, moto.clients))
                else:
                    row.moto.append(timed(fn, moto.clients))
                    row.sandbox.append(timed(fn, sandbox.clients))
            rows.append(row)
        for name, fn in SANDBOX_CALLS.items():
            for _ in range(warmup):
                fn(sandbox.clients)
            rows.append(LatencyRow(name, [timed(fn, sandbox.clients) for _ in range(calls)], []))
    return rows


# --------------------------------------------------------------------------- memory
def status_kib(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` figure in KiB (``VmHWM``: peak resident set; ``VmRSS``: now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


@dataclass
class MemoryRow:
    """Peak RSS of one fleet's sandbox: after start, after each pass; what it held at the end."""

    accounts: int
    start_kib: int
    pass_kib: list[int] = field(default_factory=list)
    pass_s: list[float] = field(default_factory=list)
    calls: int = 0
    held: dict[str, int] = field(default_factory=dict)

    @property
    def peak_mib(self) -> float:
        return max([self.start_kib, *self.pass_kib]) / 1024


def audit_pass(info: dict[str, Any], members: list[str], threads: int) -> int:
    """One pass of the bare audit loop over ``members``, ``threads`` at a time; calls made."""
    endpoint = info["endpoint"]
    admin = info["principals"]["org-admin"]
    local = threading.local()

    def one(account_id: str) -> int:
        if not hasattr(local, "session"):
            local.session = boto3.Session(region_name=REGION)
            local.sts = local.session.client(
                "sts",
                endpoint_url=endpoint,
                aws_access_key_id=admin["access_key_id"],
                aws_secret_access_key=admin["secret_access_key"],
                config=_config(),
            )
        creds = local.sts.assume_root(
            TargetPrincipal=account_id,
            TaskPolicyArn={"arn": AUDIT_POLICY},
            DurationSeconds=AUDIT_SESSION_S,
        )["Credentials"]
        iam = local.session.client(
            "iam",
            endpoint_url=endpoint,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            config=_config(),
        )
        iam.list_mfa_devices()
        try:
            iam.get_login_profile()
        except ClientError as err:  # members without a password: NoSuchEntity
            if err.response["Error"]["Code"] != "NoSuchEntity":
                raise
        return 3

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, members))


def measure_memory_of(accounts: int, passes: int, threads: int) -> MemoryRow:
    """Start ``fleet-ACCOUNTS``, run ``passes`` audit passes back to back, read its VmHWM."""
    from runbook_sandbox import ControlClient

    scenario = f"fleet-{accounts}"
    cmd = [sys.executable, "-m", "runbook_sandbox", "--scenario", scenario, "--port", "0"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env(), cwd=ROOT
    )
    try:
        info = read_start_line(proc, f"sandbox {scenario}")
        admin = info["principals"]["org-admin"]
        orgs = make_client(
            "organizations", info["endpoint"], admin["access_key_id"], admin["secret_access_key"]
        )
        members = [
            a["Id"]
            for page in orgs.get_paginator("list_accounts").paginate()
            for a in page["Accounts"]
            if a["Id"] != admin["account_id"]
        ]
        row = MemoryRow(accounts, status_kib(proc.pid, "VmHWM"))
        for _ in range(passes):
            t0 = time.monotonic()
            row.calls += audit_pass(info, members, threads)
            row.pass_s.append(time.monotonic() - t0)
            row.pass_kib.append(status_kib(proc.pid, "VmHWM"))
        row.held = ControlClient(info["endpoint"], token=info["control_token"]).stats()
        return row
    finally:
        stop_process(proc)


def measure_memory(passes: int, threads: int) -> list[MemoryRow]:
    return [measure_memory_of(n, passes, threads) for n in MEMORY_FLEETS]


def render_memory(rows: list[MemoryRow], passes: int, threads: int) -> list[str]:
    """The memory section of the report."""
    lines = [
        "",
        f"## Memory: peak RSS of the sandbox over {passes} passes of a bare audit loop",
        "",
        "Per member: `sts.assume_root` (IAMAuditRootUserCredentials, "
        f"{AUDIT_SESSION_S} s, as the fleet probe), then `iam.list_mfa_devices` and "
        f"`iam.get_login_profile` in the session; {threads} threads, passes back to back. "
        "Peak RSS: `VmHWM` of the sandbox process (`/proc/PID/status`). Held at the end: "
        "`GET /_sandbox/stats`.",
        "",
        "| scenario | calls | start MiB | "
        + " | ".join(f"after pass {i + 1} MiB" for i in range(passes))
        + " | pass s | held at the end: sessions, events (cap), accounts built |",
        "|---|---:|---:|" + "---:|" * passes + "---:|---|",
    ]
    for row in rows:
        held = row.held
        lines.append(
            f"| fleet-{row.accounts} | {row.calls} | {row.start_kib / 1024:.1f} | "
            + " | ".join(f"{kib / 1024:.1f}" for kib in row.pass_kib)
            + f" | {' / '.join(f'{s:.0f}' for s in row.pass_s)} | "
            f"{held.get('sessions')}, {held.get('events')} ({held.get('max_events')}), "
            f"{held.get('accounts_built')} |"
        )
    if len(rows) >= 2:
        ratio = rows[-1].peak_mib / rows[0].peak_mib
        met = "met" if ratio <= MEMORY_TARGET_RATIO else "NOT met"
        lines += [
            "",
            f"fleet-{rows[-1].accounts} / fleet-{rows[0].accounts} peak: **{ratio:.2f} x** "
            f"(target <= {MEMORY_TARGET_RATIO} x: **{met}**).",
        ]
    lines += [
        "",
        "What bounds it: the CloudTrail store keeps the newest 10,000 events "
        "(`--cloudtrail-max-events`; one audit pass records 3 per member), each as its JSON "
        "text; STS sessions are dropped at expiry, so the sessions still held are the ones "
        f"issued in the last {AUDIT_SESSION_S} s (all of both passes here: a pass is shorter "
        "than a session); what grows with the fleet is one root user per member, built on "
        "first use, and moto's Organizations accounts, built at start. Before the bound "
        "(every session and event kept): 111 MiB (fleet-1000) and 186 MiB (fleet-5000), "
        "1.68 x, on this machine.",
    ]
    return lines


# --------------------------------------------------------------------------- report
def machine() -> dict[str, str]:
    """What the figures were measured on."""
    from importlib.metadata import version

    return {
        "nproc": str(os.cpu_count()),
        "python": platform.python_version(),
        "moto": version("moto"),
        "boto3": version("boto3"),
        "platform": platform.platform(),
    }


def render(
    starts: list[StartRow],
    latencies: list[LatencyRow],
    command: str,
    calls: int,
    memory: list[str] | None = None,
) -> str:
    """The markdown report (also printed); ``memory``: its rendered section, if measured."""
    info = machine()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Sandbox benchmark results",
        "",
        f"- date: {now}",
        f"- command: `{command}`",
        f"- machine: nproc {info['nproc']}, Python {info['python']}, moto {info['moto']}, "
        f"boto3 {info['boto3']}, {info['platform']}",
        "",
        "## Start to first answer (spawn -> first `sts.get_caller_identity`)",
        "",
        "| server | runs | median s | max s | target < 2 s |",
        "|---|---:|---:|---:|---|",
    ]
    for row in starts:
        if row.error is not None or not row.samples:
            lines.append(f"| {row.name} | 0 | - | - | NOT met: failed to start |")
            continue
        met = "(reference)" if row.reference else ("met" if row.met else "NOT met")
        lines.append(
            f"| {row.name} | {len(row.samples)} | {row.median:.2f} | {row.worst:.2f} | {met} |"
        )
    failures = [f"- {row.name}: {row.error}" for row in starts if row.error is not None]
    if failures:
        lines += ["", "Start failures:", "", *failures]
    lines += [
        "",
        f"## Per-call latency ({calls} calls each, client side, ms; shared calls alternated)",
        "",
        "| call | sandbox median | sandbox p95 | moto median | moto p95 | overhead | "
        "overhead ms | target < 20% |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for lat in latencies:
        s_med, s_p95 = statistics.median(lat.sandbox), pct(lat.sandbox, 0.95)
        over = lat.overhead_pct
        if over is None:
            only = "- | - | (sandbox only) | - | - |"
            lines.append(f"| {lat.call} | {s_med:.2f} | {s_p95:.2f} | {only}")
            continue
        m_med, m_p95 = statistics.median(lat.moto), pct(lat.moto, 0.95)
        met = "met" if over < OVERHEAD_TARGET_PCT else "NOT met"
        lines.append(
            f"| {lat.call} | {s_med:.2f} | {s_p95:.2f} | {m_med:.2f} | {m_p95:.2f} | "
            f"{over:+.0f}% | {s_med - m_med:+.2f} | {met} |"
        )
    lines += memory or []
    start_ok = all(r.met for r in starts if not r.reference)
    shared = [r for r in latencies if r.overhead_pct is not None]
    over_ok = all((r.overhead_pct or 0.0) < OVERHEAD_TARGET_PCT for r in shared)
    lines += [
        "",
        "## Targets",
        "",
        f"- start under {START_TARGET_S:.0f} s (max of runs, every sandbox scenario measured): "
        f"**{'met' if start_ok else 'NOT met'}**",
        f"- per-call overhead of our layer under {OVERHEAD_TARGET_PCT:.0f}% (median vs bare moto, "
        f"every shared call): **{'met' if over_ok else 'NOT met'}**",
        "",
        "`cloudtrail.lookup_events` runs last, over the CloudTrail events that all the calls "
        "above recorded in the sandbox, so its figure grows with `--calls`.",
        "",
        "Overhead = sandbox median / bare moto median - 1. Bare moto for per-call figures is "
        "`ThreadedMotoServer` (the same werkzeug server class as the sandbox, logging off); for "
        "start times it is the `moto_server` command.",
        "",
        "Why the sandbox can be faster than bare moto: moto lists its own package directory on "
        "disk twice per request to route it; the sandbox computes that list once at start "
        "(`runbook_sandbox/__init__.py: _speed_up_moto_dispatch`). Without that, our layer "
        "(authentication, SigV4 check, authorization, CloudTrail recording) measured +5% to +9% "
        "per call.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, measure, write bench/RESULTS.md and print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls per operation")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer runs: 2 starts, 1 member start, no fleet-5000, 50 calls, no memory section",
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="audit loop threads of the memory section"
    )
    args = parser.parse_args(argv)
    calls = args.calls if not args.quick or args.calls != 300 else 50
    repeats, heavy, fleet = (2, 1, False) if args.quick else (5, 2, True)
    warmup = 20
    # load boto3's models once so the first timed start does not pay for it
    make_client("sts", "http://127.0.0.1:9", "x", "y")
    make_client("iam", "http://127.0.0.1:9", "x", "y")
    command = " ".join(
        [".venv/bin/python", "bench/sandbox_bench.py", *map(shlex.quote, sys.argv[1:])]
    )
    t0 = time.monotonic()
    print("measuring start times ...", file=sys.stderr, flush=True)
    starts = measure_starts(repeats, heavy, fleet)
    print("measuring per-call latency ...", file=sys.stderr, flush=True)
    latencies = measure_calls(calls, warmup)
    memory = None
    if not args.quick:
        print("measuring memory (fleet-1000, fleet-5000) ...", file=sys.stderr, flush=True)
        rows = measure_memory(MEMORY_PASSES, args.threads)
        memory = render_memory(rows, MEMORY_PASSES, args.threads)
    report = render(starts, latencies, command, calls, memory)
    RESULTS.write_text(report)
    print(report)
    print(f"(bench took {time.monotonic() - t0:.0f} s; written to {RESULTS})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
