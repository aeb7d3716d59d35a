"""Benchmark (not a test): the secret scanner's precision, recall and speed, and detect-secrets'.

corpus   tests/record/scan_corpus.py: legitimate values in the project's formats, secrets in the
         contexts they leak in; a sample counts as flagged if anything is found in it (for a
         secret sample: a finding of its kind over the secret, for detect-secrets: anything)
bare     random secrets with no context at all (a line of their own), patterns only: the share
         the shape rules miss (what only a fingerprint or a label would find)
speed    KB/s (best of ``--repeat``) of ``findings`` over the corpus's texts, of ``file_findings``
         over a large executed notebook full of botocore DEBUG lines (with fingerprints) and
         over the fleet audit's outputs (``tests/record/fleet_corpus.py``: findings.json,
         findings.csv and report.html of ``--fleet`` accounts); with ``--before REF``, the
         same measured with the scanner of git revision REF (its ``runbook_lib`` exported to a
         temporary directory and imported in a child process), side by side

detect-secrets (PyPI 1.5.0) is measured when it can be imported, e.g. installed apart from the
project's venv: ``pip install --target /tmp/ds detect-secrets==1.5.0`` then
``PYTHONPATH=/tmp/ds .venv/bin/python bench/scan_bench.py``. Writes bench/SCAN_RESULTS.md.

    .venv/bin/python bench/scan_bench.py [--bare N] [--fleet N] [--repeat N] [--before REF]
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# --before: the child process imports another revision's runbook_lib, exported here
LIB_ENV = "SCAN_BENCH_LIB"
if os.environ.get(LIB_ENV):
    sys.path.insert(0, os.environ[LIB_ENV])

from runbook_lib.record.secrets import file_findings, findings, fingerprint  # noqa: E402
from tests.record.fleet_corpus import fleet_files  # noqa: E402
from tests.record.scan_corpus import B32, B64, Sample, legitimate, secrets  # noqa: E402


def ours(sample: Sample) -> bool:
    hits = findings(sample.text)
    if sample.kind is None:
        return bool(hits)
    pos = sample.text.find(sample.secret)
    if pos < 0:
        return any(h.kind == sample.kind for h in hits)
    return any(
        h.kind == sample.kind and h.start <= pos and h.end >= pos + len(sample.secret) for h in hits
    )


def detect_secrets_scanners() -> list[tuple[str, Callable[[Sample], bool]]]:
    """detect-secrets' two ways to scan, every default plugin on: ``scan_line`` (its ad-hoc
    string scan, which also looks at unquoted strings) and ``scan_file`` (``detect-secrets
    scan``: a file per sample, the way it would scan a run's files). [] if not importable."""
    try:
        from detect_secrets.__version__ import VERSION
        from detect_secrets.core.scan import scan_file, scan_line
    except ImportError:
        return []
    tmp = Path(tempfile.mkdtemp(prefix="scan-bench-"))

    def by_line(sample: Sample) -> bool:
        return any(any(True for _ in scan_line(line)) for line in sample.text.splitlines())

    def by_file(sample: Sample) -> bool:
        path = tmp / "sample.txt"
        path.write_text(sample.text)
        return any(True for _ in scan_file(str(path)))

    return [
        (f"detect-secrets {VERSION}, scan_line (ad hoc)", by_line),
        (f"detect-secrets {VERSION}, scan_file", by_file),
    ]


def measure(
    scan: Callable[[Sample], bool], legit: list[Sample], secret: list[Sample]
) -> dict[str, float]:
    started = time.perf_counter()
    fp = sum(scan(s) for s in legit)
    tp = sum(scan(s) for s in secret)
    elapsed = time.perf_counter() - started
    fn = len(secret) - tp
    chars = sum(len(s.text) for s in legit + secret)
    return {
        "fp": fp,
        "tp": tp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / len(secret),
        "seconds": elapsed,
        "kb_per_s": chars / 1024 / elapsed,
    }


def per_kind(
    scan: Callable[[Sample], bool], legit: list[Sample], secret: list[Sample]
) -> list[str]:
    rows = []
    for kind in sorted({s.kind for s in secret if s.kind}):
        group = [s for s in secret if s.kind == kind]
        rows.append(f"| {kind} | {sum(scan(s) for s in group)}/{len(group)} |")
    cases: dict[str, list[Sample]] = {}
    for s in legit:
        cases.setdefault(s.case, []).append(s)
    flagged = {case: sum(scan(s) for s in group) for case, group in cases.items()}
    worst = sorted(((n, c) for c, n in flagged.items() if n), reverse=True)[:8]
    rows += [f"| false positives: {c} | {n}/{len(cases[c])} |" for n, c in worst]
    return rows


def bare(n: int) -> list[str]:
    rng = random.Random(7)
    rows = []
    shapes = [("secret access key", B64, 40), ("session token (sandbox)", B64, 80)] + [
        (f"TOTP seed {k}", B32, k) for k in (16, 20, 26, 32)
    ]
    for label, alphabet, length in shapes:
        missed = 0
        for _ in range(n):
            token = "".join(rng.choice(alphabet) for _ in range(length))
            if not findings(f"{token}\n"):
                missed += 1
        rows.append(f"| {label} | {n} | {missed} | {missed / n:.4%} |")
    return rows


def big_notebook(target_bytes: int = 2_000_000) -> tuple[bytes, set[str]]:
    rng = random.Random(3)
    key = "".join(rng.choice(B64) for _ in range(40))
    token = "".join(rng.choice(B64) for _ in range(80))
    lines = [
        f"botocore.parsers [DEBUG] Response body:\nb'<Credentials><AccessKeyId>ASIAGOMW77UFZRPVNPGI"
        f"</AccessKeyId><SecretAccessKey>{key}</SecretAccessKey><SessionToken>{token}"
        "</SessionToken></Credentials>'\n",
        f"botocore.auth [DEBUG] CanonicalRequest:\nPOST\n/\n\nhost:127.0.0.1:33257\n"
        f"x-amz-date:20261201T172707Z\nx-amz-security-token:{token}\n\n"
        f"{'ab' * 32}\n",
        "botocore.hooks [DEBUG] Event before-parameter-build.iam.ListMFADevices: calling handler "
        "<function generate_idempotent_uuid at 0x7fc4da4c5a80>\n",
        "botocore.parsers [DEBUG] Response headers: {'Server': 'Werkzeug/3.1.9 Python/3.11.7', "
        "'x-amzn-RequestId': '00facc52-7fba-462d-a97e-9375f26f2551', 'Content-Type': 'text/xml'}\n",
    ]
    outputs = []
    size = 0
    while size < target_bytes:
        text = rng.choice(lines)
        outputs.append({"output_type": "stream", "name": "stderr", "text": [text]})
        size += len(text) + 60
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "id": "c",
                "metadata": {},
                "source": "x",
                "outputs": outputs,
                "execution_count": 1,
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1).encode(), {fingerprint(key), fingerprint(token)}


