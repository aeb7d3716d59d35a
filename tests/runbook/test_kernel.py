"""The run's one kernel and its one client (runbook_lib/kernel.py): every notebook of a batch
run reuses the same ready client, so readiness is awaited once per kernel, not per notebook;
papermill's conventions hold (parameters injected, every notebook written)."""

from __future__ import annotations

from collections.abc import Callable
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
