"""The local AWS sandbox: moto in server mode behind a layer for root-user behaviour.

Public surface::

    Sandbox(scenario, port, cloudtrail_max_events).start() -> SandboxInfo
                                                      in-process (one per process: moto is global)
    sandbox_process(scenario) -> SandboxInfo          a child process, as a context manager
    SandboxInfo.client(service, principal)            boto3 client pointed at the sandbox
    ControlClient                                     the simulated console actor and test knobs
    SCENARIOS                                         name -> one-line description
    validate(scenario) -> scenario                    ValueError naming the valid ones
    require_extra()                                   ImportError without moto/werkzeug
    write_profiles(path, principals, token)           the principals as AWS profiles sandbox-NAME
    stop_process(proc)                                SIGTERM, wait, kill a sandbox child
    actor.ConsoleActor                                the console steps, for sandbox_actor=true

Nothing outside this package may ask whether it talks to the sandbox: the runbook reaches it
over HTTP like AWS, through an ``endpoint_url``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

#: the ``[sandbox]`` extra (pyproject.toml); checked, not imported (moto is slow to import)
EXTRA = ("moto", "werkzeug", "pyotp")


def require_extra() -> None:
    """ImportError (naming the package) when the ``[sandbox]`` extra is not installed. Called
    when this package is imported, so every plug-in of the sandbox (console actor, ``runbook
    sandbox``, ``runbook demo``) fails to load by design, and the runbook's plug-in loader says
    what to install instead of a traceback from deep inside a server start. Imports nothing."""
    for name in EXTRA:
        if importlib.util.find_spec(name) is None:
            raise ImportError(f"No module named {name!r}", name=name)


require_extra()

from ._client import (  # noqa: E402 - after the check: without the extra, nothing else runs
    ControlApiError,
    ControlClient,
    SandboxInfo,
    boto_session,
    stop_process,
    write_profiles,
)
from ._scenarios import SCENARIOS, validate  # noqa: E402

__all__ = [
    "SCENARIOS",
    "ControlApiError",
    "ControlClient",
    "Sandbox",
    "SandboxInfo",
    "boto_session",
    "sandbox_process",
    "require_extra",
    "stop_process",
    "validate",
    "write_profiles",
]

START_TIMEOUT = 60.0


class Sandbox:
    """An in-process sandbox server on 127.0.0.1 (``port=0`` picks a free port)."""

    def __init__(
        self, scenario: str = "standalone", port: int = 0, cloudtrail_max_events: int | None = None
    ) -> None:
        from ._state import DEFAULT_CLOUDTRAIL_MAX_EVENTS, MAX_CLOUDTRAIL_MAX_EVENTS

        self.scenario = validate(scenario)
        self.port = port
        # the newest CloudTrail events kept, also after a reset (the control API can change it
        # until the next one)
        self.cloudtrail_max_events = cloudtrail_max_events or DEFAULT_CLOUDTRAIL_MAX_EVENTS
        if cloudtrail_max_events is not None and not (
            1 <= cloudtrail_max_events <= MAX_CLOUDTRAIL_MAX_EVENTS
        ):
            raise ValueError(
                f"--cloudtrail-max-events must be 1..{MAX_CLOUDTRAIL_MAX_EVENTS}, "
                f"got {cloudtrail_max_events}"
            )
        self._server: Any = None
        self.world: Any = None
        # the control API's token: printed on the start line and written into the profiles
        self.control_token = secrets.token_urlsafe(24)

    def _build(self) -> None:
        from moto.moto_api._internal.models import moto_api_backend

        from . import _scenarios
        from ._state import World

        moto_api_backend.reset()
        world = World(self.scenario)
        world.set_cloudtrail_max_events(self.cloudtrail_max_events)
        _scenarios.build(world)
        if self._server is not None:
            # swap the state under the running server
            self._server.app.world = world
            self._server.app.control.world = world
        self.world = world

    def start(self) -> SandboxInfo:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            create_backend_app,
        )

        from . import _cloudtrail, _console, _iam, _s3lock, _sts  # noqa: F401 - registers the handlers
        from ._server import SandboxApp, SandboxServer

        _speed_up_moto_dispatch()
        self._build()
        control = _console.ControlApi(self.world, self.info_dict, self._build, self.control_token)
        app = SandboxApp(self.world, DomainDispatcherApplication(create_backend_app), control)
        self._server = SandboxServer(app, self.port)
        self._server.start()
        return self.info()

    def info_dict(self) -> dict[str, Any]:
        world = self.world
        return {
            "endpoint": self._server.endpoint,
            "region": "us-east-1",
            "scenario": world.scenario,
            "target_account_id": world.target_account_id,
            "principals": {name: p.public() for name, p in world.named.items()},
            "control_token": self.control_token,
        }

    def info(self) -> SandboxInfo:
        return SandboxInfo.from_json(self.info_dict())

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> SandboxInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _speed_up_moto_dispatch() -> None:
    """Moto lists its own package directory on disk twice per request to route it; the list
    never changes while it runs, so compute it once (about 2 ms saved per call)."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "_runbook_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def cached() -> tuple[str, ...]:
        return modules

    cached._runbook_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = cached


@contextlib.contextmanager
def sandbox_process(
    scenario: str = "standalone",
    port: int = 0,
    while_starting: Callable[[], object] | None = None,
) -> Iterator[SandboxInfo]:
    """Run ``runbook sandbox`` as a child process; yield its start line; always stop it.
    ``while_starting`` is called once the child is spawned, before its start line is awaited:
    work that can overlap the sandbox's start (imports, a kernel)."""
    validate(scenario)
    env = dict(os.environ)
    env.pop("MOTO_ACCOUNT_ID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runbook_sandbox", "--scenario", scenario, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=None,
        env=env,
    )
    try:
        assert proc.stdout is not None
        if while_starting is not None:
            while_starting()
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        line = proc.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"the sandbox ({scenario}) did not start; see its stderr above")
        yield SandboxInfo.from_json(json.loads(line))
    finally:
        stop_process(proc)
