"""Where the runbook's data lives: the step notebooks and the least-privilege IAM policies.

The repository keeps them at its top (``notebooks/``, ``policies/``); the distribution ships
them inside the library as the data packages ``runbook_lib._notebooks`` and
``runbook_lib._policies`` (``pyproject.toml`` maps each to its folder: ``package-dir``). So
they are found with :mod:`importlib.resources` wherever the library is installed:

* a wheel: ``site-packages/runbook_lib/_notebooks/`` (copies, hashed in the wheel's RECORD);
* an editable install (``make setup``): setuptools' editable finder maps each data package to
  the checkout's folder, so an edited notebook is the one that runs;
* a plain checkout that is not installed (its root on ``sys.path``): the data packages cannot
  be imported, and the folders next to ``runbook_lib/`` are used, but only when that directory
  is this project's checkout (its ``pyproject.toml`` names the distribution): never a folder
  that merely happens to sit beside site-packages.

``RUNBOOK_NOTEBOOKS`` overrides the notebooks' directory (tests).
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from .errors import RunbookError

DISTRIBUTION = "root-mfa-runbook"
NOTEBOOKS_PACKAGE = "runbook_lib._notebooks"
POLICIES_PACKAGE = "runbook_lib._policies"
#: data package -> its folder at the top of the repository (pyproject.toml's package-dir)
FOLDERS = {NOTEBOOKS_PACKAGE: "notebooks", POLICIES_PACKAGE: "policies"}

_NAME_LINE = re.compile(r'^name\s*=\s*"([^"]+)"\s*$', re.MULTILINE)


def checkout_root() -> Path | None:
    """The project checkout the library's sources sit in (editable install or plain checkout),
    or None (a wheel's site-packages, or any directory that is not this project's checkout)."""
    root = Path(__file__).resolve().parent.parent
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = _NAME_LINE.search(text)
    return root if found and found.group(1) == DISTRIBUTION else None


def data_dir(package: str) -> Path:
    """The directory of one data package (:data:`FOLDERS`): installed, else the checkout's."""
    try:
        found = resources.files(package)
    except ModuleNotFoundError:
        root = checkout_root()
        if root is not None and (root / FOLDERS[package]).is_dir():
            return root / FOLDERS[package]
        raise RunbookError(
            f"{package} is not installed with runbook_lib ({Path(__file__).parent}): "
            f"reinstall {DISTRIBUTION} (pip install {DISTRIBUTION})"
        ) from None
    if not isinstance(found, Path):  # e.g. a zip import: papermill needs real files
        raise RunbookError(
            f"{package} is not a directory ({found}): install {DISTRIBUTION} unzipped"
        )
    return found


def notebooks_dir() -> Path:
    """Where the step notebooks live (``RUNBOOK_NOTEBOOKS`` overrides, for tests)."""
    override = os.environ.get("RUNBOOK_NOTEBOOKS")
    return Path(override) if override else data_dir(NOTEBOOKS_PACKAGE)


def fleet_notebook() -> Path:
    """The fleet audit's notebook (``notebooks/fleet/audit.ipynb``)."""
    return notebooks_dir() / "fleet" / "audit.ipynb"


def policies_dir() -> Path:
    """Where the IAM policies (``runbook-*.json``) and their README live."""
    return data_dir(POLICIES_PACKAGE)
