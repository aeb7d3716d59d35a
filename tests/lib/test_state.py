"""The root user's MFA state: every signal, their agreement, waiting for change."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from runbook_lib.aws import privileged, state
from runbook_lib.aws.state import CredentialReportRoot, MfaDeviceInfo, RootMfaSnapshot
from runbook_lib.errors import VerificationTimeout
from runbook_sandbox import SandboxInfo

from .helpers import STANDALONE_ID, ContextFactory, SandboxGetter, serials


def console_remove(info: SandboxInfo, serial: str) -> None:
    control = info.control
    session = control.sign_in_fully(info.target_account_id)
    control.remove_mfa(session, serial)
    control.sign_out(session)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


# ----------------------------------------------------------------- snapshots per scenario
def test_standalone_snapshot(standalone: SandboxInfo, aws_for: ContextFactory) -> None:
    virtual = serials(standalone)["virtual"]
    snap = state.collect_snapshot(aws_for(standalone), STANDALONE_ID)
    assert snap.errors == ()
    assert snap.account_mfa_enabled is True
    assert snap.credential_report is not None
    assert snap.credential_report.mfa_active is True
    assert snap.credential_report.password_enabled == "true"  # the root user has a password
    assert snap.virtual_devices == (virtual,)
    assert snap.session_devices is None
    verdict = state.judge(snap)
    assert verdict.agree and verdict.disagreements == ()
    assert verdict.mfa_enabled is True
    assert verdict.devices == (virtual,)
    assert snap.to_dict()["virtual_devices"] == (virtual,)


def test_member_snapshot_with_audit_session_sees_the_fido_key(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    devices = serials(member)
    target = aws_for(member)
    without = state.collect_snapshot(target, member.target_account_id)
    assert without.virtual_devices == (devices["virtual"],)
    assert devices["fido"] not in without.known_serials()
    with privileged.assume_root(
        aws_for(member, "org-admin"), member.target_account_id, privileged.AUDIT
    ) as root:
        snap = state.collect_snapshot(target, member.target_account_id, root)
    assert snap.errors == ()
    assert snap.virtual_devices == (devices["virtual"],)
    assert snap.session_devices is not None
    kinds = {d.serial: d.kind for d in snap.session_devices}
    assert kinds == {devices["virtual"]: "virtual", devices["fido"]: "fido"}
    assert all(d.enable_date for d in snap.session_devices)
    verdict = state.judge(snap)
    assert verdict.agree, verdict.disagreements
    assert set(verdict.devices) == {devices["virtual"], devices["fido"]}


def test_fido_only_root_is_noted_without_a_session(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    console_remove(member, serials(member)["virtual"])
    snap = state.collect_snapshot(aws_for(member), member.target_account_id, with_report=False)
    assert snap.account_mfa_enabled is True and snap.virtual_devices == ()
    verdict = state.judge(snap)
    assert verdict.agree and verdict.devices == ()
    assert any("FIDO security key or hardware token" in n for n in verdict.notes)


def test_no_mfa_snapshot(sandbox_factory: SandboxGetter, aws_for: ContextFactory) -> None:
    info = sandbox_factory("no-mfa")
    snap = state.collect_snapshot(aws_for(info), info.target_account_id)
    assert snap.errors == ()
    assert snap.account_mfa_enabled is False
    assert snap.credential_report is not None and snap.credential_report.mfa_active is False
    assert snap.virtual_devices == ()
    verdict = state.judge(snap)
    assert verdict.agree and verdict.mfa_enabled is False and verdict.devices == ()


def test_root_access_keys_snapshot(sandbox_factory: SandboxGetter, aws_for: ContextFactory) -> None:
    info = sandbox_factory("root-access-keys")
    snap = state.collect_snapshot(aws_for(info), info.target_account_id)
    report = snap.credential_report
    assert report is not None
    assert report.access_key_1_active is True
    assert report.access_key_2_active is False
    assert report.mfa_active is True
    assert state.judge(snap).agree
    # the long-term root credentials: the summary's flags and the report's columns
    assert snap.account_access_keys_present is True
    assert snap.account_signing_certificates_present is True
    assert report.cert_1_active is True and report.cert_2_active is False
    assert snap.session_active_access_keys is None  # no audit session on a standalone account
    findings = {f.kind: f.seen_by for f in state.root_credential_findings(snap)}
    assert set(findings) == {"access keys", "signing certificates"}
    assert (
        "GetAccountSummary AccountSigningCertificatesPresent=1" in findings["signing certificates"]
    )


def test_root_credential_findings_name_each_signal_and_the_reports_age() -> None:
    report = CredentialReportRoot("2026-01-01T00:00:00+00:00", True, "true", "N/A", True, False)
    base = RootMfaSnapshot(STANDALONE_ID, "t", True, report, (), None)
    # only the (up to four hours old) report shows a key: named with its age
    (only,) = state.root_credential_findings(base)
    assert only.kind == "access keys"
    assert only.seen_by == (
        "credential report access_key_1_active (report generated 2026-01-01T00:00:00+00:00)",
    )
    quiet = RootMfaSnapshot(
        STANDALONE_ID,
        "t",
        True,
        CredentialReportRoot("g", True, "true", "N/A", False, False),
        (),
        None,
        account_access_keys_present=False,
        account_signing_certificates_present=False,
        session_active_access_keys=0,
        session_active_signing_certificates=0,
    )
    assert state.root_credential_findings(quiet) == []
    certs = RootMfaSnapshot(
        STANDALONE_ID, "t", True, None, (), None, session_active_signing_certificates=2
    )
    (found,) = state.root_credential_findings(certs)
    assert found.seen_by == ("ListSigningCertificates (AssumeRoot): 2 active",)
    # a record written before these fields existed still reads back
    new_fields = {
        "account_access_keys_present",
        "account_signing_certificates_present",
        "session_active_access_keys",
        "session_active_signing_certificates",
    }
    old = {k: v for k, v in base.to_dict().items() if k not in new_fields}
    old["credential_report"] = {
        k: v for k, v in old["credential_report"].items() if not k.startswith("cert_")
    }
    assert RootMfaSnapshot.from_dict(old).credential_report == report


# ----------------------------------------------------------------- agreement and staleness
def test_stale_report_disagrees_unless_judge_is_told_of_the_change(
    standalone: SandboxInfo, aws_for: ContextFactory
) -> None:
    reader = aws_for(standalone)
    before = state.collect_snapshot(reader, STANDALONE_ID)
    assert state.judge(before).agree
    assert before.credential_report is not None
    changed_at = now_iso()
    console_remove(standalone, serials(standalone)["virtual"])
    after = state.collect_snapshot(reader, STANDALONE_ID)
    # AWS reuses the report generated before the change
    assert after.credential_report == before.credential_report
    assert after.account_mfa_enabled is False
    assert after.credential_report is not None and after.credential_report.mfa_active is True

    blind = state.judge(after)
    assert not blind.agree
    assert any("credential report" in d for d in blind.disagreements)

    told = state.judge(after, changed_after=changed_at)
    assert told.agree, told.disagreements
    assert told.mfa_enabled is False
    assert any("before the change" in n for n in told.notes)

    # a "change" older than the report does not excuse it: still a disagreement
    earlier = (
        dt.datetime.fromisoformat(after.credential_report.generated_at) - dt.timedelta(minutes=5)
    ).isoformat()
    assert not state.judge(after, changed_after=earlier).agree


def snapshot(
    *,
    enabled: bool | None = True,
    report_active: bool | None = True,
    generated_at: str = "2026-01-01T10:00:00+00:00",
    virtual: tuple[str, ...] | None = ("arn:aws:iam::222233334444:mfa/a",),
    session: tuple[MfaDeviceInfo, ...] | None = None,
    errors: tuple[str, ...] = (),
) -> RootMfaSnapshot:
    report = (
        None
        if report_active is None
        else CredentialReportRoot(generated_at, report_active, "true", "N/A", False, False)
    )
    return RootMfaSnapshot("222233334444", generated_at, enabled, report, virtual, session, errors)


def test_judge_disagreements_from_each_pair_of_signals() -> None:
    v = "arn:aws:iam::222233334444:mfa/a"
    fido = MfaDeviceInfo("arn:aws:iam::222233334444:u2f/root/k-1", "fido")
    assert state.judge(snapshot()).agree
    # AccountMFAEnabled=0 while a virtual device is assigned
    assert not state.judge(snapshot(enabled=False, report_active=False)).agree
    # the session lists nothing while AccountMFAEnabled=1
    verdict = state.judge(snapshot(session=()))
    assert not verdict.agree and any("ListMFADevices" in d for d in verdict.disagreements)
    # the session lists a different virtual device than ListVirtualMFADevices
    other = MfaDeviceInfo("arn:aws:iam::222233334444:mfa/b", "virtual")
    verdict = state.judge(snapshot(session=(other,)))
    assert any("different virtual devices" in d for d in verdict.disagreements)
    # the same devices in both: agreement, FIDO included
    verdict = state.judge(snapshot(session=(MfaDeviceInfo(v, "virtual"), fido)))
    assert verdict.agree and set(verdict.devices) == {v, fido.serial}


def test_judge_falls_back_to_the_report_when_the_summary_is_unreadable() -> None:
    verdict = state.judge(
        snapshot(enabled=None, report_active=False, virtual=None, errors=("x: denied",))
    )
    assert verdict.mfa_enabled is False
    assert verdict.agree
    assert any("1 signal(s) could not be read" in n for n in verdict.notes)


@pytest.mark.parametrize(
    ("changed_after", "stale"),
    [
        ("2026-01-01T09:00:00+00:00", False),  # the report (10:00 UTC) is newer: it counts
        ("2026-01-01T14:00:00+05:00", False),  # 09:00 UTC written with an offset
        ("2026-01-01T10:00:00Z", False),  # the same instant is not "before"
        ("2026-01-01T06:00:00-05:00", True),  # 11:00 UTC: the report is stale
        ("2026-01-01T10:30:00Z", True),
        ("2026-01-01T10:00:00.500000+00:00", True),
    ],
)
def test_judge_compares_instants_not_strings(changed_after: str, stale: bool) -> None:
    """Fixed while these tests were written: judge compared the ISO strings, so an offset other
    than +00:00 could hide a real disagreement (14:00+05:00 > 10:00+00:00 as text)."""
    snap = snapshot(enabled=False, report_active=True, virtual=())
    verdict = state.judge(snap, changed_after=changed_after)
    assert verdict.agree is stale
    assert any("before the change" in n for n in verdict.notes) is stale


# ----------------------------------------------------------------- a signal denied
def test_denied_signal_lands_in_errors_and_the_others_are_read(
    standalone: SandboxInfo, aws_for: ContextFactory
) -> None:
    standalone.control.add_fault("deny", "iam:ListVirtualMFADevices")
    snap = state.collect_snapshot(aws_for(standalone), STANDALONE_ID)
    assert snap.virtual_devices is None
    assert len(snap.errors) == 1
    assert snap.errors[0].startswith("virtual devices: ")
    assert "iam:ListVirtualMFADevices" in snap.errors[0]
    assert "AccessDenied" in snap.errors[0]
    assert snap.account_mfa_enabled is True
    assert snap.credential_report is not None and snap.credential_report.mfa_active is True
    verdict = state.judge(snap)
    assert any("could not be read" in n for n in verdict.notes)


def test_denied_session_signal_lands_in_errors(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    with privileged.assume_root(
        aws_for(member, "org-admin"), member.target_account_id, privileged.AUDIT
    ) as root:
        member.control.add_fault("deny", "iam:ListMFADevices")
        snap = state.collect_snapshot(aws_for(member), member.target_account_id, root)
    assert snap.session_devices is None
    assert [e.split(":")[0] for e in snap.errors] == ["ListMFADevices (AssumeRoot)"]
    assert "iam:ListMFADevices" in snap.errors[0]
    assert snap.virtual_devices == (serials(member)["virtual"],)


def test_every_signal_denied_still_returns_a_snapshot(
    standalone: SandboxInfo, aws_for: ContextFactory
) -> None:
    standalone.control.add_fault("deny", "iam:*")
    snap = state.collect_snapshot(aws_for(standalone), STANDALONE_ID)
    assert (snap.account_mfa_enabled, snap.credential_report, snap.virtual_devices) == (
        None,
        None,
        None,
    )
    assert len(snap.errors) == 3
    assert state.judge(snap).mfa_enabled is None


# ----------------------------------------------------------------- waiting for the change
def test_wait_for_device_removed_rides_out_iam_lag(
    standalone: SandboxInfo, aws_for: ContextFactory
) -> None:
    reader = aws_for(standalone)
    serial = serials(standalone)["virtual"]
    standalone.control.set_iam_lag(2)
    console_remove(standalone, serial)
    start = time.monotonic()
    # IAM still shows the device right after the change
    assert state.read_root_virtual_devices(reader, STANDALONE_ID) == (serial,)
    snap = state.wait_for_device_removed(reader, STANDALONE_ID, serial, timeout=20, interval=0.5)
    assert time.monotonic() - start < 10
    assert serial not in snap.known_serials()
    assert snap.virtual_devices == ()


def test_wait_for_device_removed_times_out_with_the_last_snapshot(
    standalone: SandboxInfo, aws_for: ContextFactory
) -> None:
    serial = serials(standalone)["virtual"]
    standalone.control.set_iam_lag(60)
    console_remove(standalone, serial)
    start = time.monotonic()
    with pytest.raises(VerificationTimeout) as exc:
        state.wait_for_device_removed(
            aws_for(standalone), STANDALONE_ID, serial, timeout=1.0, interval=0.25
        )
    assert time.monotonic() - start < 5
    err = exc.value
    assert err.timeout == 1.0
    assert isinstance(err.last, RootMfaSnapshot)
    assert serial in err.last.known_serials()
    assert serial in str(err) and "console" in str(err)


def test_wait_for_device_removed_never_trusts_unreadable_signals(
    standalone: SandboxInfo, aws_for: ContextFactory
) -> None:
    serial = serials(standalone)["virtual"]
    standalone.control.add_fault("deny", "iam:ListVirtualMFADevices")
    with pytest.raises(VerificationTimeout) as exc:
        state.wait_for_device_removed(
            aws_for(standalone), STANDALONE_ID, serial, timeout=0.5, interval=0.2
        )
    assert isinstance(exc.value.last, RootMfaSnapshot)
    assert exc.value.last.errors


def test_wait_for_fido_removed_needs_the_session_signal(
    member: SandboxInfo, aws_for: ContextFactory
) -> None:
    fido = serials(member)["fido"]
    with privileged.assume_root(
        aws_for(member, "org-admin"), member.target_account_id, privileged.AUDIT
    ) as root:
        member.control.add_fault("deny", "iam:ListMFADevices")
        # the FIDO key is still assigned: this must not report it gone
        with pytest.raises(VerificationTimeout):
            state.wait_for_device_removed(
                aws_for(member), member.target_account_id, fido, root, timeout=0.5, interval=0.2
            )
    assert fido in serials(member).values()


def test_wait_for_new_device_after_console_binding(
    standalone: SandboxInfo, aws_for: ContextFactory
) -> None:
    control = standalone.control
    old = serials(standalone)["virtual"]
    session = control.sign_in_fully(STANDALONE_ID)
    control.remove_mfa(session, old)
    new = control.bind_virtual(session, "new-phone")
    snap = state.wait_for_new_device(
        aws_for(standalone), STANDALONE_ID, old, {old}, timeout=5, interval=0.2
    )
    assert snap.virtual_devices == (new,)


# ----------------------------------------------------------------- poll_until, fake time
class FakeTime:
    def __init__(self, probe_cost: float = 0.0) -> None:
        self.now = 1000.0
        self.sleeps: list[tuple[float, float]] = []  # (at, seconds)
        self.probes: list[float] = []
        self.probe_cost = probe_cost

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append((self.now, seconds))
        self.now += seconds

    def probe(self) -> int:
        self.probes.append(self.now)
        self.now += self.probe_cost
        return len(self.probes)


def test_poll_until_backs_off_and_stops_at_the_deadline() -> None:
    fake = FakeTime()
    with pytest.raises(VerificationTimeout) as exc:
        state.poll_until(
            fake.probe,
            lambda n: False,
            timeout=10,
            what="x",
            interval=1,
            clock=fake.clock,
            sleep=fake.sleep,
        )
    assert [s for _, s in fake.sleeps] == [1, 2, 4, 3]  # doubling, last one cut to the deadline
    assert fake.now == 1010.0
    assert exc.value.last == len(fake.probes) == 5
    assert fake.probes[-1] == 1010.0


def test_poll_until_caps_the_interval_and_never_sleeps_past_the_deadline() -> None:
    fake = FakeTime(probe_cost=0.7)
    deadline = fake.now + 100
    with pytest.raises(VerificationTimeout):
        state.poll_until(
            fake.probe,
            lambda n: False,
            timeout=100,
            what="x",
            interval=1,
            max_interval=10,
            clock=fake.clock,
            sleep=fake.sleep,
        )
    waits = [s for _, s in fake.sleeps]
    assert waits[:5] == [1, 2, 4, 8, 10]
    assert max(waits) <= 10
    assert all(at + s <= deadline + 1e-9 for at, s in fake.sleeps)
    # after the deadline only the last probe's own time passes, never a sleep
    assert fake.sleeps[-1][0] + fake.sleeps[-1][1] <= deadline + 1e-9


def test_poll_until_returns_as_soon_as_done() -> None:
    fake = FakeTime()
    result = state.poll_until(
        fake.probe,
        lambda n: n == 3,
        timeout=60,
        what="x",
        interval=0.5,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert result == 3
    assert [s for _, s in fake.sleeps] == [0.5, 1.0]
    first = FakeTime()
    assert (
        state.poll_until(
            first.probe, lambda n: True, timeout=60, what="x", clock=first.clock, sleep=first.sleep
        )
        == 1
    )
    assert first.sleeps == []


def test_poll_until_zero_timeout_probes_once_and_never_sleeps() -> None:
    fake = FakeTime()
    with pytest.raises(VerificationTimeout):
        state.poll_until(
            fake.probe, lambda n: False, timeout=0, what="x", clock=fake.clock, sleep=fake.sleep
        )
    assert fake.probes == [1000.0] and fake.sleeps == []


def test_device_kind_from_serial() -> None:
    assert state.device_kind("arn:aws:iam::222233334444:mfa/phone") == "virtual"
    assert state.device_kind("arn:aws:iam::222233334444:u2f/root/key-ABC") == "fido"
    assert state.device_kind("GAHT12345678") == "hardware"
