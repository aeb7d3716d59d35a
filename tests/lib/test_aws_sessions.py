"""Sessions and clients: user agent, adaptive retries, regional STS, profiles."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from runbook_lib import __version__
from runbook_lib.aws import privileged
from runbook_lib.aws.session import USER_AGENT, AwsContext, call, shared_loader
from runbook_lib.errors import AccessDeniedError, ParameterError
from runbook_sandbox import SandboxInfo

from .helpers import ContextFactory, raw_events

EXPECTED_UA = f"root-mfa-runbook/{__version__}"


def offline(region: str = "eu-west-1", endpoint: str | None = None) -> AwsContext:
    """A context with dummy keys; building clients from it makes no network call."""
    return AwsContext.from_profile(
        None,
        region,
        endpoint,
        aws_access_key_id="AKIAOFFLINEEXAMPLE01",
        aws_secret_access_key="offline-secret-not-real",
    )


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        pytest.fail("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def assert_runbook_config(client: Any, attempts: int = 8) -> None:
    config = client.meta.config
    assert config.user_agent_extra == EXPECTED_UA
    assert config.retries == {"mode": "adaptive", "total_max_attempts": attempts}


def test_user_agent_names_the_runbook_and_its_version() -> None:
    assert USER_AGENT == EXPECTED_UA
    assert __version__ and __version__ in USER_AGENT


@pytest.mark.parametrize("service", ["iam", "sts", "cloudtrail", "organizations"])
def test_clients_carry_user_agent_and_adaptive_retries(service: str, no_network: None) -> None:
    ctx = offline()
    assert_runbook_config(ctx.client(service))


def test_max_attempts_is_configurable(no_network: None) -> None:
    ctx = offline()
    ctx.max_attempts = 2
    assert_runbook_config(ctx.client("iam"), attempts=2)
    assert_runbook_config(ctx.sts_regional(), attempts=2)


def test_iam_and_organizations_always_in_us_east_1(no_network: None) -> None:
    ctx = offline("ap-southeast-2")
    # botocore names the global partition endpoint "aws-global" and signs for us-east-1
    for client in (ctx.client("iam"), ctx.client("iam", "eu-west-1"), ctx.client("organizations")):
        assert client._request_signer._region_name == "us-east-1"
    assert ctx.client("iam").meta.endpoint_url == "https://iam.amazonaws.com"
    assert ctx.client("organizations").meta.endpoint_url == (
        "https://organizations.us-east-1.amazonaws.com"
    )
    assert ctx.client("cloudtrail").meta.region_name == "ap-southeast-2"
    assert ctx.client("cloudtrail", "eu-west-1").meta.region_name == "eu-west-1"


def test_clients_are_cached_per_service_and_region(no_network: None) -> None:
    ctx = offline()
    assert ctx.client("iam") is ctx.client("iam")
    assert ctx.client("cloudtrail", "eu-west-1") is not ctx.client("cloudtrail", "us-east-1")


def test_every_context_parses_a_service_model_once_per_process(
    no_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One botocore data loader per process: the second context's IAM client does not read
    the IAM model again, temporary-credential contexts included."""
    first = offline()
    loader = first.session._session.get_component("data_loader")
    assert loader is shared_loader()
    first.client("iam")
    reads: list[str] = []
    original = loader.file_loader.load_file
    monkeypatch.setattr(
        loader.file_loader, "load_file", lambda path: reads.append(path) or original(path)
    )
    offline().client("iam")
    first.with_credentials("ASIAOFFLINEEXAMPLE01", "offline-secret", "offline-token").client("iam")
    assert not [path for path in reads if "/iam/" in path]
    assert offline().session._session.get_component("data_loader") is loader
    assert loader.search_paths.count(loader.search_paths[-1]) == 1  # boto3's, not once per session


def test_temporary_credential_context_keeps_endpoint_region_and_config(no_network: None) -> None:
    ctx = offline("eu-west-1", "http://127.0.0.1:9")
    ctx.max_attempts = 3
    temp = ctx.with_credentials("ASIAOFFLINEEXAMPLE01", "offline-secret", "offline-token")
    assert (temp.region, temp.endpoint_url, temp.max_attempts) == ("eu-west-1", ctx.endpoint_url, 3)
    client = temp.client("iam")
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert_runbook_config(client, attempts=3)
    frozen = temp.session.get_credentials().get_frozen_credentials()
    assert frozen.access_key == "ASIAOFFLINEEXAMPLE01"


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1"])
def test_sts_regional_uses_the_regional_endpoint(region: str, no_network: None) -> None:
    sts = offline(region).sts_regional()
    assert sts.meta.endpoint_url == f"https://sts.{region}.amazonaws.com"
    assert sts.meta.region_name == region
    assert_runbook_config(sts)


