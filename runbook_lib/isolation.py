"""What the notebook kernel may see: the plan's code and nothing a local user slipped in.

The plan digest says "this exact code runs". A kernel started with the caller's environment runs
more: IPython startup files (``IPYTHONDIR``), ``PYTHONSTARTUP``, ``PYTHONPATH`` entries and their
``sitecustomize``, user site-packages, a module shadowed from the working directory, and a
swapped ``.pyc`` beside a library module (Python trusts a ``.pyc`` whose header matches the
source's size and mtime). So the kernel (batch, and every kernel of ``runbook lab``) starts with:

* an **allow-listed environment**: what boto3 needs for the run's profiles (``AWS_*`` settings,
  but never ``AWS_ENDPOINT_URL*``: the endpoint is a parameter of the plan), locale, ``HOME``,
  ``PATH``, proxies and CA bundles, the runbook's own ``RUNBOOK_*`` settings; nothing else;
* a private, empty ``IPYTHONDIR`` (no profile, no startup files);
* ``PYTHONNOUSERSITE`` (no user site-packages) and ``PYTHONSAFEPATH`` (the working directory is
  not on ``sys.path``);
* bytecode only from a private cache (``PYTHONPYCACHEPREFIX``: ``~/.cache/root-mfa-runbook``,
  or ``RUNBOOK_PYCACHE_DIR``), so no ``__pycache__`` beside the sources is ever read;
* SDK logging that cannot print credentials (:func:`quiet_sdk_logging`, called in the kernel);
* **this interpreter** (:func:`kernel_spec`, which ``runbook lab`` writes into its fresh Jupyter
  data directory: ``sys.executable -m ipykernel_launcher``; :func:`kernel_specs` for batch
  runs: ``sys.executable -m runbook_lib.batch_kernel``, the same kernel without a debugger,
  IPython history or coloured tracebacks), whatever kernelspecs ``JUPYTER_PATH``, the user's
  or the system's Jupyter directories hold, so an installed runbook runs its own library.

What this does not cover: someone who can write the installed sources themselves (their hash is
in the plan digest, with the installed distributions' names and versions: :mod:`runbook_lib.plan`),
or the Python interpreter.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_ALLOWED_NAMES = frozenset(
    {
        "HOME",
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "USER",
        "LOGNAME",
        "SHELL",
        "TERM",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "VIRTUAL_ENV",
    }
)
_ALLOWED_PREFIXES = ("AWS_", "LC_", "RUNBOOK_")
_REFUSED_PREFIXES = ("AWS_ENDPOINT_URL",)


def allowed(name: str) -> bool:
    if name.startswith(_REFUSED_PREFIXES):
        return False
    return name in _ALLOWED_NAMES or name.startswith(_ALLOWED_PREFIXES)


def pycache_dir() -> Path:
    """The private bytecode cache: ``RUNBOOK_PYCACHE_DIR``, else
    ``$XDG_CACHE_HOME/root-mfa-runbook/pycache`` (``~/.cache/...``), the owner's only."""
    override = os.environ.get("RUNBOOK_PYCACHE_DIR")
    if override:
        path = Path(override)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(cache) / "root-mfa-runbook" / "pycache"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_symlink() or path.stat().st_uid != os.getuid():
        raise PermissionError(f"{path}: the bytecode cache must be a directory of your own")
    os.chmod(path, 0o700)
    return path


def kernel_env(private_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a kernel starts with (see the module docstring)."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if allowed(k)}
    ipython = private_dir / "ipython"
    ipython.mkdir(mode=0o700, parents=True, exist_ok=True)
    env.update(
        IPYTHONDIR=str(ipython),
        PYTHONNOUSERSITE="1",
        PYTHONSAFEPATH="1",
        PYTHONPYCACHEPREFIX=str(pycache_dir()),
        PYTHONHASHSEED=source.get("PYTHONHASHSEED", "random"),
    )
    if source.get("PYTHONHASHSEED") is None:
        env.pop("PYTHONHASHSEED")
    return env


KERNEL_NAME = "python3"


def kernel_spec() -> dict[str, Any]:
    """The kernelspec (``kernel.json``) of a run's kernel: ipykernel's own for this interpreter,
    argv ``[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]`` (what
    ``runbook lab`` uses; batch runs start it as :func:`batch_kernel_argv`)."""
    from ipykernel.kernelspec import get_kernel_dict

    return dict(get_kernel_dict())


def batch_kernel_argv() -> list[str]:
    """A batch run's kernel command: :mod:`runbook_lib.batch_kernel` (ipykernel without a
    debugger, IPython history or coloured tracebacks) on this interpreter."""
    return [sys.executable, "-m", "runbook_lib.batch_kernel", "-f", "{connection_file}"]


def kernel_specs() -> Any:
    """The kernelspecs a batch run's kernel is chosen from: no kernelspec directory is read, so
    the only one is ``python3``, ipykernel's native kernel (:func:`kernel_spec`) started as
    :func:`batch_kernel_argv`."""
    from jupyter_client.kernelspec import KernelSpecManager

    class BatchKernelSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> Any:
            spec = super().get_kernel_spec(kernel_name)
            spec.argv = batch_kernel_argv()
            return spec

    return BatchKernelSpecs(kernel_dirs=[], ensure_native_kernel=True)


def quiet_sdk_logging() -> None:
    """In the kernel: nothing below WARNING is ever logged. The SDK's DEBUG output holds request
    headers and bodies (signatures, session tokens, credentials); a logger's own filter would not
    stop its children's records, and ``boto3.set_stream_logger`` resets levels, so the floor is
    set for the whole process (the runbook prints its results; it does not log below WARNING)."""
    logging.disable(logging.INFO)
