"""nbval: each step notebook executes cleanly on its own (papermill-prepared, sandbox params)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import papermill
import pytest

from runbook_lib import creation
from runbook_lib.params import validate

from .helpers import REPO, STEP_NAMES, Env

SANITIZE = REPO / "tests" / "nbval" / "sanitize.cfg"


@pytest.fixture
def nbval_results(env_for: Callable[[str], Env], tmp_path: Path) -> dict[str, object]:
    env = env_for("standalone")
    params = env.params("console", dry_run=True, mode="batch", sandbox_actor=False)
    # a run created (leased, recorded) but not executed: the notebooks nbval runs, in order,
    # are its steps
    record = creation.create_run(validate(params), env.runs)
    params["run_dir"] = str(record.path)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for name in STEP_NAMES:
        papermill.execute_notebook(
            str(REPO / "notebooks" / f"{name}.ipynb"),
            str(prepared / f"{name}.ipynb"),
            parameters=params,
            prepare_only=True,
            progress_bar=False,
        )
    junit = tmp_path / "nbval.xml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-sanitize-with",
            str(SANITIZE),
            str(prepared),
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "-q",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert junit.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    failed: dict[str, list[str]] = {name: [] for name in STEP_NAMES}
    for case in ET.parse(junit).getroot().iter("testcase"):
        where = case.get("classname", "") + " " + case.get("name", "")
        step = next((n for n in STEP_NAMES if n in where), None)
        if step and (case.find("failure") is not None or case.find("error") is not None):
            failed[step].append(case.get("name", ""))
    return {"code": result.returncode, "failed": failed, "output": result.stdout[-3000:]}


@pytest.mark.slow
def test_nbval_each_notebook(nbval_results: dict[str, object]) -> None:
    failed = nbval_results["failed"]
    assert isinstance(failed, dict)
    for name in STEP_NAMES:
        assert failed[name] == [], nbval_results["output"]


@pytest.mark.slow
def test_nbval_whole_run_exits_0(nbval_results: dict[str, object]) -> None:
    assert nbval_results["failed"]["01-remove-device"] == []  # type: ignore[index]
    assert nbval_results["code"] == 0, nbval_results["output"]
