"""`runbook fleet audit|plan` and `runbook runs` on fleet audits, through cli.main."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from runbook_lib import cli
from runbook_lib.fleet.params import FLEET_NAMES

from .conftest import Fleet


def write(path: Path, values: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def test_the_help_names_every_fleet_parameter() -> None:
    assert cli.FLEET_PARAMETERS == FLEET_NAMES


def test_audit_without_a_file_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["fleet", "audit"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs -f FLEET.yml" in err[0]


def test_bad_fleet_parameters_are_all_listed_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet_file = write(
        tmp_path / "FLEET.yml",
        {"workers": 0, "accounts": ["12345"], "organizational_units": ["ou-x"], "colour": "red"},
    )
    runs = tmp_path / "runs"
    code = cli.main(["fleet", "audit", "-f", str(fleet_file), "--runs-dir", str(runs)])
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    for text in (
        "unknown parameter 'colour'",
        "management_profile is required",
        "operator_key is required",
        "workers must be between 1 and 64",
        "'12345' is not a 12-digit account id",
        "'ou-x' is not an OU id",
    ):
        assert text in err
    assert not runs.exists()


def test_an_audit_from_the_command_line_is_listed_verified_and_planned_from(
    fleet_for: Callable[[str], Fleet], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = fleet_for("fleet-6")
    fleet_file = write(tmp_path / "FLEET.yml", fleet.raw())
    runs = tmp_path / "runs"
    assert cli.main(["fleet", "audit", "-f", str(fleet_file), "--runs-dir", str(runs)]) == 0
    captured = capsys.readouterr()
    run_dir = Path(captured.out.strip().splitlines()[-1])
    assert run_dir.parent == runs.absolute()
    assert "fleet audit of 7 accounts" in captured.out
    assert f"fleet audit record: {run_dir} (interrupted? runbook fleet audit --resume" in (
        captured.out
    )
    assert cli.main(["runs", "--runs-dir", str(runs)]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()[1:]
    assert run_dir.name in line and "sealed" in line and "fleet audit" in line
    assert cli.main(["verify", str(run_dir)]) == 0
    capsys.readouterr()
    # a record changed after its seal plans nothing
    (run_dir / "findings.csv").write_text("account_id\n")
    code = cli.main(
        ["fleet", "plan", str(run_dir), "--out", str(tmp_path / "plans"), "--change-ticket", "C-1"]
    )
    assert code == cli.EXIT_FAILED
    assert "does not verify, so nothing is planned" in capsys.readouterr().err
    assert not (tmp_path / "plans").exists()


def test_resume_of_a_finished_audit_is_refused(
    fleet_for: Callable[[str], Fleet], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = fleet_for("fleet-3")
    fleet_file = write(tmp_path / "FLEET.yml", fleet.raw())
    runs = tmp_path / "runs"
    assert cli.main(["fleet", "audit", "-f", str(fleet_file), "--runs-dir", str(runs)]) == 0
    run_dir = capsys.readouterr().out.strip().splitlines()[-1]
    assert cli.main(["fleet", "audit", "--resume", run_dir]) == cli.EXIT_FAILED
    assert "finished and sealed" in capsys.readouterr().err
    assert cli.main(["fleet", "audit", "--resume", run_dir, "-f", str(fleet_file)]) == 2
