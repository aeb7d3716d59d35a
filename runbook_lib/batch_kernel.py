"""A batch run's kernel: ipykernel's own, without a debugger, IPython's history or colours.

``python -m runbook_lib.batch_kernel -f CONNECTION_FILE`` is ``python -m ipykernel_launcher``
(what :func:`runbook_lib.isolation.kernel_specs` starts for ``runbook run``, ``resume`` and
``demo``) with three differences, all for a kernel nobody types into:

* ``debugpy`` cannot be imported, so ipykernel offers no debugger: nothing can attach to the
  kernel through its control channel and change what a step executes. (debugpy and pydevd are
  also ipykernel's largest imports: the kernel is ready sooner.)
* IPython's command history is off (no SQLite file in the private ``IPYTHONDIR``, no writer
  thread): the executed notebooks are the record of what ran.
* Tracebacks are plain text (colour scheme ``nocolor``): a failed step's executed notebook
  holds its error without terminal escape sequences, and IPython does not compile pygments'
  lexers to colour it (~0.2 s per kernel that shows one).

``runbook lab`` keeps ipykernel's own launcher (JupyterLab's debugger panel):
:func:`runbook_lib.isolation.kernel_spec`.
"""

from __future__ import annotations

import sys

#: IPython configuration the batch kernel starts with (command-line form)
OPTIONS = ("--HistoryManager.enabled=False", "--InteractiveShell.colors=nocolor")


def main(argv: list[str] | None = None) -> None:
    sys.modules["debugpy"] = None  # type: ignore[assignment]  # import fails: no debugger
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=[*(sys.argv[1:] if argv is None else argv), *OPTIONS])


if __name__ == "__main__":
    main()
