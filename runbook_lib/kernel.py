"""The one kernel a batch run's notebooks execute in, and the papermill engine that reuses one
client for all of them.

papermill runs each notebook through an nbclient session. Given a kernel manager but no
client, nbclient makes a new client per notebook and waits for it to be ready, which costs at
least 0.2 s each time (jupyter_client flushes IOPub for that long), six times a run. The
:data:`ENGINE` engine is papermill's own (parameters, output conventions, the error banner,
the notebook written even on failure) but hands nbclient the run's one ready client
(:meth:`Kernel.client`), which nbclient keeps when it does not own the kernel.

Importing this module imports no papermill (~0.5 s): a kernel can be started first and boot
while papermill is imported (:func:`engine` registers the engine, from :mod:`._engine`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .isolation import kernel_env, kernel_specs

ENGINE = "runbook"
"""papermill's ``engine_name`` for notebooks that share :meth:`Kernel.client`."""


class Kernel:
    """One python3 kernel for the notebooks of a run."""

    def __init__(self) -> None:
        self.km: Any = None
        self._dir: str | None = None
        self._kc: Any = None

    def get(self) -> Any:
        from jupyter_client.manager import KernelManager

        class TrackingKernelManager(KernelManager):
            """Remembers the clients nbclient makes: it does not stop their channels when it
            does not own the kernel, which would leak zmq sockets."""

            runbook_clients: list[Any]

            def client(self, **kwargs: Any) -> Any:
                made = super().client(**kwargs)
                self.runbook_clients.append(made)
                return made

        if self.km is None or not self.km.is_alive():
            self.shutdown()
            # IPC sockets in a private directory: nothing listens on TCP, even on localhost
            self._dir = tempfile.mkdtemp(prefix="runbook-kernel-")
            self.km = TrackingKernelManager(
                kernel_name="python3",
                kernel_spec_manager=kernel_specs(),  # this interpreter's, no other
                transport="ipc",
                ip=os.path.join(self._dir, "kernel"),
                # nbclient awaits the client: a blocking client would block its event loop in
                # get_msg, and the check that notices a dead kernel would never run
                client_class="jupyter_client.asynchronous.AsyncKernelClient",
            )
            self.km.runbook_clients = []
            # isolated: allow-listed environment, private IPYTHONDIR and bytecode cache
            self.km.start_kernel(env=kernel_env(Path(self._dir)))
        return self.km

    def client(self) -> Any:
        """One started, ready client for the kernel's life, which every notebook's nbclient
        session reuses (nbclient keeps a client it is given): no new channels and no readiness
        wait (0.2 s at least, jupyter_client flushes IOPub) per notebook. A new kernel (the old
        one died) gets a new client."""
        from jupyter_core.utils import run_sync

        km = self.get()
        if self._kc is None or self._kc not in km.runbook_clients:
            kc = km.client()
            kc.start_channels()
            run_sync(kc.wait_for_ready)(timeout=60)
            self._kc = kc
        return self._kc

    def release_clients(self, keep_shared: bool = True) -> None:
        """Stop the channels of the clients nbclient made itself (it does not when it does not
        own the kernel: their zmq sockets would leak); the shared one stays unless asked."""
        if self.km is not None:
            for client in list(self.km.runbook_clients):
                if keep_shared and client is self._kc:
                    continue
                with contextlib.suppress(RuntimeError, OSError):
                    client.stop_channels()
                self.km.runbook_clients.remove(client)
        if not keep_shared:
            self._kc = None

    def shutdown(self) -> None:
        self.release_clients(keep_shared=False)
        if self.km is not None:
            with contextlib.suppress(RuntimeError, OSError):
                self.km.shutdown_kernel(now=True)
            self.km = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def engine() -> str:
    """Register the :data:`ENGINE` engine with papermill (imports papermill); its name."""
    from . import _engine

    _engine.register(ENGINE)
    return ENGINE
