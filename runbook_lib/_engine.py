"""papermill's nbclient engine on the run's one shared kernel client (see
:mod:`runbook_lib.kernel`, whose :func:`~runbook_lib.kernel.engine` registers it)."""

from __future__ import annotations

from typing import Any

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.utils import merge_kwargs, remove_args


class _SharedClientNotebookClient(PapermillNotebookClient):  # type: ignore[misc]
    """papermill's client, on a kernel client it is given (nbclient resets ``kc`` to None in
    its ``__init__``: it is set after)."""

    def __init__(self, nb_man: Any, km: Any = None, shared_kc: Any = None, **kw: Any) -> None:
        super().__init__(nb_man, km=km, **kw)
        self.kc = shared_kc


class SharedClientEngine(NBClientEngine):  # type: ignore[misc]
    """papermill's nbclient engine, with ``shared_kc``: the kernel client every notebook of a
    run reuses. Arguments are prepared exactly as papermill's own engine prepares them."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: int = 60,
        execution_timeout: int | None = None,
        **kwargs: Any,
    ) -> Any:
        from papermill.engines import logger

        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        return _SharedClientNotebookClient(nb_man, **final_kwargs).execute()


def register(name: str) -> None:
    """Make :class:`SharedClientEngine` papermill's engine ``name``."""
    papermill_engines.register(name, SharedClientEngine)