def speeds(fleet: int, repeat: int) -> dict[str, dict[str, float]]:
    """``{input: {"bytes", "seconds", "findings"}}``: the best of ``repeat`` scans of each."""
    texts = [s.text for s in legitimate() + secrets()]
    raw, fps = big_notebook()
    jobs: dict[str, tuple[int, Callable[[], int]]] = {
        "scan corpus (findings per sample)": (
            sum(len(t.encode()) for t in texts),
            lambda: sum(len(findings(t)) for t in texts),
        ),
        "notebook of botocore DEBUG lines, fingerprints": (
            len(raw),
            lambda: len(file_findings(raw, "big.ipynb", (), fps)),
        ),
    }
    for name, content in fleet_files(fleet).items():
        jobs[f"fleet audit, {fleet} accounts: {name}"] = (
            len(content),
            functools.partial(lambda c, n: len(file_findings(c, n)), content, name),
        )
    out = {}
    for name, (size, job) in jobs.items():
        best, found = float("inf"), 0
        for _ in range(repeat):
            started = time.perf_counter()
            found = job()
            best = min(best, time.perf_counter() - started)
        out[name] = {"bytes": size, "seconds": best, "findings": found}
    return out


def speeds_of(lib: str, fleet: int) -> dict[str, dict[str, float]]:
    """:func:`speeds` (one scan each) with the ``runbook_lib`` in ``lib``, in a child process."""
    child = subprocess.run(
        [sys.executable, __file__, "--speeds-json", f"--fleet={fleet}", "--repeat=1"],
        env={**os.environ, LIB_ENV: lib},
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, dict[str, float]] = json.loads(child.stdout)
    return result


