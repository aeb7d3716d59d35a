"""One parameter schema (runbook_lib/schema.py): the notebooks' parameters cells, the YAML
templates, the dataclass, --help and resume's list are derived from it, and drift fails here.

The checker is :func:`runbook_lib.generate.check` (``python -m runbook_lib.generate --check``);
every failure it reports is provoked on a tmp copy (``RUNBOOK_NOTEBOOKS`` points the runbook at
it, see ``plan.notebooks_dir``), so a checker that could not fail would fail these tests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib import generate, schema
from runbook_lib.params import HELP, REQUIRED, RunParameters, validate
from runbook_lib.plan import notebooks_dir
from runbook_lib.procedure.context import RESUMABLE_CHANGES

from .helpers import REPO, STEP_NAMES, cli

PARAMETERS = REPO / "parameters"


@pytest.fixture
def copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Copies of notebooks/ and parameters/; the runbook reads the notebooks copy."""
    notebooks = tmp_path / "notebooks"
    parameters = tmp_path / "parameters"
    shutil.copytree(REPO / "notebooks", notebooks)
    shutil.copytree(PARAMETERS, parameters)
    monkeypatch.setenv("RUNBOOK_NOTEBOOKS", str(notebooks))
    return notebooks, parameters


def cells(path: Path) -> list[dict[str, object]]:
    return list(json.loads(path.read_text())["cells"])


def save(path: Path, cell_list: list[dict[str, object]]) -> None:
    nb = json.loads(path.read_text())
    nb["cells"] = cell_list
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def parameters_cell(path: Path) -> dict[str, object]:
    return next(c for c in cells(path) if "parameters" in c["metadata"].get("tags", []))  # type: ignore[attr-defined]


