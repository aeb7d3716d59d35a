"""Operator-facing text never says "seed" (see tests/operator_text.py): the messages and help
texts in runbook_lib, the notebooks, the parameter templates, README and docs/. (What an
executed run shows, its notebooks' outputs and report, is checked on real runs in
tests/runbook/test_end_to_end.py.)"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.operator_text import SEED, notebook_text, seeds_in

REPO = Path(__file__).resolve().parents[1]

# Not messages: the secrets scanner's vocabulary, which must recognise the word where others
# wrote it (a "seed: ..." line in a pasted log is a secret to refuse).
DETECTION = {
    ("record/secrets.py", "seed"),
    (
        "record/secrets.py",
        r"(?P<label>(?i:[\w-]{0,40}(?:seed|secret|totp|hotp|otp[_-]?key|mfa[_-]?key)[\w-]{0,40}))",
    ),
}


def library_strings(allowed: set[tuple[str, str]] = DETECTION) -> Iterator[tuple[str, str]]:
    """Every string constant of runbook_lib (f-strings' literal parts included) but the
    docstrings, which are for developers, and ``allowed`` (module, value) pairs."""
    package = REPO / "runbook_lib"
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                first = node.body[0] if node.body else None
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    docstrings.add(id(first.value))
        rel = path.relative_to(package).as_posix()
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and (rel, node.value) not in allowed
            ):
                yield f"runbook_lib/{rel}:{node.lineno}", node.value


def test_runbook_lib_messages_never_say_seed() -> None:
    assert seeds_in(library_strings()) == []


def test_the_detection_allowance_hides_nothing_else() -> None:
    """Without the allowance exactly the allowed strings are found (so a new message that says
    the word cannot hide behind it), and each still exists."""
    found = {text for _, text in library_strings(allowed=set()) if SEED.search(text)}
    assert found == {value for _, value in DETECTION}


def test_notebooks_never_say_seed() -> None:
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == 6
    for path in notebooks:
        assert seeds_in(notebook_text(path)) == [], path


def test_readme_docs_and_parameter_templates_never_say_seed() -> None:
    files = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    files += sorted((REPO / "parameters").glob("*.yml"))
    assert REPO / "docs" / "procedure.md" in files
    assert seeds_in((str(f.relative_to(REPO)), f.read_text(encoding="utf-8")) for f in files) == []


def test_the_check_finds_the_word() -> None:
    """It would fail: the word in any case, singular or plural, inside a sentence."""
    for text in ("the seed's path", "(The seed: ...)", "TOTP seeds", "SEED"):
        assert seeds_in(iter([("x", text)])), text
    for text in ("PYTHONHASHSEED", "SEED_WARNING", "seeded_random"):
        assert not seeds_in(iter([("x", text)])), text
