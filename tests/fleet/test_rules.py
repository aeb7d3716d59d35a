"""The fleet audit's judgement (runbook_lib/fleet/rules.py): pure, one case per rule and per
way an account can be out of reach; every rule is exercised."""

from __future__ import annotations

import datetime as dt

import pytest

from runbook_lib.fleet.rules import (
    RULES,
    AccessKey,
    Judgement,
    MfaDevice,
    RootCredentials,
    Severity,
    Verdict,
    judge,
)

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
ACCOUNT = "210987654321"
VIRTUAL = MfaDevice(f"arn:aws:iam::{ACCOUNT}:mfa/root-app", "virtual", "2026-01-10T00:00:00Z")
FIDO = MfaDevice(f"arn:aws:iam::{ACCOUNT}:u2f/root-root/ABC", "fido", "2025-06-01T00:00:00Z")
TOKEN = MfaDevice("GAHT12345678", "hardware", "2026-03-01T00:00:00+00:00")
KEY = AccessKey("WXYZ", active=True, created="2020-01-01T00:00:00Z")
OLD_KEY = AccessKey("ABCD", active=False)


def verdict_of(creds: RootCredentials, **kw: object) -> Judgement:
    judgement = judge(creds, NOW, **kw)  # type: ignore[arg-type]
    assert judge(creds, NOW, **kw) == judgement  # type: ignore[arg-type]  # deterministic
    ranks = [f.rule.severity.rank for f in judgement.findings]
    assert ranks == sorted(ranks), "findings come most severe first"
    return judgement


def rules(judgement: Judgement) -> list[str]:
    return [f.rule.id for f in judgement.findings]


def planned(judgement: Judgement) -> list[dict[str, object]]:
    return [f.runbook for f in judgement.findings if f.runbook]


