"""Contract: when CloudTrail shows an event, and for how long LookupEvents looks back.

* Not at once: "CloudTrail uses a distributed computing model called eventual consistency"
  ("Managing data consistency in CloudTrail", CloudTrail User Guide,
  https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-data-consistency.html),
  and "CloudTrail log files aren't an ordered stack trace of the public API calls, so events
  don't appear in any specific order" ("CloudTrail concepts",
  https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-concepts.html). The
  sandbox delivers an event 0.3 s after the call by default (every caller must poll; a suite
  stays fast) and takes a realistic delay, and a jitter, through the control API, on the
  sandbox clock.
* 90 days: "You can look up events that occurred in a Region within the last 90 days"
  (LookupEvents, CloudTrail API reference,
  https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html). Older
  events are never returned. A StartTime older than that is undocumented beyond
  InvalidTimeRangeException ("... or the time range is outside the range of possible values"),
  so both readings exist: ``clip`` (default) and ``error``.

Every test reaches the sandbox over HTTP through boto3 and the ControlClient.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runbook_sandbox import ControlApiError, SandboxInfo

from .helpers import error_code

DAY = 24 * 3600


def _created(info: SandboxInfo, **kwargs: Any) -> list[str]:
    """The user names of the CreateUser events LookupEvents shows now (every page)."""
    info.control.set_lookup_rate(0)
    ct = info.client("cloudtrail")
    kwargs["LookupAttributes"] = [{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}]
    names: list[str] = []
    while True:
        page = ct.lookup_events(**kwargs)
        names += [
            json.loads(e["CloudTrailEvent"])["requestParameters"]["userName"]
            for e in page["Events"]
        ]
        if not page.get("NextToken"):
            return names
        kwargs["NextToken"] = page["NextToken"]


def _now(info: SandboxInfo) -> dt.datetime:
    return dt.datetime.fromisoformat(info.control.advance_clock(0))


# ---------------------------------------------------------------------------- delivery
def test_by_default_an_event_shows_within_a_second_not_at_once(
    default_delivery: None, standalone: SandboxInfo
) -> None:
    delay = standalone.control.call("GET", "cloudtrail-delay")
    assert 0 < delay["seconds"] < 1
    started = time.monotonic()
    standalone.client("iam").create_user(UserName="just-now")
    # a lookup right after the call misses it (unless this busy machine took longer than the
    # delay to get there: then the event may show, but never before the delay)
    seen_at_once = _created(standalone)
    assert seen_at_once == [] or time.monotonic() - started >= delay["seconds"] * 0.9
    while not _created(standalone):
        assert time.monotonic() - started < 5, "the event never showed"
        time.sleep(0.05)
    assert time.monotonic() - started >= delay["seconds"] * 0.9
    assert _created(standalone) == ["just-now"]


def test_a_realistic_delay_passes_on_the_sandbox_clock(standalone: SandboxInfo) -> None:
    standalone.control.set_cloudtrail_delay(300)
    assert standalone.control.call("GET", "cloudtrail-delay") == {"seconds": 300, "jitter": 0}
    standalone.client("iam").create_user(UserName="patient")
    time.sleep(0.5)
    assert _created(standalone) == []
    standalone.control.advance_clock(295)
    assert _created(standalone) == []
    standalone.control.advance_clock(10)
    assert _created(standalone) == ["patient"]


def test_jitter_spreads_delivery_over_a_window(standalone: SandboxInfo) -> None:
    standalone.control.set_cloudtrail_delay(60, jitter=120)
    iam = standalone.client("iam")
    for index in range(8):
        iam.create_user(UserName=f"j{index}")
    standalone.control.advance_clock(59)
    assert _created(standalone) == []
    standalone.control.advance_clock(122)
    assert sorted(_created(standalone)) == [f"j{index}" for index in range(8)]


def test_a_new_delay_applies_to_events_recorded_after_it(standalone: SandboxInfo) -> None:
    standalone.control.set_cloudtrail_delay(600)
    standalone.client("iam").create_user(UserName="slow")
    standalone.control.set_cloudtrail_delay(0)
    standalone.client("iam").create_user(UserName="fast")
    assert _created(standalone) == ["fast"]
    standalone.control.advance_clock(601)
    assert _created(standalone) == ["fast", "slow"]


def test_later_pages_see_what_the_first_page_saw(standalone: SandboxInfo) -> None:
    """Events delivered between two pages of one lookup neither repeat nor shift a page."""
    iam = standalone.client("iam")
    standalone.control.set_cloudtrail_delay(0)
    for index in range(55):
        iam.create_user(UserName=f"u{index:02d}")
    standalone.control.set_cloudtrail_delay(5)
    for index in range(3):
        iam.create_user(UserName=f"late{index}")
    standalone.control.set_lookup_rate(0)
    ct = standalone.client("cloudtrail")
    query = [{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}]
    first = ct.lookup_events(LookupAttributes=query)
    standalone.control.advance_clock(6)  # the three late ones are delivered now
    second = ct.lookup_events(LookupAttributes=query, NextToken=first["NextToken"])
    names = [
        json.loads(e["CloudTrailEvent"])["requestParameters"]["userName"]
        for e in first["Events"] + second["Events"]
    ]
    assert names == [f"u{index:02d}" for index in reversed(range(55))]
    assert _created(standalone)[:3] == ["late2", "late1", "late0"]


def test_console_events_are_delivered_late_too(standalone: SandboxInfo) -> None:
    standalone.control.set_cloudtrail_delay(120)
    session = standalone.control.sign_in_fully(standalone.target_account_id)
    standalone.control.sign_out(session)
    standalone.control.set_lookup_rate(0)
    ct = standalone.client("cloudtrail")
    query = [{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}]
    assert ct.lookup_events(LookupAttributes=query)["Events"] == []
    standalone.control.advance_clock(121)
    assert len(ct.lookup_events(LookupAttributes=query)["Events"]) == 1


def test_the_control_api_refuses_a_delay_it_cannot_mean(standalone: SandboxInfo) -> None:
    for seconds, jitter in ((-1, 0), (0, -1), (10 * DAY, 0)):
        with pytest.raises(ControlApiError) as exc:
            standalone.control.set_cloudtrail_delay(seconds, jitter=jitter)
        assert exc.value.status == 400
    with pytest.raises(ControlApiError) as exc:
        standalone.control.set_lookup_window("sometimes")
    assert exc.value.status == 400


# ---------------------------------------------------------------------------- 90 days
def test_events_older_than_90_days_are_not_returned(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    iam.create_user(UserName="ancient")
    standalone.control.advance_clock(89 * DAY)
    iam.create_user(UserName="old")
    assert _created(standalone) == ["old", "ancient"]
    standalone.control.advance_clock(1 * DAY + 3600)
    iam.create_user(UserName="recent")
    assert _created(standalone) == ["recent", "old"]


def test_a_start_time_beyond_90_days_is_clipped_by_default(standalone: SandboxInfo) -> None:
    iam = standalone.client("iam")
    iam.create_user(UserName="ancient")
    standalone.control.advance_clock(91 * DAY)
    iam.create_user(UserName="recent")
    now = _now(standalone)
    assert standalone.control.call("GET", "lookup-window") == {"mode": "clip"}
    assert _created(standalone, StartTime=now - dt.timedelta(days=365)) == ["recent"]
    assert _created(standalone, EndTime=now - dt.timedelta(days=91)) == []


def test_a_start_time_beyond_90_days_can_be_an_error(standalone: SandboxInfo) -> None:
    standalone.client("iam").create_user(UserName="recent")
    standalone.control.set_lookup_window("error")
    now = _now(standalone)
    for window in (
        {"StartTime": now - dt.timedelta(days=91)},
        {"EndTime": now - dt.timedelta(days=91)},
    ):
        with pytest.raises(ClientError) as exc:
            _created(standalone, **window)
        assert error_code(exc) == "InvalidTimeRangeException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _created(standalone, StartTime=now - dt.timedelta(days=89)) == ["recent"]
