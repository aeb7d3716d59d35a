"""The notebooks' parameters cells and the YAML templates, generated from the schema.

  python -m runbook_lib.generate --check   report every drift (a diff for each), exit 1 if any
  python -m runbook_lib.generate --write   rewrite what drifted (``make notebooks``)

What is checked (:func:`check`), for the notebooks directory (``data.notebooks_dir()``,
``RUNBOOK_NOTEBOOKS`` overrides) and ``parameters/``:

- every step of ``plan.STEPS`` has its notebook, and no other notebook is there;
- each notebook reads as nbformat 4, exactly one cell is tagged ``parameters``, it is a code
  cell and the first code cell (papermill injects the run's values right after it, and the
  step's own code must run with them), and its source is :func:`schema.notebook_cell`;
- each template (``schema.TEMPLATES``) names only schema parameters, every documented one
  (``template`` in the schema), and is :func:`schema.template_text` of its own header and
  values: the comments come from the schema, the values are the template's examples.

:func:`write` rewrites only the parameters cell's source (the cell's id, metadata and every
other cell stay as they are) and the templates' comments, atomically, and only files that
differ; the output is nbformat's JSON (indent 1, keys sorted, sources as single strings, a
final newline), so writing twice gives the same bytes. It refuses (and writes nothing) where
it would have to guess: a missing, untagged or misplaced parameters cell, a template naming an
unknown parameter.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

from . import schema
from .data import notebooks_dir
from .errors import ParameterError
from .params import load_file
from .plan import PACKAGE_DIR, STEPS

PARAMETERS_DIR = PACKAGE_DIR.parent / "parameters"


def _diff(have: str, want: str, where: str) -> str:
    lines = difflib.unified_diff(
        have.splitlines(),
        want.splitlines(),
        fromfile=f"{where} (as it is)",
        tofile=f"{where} (generated)",
        lineterm="",
    )
    return "\n".join(lines)


def _read_notebook(path: Path) -> tuple[Any, Any, list[str]]:
    """The notebook, its parameters cell (or None) and the problems of its cell sequence."""
    try:
        nb = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    except Exception as err:  # noqa: BLE001 - nbformat raises anything from json to its own
        return None, None, [f"{path.name}: not a notebook nbformat 4 reads ({err})"]
    tagged = [c for c in nb.cells if schema.NOTEBOOK_TAG in c.get("metadata", {}).get("tags", [])]
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged_code = [c for c in tagged if c.cell_type == "code"]
    if not tagged_code:
        return nb, None, [f"{path.name}: no code cell tagged {schema.NOTEBOOK_TAG!r}"]
    if len(tagged) > 1:
        return nb, None, [f"{path.name}: {len(tagged)} cells are tagged 'parameters'"]
    cell = tagged_code[0]
    if code[0] is not cell:
        return nb, None, [f"{path.name}: the parameters cell must be the first code cell"]
    return nb, cell, []


def _cells() -> list[tuple[str, str]]:
    """Each notebook (relative to the notebooks directory) and its parameters cell: the steps'
    from the run schema, the fleet audit's from its own."""
    from .fleet.params import FLEET_NOTEBOOK, fleet_notebook_cell

    step = schema.notebook_cell()
    return [(name, step) for name in _steps()] + [(FLEET_NOTEBOOK, fleet_notebook_cell())]


def _notebook_problems(path: Path, want: str) -> list[str]:
    nb, cell, problems = _read_notebook(path)
    if cell is None:
        return problems
    if cell.source != want:
        diff = _diff(cell.source, want, f"{path.name} parameters cell")
        return [f"{path.name}: the parameters cell differs from the schema's\n{diff}"]
    return []


def load_template(path: Path) -> dict[str, Any]:
    """A template's values, read as a parameters file is (strict YAML)."""
    return load_file(path)


