"""Contract: every AWS protocol gets its errors in its own shape, and services outside the
procedure's scope answer NotImplemented instead of invented data.

The sandbox serves IAM, STS, Organizations, CloudTrail, S3 and SQS (the root MFA procedure, the
runbook's archive, the root task policies' S3 and SQS unlock tasks). Anything else (EC2, IAM
Identity Center admin, Security Hub, Support, CloudWatch, ...) is answered ``NotImplemented``,
HTTP 501, with a readable message, in the protocol the caller speaks, so botocore raises a
ClientError with that code and message: the shapes botocore's parsers read (``botocore.parsers``)
for Query (``ErrorResponse/Error/Code``), EC2 (``Response/Errors/Error/Code``), JSON and
rest-json (``x-amzn-ErrorType`` and ``message``), Smithy RPC v2 CBOR (a CBOR map with ``__type``
and ``message``) and rest-xml (``Error/Code``). ``NotImplemented`` with 501 is the code AWS
itself uses for functionality a service does not implement (Amazon S3 API Reference, "Error
responses": "NotImplemented ... A header you provided implies functionality that is not
implemented", 501).

A principal whose policies do not allow the call is refused first, as AWS would refuse it
(EC2: ``UnauthorizedOperation``, "Troubleshooting API request errors", EC2 API Reference,
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/query-api-troubleshooting.html).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from runbook_sandbox import SandboxInfo
from runbook_sandbox._protocol import REST_XML_SIGNING_NAMES, SERVED_SERVICES

from .helpers import AUDIT, assume_root, session_client, with_unknown_key

# (service, protocol botocore speaks to it, a harmless call)
OUT_OF_SCOPE: list[tuple[str, str, Callable[[Any], Any]]] = [
    ("ec2", "ec2", lambda c: c.describe_instances()),
    ("elbv2", "query", lambda c: c.describe_load_balancers()),
    ("sso-admin", "json", lambda c: c.list_instances()),
    ("support", "json", lambda c: c.describe_cases()),
    ("securityhub", "rest-json", lambda c: c.describe_hub()),
    ("lambda", "rest-json", lambda c: c.list_functions()),
    ("route53", "rest-xml", lambda c: c.list_hosted_zones()),
    ("cloudwatch", "smithy-rpc-v2-cbor", lambda c: c.list_metrics()),
]


def _protocol(service: str) -> str:
    model = botocore.session.get_session().get_service_model(service)
    return str(model.protocol)


@pytest.mark.parametrize(("service", "protocol", "call"), OUT_OF_SCOPE)
def test_out_of_scope_service_is_not_implemented_in_its_own_protocol(
    standalone: SandboxInfo, service: str, protocol: str, call: Callable[[Any], Any]
) -> None:
    assert _protocol(service) == protocol  # what this botocore speaks to it
    with pytest.raises(ClientError) as exc:
        call(standalone.client(service))
    error = exc.value.response["Error"]
    assert error["Code"] == "NotImplemented", error
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    message = str(error["Message"])
    assert message.startswith("The root-mfa-runbook sandbox does not implement "), message
    assert "<" not in message and "{" not in message  # readable, not a raw body
    assert "cloudtrail, iam, organizations, s3, sqs, sts" in message


def test_a_json_operation_names_itself(standalone: SandboxInfo) -> None:
    with pytest.raises(ClientError) as exc:
        standalone.client("sso-admin").list_instances()
    assert "sso:ListInstances" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        standalone.client("cloudwatch").list_metrics()
    assert "monitoring:ListMetrics" in exc.value.response["Error"]["Message"]


@pytest.mark.parametrize(("service", "protocol", "call"), OUT_OF_SCOPE)
def test_unknown_key_is_refused_in_the_callers_protocol(
    standalone: SandboxInfo, service: str, protocol: str, call: Callable[[Any], Any]
) -> None:
    ghost = with_unknown_key(standalone)
    with pytest.raises(ClientError) as exc:
        call(ghost.client(service, "ghost"))
    assert exc.value.response["Error"]["Code"] == "InvalidClientTokenId"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_restricted_principal_is_refused_before_scope(standalone: SandboxInfo) -> None:
    read_iam = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:Get*", "Resource": "*"}],
    }
    standalone.add_principal("narrow", standalone.target_account_id, [read_iam])
    with pytest.raises(ClientError) as exc:
        standalone.client("ec2", "narrow").describe_instances()
    assert exc.value.response["Error"]["Code"] == "UnauthorizedOperation"
    with pytest.raises(ClientError) as exc:
        standalone.client("lambda", "narrow").list_functions()
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        standalone.client("cloudwatch", "narrow").list_metrics()
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"


def test_an_assume_root_session_is_refused_outside_its_task(member: SandboxInfo) -> None:
    ec2 = session_client(member, assume_root(member, AUDIT), "ec2")
    with pytest.raises(ClientError) as exc:
        ec2.describe_instances()
    assert exc.value.response["Error"]["Code"] == "UnauthorizedOperation"


def test_served_services_still_answer(standalone: SandboxInfo) -> None:
    assert "Users" in standalone.client("iam").list_users()
    assert standalone.client("sts").get_caller_identity()["Account"]
    assert "Buckets" in standalone.client("s3").list_buckets()
    url = standalone.client("sqs").create_queue(QueueName="still-served")["QueueUrl"]
    assert url in standalone.client("sqs").list_queues().get("QueueUrls", [])
    assert SERVED_SERVICES == {"iam", "sts", "organizations", "cloudtrail", "s3", "sqs"}


@pytest.mark.slow
def test_rest_xml_signing_names_are_botocores() -> None:
    """The sandbox tells rest-xml from rest-json by signing name for services it has no model
    loaded for; the list must be exactly botocore's rest-xml services'."""
    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    found = set()
    for name in loader.list_available_services("service-2"):
        metadata = loader.load_service_model(name, "service-2")["metadata"]
        protocols = metadata.get("protocols") or [metadata.get("protocol")]
        if protocols[0] == "rest-xml":
            found.add(metadata.get("signingName") or metadata["endpointPrefix"])
    assert found == set(REST_XML_SIGNING_NAMES)
