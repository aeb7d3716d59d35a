"""Input limits: parameters files and values are bounded, YAML anchors and aliases refused,
ids ASCII digits only, single-line values printable only; nothing the CLI prints carries a
raw control character (ESC, CSI...), whatever came in through a parameter, a path or argv."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from runbook_lib.errors import ParameterError
from runbook_lib.params import MAX_FILE_BYTES, MAX_ITEMS, MAX_STRING, load_file, validate
from tests import keys

from .helpers import cli, run_dirs

GOOD = {"account_id": "123456789012", "change_ticket": "CHG-1234"}
HEADER = 'account_id: "123456789012"\nchange_ticket: CHG-1234\n'
GREEN = "\x1b[32mrun succeeded\x1b[0m"
ALIASES = "may not use YAML anchors or aliases (&, *)"
MEMORY = 1 << 30  # address space of the CLI under test: 1 GiB
RAW_CONTROLS = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))]


def problems_of(raw: dict[str, object]) -> list[str]:
    with pytest.raises(ParameterError) as info:
        validate(raw)
    return info.value.problems


def assert_no_raw_controls(text: str) -> None:
    found = sorted({f"{ord(c):#04x}" for c in text if c in RAW_CONTROLS})
    assert not found, f"raw control characters {found} in:\n{text!r}"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def cli_small(
    *args: str, cwd: Path, timeout: float = 60
) -> tuple[subprocess.CompletedProcess[str], float]:
    """The CLI in a subprocess with 1 GiB of address space; (result, seconds taken)."""
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "runbook_lib.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
        preexec_fn=_limit_memory,  # noqa: PLW1509 - no threads in the test process's child
        check=False,
    )
    return result, time.monotonic() - start


# ---------------------------------------------------------------------------- YAML aliases
def _bomb_lines(last: str) -> list[str]:
    """Billion laughs: nine levels of nine aliases each (9**9 'lol's once expanded)."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 9):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    lines.append(f"{last}: *l8")
    return lines


BOMB_FILE = HEADER + "\n".join(_bomb_lines("dry_run")) + "\n"
_LEVELS = [
    f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
]
BOMB_FLOW = "[&a [lol, lol, lol, lol, lol, lol, lol, lol, lol], " + ", ".join(_LEVELS) + "]"


def test_the_alias_bomb_is_about_600_bytes() -> None:
    assert 500 < len(BOMB_FILE) < 700
    assert len(BOMB_FLOW) < 700


