"""How long ``make test`` takes on a fresh clone, phase by phase (issue 14: <= 3 minutes of
pytest, the whole target <= 4 minutes, on this 2-core machine).

Clones the checkout's HEAD into a temporary directory (what CI does), then times, there, in
``make test``'s order: ``make setup`` (the venv from uv's cache), ``make lint``, ``make
typecheck``, ``make bytecode``, and the two pytest phases of ``make pytest`` (the suite on
``WORKERS`` xdist workers, then the browser tests alone), each pytest phase's own "passed in"
figure beside its wall time. ``--workers 2,4,6`` times the parallel phase once per count
(alternated with nothing else: the rows are comparable only on an idle machine). Writes
``bench/SUITE_RESULTS.md``. A benchmark, not a test: it fails only if a phase fails.

    .venv/bin/python bench/suite_bench.py [--workers 4] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "SUITE_RESULTS.md"
PASSED = re.compile(r"(\d+) passed(?:, (\d+) deselected)? in ([\d.]+)s")


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run ``cmd``; its wall time and its output's last lines. SystemExit if it fails."""
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{tail}")
    return elapsed, tail


def passed(tail: str) -> str:
    found = PASSED.findall(tail)
    return f"{found[-1][0]} tests, pytest {float(found[-1][2]):.0f} s" if found else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="4", help="xdist worker counts, comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep the clone (path printed)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    clone = Path(tempfile.mkdtemp(prefix="suite-bench-")) / "clone"
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNBOOK_"))}
    rows: list[tuple[str, float, str]] = []
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        for target in ("setup", "lint", "typecheck", "bytecode"):
            elapsed, _ = timed(["make", target], clone, env)
            rows.append((f"make {target}", elapsed, ""))
            print(f"make {target}: {elapsed:.1f} s", flush=True)
        bin_ = clone / ".venv" / "bin"
        suite_env = dict(env, PYTHONDONTWRITEBYTECODE="")  # as make pytest runs it
        for n in counts:
            cmd = [str(bin_ / "pytest"), "-n", str(n), "--dist", "worksteal", "-m", "not browser"]
            cmd.append("-q")
            elapsed, tail = timed(cmd, clone, suite_env)
            rows.append((f"pytest -n {n} --dist worksteal -m 'not browser'", elapsed, passed(tail)))
            print(f"pytest -n {n}: {elapsed:.1f} s ({passed(tail)})", flush=True)
        cmd = [str(bin_ / "pytest"), "-m", "browser", "tests/browser", "-q"]
        elapsed, tail = timed(cmd, clone, suite_env)
        rows.append(("pytest -m browser tests/browser", elapsed, passed(tail)))
        print(f"browser: {elapsed:.1f} s ({passed(tail)})", flush=True)
    finally:
        if args.keep:
            print(f"clone kept: {clone}")
        else:
            shutil.rmtree(clone.parent, ignore_errors=True)
    first = next(r for r in rows if r[0].startswith("pytest -n"))
    browser = rows[-1]
    others = sum(r[1] for r in rows if r[0].startswith("make"))
    pytest_total = first[1] + browser[1]
    lines = [
        "# Test suite benchmark",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, a fresh clone of {head}; "
        f"`.venv/bin/python bench/suite_bench.py --workers {args.workers}`",
        "",
        "| phase | wall s | |",
        "|---|---:|---|",
        *(f"| `{name}` | {secs:.1f} | {note} |" for name, secs, note in rows),
        "",
        f"- pytest (`{first[0]}` + browser): **{pytest_total:.0f} s** (aim <= 180 s: "
        f"{'met' if pytest_total <= 180 else 'not met'})",
        f"- whole `make test` (set-up from uv's cache, lint, types, bytecode, pytest): "
        f"**{pytest_total + others:.0f} s** (aim <= 240 s: "
        f"{'met' if pytest_total + others <= 240 else 'not met'})",
        "",
        "Where the time goes and what is left: `bench/SPEED_NOTES.md`.",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
