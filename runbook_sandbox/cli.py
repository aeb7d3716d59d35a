"""``runbook-sandbox`` (also ``python -m runbook_sandbox``, and ``runbook sandbox`` through the
runbook's plug-in point): serve the local AWS sandbox in the foreground.

It prints one JSON line (the :class:`SandboxInfo`: endpoint, principals, control token) on
stdout when it is ready, then serves until SIGTERM or Ctrl-C. Usage errors are one line on
stderr with exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from . import require_extra

require_extra()  # without moto: ImportError at load, which the runbook reports in one line

EXIT_OK, EXIT_USAGE = 0, 2


def _line(text: str) -> None:
    # the sandbox's own lines hold only what it made (scenario names, its endpoint)
    print(text, file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line (``prog: message``) and exit 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        _line(f"{self.prog}: {message}")
        raise SystemExit(EXIT_USAGE)


def build_parser(prog: str = "runbook-sandbox") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Serve the local AWS sandbox (moto behind a layer for root-user behaviour) "
        "on 127.0.0.1 in the foreground. Prints its endpoint, principals and control token as "
        "one JSON line when ready; SIGTERM or Ctrl-C stops it.",
    )
    parser.add_argument(
        "--scenario",
        default="standalone",
        help="scenario to start (see --list); default: standalone",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one (default)"
    )
    parser.add_argument(
        "--cloudtrail-max-events",
        type=int,
        metavar="N",
        help="keep the newest N CloudTrail events for LookupEvents (default 10000; older ones "
        "drop out, so memory stays bounded however many calls are made)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--profiles-file",
        metavar="PATH",
        help="write the principals as AWS profiles sandbox-NAME to this "
        "credentials file (owner-only; deleted when the sandbox stops)",
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "runbook-sandbox") -> int:
    from . import SCENARIOS, Sandbox, write_profiles

    args = build_parser(prog).parse_args(argv)
    if args.list:
        for name, text in SCENARIOS.items():
            print(f"{name:<20} {text}")
        return EXIT_OK
    try:
        sandbox = Sandbox(args.scenario, args.port, args.cloudtrail_max_events)
    except ValueError as err:
        _line(f"{prog}: {err}")
        return EXIT_USAGE
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    info = sandbox.start()
    profiles = Path(args.profiles_file) if args.profiles_file else None
    if profiles is not None:
        write_profiles(profiles, info.principals, info.control_token)
    print(json.dumps(info.__dict__), flush=True)
    _line(f"sandbox {info.scenario} serving on {info.endpoint}; Ctrl-C stops it")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
        if profiles is not None:
            profiles.unlink(missing_ok=True)
    _line("sandbox stopped")
    return EXIT_OK


def serve_and_exit(argv: Sequence[str] | None = None) -> None:
    """``python -m runbook_sandbox``: :func:`main`, then exit at once. Everything the
    sandbox writes (its start line, the profiles file) is flushed or removed by then; tearing
    down moto's modules one by one would only make its parent wait (~0.3 s)."""
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