@pytest.mark.parametrize("where", ["file", "override"])
def test_alias_bomb_is_refused_quickly_in_little_memory(tmp_path: Path, where: str) -> None:
    """Before: `runbook plan` grew past 2 GB quoting the expanded value. Now the first anchor
    is refused while the document is composed: exit 2, at once, in under 1 GiB."""
    file = tmp_path / "params.yml"
    if where == "file":
        file.write_text(BOMB_FILE)
        args = ["plan", "-f", str(file)]
    else:
        file.write_text(HEADER)
        args = ["plan", "-f", str(file), "-p", f"dry_run={BOMB_FLOW}"]
    result, seconds = cli_small(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert ALIASES in result.stderr
    assert "write" in result.stderr and "out" in result.stderr
    assert len(result.stderr) < 2000
    assert seconds < 30


def test_anchors_and_aliases_are_refused_even_when_harmless(tmp_path: Path) -> None:
    file = tmp_path / "params.yml"
    file.write_text('account_id: &id "123456789012"\nchange_ticket: CHG-1234\n')
    with pytest.raises(ParameterError) as info:
        load_file(file)
    assert info.value.problems == [
        f"parameters file {str(file)!r}, line 1, column 13: parameters files may not use YAML "
        "anchors or aliases (&, *): write each value out"
    ]
    file.write_text('account_id: "123456789012"\nchange_ticket: CHG-1234\nprofile: *id\n')
    with pytest.raises(ParameterError, match=r"line 3, column 10: parameters files may not"):
        load_file(file)


def test_alias_in_an_override_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "params.yml"
    file.write_text(HEADER)
    result = cli("plan", "-f", str(file), "-p", "confirm=[&s a, *s]", cwd=tmp_path)
    assert result.returncode == 2
    assert "-p 'confirm': values may not use YAML anchors or aliases (&, *)" in result.stderr


def test_deep_nesting_is_refused_not_a_crash(tmp_path: Path) -> None:
    """Before: 2000 nested lists hit Python's recursion limit (a traceback, exit 1)."""
    file = tmp_path / "params.yml"
    file.write_text(HEADER + "confirm: " + "[" * 2000 + "]" * 2000 + "\n")
    with pytest.raises(ParameterError, match="values may nest at most 8 levels deep"):
        load_file(file)
    result = cli("plan", "-f", str(file), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "nest at most 8 levels deep" in result.stderr
    ok = tmp_path / "ok.yml"
    ok.write_text(HEADER + "confirm: [device-removed-in-console]\n")
    assert load_file(ok)["confirm"] == ["device-removed-in-console"]


# ---------------------------------------------------------------------------- file size
def test_a_100_mb_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Before: read whole (44 s, 240 MB). Now the size is checked on the open file first."""
    file = tmp_path / "big.yml"
    with file.open("w") as handle:
        handle.write(HEADER)
        handle.truncate(100 * 1024 * 1024)  # sparse: costs no disk, reads as 100 MB
    tracemalloc.start()
    try:
        start = time.monotonic()
        with pytest.raises(ParameterError) as info:
            load_file(file)
        seconds = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, f"{peak} bytes allocated: the file was read"
    assert seconds < 2
    (problem,) = info.value.problems
    assert f"is larger than {MAX_FILE_BYTES} bytes (64 KiB)" in problem
    assert "it is 104857600 bytes" in problem


def test_a_file_just_over_the_cap_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "params.yml"
    text = HEADER + "# " + "x" * MAX_FILE_BYTES + "\n"
    file.write_text(text)
    result = cli("plan", "-f", str(file), cwd=tmp_path)
    assert result.returncode == 2
    assert f"is larger than {MAX_FILE_BYTES} bytes" in result.stderr
    under = tmp_path / "under.yml"
    under.write_text(HEADER + "# " + "x" * (MAX_FILE_BYTES - len(HEADER) - 3) + "\n")
    assert under.stat().st_size == MAX_FILE_BYTES
    assert load_file(under) == {"account_id": "123456789012", "change_ticket": "CHG-1234"}


def test_an_endless_file_is_read_no_further_than_the_cap(tmp_path: Path) -> None:
    """/dev/zero says it is 0 bytes long: the reading stops one byte past the cap."""
    result, seconds = cli_small("plan", "-f", "/dev/zero", cwd=tmp_path, timeout=30)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"is larger than {MAX_FILE_BYTES} bytes" in result.stderr
    assert seconds < 20


def test_unreadable_and_undecodable_files_are_parameter_problems(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="cannot be read"):
        load_file(tmp_path)  # a directory
    latin = tmp_path / "latin1.yml"
    latin.write_bytes(HEADER.encode() + b"profile: caf\xe9\n")
    with pytest.raises(ParameterError, match=rf"is not UTF-8 text \(byte {len(HEADER) + 12}\)"):
        load_file(latin)


# ---------------------------------------------------------------------------- value size
def test_a_long_value_is_refused_and_not_echoed(tmp_path: Path) -> None:
    """Before: a long value was echoed whole in the error message."""
    file = tmp_path / "params.yml"
    value = "A" * (60 * 1024)
    file.write_text(f'account_id: "123456789012"\nchange_ticket: {value}\n')
    assert file.stat().st_size < MAX_FILE_BYTES
    result = cli("plan", "-f", str(file), cwd=tmp_path)
    assert result.returncode == 2
    assert f"change_ticket is {len(value)} characters long; at most {MAX_STRING}" in result.stderr
    assert len(result.stderr) < 1000, len(result.stderr)


def test_a_100_kb_override_is_refused_and_not_echoed(tmp_path: Path) -> None:
    file = tmp_path / "params.yml"
    file.write_text(HEADER)
    value = "A" * 100_000
    result = cli("plan", "-f", str(file), "-p", f"change_ticket={value}", cwd=tmp_path)
    assert result.returncode == 2
    assert "the value is 100000 characters long" in result.stderr
    assert len(result.stderr) < 1000, len(result.stderr)
    result = cli("plan", "-f", str(file), "-p", "profile=" + "p" * 5000, cwd=tmp_path)
    assert result.returncode == 2
    assert f"profile is 5000 characters long; at most {MAX_STRING}" in result.stderr
    assert len(result.stderr) < 1000, len(result.stderr)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("dry_run", "y" * 50_000, "dry_run must be true/false, got str 'yyyy"),
        ("dry_run", {"k": "v" * 50_000, "l": list(range(5000))}, "got dict {"),
        ("confirm", ["x" * 50_000], "confirm 'xxxx"),
        ("colour" * 5000, 1, "unknown parameter 'colourcolour"),
        ("account_id", "1" * 1000, "account_id '1111"),
        ("region", "r" * 1000, "region 'rrrr"),
    ],
    ids=["string", "mapping", "list-item", "name", "account", "region"],
)
def test_values_are_quoted_short_in_messages(name: str, value: object, fragment: str) -> None:
    problems = problems_of({**GOOD, name: value})
    assert fragment in problems[0]
    assert all(len(p) < 400 for p in problems), [len(p) for p in problems]


def test_quoted_values_say_how_long_they_were() -> None:
    (problem,) = problems_of({**GOOD, "method": "m" * 500})
    assert problem == f"method '{'m' * 60}'… (500 characters) must be one of: console, assume-root"


def test_a_list_holds_at_most_a_few_dozen_items() -> None:
    """Before: one problem per item (a thousand lines)."""
    problems = problems_of({**GOOD, "confirm": ["made-coffee"] * 1000})
    assert problems == [f"confirm has 1000 items; at most {MAX_ITEMS} are allowed"]
    steps = ["device-removed-in-console"] * MAX_ITEMS
    assert validate({**GOOD, "confirm": steps}).confirm == ("device-removed-in-console",)


def test_many_unknown_names_are_counted_not_listed() -> None:
    problems = problems_of({**GOOD, **{f"colour{i:04}": i for i in range(2000)}})
    assert len(problems) == 11
    assert problems[0].startswith("unknown parameter 'colour0000' (known: account_id")
    assert problems[-1] == "... and 1990 more unknown parameters"


def test_names_that_are_not_strings_are_reported_not_a_crash(tmp_path: Path) -> None:
    """Before: sorting the unknown names of mixed types raised TypeError (a traceback)."""
    file = tmp_path / "params.yml"
    file.write_text(HEADER + "1: one\ncolour: blue\nnull: nothing\n")
    result = cli("plan", "-f", str(file), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    for fragment in (
        "unknown parameter 1 ",
        "unknown parameter 'colour'",
        "unknown parameter None",
    ):
        assert fragment in result.stderr


def test_an_integer_too_long_to_convert_is_a_parameter_problem(tmp_path: Path) -> None:
    """Before: Python's 4300-digit limit on int() raised ValueError (a traceback)."""
    file = tmp_path / "params.yml"
    file.write_text(HEADER + "verify_timeout: " + "9" * 5000 + "\n")
    result = cli("plan", "-f", str(file), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "is not valid YAML" in result.stderr
    assert len(result.stderr) < 1500
    # the same text in an override is taken as text: not an integer
    file.write_text(HEADER)
    result = cli("plan", "-f", str(file), "-p", "verify_timeout=" + "9" * 5000, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "verify_timeout must be an integer, got str '9999" in result.stderr
    assert "(5000 characters)" in result.stderr


# ---------------------------------------------------------------------------- digits
@pytest.mark.parametrize(
    "account",
    ["１２３４５６７８９０１２", "٠١٢٣٤٥٦٧٨٩٠١", "۰۱۲۳۴۵۶۷۸۹۰۱", "१२३४५६७८९०१२", "12345678901٢"],
    ids=["full-width", "arabic-indic", "extended-arabic-indic", "devanagari", "one-digit"],
)
def test_account_ids_are_ascii_digits_only(account: str) -> None:
    """Before: \\d and str.isdigit took any script's digits."""
    (problem,) = problems_of({**GOOD, "account_id": account})
    assert "must be 12 digits (0-9)" in problem
    assert "\\u" in problem or "\\x" in problem or account in problem


def test_other_digits_are_ascii_only() -> None:
    serial = "arn:aws:iam::１２３４５６７８９０１２:mfa/root"
    assert "is not an MFA device ARN" in problems_of({**GOOD, "device_serial": serial})[0]
    assert "is not an AWS region name" in problems_of({**GOOD, "region": "us-east-١"})[0]
    url = "http://127.0.0.1:５０００"
    assert "must be an http(s) URL" in problems_of({**GOOD, "endpoint_url": url})[0]
    hardware = "GAHT١٢٣٤٥٦٧٨"
    assert "nor a hardware serial" in problems_of({**GOOD, "device_serial": hardware})[0]
    assert "is not a valid profile name" in problems_of({**GOOD, "profile": "prøfile"})[0]


def test_full_width_account_id_through_the_cli(tmp_path: Path) -> None:
    file = tmp_path / "params.yml"
    file.write_text("account_id: １２３４５６７８９０１２\nchange_ticket: CHG-1234\n")
    result = cli("run", "-f", str(file), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 2
    assert "must be 12 digits (0-9)" in result.stderr
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------- single lines
def test_a_trailing_newline_in_change_ticket_is_refused() -> None:
    """Before: `$` matched before the final newline."""
    (problem,) = problems_of({**GOOD, "change_ticket": "CHG-1234\n"})
    assert problem == (
        "change_ticket 'CHG-1234\\n' holds a control or invisible character ('\\n' at "
        "position 8); it must be a single line of printable characters"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("change_ticket", "CHG-1234\r"),
        ("account_id", "123456789012\n"),
        ("profile", "default\n"),
        ("management_profile", "org\t"),
        ("device_serial", "GAHT12345678\n"),
        ("region", "us-east-1\n"),
        ("endpoint_url", "http://127.0.0.1:5000/\n"),
        ("endpoint_url", "http://127.0.0.1:5000/" + GREEN),
        ("operator_key", "/home/o/.ssh/id_ed25519\n"),
        ("method", "console\x0b"),
        ("mode", "batch\x1c"),
        ("rebind", "\u2028bind"),
        ("profile", "default\u202e"),
        ("change_ticket", "CHG-1234\x00"),
    ],
)
def test_control_characters_in_single_line_fields_are_refused(name: str, value: str) -> None:
    """Before: most of these passed (strip() took the newline away, or `$` matched before it,
    or `.*` took ESC into the endpoint's path)."""
    (problem,) = problems_of({**GOOD, name: value})
    assert f"{name} " in problem
    assert "holds a control or invisible character" in problem
    assert_no_raw_controls(problem)
    assert "\u2028" not in problem and "\u202e" not in problem


def test_spaces_around_values_are_still_trimmed() -> None:
    params = validate({**GOOD, "profile": "  default ", "region": " us-west-2"})
    assert (params.profile, params.region) == ("default", "us-west-2")


# ---------------------------------------------------------------------------- the terminal
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("change_ticket", GREEN),
        ("profile", GREEN),
        ("device_serial", GREEN),
        ("endpoint_url", "http://localhost:1/" + GREEN),
        ("region", "\x9b2J"),  # the one-byte CSI
        ("confirm", f"[{json.dumps(GREEN)}]"),
        (GREEN, "1"),  # an unknown name
    ],
    ids=["ticket", "profile", "serial", "endpoint", "csi", "confirm", "name"],
)
def test_escape_sequences_in_parameters_never_reach_the_terminal(
    tmp_path: Path, option: str, value: str
) -> None:
    """Before: an endpoint URL with ESC in its path passed validation (and reached the
    progress lines, e.g. in a connection error)."""
    file = tmp_path / "params.yml"
    file.write_text(HEADER)
    runs = tmp_path / "runs"
    result = cli(
        "run", "-f", str(file), "-p", f"{option}={value}", "--runs-dir", str(runs), cwd=tmp_path
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert_no_raw_controls(result.stdout + result.stderr)
    assert "\\x1b" in result.stderr or "\\x9b" in result.stderr
    assert run_dirs(runs) == []


def test_escape_sequences_in_a_parameters_file_never_reach_the_terminal(tmp_path: Path) -> None:
    file = tmp_path / "params.yml"
    # YAML's double-quoted "\e" is ESC
    file.write_text(
        'account_id: "\\e[32m123456789012"\nchange_ticket: "\\e[32mrun succeeded\\e[0m"\n'
        'profile: "a\\x9bb"\n"\\e[2J": 1\n'
    )
    result = cli("plan", "-f", str(file), cwd=tmp_path)
    assert result.returncode == 2
    assert "4 parameter problem(s)" in result.stderr
    assert_no_raw_controls(result.stderr)
    assert "change_ticket '\\x1b[32mrun succeeded\\x1b[0m' holds a control" in result.stderr


def test_progress_lines_of_run_and_resume_escape_a_runs_dir_with_escapes(tmp_path: Path) -> None:
    """A run that fails at once (its profile's credential_process fails) in a runs dir whose
    name holds ESC [2J (clear screen): the progress lines and the printed run dir are escaped."""
    Path(os.environ["AWS_CONFIG_FILE"]).write_text(
        "[profile broken]\ncredential_process = /bin/false\n"
    )
    file = tmp_path / "params.yml"
    file.write_text(
        HEADER
        + "profile: broken\n"
        + f"operator_key: {keys.key('operator')}\nallowed_signers: {keys.allowed_signers()}\n"
    )
    runs = "runs\x1b[2J"
    result = cli("run", "-f", str(file), "--runs-dir", runs, cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED at 00-preflight" in result.stdout
    assert_no_raw_controls(result.stdout + result.stderr)
    assert "runs\\x1b[2J" in result.stdout
    (run_id,) = run_dirs(tmp_path / runs)
    assert result.stdout.rstrip().endswith(f"runs\\x1b[2J/{run_id}")
    resumed = cli("resume", f"{runs}/{run_id}", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert f"resuming run {run_id} at 00-preflight" in resumed.stdout
    assert_no_raw_controls(resumed.stdout + resumed.stderr)
    assert "runs\\x1b[2J" in resumed.stdout


def test_other_lines_the_cli_prints_escape_paths_and_argv(tmp_path: Path) -> None:
    """Before: verify, runs and argparse's "unrecognized arguments" printed them raw."""
    (tmp_path / ("x" + GREEN)).mkdir()
    (tmp_path / ("x" + GREEN) / "run.json").write_text("{}")
    verify = cli("verify", "x" + GREEN, cwd=tmp_path)
    assert verify.returncode == 1
    assert "TAMPERED or INCOMPLETE: x\\x1b[32mrun succeeded\\x1b[0m" in verify.stdout
    not_a_record = cli("verify", "y" + GREEN, cwd=tmp_path)
    assert not_a_record.returncode == 2
    assert "'y\\x1b[32mrun succeeded\\x1b[0m' is not a run record" in not_a_record.stderr
    runs = cli("runs", "--runs-dir", "\x1b[2J", cwd=tmp_path)
    assert runs.stdout == "no runs in \\x1b[2J\n"
    argv = cli("plan", "-f", "p.yml", GREEN, cwd=tmp_path)
    assert argv.returncode == 2
    assert "unrecognized arguments: \\x1b[32mrun succeeded" in argv.stderr
    missing = cli("plan", "-f", "\x1b[2J.yml", cwd=tmp_path)
    assert missing.returncode == 2
    assert "parameters file '\\x1b[2J.yml' does not exist" in missing.stderr
    for result in (verify, not_a_record, runs, argv, missing):
        assert_no_raw_controls(result.stdout + result.stderr)


def test_file_and_override_problems_are_reported_together(tmp_path: Path) -> None:
    file = tmp_path / "params.yml"
    file.write_text("account_id: [unclosed\n")
    result = cli("plan", "-f", str(file), "-p", "confirm=[&a x, *a]", "-p", "oops", cwd=tmp_path)
    assert result.returncode == 2
    assert "3 parameter problem(s)" in result.stderr
    for fragment in ("is not valid YAML", "anchors or aliases", "-p 'oops' must look like"):
        assert fragment in result.stderr
