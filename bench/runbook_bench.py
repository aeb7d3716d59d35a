"""Benchmark (not a test): the whole procedure against the floor measured in the same run.

floor     papermill's CLI executing a trivial two-cell notebook, a fresh process each time
six       six trivial notebooks in one kernel and one client, as the runner executes them
demo      `runbook demo` (a fresh process): the sandbox, throwaway keys, a signed approval,
          the six step notebooks in batch with the simulated console actor, the seal, the stop
member    `runbook demo --scenario member` (assume-root: AssumeRoot sessions, more AWS calls)

Measured alternately (floor, six, demo, member; N rounds), medians reported. Aims (issue 14):
demo <= 1.9 x floor, member <= 1.1 x demo. The breakdown comes from the median demo's own
progress lines, timestamped as they arrive: imports (until "starting the sandbox"), sandbox
start (until "serving"), plan + approval + run creation + kernel start (until the first
step), each step, the seal and the sandbox's stop (until "sandbox stopped"), the summary.
Writes bench/RUNBOOK_RESULTS.md.

    .venv/bin/python bench/runbook_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEMO_AIM = 1.9
MEMBER_AIM = 1.1


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
    return elapsed, done.returncode


def _trivial(tmp: Path) -> Path:
    trivial = tmp / "trivial.ipynb"
    if not trivial.exists():
        book = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("x + 1")]
        )
        book.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(book, trivial)
    return trivial


def floor_once(tmp: Path) -> float:
    elapsed, code = _timed(
        [str(BIN / "papermill"), str(_trivial(tmp)), str(tmp / "out.ipynb"), "--no-progress-bar"]
    )
    if code != 0:
        raise SystemExit("papermill failed on the trivial notebook")
    return elapsed


SIX = """
import sys, papermill
from runbook_lib.kernel import Kernel, engine
ENGINE = engine()
kernel = Kernel()
for i in range(6):
    papermill.execute_notebook(sys.argv[1], sys.argv[2], kernel_name="python3", km=kernel.get(),
                               engine_name=ENGINE, shared_kc=kernel.client(),
                               progress_bar=False, request_save_on_cell_execute=False)
    kernel.release_clients()
kernel.shutdown()
"""


def six_trivial_once(tmp: Path) -> float:
    """The structural floor of a six-notebook run: six trivial notebooks, one kernel, one
    client, one process, as the runner executes them."""
    elapsed, code = _timed([sys.executable, "-c", SIX, str(_trivial(tmp)), str(tmp / "six.ipynb")])
    if code != 0:
        raise SystemExit("six trivial notebooks failed")
    return elapsed


def demo_once(tmp: Path, scenario: str) -> tuple[float, list[tuple[float, str]]]:
    """`runbook demo` in a fresh process: its wall time and its progress lines, each with the
    time it arrived."""
    env = dict(os.environ, RUNBOOK_STATE_DIR=str(tmp / "state"))  # the bench's leases only
    cmd = [str(BIN / "runbook"), "demo", "--scenario", scenario, "--runs-dir", str(tmp / "runs")]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    lines = [(time.perf_counter() - started, line.rstrip()) for line in proc.stdout]
    code = proc.wait()
    elapsed = time.perf_counter() - started
    if code != 0:
        sys.stderr.write("\n".join(text for _, text in lines[-30:]))
        raise SystemExit(f"runbook demo --scenario {scenario} exited {code}")
    return elapsed, lines


def breakdown(lines: list[tuple[float, str]], total: float) -> list[tuple[str, float]]:
    """Phases between the demo's own progress lines (see the module's docstring)."""
    marks: list[tuple[str, float]] = [("start", 0.0)]

    def first(prefix: str) -> float | None:
        return next((at for at, text in lines if text.startswith(prefix)), None)

    for label, prefix in (
        ("imports (CLI, demo, sandbox client)", "starting the sandbox"),
        ("sandbox start", "sandbox "),
    ):
        at = first(prefix)
        if at is not None:
            marks.append((label, at))
    steps = [(at, text) for at, text in lines if text.startswith("step ")]
    starts = [(at, text.split()[1]) for at, text in steps if text.endswith("...")]
    if starts:
        marks.append(("plan, approval, run creation, kernel start", starts[0][0]))
    for at, text in steps:
        if not text.endswith("..."):
            marks.append((f"step {text.split()[1]}", at))
    stopped = first("sandbox stopped")
    if stopped is not None:
        marks.append(("seal, report, sandbox stop", stopped))
    marks.append(("summary, verify, exit", total))
    return [
        (label, at - previous) for (_, previous), (label, at) in zip(marks, marks[1:], strict=False)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    floors: list[float] = []
    sixes: list[float] = []
    demos: list[tuple[float, list[tuple[float, str]]]] = []
    members: list[float] = []
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as name:
        tmp = Path(name)
        for _ in range(args.repeat):
            floors.append(floor_once(tmp))
            sixes.append(six_trivial_once(tmp))
            demos.append(demo_once(tmp, "standalone"))
            members.append(demo_once(tmp, "member")[0])
    floor = statistics.median(floors)
    six = statistics.median(sixes)
    demo_times = [elapsed for elapsed, _ in demos]
    demo = statistics.median(demo_times)
    member = statistics.median(members)
    median_run = min(demos, key=lambda item: abs(item[0] - demo))
    phases = breakdown(median_run[1], median_run[0])

    def row(label: str, median: float, values: list[float]) -> str:
        return f"| {label} | {median:.2f} | " + ", ".join(f"{v:.2f}" for v in values) + " |"

    def verdict(ratio: float, aim: float) -> str:
        return "met" if ratio <= aim else "not met"

    lines = [
        "# Runbook benchmark",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; `.venv/bin/python bench/runbook_bench.py --repeat "
        f"{args.repeat}` (floor, six, demo, member alternated; {args.repeat} rounds)",
        "",
        "| measure | median s | all runs s |",
        "|---|---:|---|",
        row("floor: papermill CLI, a trivial two-cell notebook", floor, floors),
        row("six trivial notebooks, one kernel and client (the runner's structure)", six, sixes),
        row("`runbook demo` (standalone, console)", demo, demo_times),
        row("`runbook demo --scenario member` (assume-root)", member, members),
        "",
        f"- demo / floor = **{demo / floor:.2f} x** (aim <= {DEMO_AIM} x: "
        f"{verdict(demo / floor, DEMO_AIM)})",
        f"- member / demo = **{member / demo:.2f} x** (aim <= {MEMBER_AIM} x: "
        f"{verdict(member / demo, MEMBER_AIM)})",
        f"- demo / six trivial notebooks = {demo / six:.2f} x",
        "",
        f"Breakdown of the median demo ({median_run[0]:.2f} s), from its progress lines:",
        "",
        "| phase | s |",
        "|---|---:|",
        *[f"| {label} | {seconds:.2f} |" for label, seconds in phases],
        "",
        "What bounds each phase, which part of the floor is left and why it cannot go: "
        "`bench/SPEED_NOTES.md`.",
        "",
    ]
    (ROOT / "bench" / "RUNBOOK_RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
