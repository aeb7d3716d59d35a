"""Parameters: strict validation that lists every problem at once, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.errors import ParameterError
from runbook_lib.params import load_file, parse_overrides, validate

from .helpers import cli, run_dirs

GOOD = {"account_id": "123456789012", "change_ticket": "CHG-1234"}


def problems_of(raw: dict[str, object]) -> list[str]:
    with pytest.raises(ParameterError) as info:
        validate(raw)
    return info.value.problems


def test_good_parameters_have_safe_defaults() -> None:
    params = validate(dict(GOOD))
    assert params.dry_run is True
    assert params.mode == "batch"
    assert params.approvals == ()
    assert params.approvals_required == 1 and params.self_approval is False
    assert params.confirm == ()
    assert params.sandbox_actor is False


def test_one_error_lists_every_problem() -> None:
    raw = {
        "account_id": "12345",  # malformed
        "change_ticket": "x",  # too short
        "method": "telepathy",  # outside the allowed set
        "rebind": "maybe",
        "mode": "auto",
        "device_serial": "arn:aws:iam::999999999999:mfa/root",  # another account's device
        "region": "Mars-1",
        "endpoint_url": "ftp://example.com",
        "approvals_required": 0,
        "dry_run": "yes",  # wrong type
        "verify_timeout": True,  # a boolean for an integer
        "evidence_timeout": 99999,
        "confirm": ["made-coffee"],
        "colour": "blue",  # unknown
    }
    problems = problems_of(raw)
    text = "\n".join(problems)
    expected = [
        "unknown parameter 'colour'",
        "account_id '12345' must be 12 digits",
        "change_ticket 'x'",
        "method 'telepathy' must be one of: console, assume-root",
        "rebind 'maybe'",
        "mode 'auto'",
        "region 'Mars-1'",
        "endpoint_url 'ftp://example.com'",
        "approvals_required must be between 1 and 9",
        "dry_run must be true/false, got str 'yes'",
        "verify_timeout must be an integer, got a boolean",
        "evidence_timeout must be between 0 and 3600",
        "confirm 'made-coffee' is not a console step",
    ]
    for fragment in expected:
        assert fragment in text, f"missing {fragment!r} in:\n{text}"
    assert len(problems) == len(expected)
    # the account id was malformed, so the serial is only checked for shape (it is an ARN)
    assert "999999999999" not in text


def test_serial_of_another_account_and_other_malformed_serials() -> None:
    other = {**GOOD, "device_serial": "arn:aws:iam::999999999999:mfa/root-authenticator"}
    assert problems_of(other) == [
        "device_serial 'arn:aws:iam::999999999999:mfa/root-authenticator' belongs to account "
        "999999999999, not account_id 123456789012"
    ]
    role = {**GOOD, "device_serial": "arn:aws:iam::123456789012:role/admin"}
    assert "is not an MFA device ARN" in problems_of(role)[0]
    weird = {**GOOD, "device_serial": "no spaces allowed"}
    assert "neither an MFA device ARN nor a hardware serial" in problems_of(weird)[0]
    for good in (
        "arn:aws:iam::123456789012:mfa/root-authenticator",
        "arn:aws:iam::123456789012:u2f/root/YubiKey-ABC",
        "GAHT12345678",
    ):
        assert validate({**GOOD, "device_serial": good}).device_serial == good


def test_required_and_method_dependencies() -> None:
    problems = problems_of({"method": "assume-root"})
    text = "\n".join(problems)
    assert "account_id is required" in text
    assert "change_ticket is required" in text
    assert "method assume-root needs management_profile" in text


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("account_id", 12345678901, "quote it (e.g. account_id='012345678901')"),
        ("account_id", "12345678901a", "must be 12 digits"),
        ("change_ticket", "CHG 1234", "change_ticket 'CHG 1234'"),
        ("region", "us_east_1", "is not an AWS region name"),
        ("endpoint_url", "localhost:5555", "must be an http(s) URL"),
        ("approvals_required", 10, "approvals_required must be between 1 and 9"),
        ("approvals", "x.approval", "approvals must be a list"),
        ("profile", "bad profile", "profile 'bad profile' is not a valid profile name"),
        ("confirm", "device-removed-in-console", "confirm must be a list"),
        ("verify_timeout", 0, "verify_timeout must be between 1 and 3600"),
        ("sandbox_actor", "true", "sandbox_actor must be true/false"),
    ],
)
def test_single_malformed_value(name: str, value: object, fragment: str) -> None:
    problems = problems_of({**GOOD, name: value})
    assert fragment in problems[0]
    # a value of the wrong type also leaves a required parameter unset; nothing else is reported
    assert all(p == problems[0] or "is required" in p for p in problems), problems


def test_confirm_with_a_mapping_item_is_a_parameter_problem() -> None:
    problems = problems_of({**GOOD, "confirm": [{"device-removed-in-console": True}]})
    assert "confirm" in problems[0]


def test_overrides_are_yaml_scalars() -> None:
    values = parse_overrides(["dry_run=false", "verify_timeout=20", "confirm=[a, b]", "profile="])
    assert values == {
        "dry_run": False,
        "verify_timeout": 20,
        "confirm": ["a", "b"],
        "profile": None,
    }
    with pytest.raises(ParameterError, match="must look like name=value"):
        parse_overrides(["dry_run"])


def test_parameters_file_problems(tmp_path: Path) -> None:
    not_yaml = tmp_path / "bad.yml"
    not_yaml.write_text("account_id: [unclosed\n")
    with pytest.raises(ParameterError, match="is not valid YAML"):
        load_file(not_yaml)
    not_mapping = tmp_path / "list.yml"
    not_mapping.write_text("- account_id\n- change_ticket\n")
    with pytest.raises(ParameterError, match="must be a mapping"):
        load_file(not_mapping)
    with pytest.raises(ParameterError, match="does not exist"):
        load_file(tmp_path / "missing.yml")


def test_cli_run_with_bad_parameters_exits_2_and_creates_no_run(tmp_path: Path) -> None:
    file = tmp_path / "params.yml"
    file.write_text('account_id: "123456789012"\nchange_ticket: CHG-1\nmethod: console\n')
    runs = tmp_path / "runs"
    result = cli(
        "run",
        "-f",
        str(file),
        "-p",
        "method=telepathy",
        "-p",
        "region=nowhere",
        "-p",
        "colour=blue",
        "--runs-dir",
        str(runs),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "3 parameter problem(s); nothing was run" in result.stderr
    for fragment in ("unknown parameter 'colour'", "method 'telepathy'", "region 'nowhere'"):
        assert fragment in result.stderr
    assert not runs.exists() or run_dirs(runs) == []
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("account_id: [unclosed\n", "is not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        (None, "does not exist"),
    ],
    ids=["not-yaml", "not-a-mapping", "missing"],
)
def test_cli_bad_parameters_file_exits_2(
    tmp_path: Path, content: str | None, fragment: str
) -> None:
    file = tmp_path / "params.yml"
    if content is not None:
        file.write_text(content)
    result = cli("run", "-f", str(file), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert not (tmp_path / "runs").exists()


def test_unquoted_twelve_digit_account_id_is_accepted() -> None:
    """`-p account_id=123456789012` arrives as a YAML integer: twelve digits are taken as the id;
    fewer (a lost leading zero) are refused with a hint to quote it."""
    assert validate({**GOOD, "account_id": 123456789012}).account_id == "123456789012"
