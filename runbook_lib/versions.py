"""Versions of everything a run depends on, for the record (each step's ``step.started``).

:data:`PACKAGES` are the distributions the run executes: the SDK, the notebook machinery and
the YAML reader. Not the sandbox's (moto, werkzeug, pyotp: the ``[sandbox]`` extra, a test
double that serves AWS's API over HTTP, absent from a production install); the plan digest
covers every installed distribution anyway (:func:`runbook_lib.plan.dependencies_fingerprint`).
"""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib import metadata

from . import __version__
from .data import checkout_root

PACKAGES = (
    "boto3",
    "botocore",
    "papermill",
    "nbclient",
    "nbformat",
    "jupyter_client",
    "ipykernel",
    "ipywidgets",
    "pyyaml",
)


@cache
def git_commit() -> str | None:
    """The commit of the runbook's checkout: the library runs from this project's git checkout
    (an editable install, or a plain checkout). None otherwise, without running git: an
    installed wheel's parent is site-packages, which may well sit inside some other repository
    (a virtualenv in a project's folder), whose commit says nothing about the runbook."""
    root = checkout_root()
    if root is None or not (root / ".git").exists():  # .git: a directory, or a worktree's file
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--", "runbook_lib", "notebooks"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout.strip()
    return done.stdout.strip() + ("-dirty" if dirty else "")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {
        "root-mfa-runbook": __version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
    }
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
