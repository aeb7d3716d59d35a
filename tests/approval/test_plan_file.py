"""The plan file: what `runbook plan` writes and a reviewer reads; nothing in it is trusted."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import pytest

from runbook_lib.approval import (
    PLAN_BEGIN,
    PlanFileInvalid,
    content_digest,
    plan_from_dict,
    read_plan_file,
    render_plan_file,
    write_plan_file,
)
from runbook_lib.params import validate
from runbook_lib.plan import PlanIdentity, describe, make_plan
from tests.conftest import configure_profiles, isolate_aws_env

from .helpers import BASE, Keys, cli, dumps, plan_dict, plan_file, redigest

IDENTITY = PlanIdentity.new()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_round_trip(tmp_path: Path) -> None:
    plan = make_plan(validate(BASE))
    raw = write_plan_file(plan, tmp_path / "plan.txt")
    assert raw == (tmp_path / "plan.txt").read_bytes() == render_plan_file(plan)
    read = read_plan_file(tmp_path / "plan.txt")
    assert read.plan == plan.to_dict()
    assert read.digest == plan.digest == content_digest(plan.to_dict())
    assert read.sha256 == hashlib.sha256(raw).hexdigest()
    assert read.text == describe(plan)
    assert read.raw == raw
    assert plan_from_dict(read.plan) == plan
    # the layout of the spec: the text, a blank line, the JSON between two markers
    assert raw.decode() == (
        f"{describe(plan)}\n\n{PLAN_BEGIN}\n{dumps(plan.to_dict())}\n"
        "-----END ROOT-MFA-RUNBOOK PLAN-----\n"
    )
    with pytest.raises(FileExistsError):  # never overwritten
        write_plan_file(plan, tmp_path / "plan.txt")


def test_plan_with_trust_round_trip(tmp_path: Path, keys: Keys) -> None:
    data = plan_dict(keys)
    read = read_plan_file(plan_file(tmp_path, data))
    assert read.plan == data and read.trust["operator"]["principal"] == "olivia@example.com"


def test_edited_json_is_refused(tmp_path: Path) -> None:
    path = plan_file(tmp_path, plan_dict(identity=IDENTITY))
    _edit(path, '"change_ticket":"CHG-1234"', '"change_ticket":"CHG-9999"')
    with pytest.raises(PlanFileInvalid, match="does not match its digest") as err:
        read_plan_file(path)
    assert "Ask the operator for the file runbook plan wrote" in str(err.value)
    assert "\n" not in str(err.value)


def test_edited_json_with_a_recomputed_digest_still_shows_the_old_text(tmp_path: Path) -> None:
    data = plan_dict(identity=IDENTITY)
    path = plan_file(tmp_path, data)
    forged = redigest({**data, "parameters": {**data["parameters"], "change_ticket": "CHG-9"}})
    text = path.read_text()
    body = text.split(PLAN_BEGIN + "\n")[1].split("\n")[0]
    path.write_text(text.replace(body, dumps(forged)))
    with pytest.raises(PlanFileInvalid, match="text part is not what its plan says"):
        read_plan_file(path)


def test_edited_human_text_is_refused(tmp_path: Path) -> None:
    path = plan_file(tmp_path, plan_dict(identity=IDENTITY))
    _edit(path, "account       123456789012", "account       999999999999")
    with pytest.raises(PlanFileInvalid, match="text part is not what its plan says.*Do not"):
        read_plan_file(path)
    path = plan_file(tmp_path, plan_dict(identity=IDENTITY), "plan2.txt")
    _edit(path, "gates:\n", "gates:\n  (none of this is risky)\n")
    with pytest.raises(PlanFileInvalid, match="text part"):
        read_plan_file(path)


def test_wrong_digest_is_refused(tmp_path: Path) -> None:
    data = plan_dict(identity=IDENTITY)
    other = plan_dict(identity=PlanIdentity.new())
    path = tmp_path / "plan.txt"
    # a file whose text and JSON both name another plan's digest
    forged = {**data, "digest": other["digest"]}
    text = render_plan_file(data).decode()
    path.write_text(text.replace(data["digest"], other["digest"]))
    assert dumps(forged) in path.read_text()
    with pytest.raises(PlanFileInvalid, match=f"digest {other['digest'][:12]}…, content"):
        read_plan_file(path)


def test_edited_gates_are_refused(tmp_path: Path) -> None:
    """Gates are not in the digest (they follow from the parameters): a file whose JSON and
    text both drop a gate is refused."""
    data = plan_dict(identity=IDENTITY)
    forged = {**data, "gates": data["gates"][1:]}
    path = tmp_path / "plan.txt"
    path.write_bytes(render_plan_file(forged))
    with pytest.raises(PlanFileInvalid, match="gates are not the ones its parameters give"):
        read_plan_file(path)


def test_digest_covers_extends_what_the_digest_covers(tmp_path: Path, keys: Keys) -> None:
    data = plan_dict(keys, identity=IDENTITY)
    with pytest.raises(PlanFileInvalid, match="digest_covers leaves out parameters"):
        content_digest({**data, "digest_covers": ["trust", "gates"]})
    keys_all = ["parameters", "notebooks", "library", "dependencies", "account_id", "identity"]
    covered = redigest({**data, "digest_covers": [*keys_all, "trust", "gates"]})
    path = plan_file(tmp_path, covered)
    assert read_plan_file(path).digest == covered["digest"] != data["digest"]
    # the trust entry is now covered: making the operator someone else breaks the digest
    forged = {**covered, "trust": {**covered["trust"], "self_approval": True}}
    (tmp_path / "forged.txt").write_bytes(render_plan_file(forged))
    with pytest.raises(PlanFileInvalid, match="does not match its digest"):
        read_plan_file(tmp_path / "forged.txt")


def test_expired_plan_is_refused(tmp_path: Path) -> None:
    path = plan_file(tmp_path, plan_dict(identity=IDENTITY))
    later = dt.datetime.fromisoformat(IDENTITY.expires_at) + dt.timedelta(seconds=1)
    with pytest.raises(PlanFileInvalid, match="expired at .*plans again"):
        read_plan_file(path, now=later)
    assert read_plan_file(path, now=later, check_expiry=False).digest


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a plan file"),
        (b"hello\n", "not a plan file"),
        (b"\xff\xfe not text", "not UTF-8"),
        (
            b"x\n\n" + PLAN_BEGIN.encode() + b"\n[1]\n-----END ROOT-MFA-RUNBOOK PLAN-----\n",
            "not a plan",
        ),
        (
            b"x\n\n" + PLAN_BEGIN.encode() + b"\n{x\n-----END ROOT-MFA-RUNBOOK PLAN-----\n",
            "not JSON",
        ),
    ],
)
def test_not_a_plan_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "plan.txt"
    path.write_bytes(content)
    with pytest.raises(PlanFileInvalid, match=message):
        read_plan_file(path)


def test_tricks_in_the_json_are_refused(tmp_path: Path) -> None:
    data = plan_dict(identity=IDENTITY)
    raw = render_plan_file(data).decode()
    body = dumps(data)
    # a key given twice: JSON readers disagree on which one counts
    twice = body[:-1] + ',"account_id":"999999999999"}'
    (tmp_path / "a.txt").write_text(raw.replace(body, twice))
    with pytest.raises(PlanFileInvalid, match="edited"):
        read_plan_file(tmp_path / "a.txt")
    (tmp_path / "b.txt").write_text(raw.replace(body, json.dumps(data, sort_keys=True)))
    with pytest.raises(PlanFileInvalid, match="edited"):
        read_plan_file(tmp_path / "b.txt")
    (tmp_path / "c.txt").write_bytes(raw.replace("\n", "\r\n").encode())
    with pytest.raises(PlanFileInvalid, match="line endings"):
        read_plan_file(tmp_path / "c.txt")
    (tmp_path / "d.txt").write_text(raw + "trailing\n")
    with pytest.raises(PlanFileInvalid, match="not a plan file"):
        read_plan_file(tmp_path / "d.txt")
    (tmp_path / "big.txt").write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(PlanFileInvalid, match="larger than"):
        read_plan_file(tmp_path / "big.txt")
    with pytest.raises(PlanFileInvalid, match="cannot be read"):
        read_plan_file(tmp_path / "missing.txt")


def test_cli_plan_writes_the_plan_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_aws_env(tmp_path, monkeypatch)
    configure_profiles(str(BASE["profile"]))
    params = tmp_path / "params.yml"
    params.write_text(json.dumps(BASE))
    result = cli("plan", "-f", str(params), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    digest = re.search(r"^plan digest\s+([0-9a-f]{64})$", result.stdout, re.M)
    assert digest
    name = f"plan-{digest.group(1)[:12]}.txt"
    assert f"plan file     {name}" in result.stdout
    assert f"send it to a reviewer: runbook approve {name} --key ~/.ssh/id_ed25519" in result.stdout
    read = read_plan_file(tmp_path / name)
    assert read.digest == digest.group(1)
    assert read.text in result.stdout
    # --out; never overwritten
    result = cli("plan", "-f", str(params), "--out", "mine.txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    before = (tmp_path / "mine.txt").read_bytes()
    result = cli("plan", "-f", str(params), "--out", "mine.txt", cwd=tmp_path)
    assert result.returncode == 2 and "never overwritten" in result.stderr
    assert (tmp_path / "mine.txt").read_bytes() == before
    assert read_plan_file(tmp_path / "mine.txt").digest != digest.group(1)  # a new plan


def test_cli_plan_dry_run_file_says_no_approval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_aws_env(tmp_path, monkeypatch)
    configure_profiles(str(BASE["profile"]))
    params = tmp_path / "params.yml"
    params.write_text(json.dumps({**BASE, "dry_run": True}))
    result = cli("plan", "-f", str(params), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "a dry run needs no approval" in result.stdout
    assert "--approve" not in result.stdout
    assert len(list(tmp_path.glob("plan-*.txt"))) == 1
