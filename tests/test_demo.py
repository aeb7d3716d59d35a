"""runbook_demo: the kernel it starts while the sandbox starts is handed to the run, and shut
down whatever happens to the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest

import runbook_demo
from runbook_lib import runner
from runbook_lib.errors import RunRefused
from runbook_lib.kernel import Kernel
from tests.conftest import isolate_aws_env


def _kernels() -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if "runbook_lib.batch_kernel" in " ".join(child.cmdline())
    ]


def test_the_early_kernel_reaches_the_run_and_is_shut_down_if_the_run_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_aws_env(tmp_path, monkeypatch)
    handed: list[Any] = []

    def refusing_run(params: dict[str, Any], runs_dir: Path, **kw: Any) -> Any:
        kernel = kw.get("kernel")
        handed.append(kernel)
        assert isinstance(kernel, Kernel) and kernel.km is not None and kernel.km.is_alive()
        assert _kernels(), "the kernel was started before the run"
        raise RunRefused("refused for the test")

    monkeypatch.setattr(runner, "run", refusing_run)
    with pytest.raises(RunRefused, match="refused for the test"):
        runbook_demo.run_demo("standalone", None, tmp_path / "runs")
    assert len(handed) == 1
    assert handed[0].km is None
    assert not [k for k in _kernels() if k.is_running()], "the kernel outlived the demo"
