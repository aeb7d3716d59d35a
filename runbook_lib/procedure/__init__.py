"""The procedure: one module per step notebook (its operator text, its checks, its gates), the
step context, the gate engine, the run's life cycle and the record's vocabulary.

    =================== =============================== ===================================
    notebook            module                          does
    =================== =============================== ===================================
    00-preflight        :mod:`.preflight`               reads; the risk acknowledgement
    01-remove-device    :mod:`.remove`                  the approval; removes (or guides)
    02-verify-removal   :mod:`.verify_removal`          reads; finds the CloudTrail event
    03-first-sign-in    :mod:`.sign_in`                 guides; verifies ConsoleLogin
    04-rebind           :mod:`.bind`                    guides and verifies, or records skip
    05-close-out        :mod:`.close_out`               diff, approvals, timeline
    =================== =============================== ===================================

:mod:`.context` (``open_step``, ``Step``), :mod:`.gates` (the gate engine), :mod:`.lifecycle`
(the state machine folded from events), :mod:`.facts` (typed readers of the events),
:mod:`.vocabulary` (gate names, event types, statuses). Imported lazily: a notebook kernel pays
only for what it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "open_step": "context",
    "Step": "context",
    "show": "common",
    "preflight": None,
    "remove": None,
    "verify_removal": None,
    "sign_in": None,
    "bind": None,
    "close_out": None,
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        return importlib.import_module(f".{name}", __name__)
    return getattr(importlib.import_module(f".{module}", __name__), name)
