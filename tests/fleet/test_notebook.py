"""notebooks/fleet/audit.ipynb run in batch by papermill, with FLEET.yml as its parameters file,
against the sandbox: the same sealed audit as `runbook fleet audit`, and a summary without a
secret in the executed notebook."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import papermill
import yaml

from runbook_lib.data import fleet_notebook
from runbook_lib.record.secrets import find_secrets
from runbook_lib.record.verify import verify
from tests import keys

from .conftest import Fleet


def test_papermill_runs_the_fleet_notebook_with_fleet_yml_as_its_parameters(
    fleet_for: Callable[[str], Fleet], tmp_path: Path
) -> None:
    fleet = fleet_for("fleet-6")
    fleet_file = tmp_path / "FLEET.yml"
    fleet_file.write_text(yaml.safe_dump(fleet.raw(run_dir=str(fleet.runs))))
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(fleet_notebook()),
        str(out),
        parameters=yaml.safe_load(fleet_file.read_text()),
        cwd=str(tmp_path),
        progress_bar=False,
        kernel_name="python3",
    )
    (run_dir,) = [p for p in fleet.runs.iterdir() if p.is_dir()]
    assert verify(run_dir, keys.allowed_signers()).ok
    text = out.read_text()
    assert f"Fleet audit {run_dir.name}" in text and "| verdict | accounts |" in text
    assert not find_secrets(text, set(), frozenset())
    for principal in fleet.info.principals.values():
        assert principal["secret_access_key"] not in text