def creds(**kw: object) -> RootCredentials:
    return RootCredentials(ACCOUNT, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------- members, centralised access
def test_a_member_without_root_credentials_is_what_aws_recommends() -> None:
    judgement = verdict_of(creds(centralised=True, password=False))
    assert judgement.verdict is Verdict.OK and judgement.findings == ()


def test_a_centralised_member_with_only_mfa_left_gets_a_removal_run_per_device() -> None:
    judgement = verdict_of(creds(centralised=True, password=False, mfa_devices=(FIDO, VIRTUAL)))
    assert rules(judgement) == ["member-root-credentials", "member-root-credentials"]
    assert judgement.verdict is Verdict.CHANGE_MFA
    assert planned(judgement) == [
        {
            "account_id": ACCOUNT,
            "method": "assume-root",
            "device_serial": device.serial,
            "rebind": "skip",
            "region": "us-east-1",
        }
        for device in (FIDO, VIRTUAL)
    ]


def test_a_centralised_member_with_a_password_deletes_it_before_any_mfa_removal() -> None:
    judgement = verdict_of(creds(centralised=True, password=True, mfa_devices=(VIRTUAL,)))
    assert set(rules(judgement)) == {"root-hardware-mfa", "member-root-credentials"}
    assert planned(judgement) == []  # removing its MFA now would leave the password alone
    assert judgement.verdict is Verdict.ATTENTION
    member = next(f for f in judgement.findings if f.rule.id == "member-root-credentials")
    assert "password" in member.detail and "first" in member.detail


def test_a_centralised_member_with_a_password_and_no_mfa() -> None:
    judgement = verdict_of(creds(centralised=True, password=True))
    assert rules(judgement) == ["password-without-mfa", "root-mfa", "member-root-credentials"]
    assert judgement.verdict is Verdict.ATTENTION


# --------------------------------------------------------------- the CIS root controls
def test_an_active_root_access_key_is_critical_and_an_inactive_one_is_not_counted() -> None:
    judgement = verdict_of(creds(password=True, mfa_devices=(FIDO,), access_keys=(KEY, OLD_KEY)))
    assert rules(judgement) == ["root-access-keys"]
    (finding,) = judgement.findings
    assert finding.rule.severity is Severity.CRITICAL and "…WXYZ" in finding.detail
    assert "ABCD" not in finding.detail
    assert finding.runbook is None and judgement.verdict is Verdict.ATTENTION


def test_a_password_without_mfa_fails_cis_1_5_and_our_critical_rule() -> None:
    judgement = verdict_of(creds(password=True))
    assert rules(judgement) == ["password-without-mfa", "root-mfa"]
    assert "CIS" in RULES["root-mfa"].source and "1.5" in RULES["root-mfa"].source
    assert judgement.verdict is Verdict.ATTENTION and planned(judgement) == []


def test_a_signing_certificate_without_mfa_is_credentials_without_mfa() -> None:
    judgement = verdict_of(creds(password=False, signing_certificates_active=1))
    assert rules(judgement) == ["root-mfa"]
    assert "signing certificate" in judgement.findings[0].detail


def test_a_virtual_device_fails_cis_1_6_and_plans_its_replacement_in_the_console() -> None:
    judgement = verdict_of(creds(password=True, mfa_devices=(VIRTUAL,)))
    assert rules(judgement) == ["root-hardware-mfa"]
    assert judgement.verdict is Verdict.CHANGE_MFA
    (run,) = planned(judgement)
    assert run["method"] == "console" and run["rebind"] == "bind"
    assert run["device_serial"] == VIRTUAL.serial


def test_fido_and_hardware_tokens_pass_cis_1_6() -> None:
    for device in (FIDO, TOKEN):
        assert verdict_of(creds(password=True, mfa_devices=(device,))).verdict is Verdict.OK


def test_the_cis_mfa_rules_do_not_apply_to_a_root_user_without_credentials() -> None:
    # like AWS Config's root rules: NOT_APPLICABLE when no root credentials are present
    judgement = verdict_of(creds(password=False, mfa_devices=(VIRTUAL,)))
    assert "root-hardware-mfa" not in rules(judgement)
    assert verdict_of(creds(password=False)).verdict is Verdict.OK


# --------------------------------------------------------------- our rules
def test_several_devices_ask_who_holds_each() -> None:
    judgement = verdict_of(creds(password=True, mfa_devices=(FIDO, TOKEN)))
    assert rules(judgement) == ["several-mfa-devices"]
    assert "2 devices" in judgement.findings[0].detail
    assert judgement.verdict is Verdict.ATTENTION


@pytest.mark.parametrize(("age", "flagged"), [(1095, False), (1096, True)])
def test_a_device_older_than_the_limit_is_due_for_replacement(age: int, flagged: bool) -> None:
    enabled = (NOW - dt.timedelta(days=age)).isoformat()
    device = MfaDevice("GAHT00000001", "hardware", enabled)
    judgement = verdict_of(creds(password=True, mfa_devices=(device,)))
    assert rules(judgement) == (["old-mfa-device"] if flagged else [])
    if flagged:
        assert planned(judgement)[0]["rebind"] == "bind"
        assert "1096 days ago (limit 1095)" in judgement.findings[0].detail


def test_the_age_limit_is_a_parameter_and_unreadable_dates_are_not_guessed() -> None:
    assert rules(verdict_of(creds(password=True, mfa_devices=(FIDO,)), max_device_age_days=30))
    undated = MfaDevice("GAHT00000002", "hardware", "yesterday")
    assert not rules(
        verdict_of(creds(password=True, mfa_devices=(undated,)), max_device_age_days=0)
    )


def test_one_device_is_planned_once_even_when_two_rules_want_it_changed() -> None:
    old_virtual = MfaDevice(VIRTUAL.serial, "virtual", "2020-01-01T00:00:00Z")
    judgement = verdict_of(creds(password=True, mfa_devices=(old_virtual,)))
    assert rules(judgement) == ["root-hardware-mfa", "old-mfa-device"]
    assert len(planned(judgement)) == 1
    assert judgement.findings[1].detail.endswith("(same run as above)")


def test_the_region_goes_into_the_planned_run() -> None:
    judgement = judge(creds(password=True, mfa_devices=(VIRTUAL,)), NOW, region="eu-west-1")
    assert planned(judgement)[0]["region"] == "eu-west-1"


# --------------------------------------------------------------- accounts out of reach
@pytest.mark.parametrize(
    ("reach", "says"),
    [
        ("management-account", "AssumeRoot cannot target it"),
        ("suspended", "not probed"),
        ("features-disabled", "RootSessions"),
        ("access-denied", "IAMAuditRootUserCredentials"),
        ("failed", "could not read"),
    ],
)
def test_an_account_out_of_reach_is_said_plainly(reach: str, says: str) -> None:
    judgement = verdict_of(creds(reach=reach, reach_detail="AccessDenied (req 1)"))
    assert judgement.verdict is Verdict.UNREACHABLE and judgement.findings == ()
    assert judgement.note is not None and says in judgement.note
    assert judgement.note.endswith("(AccessDenied (req 1))")


def test_a_finding_as_a_record_names_its_rule_source_and_remediation() -> None:
    (finding,) = judge(creds(password=True, mfa_devices=(VIRTUAL,)), NOW).findings
    data = finding.to_dict()
    assert data["rule"] == "root-hardware-mfa" and data["severity"] == "medium"
    assert "CIS" in data["source"] and "1.6" in data["source"]
    assert data["remediation"] == RULES["root-hardware-mfa"].remediation
    assert data["runbook"]["device_serial"] == VIRTUAL.serial


def test_every_rule_has_a_case_above() -> None:
    # the inputs of the cases above, one per rule (xdist may run the cases on other workers)
    covering = [
        creds(password=True, mfa_devices=(FIDO,), access_keys=(KEY,)),
        creds(password=True),
        creds(password=True, mfa_devices=(VIRTUAL,)),
        creds(centralised=True, password=True),
        creds(password=True, mfa_devices=(FIDO, TOKEN)),
        creds(password=True, mfa_devices=(MfaDevice("G1", "hardware", "2000-01-01"),)),
    ]
    found = {f.rule.id for c in covering for f in judge(c, NOW).findings}
    assert found == set(RULES)


def test_a_snapshot_round_trips_through_plain_json() -> None:
    import json

    full = creds(
        centralised=True, password=True, mfa_devices=(FIDO, VIRTUAL), access_keys=(KEY, OLD_KEY)
    )
    for original in (full, creds(reach="suspended", reach_detail="SUSPENDED")):
        text = json.dumps(original.to_dict())
        assert RootCredentials.from_dict(json.loads(text)) == original
    with pytest.raises(ValueError, match="not a root credentials snapshot"):
        RootCredentials.from_dict({"account_id": ACCOUNT, "colour": "red"})
    assert json.loads(json.dumps(verdict_of(full).to_dict()))["verdict"] == "attention"


def test_a_device_s_findings_name_the_device_and_an_account_s_do_not() -> None:
    judgement = verdict_of(creds(centralised=True, password=False, mfa_devices=(FIDO, VIRTUAL)))
    assert sorted(str(f.device_serial) for f in judgement.findings) == sorted(
        [FIDO.serial, VIRTUAL.serial]
    )
    keys_only = verdict_of(creds(password=True, access_keys=(KEY,)))
    assert {f.rule.id: f.device_serial for f in keys_only.findings} == {
        "root-access-keys": None,
        "root-mfa": None,
        "password-without-mfa": None,
    }
    old = verdict_of(creds(password=True, mfa_devices=(TOKEN,)), max_device_age_days=30)
    assert [(f.rule.id, f.device_serial) for f in old.findings] == [
        ("old-mfa-device", TOKEN.serial)
    ]
