"""The run's one kernel and its one client (runbook_lib/kernel.py): every notebook of a batch
run reuses the same ready client, so readiness is awaited once per kernel, not per notebook;
papermill's conventions hold (parameters injected, every notebook written)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jupyter_client.asynchronous
import nbformat
import pytest

from runbook_lib.record.verify import verify

from .helpers import STEP_NAMES, Env


def test_one_ready_client_serves_every_notebook_of_a_run(
    env_for: Callable[[str], Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_for("standalone")
    waits: list[Any] = []
    real = jupyter_client.asynchronous.AsyncKernelClient.wait_for_ready

    async def counted(self: Any, timeout: float | None = None) -> None:
        waits.append(self)
        await real(self, timeout)

    monkeypatch.setattr(jupyter_client.asynchronous.AsyncKernelClient, "wait_for_ready", counted)
    code, run_dir = env.run(env.approved("console"))
    assert code == 0, env.progress
    assert len(waits) == 1, f"{len(waits)} readiness waits for {len(STEP_NAMES)} notebooks"
    assert verify(run_dir).ok
    for name in STEP_NAMES:
        nb = nbformat.read(run_dir / "notebooks" / f"{name}.ipynb", as_version=4)
        tags = [c.get("metadata", {}).get("tags", []) for c in nb.cells]
        assert ["injected-parameters"] in tags, name  # papermill's injected cell, as before
        assert nb.metadata["papermill"]["exception"] in (None, False), name


def test_a_batch_kernel_has_no_debugger_and_keeps_no_history(tmp_path: Path) -> None:
    """runbook_lib.batch_kernel: debugpy cannot be imported (ipykernel offers no debugger:
    nothing attaches through the control channel), IPython's history is off, tracebacks are
    plain text; the kernel still runs code as ipykernel does."""
    from jupyter_core.utils import run_sync

    from runbook_lib.kernel import Kernel

    kernel = Kernel()
    try:
        kc = kernel.client()
        assert "runbook_lib.batch_kernel" in " ".join(kernel.km.kernel_spec.argv)
        code = (
            "import sys; ip = get_ipython()\n"
            "print(sys.modules.get('debugpy', 'absent'), ip.history_manager.enabled,"
            " type(ip.kernel).__name__, 6 * 7)"
        )
        reply = run_sync(kc.execute_interactive)(code, timeout=30, output_hook=_collect(out := []))
        assert reply["content"]["status"] == "ok"
        assert "".join(out).split() == ["None", "False", "IPythonKernel", "42"]
        # a traceback is plain text: no terminal escapes in an executed notebook's error
        failed = run_sync(kc.execute_interactive)("1 / 0", timeout=30, output_hook=_collect([]))
        assert failed["content"]["status"] == "error"
        trace = "\n".join(failed["content"]["traceback"])
        assert "ZeroDivisionError" in trace and "\x1b" not in trace
        # the debug_request a frontend's debugger sends: no debugger answers it
        request = {"type": "request", "seq": 1, "command": "initialize"}
        msg = kc.session.msg("debug_request", request)
        kc.control_channel.send(msg)
        answer = run_sync(kc.control_channel.get_msg)(timeout=10)
        assert answer["parent_header"]["msg_id"] == msg["header"]["msg_id"]
        assert answer["content"] in ({}, None) or answer["content"].get("success") is not True
    finally:
        kernel.shutdown()


def _collect(into: list[str]) -> Callable[[dict[str, Any]], None]:
    def hook(msg: dict[str, Any]) -> None:
        if msg["header"]["msg_type"] == "stream":
            into.append(msg["content"]["text"])

    return hook
