"""The one place the runbook reaches code it does not contain: entry points in the group
``root_mfa_runbook.plugins``.

The runbook never imports the sandbox (``runbook_sandbox``) or the demo (``runbook_demo``); it
knows them only by these names, which the distribution's ``pyproject.toml`` maps:

    =============== ============================================ ==============================
    name            what                                         used by
    =============== ============================================ ==============================
    console-actor   performs the console steps (sandbox only)    ``sandbox_actor: true``
    sandbox         ``runbook sandbox``: serve the local AWS      the CLI
    demo            ``runbook demo``: the procedure on it         the CLI
    =============== ============================================ ==============================

A production install without the ``[sandbox]`` extra has the names but not moto: loading one
raises :class:`PluginMissing` (the sandbox's serving modules check for moto and werkzeug on
import, ``runbook_sandbox.require_extra``), whose message says what to install (the CLI: one
line, exit 2); :func:`missing` says so without raising (``sandbox_actor: true`` is refused as a
parameter).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from .errors import RunbookError

GROUP = "root_mfa_runbook.plugins"
INSTALL_HINT = "install the sandbox extra: pip install 'root-mfa-runbook[sandbox]'"


class PluginMissing(RunbookError):
    """A plug-in the command needs is not installed (or its dependencies are not)."""


def load(name: str, purpose: str) -> Any:
    """The object the entry point ``name`` names; ``purpose`` completes "... needs the
    sandbox" in the error."""
    found = entry_points(group=GROUP, name=name)
    if not found:
        raise PluginMissing(
            f"{purpose} needs the local AWS sandbox, which is not installed: {INSTALL_HINT}"
        )
    point = next(iter(found))
    try:
        return point.load()
    except ImportError as err:
        raise PluginMissing(
            f"{purpose} needs the local AWS sandbox, whose dependencies are missing "
            f"({err.name or err}): {INSTALL_HINT}"
        ) from err


def missing(name: str, purpose: str) -> str | None:
    """Why the plug-in ``name`` cannot be loaded (:class:`PluginMissing`'s message), or None."""
    try:
        load(name, purpose)
    except PluginMissing as err:
        return str(err)
    return None
