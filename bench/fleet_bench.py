"""Benchmark (not a test): the fleet audit against the sandbox's fleet-N organization.

throughput   the whole audit of fleet-1000 (every read, the record, the outputs, the seal),
             at a few workers/processes settings; aim <= 20 s on this 2-core machine
latency      a 50 ms latency fault on every call (a real AWS round trip), fleet-200, 1 worker vs
             16 workers; aim >= 8x
memory       peak RSS of the audit process and of the sandbox, fleet-1000 vs fleet-5000; aim:
             5000 within 1.5x of 1000, for both

Each measurement is a fresh process (``--child``): its own sandbox, AWS profiles, throwaway keys
and runs directory, all removed afterwards. Writes bench/FLEET_RESULTS.md.

    .venv/bin/python bench/fleet_bench.py [--quick]
    .venv/bin/python bench/fleet_bench.py --screenshot docs/fleet-report.png   # the README's

``--screenshot PNG`` audits fleet-1000, verifies the record and takes the first screen of its
report.html in Chromium (the picture in the README).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT_AIM = 20.0
LATENCY_AIM = 8.0
MEMORY_AIM = 1.5


def _hwm_mib(pid: int) -> float:
    """A process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(
    accounts: int, workers: int, processes: int, latency: float, png: Path | None = None
) -> dict[str, Any]:
    """One audit in this process; what it measured, as JSON on stdout (with ``png``, the first
    screen of its report.html too)."""
    from runbook_demo import demo_keys, sandbox_profiles
    from runbook_lib.fleet.audit import audit
    from runbook_lib.fleet.params import validate_fleet
    from runbook_lib.record.verify import verify
    from runbook_sandbox import sandbox_process

    with (
        tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp,
        demo_keys() as keys,
        sandbox_process(f"fleet-{accounts}") as info,
        sandbox_profiles(info) as profiles,
    ):
        os.environ["RUNBOOK_STATE_DIR"] = str(Path(tmp) / "state")
        if latency:
            info.control.add_fault("latency", "*", seconds=latency)
        params = validate_fleet(
            {
                "management_profile": profiles["org-admin"],
                "endpoint_url": info.endpoint,
                "operator_key": str(keys.operator),
                "allowed_signers": str(keys.allowed_signers),
                "workers": workers,
                "processes": processes,
            }
        )
        start = time.perf_counter()
        result = audit(params, Path(tmp) / "runs")
        seconds = time.perf_counter() - start
        sandbox_pid = _sandbox_pid()
        sandbox_mib = _hwm_mib(sandbox_pid) if sandbox_pid else float("nan")
        ok = verify(result.path, keys.allowed_signers).ok
        if png is not None:
            sys.path.insert(0, str(ROOT))
            from tests.fleet.sample_fleet import screenshot

            screenshot(result.path / "report.html", png)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "accounts": result.accounts,
        "seconds": round(seconds, 2),
        "rate": round(result.accounts / seconds, 1),
        "audit_peak_mib": round(usage.ru_maxrss / 1024, 1),
        "sandbox_peak_mib": round(sandbox_mib, 1),
        "verified": ok,
        "counts": result.counts,
    }


def _sandbox_pid() -> int | None:
    """The pid of the sandbox: this process's child running runbook_sandbox."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me and "runbook_sandbox" in cmdline:
            return int(entry.name)
    return None


def measure(accounts: int, workers: int, processes: int, latency: float = 0.0) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(accounts),
        str(workers),
        str(processes),
        str(latency),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"fleet bench child failed: {' '.join(cmd[2:])}")
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    row.update(workers=workers, processes=processes, latency_ms=int(latency * 1000))
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fleet-300 instead of 1000, no 5000")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--screenshot", metavar="PNG", help="audit fleet-1000, picture its report")
    args = parser.parse_args()
    if args.screenshot:
        print(json.dumps(child(1000, 8, 1, 0.0, Path(args.screenshot).resolve())))
        return
    if args.child:
        n, w, p, lat = args.child
        print(json.dumps(child(int(n), int(w), int(p), float(lat))))
        return
    big = 300 if args.quick else 1000
    throughput = [measure(big, w, p) for w, p in ((8, 1), (16, 1), (8, 2))]
    latency = [measure(200, 1, 1, 0.05), measure(200, 16, 1, 0.05)]
    memory = [measure(big, 8, 1)] + ([] if args.quick else [measure(5000, 8, 1)])
    write_results(throughput, latency, memory, args.quick)


def write_results(
    throughput: list[dict[str, Any]],
    latency: list[dict[str, Any]],
    memory: list[dict[str, Any]],
    quick: bool,
) -> None:
    best = min(throughput, key=lambda r: r["seconds"])
    speedup = latency[0]["seconds"] / latency[1]["seconds"]
    lines = [
        "# Fleet audit benchmark",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"`python bench/fleet_bench.py{' --quick' if quick else ''}`",
        "",
        "Every figure is the whole audit: ListAccounts, per member an audit-only AssumeRoot "
        "session and ListMFADevices, GetLoginProfile, ListAccessKeys (+ GetAccessKeyLastUsed per "
        "key), ListSigningCertificates; the judgement, the parts, findings.csv/json, "
        "report.html, the signed seal. The sandbox runs on the same two cores.",
        "",
        "## Throughput",
        "",
        "| accounts | workers | processes | seconds | accounts/s | verified |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r['accounts']} | {r['workers']} | {r['processes']} | {r['seconds']} | "
            f"{r['rate']} | {r['verified']} |"
            for r in throughput
        ),
        "",
        f"Best: {best['seconds']} s (aim <= {THROUGHPUT_AIM} s: "
        f"{'met' if best['seconds'] <= THROUGHPUT_AIM else 'NOT met'}).",
        "",
        "## Concurrency where AWS's latency dominates (50 ms on every call)",
        "",
        "| accounts | workers | seconds | accounts/s |",
        "| --- | --- | --- | --- |",
        *(f"| {r['accounts']} | {r['workers']} | {r['seconds']} | {r['rate']} |" for r in latency),
        "",
        f"16 workers / 1 worker: {speedup:.1f}x (aim >= {LATENCY_AIM}x: "
        f"{'met' if speedup >= LATENCY_AIM else 'NOT met'}).",
        "",
        "## Memory (peak RSS)",
        "",
        "| accounts | audit process MiB | sandbox MiB |",
        "| --- | --- | --- |",
        *(f"| {r['accounts']} | {r['audit_peak_mib']} | {r['sandbox_peak_mib']} |" for r in memory),
    ]
    if len(memory) == 2:
        audit_ratio = memory[1]["audit_peak_mib"] / memory[0]["audit_peak_mib"]
        sandbox_ratio = memory[1]["sandbox_peak_mib"] / memory[0]["sandbox_peak_mib"]
        met = "met" if max(audit_ratio, sandbox_ratio) <= MEMORY_AIM else "NOT met"
        lines += [
            "",
            f"5000/1000: audit {audit_ratio:.2f}x, sandbox {sandbox_ratio:.2f}x (aim <= "
            f"{MEMORY_AIM}x: {met}).",
        ]
    lines += ["", (ROOT / "bench" / "FLEET_NOTES.md").read_text().rstrip()]
    (ROOT / "bench" / "FLEET_RESULTS.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
