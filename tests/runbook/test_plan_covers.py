"""What the plan digest covers: the code a run executes (runbook_lib's sources, the notebooks,
the installed distributions), not the sandbox, which a production run never imports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runbook_lib import plan as plan_module
from runbook_lib.params import validate
from runbook_lib.plan import PlanIdentity, make_plan
from tests import keys

REPO = Path(__file__).resolve().parents[2]
IDENTITY = PlanIdentity(
    "0123456789abcdef", "2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00"
)
RAW = keys.with_keys({"account_id": "123456789012", "change_ticket": "CHG-1", "dry_run": False})


def _digest() -> str:
    return make_plan(validate(RAW), IDENTITY).digest


def _append(path: Path) -> None:
    path.write_text(path.read_text() + "\n# edited\n")


@pytest.fixture
def copied_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """runbook_lib and runbook_sandbox side by side in tmp, the plan reading the copy's
    library (its sources are what plan.library_fingerprint hashes)."""
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("runbook_lib", "runbook_sandbox", "runbook_demo"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=ignore)
    monkeypatch.setattr(plan_module, "PACKAGE_DIR", tmp_path / "runbook_lib")
    return tmp_path


def test_the_digest_covers_the_librarys_sources_not_the_sandboxs(copied_packages: Path) -> None:
    same = _digest()
    _append(copied_packages / "runbook_sandbox" / "_iam.py")
    _append(copied_packages / "runbook_sandbox" / "actor.py")
    _append(copied_packages / "runbook_demo" / "__init__.py")
    assert _digest() == same, "an edit of the sandbox (or the demo) changed the plan"
    _append(copied_packages / "runbook_lib" / "aws" / "state.py")
    assert _digest() != same, "an edit of runbook_lib left the plan as it was"


def test_the_wheels_data_packages_are_not_library_code(copied_packages: Path) -> None:
    """A wheel has runbook_lib/_notebooks/__init__.py (and _policies'), an editable install
    has none there: the same sources are the same library."""
    same = plan_module.library_fingerprint()
    for data in ("_notebooks", "_policies"):
        (copied_packages / "runbook_lib" / data).mkdir()
        (copied_packages / "runbook_lib" / data / "__init__.py").write_text('"""data"""\n')
    assert plan_module.library_fingerprint() == same


def test_the_digest_covers_the_notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "notebooks"
    shutil.copytree(plan_module.notebooks_dir(), copy)
    monkeypatch.setenv("RUNBOOK_NOTEBOOKS", str(copy))
    same = _digest()
    _append(copy / "02-verify-removal.ipynb")  # still bytes the plan hashes
    assert _digest() != same