def _template(path: Path, style: str) -> tuple[str | None, list[str], list[str]]:
    """The template as the schema generates it from ``path``'s header and values (or None, and
    why it cannot be generated), and the documented parameters it lacks."""
    try:
        values = load_template(path)
    except ParameterError as err:
        return None, [f"{path.name}: {problem}" for problem in err.problems], []
    missing = [name for name in schema.TEMPLATE if name not in values]
    problems = []
    for name in values:
        if name not in schema.BY_NAME:
            problems.append(f"{path.name}: names {name}, which the schema lacks")
        elif not schema.BY_NAME[name].template:
            problems.append(f"{path.name}: names {name}, which templates do not document")
    text = path.read_text(encoding="utf-8")
    header = schema.template_header(text)
    if not header:
        problems.append(f"{path.name}: must begin with a header comment (# ...)")
    if problems:
        return None, problems, missing
    try:
        return schema.template_text(style, header, values), [], missing
    except TypeError as err:
        return None, [f"{path.name}: {err}"], missing


def _template_problems(path: Path, style: str) -> list[str]:
    want, problems, missing = _template(path, style)
    if missing:
        problems.append(f"{path.name}: lacks {', '.join(missing)} (documented in the schema)")
    if want is None:
        return problems
    have = path.read_text(encoding="utf-8")
    if have != want:
        problems.append(
            f"{path.name}: differs from the schema's text\n" + _diff(have, want, path.name)
        )
    return problems


def _steps() -> list[str]:
    return [f"{name}.ipynb" for name, _ in STEPS]


def _layout_problems(notebooks: Path) -> list[str]:
    problems = [
        f"{name}: the notebook is missing (plan.STEPS or fleet.params names it)"
        for name, _ in _cells()
        if not (notebooks / name).is_file()
    ]
    problems += [
        f"{path.name}: not a step of plan.STEPS (rename it, or add the step)"
        for path in sorted(notebooks.glob("*.ipynb"))
        if path.name not in _steps()
    ]
    return problems


def check(notebooks: Path | None = None, parameters: Path = PARAMETERS_DIR) -> list[str]:
    """Every drift from the schema, one problem each (with a unified diff where text differs);
    empty when the notebooks and templates are what :func:`write` would write."""
    notebooks = notebooks or notebooks_dir()
    problems = _layout_problems(notebooks)
    for name, want in _cells():
        if (notebooks / name).is_file():
            problems += _notebook_problems(notebooks / name, want)
    for name, style in schema.TEMPLATES.items():
        problems += _template_problems(parameters / name, style)
    return problems


def _write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(notebooks: Path | None = None, parameters: Path = PARAMETERS_DIR) -> list[str]:
    """Rewrite every parameters cell and template that differs from the schema's. Returns the
    problems it cannot fix (then nothing at all was written)."""
    notebooks = notebooks or notebooks_dir()
    problems = _layout_problems(notebooks)
    pending: list[tuple[Path, str]] = []
    for name, want in _cells():
        path = notebooks / name
        if not path.is_file():
            continue
        nb, cell, found = _read_notebook(path)
        problems += found
        if cell is not None and cell.source != want:
            cell.source = want
            nbformat.validate(nb)
            text = nbformat.writes(nb, split_lines=False)  # type: ignore[no-untyped-call]
            pending.append((path, text + "\n"))
    for name, style in schema.TEMPLATES.items():
        path = parameters / name
        text, found, _ = _template(path, style)
        problems += found
        if text is not None and text != path.read_text(encoding="utf-8"):
            pending.append((path, text))
    if problems:
        return problems
    for path, text in pending:
        _write_atomically(path, text)
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runbook_lib.generate",
        description="The notebooks' parameters cells and the YAML templates, from the schema "
        "(runbook_lib/schema.py).",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="report drift; exit 1 if any")
    action.add_argument("--write", action="store_true", help="rewrite what drifted")
    parser.add_argument(
        "--notebooks", type=Path, help="the notebooks directory (default: the runbook's)"
    )
    parser.add_argument(
        "--parameters", type=Path, default=PARAMETERS_DIR, help="the templates directory"
    )
    args = parser.parse_args(argv)
    notebooks = args.notebooks or notebooks_dir()
    if args.write:
        problems = write(notebooks, args.parameters)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("generate: nothing written; fix the above by hand first", file=sys.stderr)
        return 1 if problems else 0
    problems = check(notebooks, args.parameters)
    for problem in problems:
        print(problem)
    if problems:
        print(
            f"generate: {len(problems)} problem(s); `make notebooks` rewrites the parameters "
            "cells and templates from runbook_lib/schema.py",
            file=sys.stderr,
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
