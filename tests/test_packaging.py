"""The two install routes (pip: pyproject.toml + requirements.lock; conda: environment.yml)
list the same packages, and every listed package is pinned in the lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(spec: str) -> str:
    return re.split(r"[\[<>=!~ ;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = {_name(d) for d in data["project"]["dependencies"]}
    for extra in data["project"]["optional-dependencies"].values():
        names |= {_name(d) for d in extra}
    return names - {data["project"]["name"]}  # the dev extra names root-mfa-runbook[sandbox]


def _conda() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names: set[str] = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(d) for d in dep["pip"] if not d.startswith("-")}
        elif not dep.startswith(("python", "pip")):
            names.add(_name(dep))
    return names


def test_conda_and_pip_list_the_same_packages() -> None:
    pip, conda = _pyproject(), _conda()
    assert pip - conda == set(), "in pyproject.toml only"
    assert conda - pip == set(), "in environment.yml only"


def test_every_package_is_pinned_in_the_lock() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    lines = lock.splitlines()
    pinned = {_name(line) for line in lines if "==" in line and not line.startswith("#")}
    assert _pyproject() - pinned == set()
    assert all(
        "==" in line for line in lock.splitlines() if line and not line.startswith(("#", " "))
    )


def test_slow_optional_import_is_left_out() -> None:
    """rfc3987-syntax builds a grammar at import (~2.3 s in every papermill and kernel start);
    jsonschema treats it as optional, so the lock leaves it out and make installs --no-deps."""
    lock = (ROOT / "requirements.lock").read_text()
    assert "rfc3987-syntax==" not in lock and "\nlark==" not in lock
    assert "--no-deps -r requirements.lock" in (ROOT / "Makefile").read_text()


def test_the_wheel_lists_every_package_and_maps_the_data_folders() -> None:
    """pyproject.toml lists the packages by name (a data package's folder is mapped, which
    setuptools' find cannot express): every package folder of the code is listed, and each
    data package is a top-level folder with an __init__.py (the editable finder needs it)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = setuptools["package-dir"]
    code = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("runbook_lib", "runbook_sandbox", "runbook_demo")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == code | set(mapped)
    for package, folder in mapped.items():
        assert package.startswith("runbook_lib._") and "/" not in folder
        assert (ROOT / folder / "__init__.py").is_file()
        assert setuptools["package-data"][package]
