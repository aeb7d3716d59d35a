"""The ``runbook`` command line.

  runbook sandbox [--scenario NAME] [--port N] [--list]   serve the local AWS sandbox
  runbook demo [--scenario NAME]                          the main job on the sandbox

Exit codes: 0 success, 1 failure, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from . import __version__


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import SCENARIOS, Sandbox

    if args.list:
        for name, text in SCENARIOS.items():
            print(f"{name:<20} {text}")
        return 0
    try:
        sandbox = Sandbox(args.scenario, args.port)
    except ValueError as err:
        print(f"runbook sandbox: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    info = sandbox.start()
    print(json.dumps(info.__dict__), flush=True)
    print(
        f"sandbox {info.scenario} serving on {info.endpoint}; Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
    print("sandbox stopped", file=sys.stderr, flush=True)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.scenario)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runbook",
        description="Executable, auditable runbook: remove and re-bind an AWS root user's MFA.",
    )
    parser.add_argument("--version", action="version", version=f"runbook {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sandbox = sub.add_parser("sandbox", help="serve the local AWS sandbox in the foreground")
    sandbox.add_argument(
        "--scenario",
        default="standalone",
        help="scenario to start (see --list); default: standalone",
    )
    sandbox.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one (default)"
    )
    sandbox.add_argument("--list", action="store_true", help="list the scenarios and exit")
    sandbox.set_defaults(func=_cmd_sandbox)

    demo = sub.add_parser("demo", help="run the main job on the local sandbox")
    demo.add_argument("--scenario", default="standalone", help="sandbox scenario")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
