"""The kernel runs the plan's code and nothing a local user slipped in (issue "Secrets and
execution isolation"): no IPython startup files, no PYTHONSTARTUP, no PYTHONPATH or its
sitecustomize, no module shadowed from the working directory, no swapped .pyc; the plan digest
covers the installed dependencies; Lab's token is never on a command line."""

from __future__ import annotations

import importlib.util
import json
import marshal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runbook_lib import plan as plan_module
from runbook_lib.params import validate
from runbook_lib.plan import PlanIdentity, make_plan
from tests import keys

from .helpers import Env, of_type


def _evil(marker: Path) -> str:
    """Code that leaves a mark when it runs (and turns on the SDK's debug log, as the
    reviewer's startup file did: the record would then hold session tokens)."""
    return (
        "import pathlib, logging\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "try:\n"
        "    import boto3; boto3.set_stream_logger('botocore', logging.DEBUG)\n"
        "except Exception:\n"
        "    pass\n"
    )


def _dry_run(env: Env) -> Path:
    code, run_dir = env.run(env.params("console", dry_run=True))
    assert code == 0, env.progress
    return run_dir


def _notebook_text(run_dir: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((run_dir / "notebooks").glob("*.ipynb")))


def test_ipython_startup_files_do_not_reach_the_kernel(
    env_for: Callable[[str], Env], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_for("standalone")
    marker = tmp_path / "startup-ran"
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-debug.py").write_text(_evil(marker))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    run_dir = _dry_run(env)
    assert not marker.exists(), "an IPython startup file ran in the kernel"
    assert "DEBUG" not in _notebook_text(run_dir)


def test_pythonstartup_pythonpath_and_sitecustomize_do_not_reach_the_kernel(
    env_for: Callable[[str], Env], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_for("standalone")
    startup_marker, site_marker = tmp_path / "pythonstartup-ran", tmp_path / "site-ran"
    (tmp_path / "startup.py").write_text(_evil(startup_marker))
    injected = tmp_path / "injected"
    injected.mkdir()
    (injected / "sitecustomize.py").write_text(_evil(site_marker))
    monkeypatch.setenv("PYTHONSTARTUP", str(tmp_path / "startup.py"))
    monkeypatch.setenv("PYTHONPATH", str(injected))
    _dry_run(env)
    assert not startup_marker.exists(), "PYTHONSTARTUP ran in the kernel"
    assert not site_marker.exists(), "a sitecustomize from PYTHONPATH ran in the kernel"


def test_a_module_in_the_working_directory_does_not_shadow_the_sdk(
    env_for: Callable[[str], Env], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_for("standalone")
    marker = tmp_path / "shadow-ran"
    (tmp_path / "yaml.py").write_text(_evil(marker) + "raise ImportError('shadowed')\n")
    monkeypatch.chdir(tmp_path)  # the runner starts the kernel here
    _dry_run(env)
    assert not marker.exists(), "a yaml.py in the working directory was imported by the kernel"


def test_the_kernel_is_this_interpreter_whatever_kernelspecs_jupyter_finds(
    env_for: Callable[[str], Env], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``python3`` kernelspec on the caller's JUPYTER_PATH (or in the user's or the system's
    Jupyter directories) names an interpreter of its own: another venv, another runbook_lib.
    The run's kernel is this interpreter's, and nothing else."""
    env = env_for("standalone")
    marker = tmp_path / "foreign-kernel-ran"
    launcher = tmp_path / "foreign_kernel.py"
    launcher.write_text(
        f"import pathlib, runpy\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "runpy.run_module('ipykernel_launcher', run_name='__main__')\n"
    )
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, str(launcher), "-f", "{connection_file}"],
                "display_name": "someone else's Python",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    run_dir = _dry_run(env)
    assert not marker.exists(), "the kernel was started from a foreign kernelspec"
    assert of_type(run_dir, "run.succeeded")


@pytest.fixture
def swapped_pyc(tmp_path: Path) -> Iterator[Path]:
    """A .pyc beside runbook_lib/procedure/common.py whose header matches the source (size,
    mtime) but whose code leaves a mark: what Python trusts when it reads __pycache__."""
    import runbook_lib.procedure.common as common

    source = Path(common.__file__)
    cached = Path(importlib.util.cache_from_source(str(source)))
    saved = cached.read_bytes() if cached.exists() else None
    marker = tmp_path / "pyc-ran"
    # the mark is left only in a kernel: other tests' processes (CLI calls, workers) read this
    # __pycache__ beside the source while it is planted
    evil = "import sys as _sys\nif 'ipykernel' in _sys.modules:\n" + "".join(
        f"    {line}\n" for line in _evil(marker).splitlines()
    )
    code = compile(source.read_text() + "\n" + evil, str(source), "exec")
    stat = source.stat()
    header = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, "little")
    header += int(stat.st_mtime).to_bytes(4, "little") + (stat.st_size & 0xFFFFFFFF).to_bytes(
        4, "little"
    )
    cached.parent.mkdir(exist_ok=True)
    cached.write_bytes(header + marshal.dumps(code))
    try:
        yield marker
    finally:
        if saved is None:
            cached.unlink(missing_ok=True)
        else:
            cached.write_bytes(saved)


def test_a_swapped_pyc_is_never_read_by_the_kernel(
    env_for: Callable[[str], Env], swapped_pyc: Path
) -> None:
    env = env_for("standalone")
    run_dir = _dry_run(env)
    assert not swapped_pyc.exists(), "the kernel executed a swapped .pyc"
    assert of_type(run_dir, "run.succeeded")


def test_the_kernel_environment_is_an_allow_list(tmp_path: Path) -> None:
    """AWS_ENDPOINT_URL in the caller's environment would send the kernel's calls elsewhere
    than the plan says; Python's and IPython's startup hooks would run unreviewed code."""
    from runbook_lib.isolation import kernel_env

    caller = {
        "AWS_PROFILE": "ops",
        "AWS_SHARED_CREDENTIALS_FILE": "/home/ops/.aws/credentials",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9",
        "PYTHONSTARTUP": "/tmp/x.py",
        "PYTHONPATH": "/tmp/evil",
        "PYTHONINSPECT": "1",
        "IPYTHONDIR": "/tmp/ipy",
        "JUPYTER_CONFIG_DIR": "/tmp/jc",
        "LD_PRELOAD": "/tmp/evil.so",
        "HOME": "/home/ops",
        "PATH": "/usr/bin",
    }
    env = kernel_env(tmp_path, caller)
    assert env["AWS_PROFILE"] == "ops" and env["HOME"] == "/home/ops"
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "PYTHONSTARTUP", "PYTHONPATH"):
        assert name not in env, name
    for name in ("PYTHONINSPECT", "JUPYTER_CONFIG_DIR", "LD_PRELOAD"):
        assert name not in env, name
    assert env["IPYTHONDIR"] == str(tmp_path / "ipython") and not any(
        (tmp_path / "ipython").iterdir()
    )
    assert env["PYTHONNOUSERSITE"] == "1" and env["PYTHONSAFEPATH"] == "1"
    assert env["PYTHONPYCACHEPREFIX"]


def test_the_plan_digest_covers_the_installed_dependencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = validate(
        keys.with_keys({"account_id": "123456789012", "change_ticket": "CHG-1", "dry_run": False})
    )
    identity = PlanIdentity.new()
    before = make_plan(params, identity)
    site = tmp_path / "lib" / "site-packages"
    (site / "evil_helper-6.6.6.dist-info").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    assert "evil-helper==6.6.6" in plan_module.installed_distributions()
    after = make_plan(params, identity)
    assert after.dependencies_sha256 != before.dependencies_sha256
    assert after.digest != before.digest
