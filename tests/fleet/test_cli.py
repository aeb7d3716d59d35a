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


def audit_from_cli(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, str]:
    """``runbook fleet audit -f FLEET.yml --runs-dir TMP/runs``: the record (its last line) and
    what it printed."""
    fleet_file = write(tmp_path / "FLEET.yml", fleet.raw())
    runs = tmp_path / "runs"
    assert cli.main(["fleet", "audit", "-f", str(fleet_file), "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    return Path(out.strip().splitlines()[-1]), out


def test_an_audit_from_the_command_line_is_listed_verified_and_planned_from(
    fleet_for: Callable[[str], Fleet], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    run_dir, out = audit_from_cli(fleet_for("fleet-6"), tmp_path, capsys)
    assert run_dir.parent == runs.absolute()
    assert "fleet audit of 7 accounts" in out
    assert f"fleet audit record: {run_dir} (interrupted? runbook fleet audit --resume" in out
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
    run_dir, _ = audit_from_cli(fleet_for("fleet-3"), tmp_path, capsys)
    assert cli.main(["fleet", "audit", "--resume", str(run_dir)]) == cli.EXIT_FAILED
    assert "finished and sealed" in capsys.readouterr().err
    fleet_file = tmp_path / "FLEET.yml"  # (audit_from_cli wrote it)
    assert cli.main(["fleet", "audit", "--resume", str(run_dir), "-f", str(fleet_file)]) == 2


def test_fleet_plan_writes_files_runbook_plan_takes_as_they_are(
    fleet_for: Callable[[str], Fleet], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A centralised member whose password was deleted keeps only its MFA device: the audit
    plans its removal (rebind: skip), and `runbook plan -f` takes the file without an edit."""
    from runbook_lib.aws.privileged import DELETE, assume_root
    from tests.lib.helpers import make_context

    fleet = fleet_for("fleet-6")
    management = make_context(fleet.info, "org-admin")
    members = sorted(
        a["Id"]
        for a in management.client("organizations").list_accounts()["Accounts"]
        if a["Id"] != "111111111111"
    )
    target = next(
        m
        for m in members
        if fleet.info.control.state(m)["has_password"]
        and fleet.info.control.state(m)["devices"]
        and not fleet.info.control.state(m).get("access_keys")
    )
    with assume_root(management, target, DELETE, 60) as root:
        root.client("iam").delete_login_profile()
    fleet_file = write(tmp_path / "FLEET.yml", fleet.raw())
    runs = tmp_path / "runs"
    assert cli.main(["fleet", "audit", "-f", str(fleet_file), "--runs-dir", str(runs)]) == 0
    run_dir = capsys.readouterr().out.strip().splitlines()[-1]
    plans = tmp_path / "plans"
    code = cli.main(["fleet", "plan", run_dir, "--out", str(plans), "--change-ticket", "CHG-42"])
    assert code == 0, capsys.readouterr().err
    written = [Path(p) for p in capsys.readouterr().out.split()]
    devices = fleet.info.control.state(target)["devices"]
    assert len(written) == len(devices) and all(p.parent == plans for p in written)
    for path in written:
        values = yaml.safe_load(path.read_text())
        assert values["account_id"] == target and values["method"] == "assume-root"
        assert values["rebind"] == "skip" and values["change_ticket"] == "CHG-42"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert (
            cli.main(["plan", "-f", str(path), "--out", str(tmp_path / f"{path.stem}.plan")]) == 0
        )
        assert "plan digest" in capsys.readouterr().out.lower()
    # nothing is replaced: a second plan into the same directory is refused whole
    code = cli.main(["fleet", "plan", run_dir, "--out", str(plans), "--change-ticket", "CHG-42"])
    assert code == cli.EXIT_USAGE and "exists" in capsys.readouterr().err


def test_fleet_plan_of_a_record_that_is_not_a_fleet_audit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.keys import signer
    from tests.record.helpers import make_run

    record = make_run(tmp_path / "runs")
    record.seal(final=True, signer=signer())  # verifies: refused for what it is
    code = cli.main(
        ["fleet", "plan", str(record.path), "--out", str(tmp_path / "p"), "--change-ticket", "C-1"]
    )
    assert code == cli.EXIT_FAILED
    assert "is not a fleet audit" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
