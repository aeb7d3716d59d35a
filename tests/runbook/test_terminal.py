"""The terminal helpers: values quoted short and escaped; every printed line filtered."""

from __future__ import annotations

import contextlib
import io

from runbook_lib.terminal import EscapingWriter, clip, escape_controls, quote


def test_quote_is_repr_like_and_short() -> None:
    assert quote("CHG-1") == "'CHG-1'"
    assert quote("a\nb\x1b[2J") == "'a\\nb\\x1b[2J'"
    assert quote("x" * 61) == f"'{'x' * 60}'… (61 characters)"
    assert quote("x" * 60) == f"'{'x' * 60}'"
    assert quote("é" * 3, limit=2) == "'éé'… (3 characters)"
    assert quote(12) == "12"
    assert quote(None) == "None"
    big = quote({"k": "v" * 100_000, "l": list(range(100_000))})
    assert len(big) <= 121
    assert quote(["\x1b[31m"]) == "['\\x1b[31m']"


def test_escape_controls_keeps_newline_and_tab_only() -> None:
    assert escape_controls("a\tb\nc") == "a\tb\nc"
    assert escape_controls("\x1b[32mok\x1b[0m") == "\\x1b[32mok\\x1b[0m"
    assert escape_controls("\x9b2J\r\x08\x7f\x00") == "\\x9b2J\\x0d\\x08\\x7f\\x00"
    assert escape_controls("\u202eevil\u2066\u2028") == "\\u202eevil\\u2066\\u2028"
    assert escape_controls("café ✓ 日本") == "café ✓ 日本"
    assert escape_controls(escape_controls("\x1b")) == "\\x1b"  # idempotent


def test_clip_keeps_a_library_message_short_and_escaped() -> None:
    assert clip("line 1\nline 2") == "line 1\nline 2"
    long = clip("!" * 1000 + "\x1b", limit=10)
    assert long == "!" * 10 + "… (1001 characters)"
    assert clip("tag '\x1b[2J'") == "tag '\\x1b[2J'"


def test_escaping_writer_filters_what_other_code_prints() -> None:
    target = io.StringIO()
    with contextlib.redirect_stdout(EscapingWriter(target)):  # type: ignore[type-var]
        print("run \x1b[32msucceeded")
        print("two\nlines")
    assert target.getvalue() == "run \\x1b[32msucceeded\ntwo\nlines\n"


def test_runs_table_keeps_its_columns_in_line_whatever_the_kind() -> None:
    from runbook_lib.cli import runs_table

    rows = [
        {
            "run_id": "20261201T101010Z-aaaa",
            "account_id": "123456789012",
            "status": "succeeded",
            "self_approved": True,
            "where": "",
        },
        {
            "run_id": "20261201T111111Z-bbbb",
            "account_id": "123456789012",
            "status": "halted",
            "where": "01-remove-device at gate removal",
        },
        {
            "run_id": "20261201T121212Z-cccc",
            "account_id": "210987654321",
            "status": "dry-run",
            "dry_run": True,
            "where": "done",
        },
    ]
    header, *lines = runs_table(rows)
    assert header.split() == ["run", "id", "account", "status", "kind", "where"]
    where = header.index("where")
    assert lines[1][where:] == "01-remove-device at gate removal"
    assert lines[2][where:] == "done"
    assert "SELF-APPROVED change" in lines[0] and not lines[0].endswith(" ")
    account = header.index("account")
    assert [line.index(row["account_id"]) for line, row in zip(lines, rows, strict=True)] == [
        account
    ] * 3
