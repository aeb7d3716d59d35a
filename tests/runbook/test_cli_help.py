"""Every subcommand has a description and every option and argument a help text: what a new
user reads first (``runbook SUBCOMMAND --help``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from runbook_lib.cli import build_parser

from .helpers import cli


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand, nested ones (``fleet audit``) included."""
    out: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out[f"{prefix}{name}"] = sub
                    walk(sub, f"{prefix}{name} ")

    walk(build_parser(), "")
    return out


def _undocumented(parser: argparse.ArgumentParser) -> list[str]:
    return [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if action.help != argparse.SUPPRESS and not (action.help or "").strip()
    ]


def test_the_top_level_parser_documents_everything() -> None:
    parser = build_parser()
    assert parser.description
    assert _undocumented(parser) == []
    (group,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    listed = {choice.dest: choice.help for choice in group._choices_actions}
    assert set(listed) == set(group.choices)
    assert all((text or "").strip() for text in listed.values()), listed


@pytest.mark.parametrize("name", list(_subparsers()))
def test_every_subcommand_has_a_description_and_every_option_a_help(name: str) -> None:
    parser = _subparsers()[name]
    assert (parser.description or "").strip(), f"runbook {name} has no description"
    assert _undocumented(parser) == [], f"runbook {name}: options without help"


def test_help_through_the_cli_shows_them(tmp_path: Path) -> None:
    """The real CLI prints them (and exits 0)."""
    result = cli("resume", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "RUN_DIR" in result.stdout
    assert "runbook runs lists them" in result.stdout
