"""The distribution as a user installs it: a wheel built from the checkout's files, installed
without ``-e`` into a fresh virtualenv, run from a directory outside the checkout with nothing
of the checkout importable.

* with the ``[sandbox]`` extra (and the exact locked dependencies, offline from uv's cache):
  ``runbook demo`` runs the whole procedure, its kernel importing the venv's own runbook_lib and
  notebooks, and ``runbook verify`` says the record is intact;
* without it (only what the wheel's own requirements pull in, at the locked versions): no moto,
  werkzeug or pyotp; ``runbook demo`` is one line naming the extra (exit 2); ``runbook plan``,
  ``--help`` and ``runbook policies`` work;
* the wheel's METADATA: the sandbox's packages only under ``extra == "sandbox"``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests import keys

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
UV = Path(sys.executable).with_name("uv")  # make setup installs it into the venv
#: the lock leaves these out (Makefile `lock`: --no-emit-package), so no install has them
LEFT_OUT_OF_THE_LOCK = {"rfc3987-syntax", "lark"}
SANDBOX_ONLY = {"moto", "werkzeug", "pyotp"}

# Run in the candidate venv: the wheel's requirement closure (no extra), name -> version, and the
# requirements not installed there. Markers are evaluated for the extras each requirement asks.
_CLOSURE = r"""
import json
from importlib import metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pins, missing, seen, by = {}, set(), set(), {}
todo = [("root-mfa-runbook", frozenset())]
while todo:
    name, extras = todo.pop()
    key = (canonicalize_name(name), extras)
    if key in seen:
        continue
    seen.add(key)
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        missing.add(key[0])
        continue
    pins[key[0]] = dist.version
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in {"", *extras}):
            continue
        todo.append((req.name, frozenset(req.extras)))
        by.setdefault(canonicalize_name(req.name), f"{key[0]}: {line}")
print(json.dumps({"pins": pins, "missing": sorted(missing), "by": by}))
"""


def _run(cmd: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=600, check=False, **kwargs
    )  # type: ignore[call-overload]
    assert isinstance(done, subprocess.CompletedProcess)
    return done


def _ok(cmd: Sequence[str | Path], **kwargs: object) -> str:
    done = _run(cmd, **kwargs)
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return str(done.stdout)


def _checkout_files(dest: Path) -> None:
    """The checkout's files as a fresh clone would have them (tracked, and new ones not
    ignored): no .venv, no egg-info, no build/ of an earlier build."""
    listed = _ok(["git", "-C", REPO, "ls-files", "-z", "-c", "-o", "--exclude-standard"])
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert UV.is_file(), f"{UV} is missing: run make setup"
    src = tmp_path_factory.mktemp("src")
    _checkout_files(src)
    dist = tmp_path_factory.mktemp("dist")
    _ok([UV, "build", "--wheel", "--offline", "--quiet", "--out-dir", dist, src], cwd=src)
    (built,) = dist.glob("*.whl")
    return built


def _venv(path: Path) -> Path:
    _ok([UV, "venv", "--quiet", "--python", sys.executable, path])
    return path


def _install(venv: Path, *args: str | Path) -> None:
    """Exactly these, offline from uv's cache (``make setup`` filled it), no resolution."""
    python = venv / "bin" / "python"
    _ok([UV, "pip", "install", "--quiet", "--offline", "--no-deps", "--python", python, *args])


@pytest.fixture(scope="module")
def sandbox_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = _venv(tmp_path_factory.mktemp("with-sandbox") / "venv")
    _install(venv, "-r", REPO / "requirements.lock")
    _install(venv, f"{wheel}[sandbox]")
    return venv


@pytest.fixture(scope="module")
def production_venv(
    wheel: Path, sandbox_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """The wheel and what its requirements (no extra) pull in, each at the locked version:
    ``pip install root-mfa-runbook`` with the lock's pins (resolved from the installed
    metadata, since uv cannot resolve offline)."""
    # outside the checkout: its root_mfa_runbook.egg-info (an editable build's) would be read
    where = _outside(sandbox_venv, tmp_path_factory.mktemp("closure"))
    closure = json.loads(_ok([sandbox_venv / "bin" / "python", "-c", _CLOSURE], **where))
    assert set(closure["missing"]) <= LEFT_OUT_OF_THE_LOCK, closure["missing"]
    pins = {n: v for n, v in closure["pins"].items() if n != "root-mfa-runbook"}
    for name in SANDBOX_ONLY & set(pins):  # how it came in, for the assertion below
        print(f"{name} <- {closure['by'][name]}")
    venv = _venv(tmp_path_factory.mktemp("production") / "venv")
    _install(venv, *(f"{name}=={version}" for name, version in sorted(pins.items())))
    _install(venv, wheel)
    return venv, pins


def _outside(venv: Path, tmp_path: Path) -> dict[str, object]:
    """cwd and environment of a user's shell outside the checkout, the venv's bin on PATH:
    nothing points at the checkout (no PYTHONPATH; PYTHONSAFEPATH: not the cwd either)."""
    home = tmp_path / "elsewhere"
    home.mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "RUNBOOK_ALLOWED_SIGNERS", "RUNBOOK_NOTEBOOKS")
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        PYTHONSAFEPATH="1",
    )
    return {"cwd": home, "env": env}


