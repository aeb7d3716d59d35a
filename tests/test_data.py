"""Where the runbook finds its data and its commit, installed or not (runbook_lib/data.py,
versions.git_commit), and the CLI around them (runbook policies; a missing extra)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib import cli, data, plugins, versions
from runbook_lib.errors import ParameterError
from runbook_lib.params import validate
from tests import keys

REPO = Path(__file__).resolve().parent.parent


def test_the_data_packages_are_the_checkouts_folders_when_installed_editable() -> None:
    assert data.data_dir(data.NOTEBOOKS_PACKAGE) == REPO / "notebooks"
    assert data.policies_dir() == REPO / "policies"
    assert len(list(data.notebooks_dir().glob("*.ipynb"))) == 6


_PLAIN = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv[1])
import runbook_lib.data as data
print(data.__file__)
try:
    print(data.notebooks_dir()); print(data.policies_dir())
except data.RunbookError as err:
    print("error:", err)
"""


def _plain_checkout(root: Path, with_pyproject: bool) -> list[str]:
    """A checkout that is not installed (no editable finder), its root first on sys.path."""
    for name in ("runbook_lib", "notebooks", "policies"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    if with_pyproject:
        shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RUNBOOK_NOTEBOOKS")}
    done = subprocess.run(
        [sys.executable, "-c", _PLAIN, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
        cwd=root,
    )
    return done.stdout.splitlines()


def test_a_plain_checkout_finds_its_own_folders(tmp_path: Path) -> None:
    module, notebooks, policies = _plain_checkout(tmp_path, with_pyproject=True)
    assert Path(module).is_relative_to(tmp_path)
    assert (Path(notebooks), Path(policies)) == (tmp_path / "notebooks", tmp_path / "policies")


def test_folders_beside_the_library_are_not_used_when_it_is_no_checkout(tmp_path: Path) -> None:
    """Say site-packages held a notebooks/ folder of someone else's: not the runbook's."""
    module, error = _plain_checkout(tmp_path, with_pyproject=False)
    assert Path(module).is_relative_to(tmp_path)
    assert error.startswith("error: runbook_lib._notebooks is not installed") and "pip" in error


def _fake_git(bin_dir: Path, log: Path) -> None:
    real = shutil.which("git")
    assert real
    bin_dir.mkdir()
    script = bin_dir / "git"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_an_installed_library_inside_some_repository_has_no_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A venv inside a project's repository: site-packages' parents are that repository, whose
    commit is not the runbook's; git is not even asked."""
    repo = tmp_path / "project"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    site = repo / ".venv" / "lib" / "python3.11" / "site-packages"
    (site / "runbook_lib").mkdir(parents=True)
    for module in (data, versions):
        fake = site / "runbook_lib" / Path(str(module.__file__)).name
        monkeypatch.setattr(module, "__file__", str(fake))
    log = tmp_path / "git-calls"
    _fake_git(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    versions.git_commit.cache_clear()
    try:
        assert versions.git_commit() is None
    finally:
        versions.git_commit.cache_clear()
    assert not log.exists(), "git was run on the repository around site-packages"


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_the_checkouts_commit_is_recorded() -> None:
    versions.git_commit.cache_clear()
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert (versions.git_commit() or "").removesuffix("-dirty") == head
    assert "moto" not in versions.versions()


def test_a_missing_sandbox_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A production install has no sandbox: `runbook demo` / `runbook sandbox` say what to
    install, in one line, as bad usage (nothing is created)."""
    monkeypatch.setattr(plugins, "entry_points", lambda **_: ())
    for argv in (["demo", "--runs-dir", str(tmp_path / "runs")], ["sandbox"]):
        assert cli.main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.count("\n") == 1 and "root-mfa-runbook[sandbox]" in captured.err
    assert not (tmp_path / "runs").exists()


def test_sandbox_actor_without_the_sandbox_is_refused_as_a_parameter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A production install cannot run the simulated console actor: the plan says so, before
    any run exists (not a kernel failing at 03-first-sign-in)."""
    raw = keys.with_keys({"account_id": "123456789012", "change_ticket": "C-1", "dry_run": False})
    validate({**raw, "sandbox_actor": True})  # installed here: accepted
    monkeypatch.setattr(plugins, "entry_points", lambda **_: ())
    with pytest.raises(ParameterError) as caught:
        validate({**raw, "sandbox_actor": True})
    assert any("root-mfa-runbook[sandbox]" in p for p in caught.value.problems)
    validate(raw)  # without the actor: nothing to load
    params = tmp_path / "params.yml"
    params.write_text(json.dumps({**raw, "sandbox_actor": True}))
    assert cli.main(["plan", "-f", str(params), "--out", str(tmp_path / "plan.txt")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "sandbox_actor=true needs the local AWS sandbox" in captured.err
    assert not (tmp_path / "plan.txt").exists()


def test_runbook_policies_lists_and_prints_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policies"]) == 0
    listed = capsys.readouterr().out
    assert str(REPO / "policies") in listed and "runbook-assume-root.json" in listed
    assert cli.main(["policies", "runbook-archive.json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((REPO / "policies" / "runbook-archive.json").read_text())
    for bad in ("nope.json", "../pyproject.toml", "README.md", "__init__.py"):
        assert cli.main(["policies", bad]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert "runbook-reader.json" in captured.err