def before_and_after(
    rev: str | None, fleet: int, repeat: int
) -> tuple[dict[str, dict[str, float]] | None, dict[str, dict[str, float]]]:
    """The best of ``repeat`` rounds, each timing ``rev``'s scanner (if any) then this one:
    interleaved, so a busy machine slows both alike."""
    rounds: list[tuple[dict[str, dict[str, float]] | None, dict[str, dict[str, float]]]] = []
    with tempfile.TemporaryDirectory(prefix="scan-bench-lib-") as lib:
        if rev:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", rev, "runbook_lib"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", lib], input=archive, check=True)
        for _ in range(repeat):
            rounds.append((speeds_of(lib, fleet) if rev else None, speeds(fleet, 1)))

    def best(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
        return {name: min((r[name] for r in runs), key=lambda r: r["seconds"]) for name in runs[0]}

    befores = [b for b, _ in rounds if b is not None]
    return (best(befores) if befores else None), best([a for _, a in rounds])


def speed_table(
    after: dict[str, dict[str, float]], before: dict[str, dict[str, float]] | None, rev: str
) -> list[str]:
    def kbs(r: dict[str, float]) -> float:
        return r["bytes"] / 1024 / r["seconds"]

    if before is None:
        rows = ["| input | size | time | KB/s | findings |", "| --- | --- | --- | --- | --- |"]
        for name, r in after.items():
            rows.append(
                f"| {name} | {r['bytes'] / 1e6:.1f} MB | {r['seconds']:.3f} s | {kbs(r):.0f} "
                f"| {r['findings']:.0f} |"
            )
        return rows
    rows = [
        f"| input | size | before ({rev}) | after | speed-up | findings (before / after) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in after.items():
        b = before[name]
        rows.append(
            f"| {name} | {r['bytes'] / 1e6:.1f} MB | {b['seconds']:.3f} s, {kbs(b):.0f} KB/s "
            f"| {r['seconds']:.3f} s, {kbs(r):.0f} KB/s | {b['seconds'] / r['seconds']:.1f}x "
            f"| {b['findings']:.0f} / {r['findings']:.0f} |"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bare", type=int, default=20000, help="random bare tokens per shape")
    parser.add_argument("--fleet", type=int, default=5000, help="accounts in the fleet audit")
    parser.add_argument("--repeat", type=int, default=3, help="scans of each input (best kept)")
    parser.add_argument("--before", metavar="REF", help="also time git revision REF's scanner")
    parser.add_argument("--speeds-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.speeds_json:
        print(json.dumps(speeds(args.fleet, args.repeat)))
        return 0
    before, after = before_and_after(args.before, args.fleet, args.repeat)
    legit, secret = legitimate(), secrets()
    results = {"runbook_lib.record.secrets": measure(ours, legit, secret)}
    tables = {"runbook_lib.record.secrets": per_kind(ours, legit, secret)}
    ds = detect_secrets_scanners()
    if ds:
        from detect_secrets.settings import default_settings

        with default_settings():
            for name, scan in ds:
                results[name] = measure(scan, legit, secret)
                tables[name] = per_kind(scan, legit, secret)

    lines = [
        "# Secret scanner benchmark",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end, `{' '.join(['python', *sys.argv])}`",
        "",
        f"Corpus: {len(legit)} legitimate values, {len(secret)} secrets in context "
        "(tests/record/scan_corpus.py).",
        "",
        "| scanner | false positives | misses | precision | recall | corpus time | KB/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['fp']:.0f} | {r['fn']:.0f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['seconds']:.2f} s | {r['kb_per_s']:.0f} |"
        )
    for name, rows in tables.items():
        lines += ["", f"**{name}**: found per kind, and the legitimate cases it flags most", ""]
        lines += ["| | |", "| --- | --- |", *rows]
    if not ds:
        lines += ["", "detect-secrets is not importable here: see the docstring to measure it."]
    lines += [
        "",
        "Bare random secrets, a line of their own, no label, patterns only (no fingerprint):",
        "",
        "| shape | tried | missed | miss rate |",
        "| --- | --- | --- | --- |",
        *bare(args.bare),
        "",
        f"Speed (best of {args.repeat}; the fleet audit's files as `tests/record/fleet_corpus.py` "
        "writes them, full of *mfa*, *security*, *code*, *token*):",
        "",
        *speed_table(after, before, args.before),
        "",
    ]
    text = "\n".join(lines)
    (ROOT / "bench" / "SCAN_RESULTS.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