def test_sts_regional_region_argument_wins(no_network: None) -> None:
    sts = offline("us-east-1").sts_regional("eu-central-1")
    assert sts.meta.endpoint_url == "https://sts.eu-central-1.amazonaws.com"


def test_sts_regional_keeps_a_custom_endpoint(no_network: None) -> None:
    ctx = offline("eu-west-1", "http://127.0.0.1:4566")
    assert ctx.sts_regional().meta.endpoint_url == "http://127.0.0.1:4566"


@pytest.mark.parametrize(
    ("region", "arg"), [("aws-global", None), ("us-east-1", "aws-global")], ids=["ctx", "argument"]
)
def test_sts_regional_refuses_aws_global(region: str, arg: str | None, no_network: None) -> None:
    with pytest.raises(ParameterError) as exc:
        offline(region).sts_regional(arg)
    assert len(exc.value.problems) == 1
    assert "regional STS endpoint" in exc.value.problems[0]
    assert "nothing was run" in str(exc.value)


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://sts.amazonaws.com",
        "https://sts.amazonaws.com/",
        "https://STS.AMAZONAWS.COM:443",
        "https://sts.us-gov.amazonaws.com",
    ],
)
def test_sts_regional_refuses_the_global_endpoint(endpoint: str, no_network: None) -> None:
    with pytest.raises(ParameterError) as exc:
        offline("us-east-1", endpoint).sts_regional()
    assert "global STS endpoint" in exc.value.problems[0]
    assert "https://sts.us-east-1.amazonaws.com" in exc.value.problems[0]


def test_assume_root_refuses_global_sts_before_any_call(no_network: None) -> None:
    ctx = offline("us-east-1", "https://sts.amazonaws.com")
    with pytest.raises(ParameterError):
        with privileged.assume_root(ctx, "222233334444", privileged.AUDIT):
            pytest.fail("the session must not start")
    with pytest.raises(ParameterError):
        with privileged.assume_root(
            offline("us-east-1"), "222233334444", privileged.AUDIT, region="aws-global"
        ):
            pytest.fail("the session must not start")


def test_bad_profile_name_is_a_parameter_error(no_network: None) -> None:
    with pytest.raises(ParameterError) as exc:
        AwsContext.from_profile("no-such-profile-for-the-runbook")
    assert "no-such-profile-for-the-runbook" in exc.value.problems[0]


def test_existing_profile_is_used_with_its_region(tmp_path: Path, no_network: None) -> None:
    (tmp_path / "aws-config").write_text("[profile runbook-test]\nregion = eu-north-1\n")
    ctx = AwsContext.from_profile("runbook-test")
    assert ctx.region == "eu-north-1"
    assert ctx.session.profile_name == "runbook-test"
    assert ctx.endpoint_url is None
    # an explicit region beats the profile's
    assert AwsContext.from_profile("runbook-test", "us-west-2").region == "us-west-2"


def test_default_region_is_us_east_1(no_network: None) -> None:
    ctx = AwsContext.from_profile(
        None, None, aws_access_key_id="AKIAOFFLINEEXAMPLE01", aws_secret_access_key="x"
    )
    assert ctx.region == "us-east-1"
    assert ctx.endpoint_url is None


def test_user_agent_reaches_aws(member: SandboxInfo, aws_for: ContextFactory) -> None:
    """On the wire: CloudTrail records the runbook's user agent for IAM and AssumeRoot calls."""
    admin = aws_for(member)
    call(admin.client("iam"), "get_account_summary", "iam:GetAccountSummary")
    with privileged.assume_root(
        aws_for(member, "org-admin"), member.target_account_id, privileged.AUDIT
    ):
        pass
    (summary,) = raw_events(member, "admin", "GetAccountSummary")
    (assumed,) = raw_events(member, "org-admin", "AssumeRoot")
    for record in (summary, assumed):
        assert EXPECTED_UA in record["userAgent"]


def test_call_maps_errors_and_names_the_permission(
    standalone: SandboxInfo, aws_for: ContextFactory
) -> None:
    standalone.control.add_fault("deny", "iam:GetAccountSummary")
    with pytest.raises(AccessDeniedError) as exc:
        call(aws_for(standalone).client("iam"), "get_account_summary", "iam:GetAccountSummary")
    assert exc.value.operation == "GetAccountSummary"
    assert exc.value.request_id
    assert "iam:GetAccountSummary" in (exc.value.hint or "")
