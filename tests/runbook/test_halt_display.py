"""How a stop looks in the executed notebook of a batch run (papermill): a halt is a short
notice, with no papermill error banner and no traceback; a failure keeps both its banner and its
error. The record says the same as before (``step.halted``, ``step.error``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from runbook_lib.record.verify import verify

from .helpers import REPO, Env, of_type

BANNER_TAG = "papermill-error-cell-tag"


def _notebook(run_dir: Path, name: str) -> Any:
    nb = nbformat.read(run_dir / "notebooks" / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    return nb


def _code(nb: Any, source: str) -> Any:
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.strip() == source]
    return cell


def _text(cell: Any) -> str:
    parts = []
    for out in cell.outputs:
        parts.append(str(out.get("text", "")))
        parts.append(str(out.get("data", {}).get("text/plain", "")))
        parts += [str(line) for line in out.get("traceback", [])]
    return "\n".join(parts)


def _banners(nb: Any) -> list[Any]:
    return [c for c in nb.cells if BANNER_TAG in c.get("metadata", {}).get("tags", [])]


def test_a_halted_batch_run_shows_the_halt_without_banner_or_traceback(
    env_for: Callable[[str], Env],
) -> None:
    env = env_for("standalone")
    code, run_dir = env.run(env.params("console"))  # no approval: halts at the risk gate
    assert code == 3
    nb = _notebook(run_dir, "00-preflight")
    source = nbformat.read(REPO / "notebooks" / "00-preflight.ipynb", as_version=4)
    # complete: every cell of the notebook and papermill's injected parameters, nothing else
    assert [
        c.source for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])
    ] == [c.source for c in source.cells]
    assert not _banners(nb)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    raw = json.dumps(nb)
    assert "Traceback" not in raw and "An Exception was encountered" not in raw
    assert "site-packages" not in raw and "runbook_lib/" not in raw
    halted_cell = _code(nb, "preflight.acknowledge(step)")
    notice = _text(halted_cell)
    assert "HALTED at gate risk-acknowledged: no approval was given" in notice
    assert f"runbook resume {run_dir} --approval FILE" in notice
    assert "text/html" in halted_cell.outputs[-1]["data"]
    finish = _code(nb, "step.finish()")
    assert finish.execution_count is None and not finish.outputs  # it stopped at the halt
    # the record as before: the kernel's step.halted, the runner's run.halted, a sealed record
    (halted,) = of_type(run_dir, "step.halted")
    assert halted["step"] == "00-preflight" and halted["data"]["gate"] == "risk-acknowledged"
    assert halted["data"]["reason"].startswith(
        "Gate 'risk-acknowledged' is not approved: no approval was given"
    )
    assert not of_type(run_dir, "step.error")
    assert of_type(run_dir, "run.halted")
    assert verify(run_dir).ok


def test_a_failed_batch_run_keeps_papermills_banner_and_the_error(
    env_for: Callable[[str], Env],
) -> None:
    env = env_for("standalone")
    params = env.approved("console", account_id="210987654321", device_serial=None)
    code, run_dir = env.run(params)
    assert code == 1
    nb = _notebook(run_dir, "00-preflight")
    assert len(_banners(nb)) == 2  # papermill's "An Exception was encountered" and its anchor
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in errors if o.output_type == "error"]
    assert [o.ename for o in errors] == ["AccountMismatchError"]
    assert "210987654321" in errors[0].evalue and "Nothing was changed" in errors[0].evalue
    assert "AccountMismatchError" in "".join(errors[0].traceback)
    (error,) = of_type(run_dir, "step.error")
    assert error["data"]["ename"] == "AccountMismatchError"
    assert not of_type(run_dir, "step.halted")
    assert verify(run_dir).ok