def edit_parameters_cell(path: Path, old: str, new: str) -> None:
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert old in cell["source"]
    cell["source"] = cell["source"].replace(old, new)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def replace_in(path: Path, old: str, new: str) -> str:
    """Edit a file by hand; its text before."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return text


# ------------------------------------------------------------------ the repository is in sync
def test_notebooks_and_templates_are_generated_from_the_schema() -> None:
    assert generate.check(REPO / "notebooks", PARAMETERS) == []


def test_every_notebook_has_the_same_parameters_cell() -> None:
    for name in STEP_NAMES:
        assert parameters_cell(REPO / "notebooks" / f"{name}.ipynb")["source"] == (
            schema.notebook_cell()
        )


def test_what_is_derived_from_the_schema() -> None:
    assert [f.name for f in dataclasses.fields(RunParameters)] == list(schema.NAMES)
    assert HELP == {p.name: p.help for p in schema.SCHEMA}
    assert REQUIRED == ("account_id", "change_ticket")
    assert RESUMABLE_CHANGES == {"approvals", "confirm", "verify_timeout", "evidence_timeout"}
    view = validate({"account_id": "123456789012", "change_ticket": "CHG-1"}).plan_view()
    assert set(view) == set(schema.NAMES) - {"approvals", "confirm", "run_dir"}


def test_templates_validate() -> None:
    for name in schema.TEMPLATES:
        raw = generate.load_template(PARAMETERS / name)
        assert set(raw) == set(schema.TEMPLATE), name
        validate(raw)


def test_help_lists_every_parameter_from_the_schema(tmp_path: Path) -> None:
    for command in ("run", "plan", "resume", "lab"):
        result = cli(command, "--help", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        for p in schema.SCHEMA:
            if p.template:
                assert p.help in result.stdout, (command, p.name)
        assert "evidence_timeout = 600  [0-3600 seconds]" in result.stdout
        assert "run_dir" not in result.stdout.split("parameters (")[1]


def test_regenerating_changes_nothing(copy: tuple[Path, Path]) -> None:
    notebooks, parameters = copy
    files = [*notebooks.rglob("*.ipynb"), *parameters.iterdir()]
    before = {p: p.read_bytes() for p in files}
    assert generate.write(notebooks, parameters) == []
    after = {p: p.read_bytes() for p in files}
    assert after == before


# ------------------------------------------------------------------ the checker fails on drift
def test_the_fleet_notebook_s_cell_is_generated_from_the_fleet_schema(
    copy: tuple[Path, Path],
) -> None:
    notebooks, parameters = copy
    edit_parameters_cell(notebooks / "fleet" / "audit.ipynb", "workers = 8", "workers = 80")
    problems = generate.check(notebooks_dir(), parameters)
    assert len(problems) == 1, problems
    assert "audit.ipynb: the parameters cell differs" in problems[0]
    assert "+workers = 8  # accounts read at once" in problems[0]
    assert generate.write(notebooks_dir(), parameters) == []
    assert generate.check(notebooks_dir(), parameters) == []


def test_a_hand_edited_parameters_cell_is_reported_with_a_diff(copy: tuple[Path, Path]) -> None:
    notebooks, parameters = copy
    edit_parameters_cell(notebooks / "02-verify-removal.ipynb", "= 120", "= 60")
    problems = generate.check(notebooks_dir(), parameters)
    assert len(problems) == 1, problems
    assert "02-verify-removal.ipynb: the parameters cell differs" in problems[0]
    # the diff says what --write would change: the hand edit out, the schema's line in
    assert "-verify_timeout = 60  # seconds to wait" in problems[0]
    assert "+verify_timeout = 120  # seconds to wait" in problems[0]
    # the command line says the same, exit 1
    result = subprocess.run(
        [sys.executable, "-m", "runbook_lib.generate", "--check", "--parameters", str(parameters)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )
    assert result.returncode == 1
    assert "-verify_timeout = 60" in result.stdout
    assert "make notebooks" in result.stderr


def test_a_changed_comment_or_a_missing_name_is_drift(copy: tuple[Path, Path]) -> None:
    notebooks, parameters = copy
    edit_parameters_cell(notebooks / "00-preflight.ipynb", "# true: look and plan", "# look")
    edit_parameters_cell(notebooks / "05-close-out.ipynb", "sandbox_actor = False", "")
    problems = generate.check(notebooks, parameters)
    assert [p.split(":")[0] for p in problems] == ["00-preflight.ipynb", "05-close-out.ipynb"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("untag", "no code cell tagged 'parameters'"),
        ("second", "2 cells are tagged 'parameters'"),
        ("move", "the parameters cell must be the first code cell"),
        ("markdown", "no code cell tagged 'parameters'"),
    ],
)
def test_the_cell_sequence_is_checked(copy: tuple[Path, Path], change: str, expected: str) -> None:
    notebooks, parameters = copy
    path = notebooks / "01-remove-device.ipynb"
    cell_list = cells(path)
    index = next(i for i, c in enumerate(cell_list) if c.get("id") == "01-01")
    cell = cell_list[index]
    if change == "untag":
        cell["metadata"] = {}
    elif change == "second":
        extra = json.loads(json.dumps(cell))
        extra["id"] = "extra"
        cell_list.append(extra)
    elif change == "move":
        cell_list[index], cell_list[index + 1] = cell_list[index + 1], cell_list[index]
    elif change == "markdown":
        cell["cell_type"] = "markdown"
        del cell["outputs"], cell["execution_count"]
    save(path, cell_list)
    problems = generate.check(notebooks, parameters)
    assert len(problems) == 1 and problems[0].startswith("01-remove-device.ipynb: "), problems
    assert expected in problems[0]
    # the generator does not guess where the cell belongs: it refuses, and writes nothing
    text = path.read_bytes()
    assert generate.write(notebooks, parameters) == problems
    assert path.read_bytes() == text


def test_a_missing_step_notebook_and_a_stray_one(copy: tuple[Path, Path]) -> None:
    notebooks, parameters = copy
    (notebooks / "03-first-sign-in.ipynb").rename(notebooks / "03-first-signin.ipynb")
    problems = generate.check(notebooks, parameters)
    assert problems == [
        "03-first-sign-in.ipynb: the notebook is missing (plan.STEPS or fleet.params names it)",
        "03-first-signin.ipynb: not a step of plan.STEPS (rename it, or add the step)",
    ]


def test_a_notebook_that_is_not_one(copy: tuple[Path, Path]) -> None:
    notebooks, parameters = copy
    (notebooks / "04-rebind.ipynb").write_text("{not json")
    problems = generate.check(notebooks, parameters)
    assert len(problems) == 1 and problems[0].startswith("04-rebind.ipynb: not a notebook")


def test_templates_name_only_and_every_documented_parameter(copy: tuple[Path, Path]) -> None:
    notebooks, parameters = copy
    production = parameters / "production-template.yml"
    text = production.read_text()
    production.write_text(
        text.replace("rebind: bind\n", "rebind: bind\ncolour: blue\nrun_dir: /tmp/x\n").replace(
            "delete_virtual: true\n", ""
        )
    )
    sandbox = parameters / "sandbox.yml"
    replace_in(sandbox, "verify_timeout: 30\n", "verify_timeout: 30.5\n")
    problems = generate.check(notebooks, parameters)
    text = "\n".join(problems)
    assert "production-template.yml: names colour, which the schema lacks" in text
    assert "production-template.yml: lacks delete_virtual" in text
    assert "production-template.yml: names run_dir, which templates do not document" in text
    assert "sandbox.yml: no parameter takes a float (30.5)" in text
    # unknown names are refused by the generator too (it would drop them)
    assert generate.write(notebooks, parameters) != []
    assert "colour: blue" in production.read_text() and "30.5" in sandbox.read_text()


@pytest.mark.parametrize(
    ("old", "new", "reported"),
    [
        # a comment edited by hand: the diff shows the edit out and the schema's line in
        ("# true: look and plan only.", "# look only.", "+# true: look and plan only."),
        # a documented parameter left out: --write adds it with the schema's default
        ("delete_virtual: true\n", "", "production-template.yml: lacks delete_virtual"),
    ],
)
def test_template_drift_is_reported_and_write_restores_it(
    copy: tuple[Path, Path], old: str, new: str, reported: str
) -> None:
    notebooks, parameters = copy
    production = parameters / "production-template.yml"
    original = replace_in(production, old, new)
    problems = generate.check(notebooks, parameters)
    assert any(reported in p for p in problems), problems
    assert all(p.startswith("production-template.yml: ") for p in problems)
    assert generate.write(notebooks, parameters) == []
    # the example values are the template's own (evidence_timeout 900, not the default 600)
    assert production.read_text() == original and "evidence_timeout: 900\n" in original


def test_write_fixes_a_drifted_cell_and_touches_nothing_else(copy: tuple[Path, Path]) -> None:
    notebooks, parameters = copy
    path = notebooks / "04-rebind.ipynb"
    pristine = path.read_bytes()
    edit_parameters_cell(path, "# bind a new device", "# BIND")
    nb = json.loads(path.read_text())
    nb["cells"][1]["metadata"]["tags"].append("extra-tag")
    nb["cells"][1]["metadata"]["collapsed"] = True
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    assert generate.check(notebooks, parameters) != []
    assert generate.write(notebooks, parameters) == []
    assert generate.check(notebooks, parameters) == []
    fixed = json.loads(path.read_text())
    original = json.loads(pristine)
    assert fixed["cells"][1]["id"] == "04-01"
    assert fixed["cells"][1]["metadata"] == {"tags": ["parameters", "extra-tag"], "collapsed": True}
    fixed["cells"][1]["metadata"] = original["cells"][1]["metadata"]
    assert fixed == original
    once = path.read_bytes()
    assert generate.write(notebooks, parameters) == []
    assert path.read_bytes() == once


def test_make_notebooks_is_a_target() -> None:
    makefile = (REPO / "Makefile").read_text()
    phony = next(line for line in makefile.splitlines() if line.startswith(".PHONY:"))
    assert " notebooks" in phony
    assert "\nnotebooks: setup ## " in makefile
    assert "runbook_lib.generate --write" in makefile


# ------------------------------------------------------------------ the schema checks itself
def test_a_dataclass_that_differs_from_the_schema_fails_loudly() -> None:
    schema.check_dataclass(RunParameters)
    changed = dataclasses.make_dataclass(
        "Changed",
        [
            (f.name, f.type, f)
            if f.name != "verify_timeout"
            else ("verify_timeout", "int", dataclasses.field(default=60))
            for f in dataclasses.fields(RunParameters)
        ],
    )
    with pytest.raises(schema.SchemaError, match="verify_timeout: default 60, the schema says 120"):
        schema.check_dataclass(changed)
    extra = dataclasses.make_dataclass(
        "Extra",
        [
            *((f.name, f.type, f) for f in dataclasses.fields(RunParameters)),
            ("x", "int", dataclasses.field(default=0)),
        ],
    )
    with pytest.raises(schema.SchemaError, match="differ from the schema"):
        schema.check_dataclass(extra)


def test_help_is_one_short_line_naming_its_choices() -> None:
    for p in schema.SCHEMA:
        assert "\n" not in p.help and p.help
    for line in schema.notebook_cell().split("\n"):
        assert len(line) <= schema.LINE_WIDTH
    assert all(c in schema.BY_NAME["method"].help for c in schema.METHODS)