def _imported_from(venv: Path, module: str, where: dict[str, object]) -> str:
    code = f"import {module}; print({module}.__file__)"
    return _ok([venv / "bin" / "python", "-c", code], **where).strip()


def test_the_wheel_ships_the_notebooks_and_policies_and_declares_the_sandbox_an_extra(
    wheel: Path,
) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
    notebooks = {p.name for p in (REPO / "notebooks").glob("*.ipynb")}
    assert len(notebooks) == 6
    assert {f"runbook_lib/_notebooks/{n}" for n in notebooks} <= names
    policies = {p.name for p in (REPO / "policies").glob("*.json")} | {"README.md"}
    assert {f"runbook_lib/_policies/{n}" for n in policies} <= names
    assert not any(n.startswith(("notebooks/", "policies/", "tests/")) for n in names)
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, re.MULTILINE)
    for package in SANDBOX_ONLY:
        lines = [r for r in requires if re.match(rf"{package}\b", r)]
        assert lines, f"{package} is not in the wheel's requirements"
        assert all(re.search(r"""extra == ["']sandbox["']""", r) for r in lines), lines


def test_installed_with_the_sandbox_extra_the_demo_runs_and_its_record_verifies(
    sandbox_venv: Path, tmp_path: Path
) -> None:
    where = _outside(sandbox_venv, tmp_path)
    for module in ("runbook_lib", "runbook_sandbox", "runbook_demo"):
        assert Path(_imported_from(sandbox_venv, module, where)).is_relative_to(sandbox_venv)
    runs = tmp_path / "runs"
    runbook = sandbox_venv / "bin" / "runbook"
    demo = _run([runbook, "demo", "--runs-dir", runs], **where)
    assert demo.returncode == 0, f"{demo.stdout}\n{demo.stderr}"
    assert re.search(r"^result\s+succeeded$", demo.stdout, re.MULTILINE), demo.stdout
    run_dir = Path(demo.stdout.strip().splitlines()[-1])
    assert run_dir.parent == runs.resolve()
    verified = _run([runbook, "verify", run_dir], **where)
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout
    # the run's versions name no git commit: site-packages is no checkout (git was not asked
    # about whatever repository encloses it); the sandbox's packages are not the run's
    text = (run_dir / "events.jsonl").read_text()
    versions = json.loads(text.splitlines()[0])["data"]["info"]["versions"]
    assert versions["git_commit"] is None and versions["boto3"] and "moto" not in versions
    assert str(REPO) not in text


def test_installed_without_the_extra_there_is_no_sandbox_and_the_runbook_works(
    production_venv: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, pins = production_venv
    assert SANDBOX_ONLY.isdisjoint(pins), f"required without the extra: {SANDBOX_ONLY & set(pins)}"
    where = _outside(venv, tmp_path)
    assert Path(_imported_from(venv, "runbook_lib", where)).is_relative_to(venv)
    found = f"[m for m in {sorted(SANDBOX_ONLY)} if u.find_spec(m)]"
    probe = f"import importlib.util as u; print({found})"
    assert _ok([venv / "bin" / "python", "-c", probe], **where).strip() == "[]"
    runbook = venv / "bin" / "runbook"

    demo = _run([runbook, "demo", "--runs-dir", tmp_path / "runs"], **where)
    assert demo.returncode == 2, demo
    assert demo.stdout == "" and len(demo.stderr.splitlines()) == 1, demo.stderr
    assert "pip install 'root-mfa-runbook[sandbox]'" in demo.stderr
    assert not (tmp_path / "runs").exists()
    sandbox = _run([runbook, "sandbox"], **where)
    assert sandbox.returncode == 2 and "[sandbox]" in sandbox.stderr, sandbox.stderr

    assert "usage: runbook" in _ok([runbook, "--help"], **where)
    params = tmp_path / "params.yml"
    params.write_text(
        json.dumps(
            keys.with_keys(
                {"account_id": "123456789012", "change_ticket": "CHG-1", "dry_run": False}
            )
        )
    )
    planned = _ok([runbook, "plan", "-f", params, "--out", tmp_path / "plan.txt"], **where)
    assert re.search(r"\b[0-9a-f]{64}\b", planned), planned
    plan_file = (tmp_path / "plan.txt").read_text()
    assert "00-preflight" in plan_file and "05-close-out" in plan_file

    listed = _ok([runbook, "policies"], **where)
    assert "runbook-reader.json" in listed and str(venv) in listed
    reader = json.loads(_ok([runbook, "policies", "runbook-reader.json"], **where))
    assert reader == json.loads((REPO / "policies" / "runbook-reader.json").read_text())
