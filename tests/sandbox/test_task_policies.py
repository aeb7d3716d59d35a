"""Contract: AssumeRoot sessions are bounded by the root task policies as AWS publishes them.

The five task policies are AWS managed policies (AWS Managed Policy reference, e.g.
"S3UnlockBucketPolicy",
https://docs.aws.amazon.com/aws-managed-policy/latest/reference/S3UnlockBucketPolicy.html, and
"SQSUnlockQueuePolicy",
https://docs.aws.amazon.com/aws-managed-policy/latest/reference/SQSUnlockQueuePolicy.html;
version v1 of 2024-11-06, read from the zoph-io/MAMIP mirror of AWS managed policies). Each
denies every action but its task's (``DenyAllOtherActionsOnAnyResource``, ``NotAction``):

* S3UnlockBucketPolicy: s3:DeleteBucketPolicy, s3:PutBucketPolicy, s3:GetBucketPolicy,
  s3:ListAllMyBuckets;
* SQSUnlockQueuePolicy: sqs:SetQueueAttributes, sqs:GetQueueAttributes, sqs:ListQueues,
  sqs:GetQueueUrl (not sqs:RemovePermission);
* the IAM ones also deny their actions on any resource but a root user
  (``NotResource: arn:aws:iam::*:root``), which keeps IAM users out of reach.

IAM User Guide, "Perform a privileged task on an AWS Organizations member account"
(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user-privileged-task.html): the S3 and
SQS tasks delete a misconfigured bucket or queue policy that denies all principals.

Undocumented, behind a switch (``task_policy_variant``): IAMDeleteRootUserCredentials lists
iam:DeleteVirtualMFADevice, but its NotResource statement, read literally, denies it, the call
naming an ``arn:aws:iam::ACCOUNT:mfa/NAME`` resource ("For virtual MFA devices, the serial number
is the same as the ARN": IAM API reference, DeleteVirtualMFADevice,
https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeleteVirtualMFADevice.html). ``deny``
is that literal reading (AccessDenied, an explicit deny in a session policy); ``allow`` (the
default for now, see runbook_sandbox/_authz.py) lets the root user's device count as a root
credential.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runbook_sandbox import ControlApiError, SandboxInfo
from runbook_sandbox._authz import TASK_POLICY_DOCUMENTS, task_policy_actions
from runbook_sandbox._state import ROOT_TASK_POLICIES

from .helpers import AUDIT, DELETE, assume_root, error_code, session_client

S3_UNLOCK = "arn:aws:iam::aws:policy/root-task/S3UnlockBucketPolicy"
SQS_UNLOCK = "arn:aws:iam::aws:policy/root-task/SQSUnlockQueuePolicy"


def _deny_all(resource: str, action: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Deny", "Principal": "*", "Action": action, "Resource": resource}
            ],
        }
    )


def _denied(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    assert error_code(exc) in ("AccessDenied", "AccessDeniedException"), exc.value
    return dict(exc.value.response["Error"])


def test_the_action_lists_are_the_published_policies() -> None:
    assert set(TASK_POLICY_DOCUMENTS) == set(ROOT_TASK_POLICIES)
    for arn, actions in ROOT_TASK_POLICIES.items():
        assert task_policy_actions(arn) == actions, arn
    assert ROOT_TASK_POLICIES[S3_UNLOCK] == {
        "s3:DeleteBucketPolicy",
        "s3:PutBucketPolicy",
        "s3:GetBucketPolicy",
        "s3:ListAllMyBuckets",
    }
    assert ROOT_TASK_POLICIES[SQS_UNLOCK] == {
        "sqs:SetQueueAttributes",
        "sqs:GetQueueAttributes",
        "sqs:ListQueues",
        "sqs:GetQueueUrl",
    }


# ---------------------------------------------------------------------------- S3
def test_s3_unlock_session_finds_and_unlocks_a_bucket(member: SandboxInfo) -> None:
    admin = member.client("s3")
    admin.create_bucket(Bucket="locked-out")
    admin.put_object(Bucket="locked-out", Key="k", Body=b"x")
    admin.put_bucket_policy(
        Bucket="locked-out", Policy=_deny_all("arn:aws:s3:::locked-out/*", "s3:*")
    )
    s3 = session_client(member, assume_root(member, S3_UNLOCK), "s3")

    assert "locked-out" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "Deny" in s3.get_bucket_policy(Bucket="locked-out")["Policy"]
    s3.delete_bucket_policy(Bucket="locked-out")
    s3.put_bucket_policy(Bucket="locked-out", Policy=_deny_all("arn:aws:s3:::locked-out/*", "*"))
    for call, kwargs in (
        (s3.get_object, {"Bucket": "locked-out", "Key": "k"}),
        (s3.put_object, {"Bucket": "locked-out", "Key": "k2", "Body": b"y"}),
        (s3.delete_bucket, {"Bucket": "locked-out"}),
    ):
        error = _denied(call, **kwargs)
        assert "no session policy allows" in error["Message"]


# ---------------------------------------------------------------------------- SQS
def test_sqs_unlock_session_finds_and_unlocks_a_queue(member: SandboxInfo) -> None:
    admin = member.client("sqs")
    url = admin.create_queue(QueueName="locked-queue")["QueueUrl"]
    arn = admin.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    admin.set_queue_attributes(QueueUrl=url, Attributes={"Policy": _deny_all(arn, "sqs:*")})
    sqs = session_client(member, assume_root(member, SQS_UNLOCK), "sqs")

    assert url in sqs.list_queues()["QueueUrls"]
    assert sqs.get_queue_url(QueueName="locked-queue")["QueueUrl"] == url
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]
    assert "Deny" in policy["Policy"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    for call, kwargs in (
        (sqs.remove_permission, {"QueueUrl": url, "Label": "anything"}),
        (sqs.send_message, {"QueueUrl": url, "MessageBody": "hello"}),
        (sqs.delete_queue, {"QueueUrl": url}),
    ):
        _denied(call, **kwargs)


def test_unlock_sessions_reach_neither_iam_nor_the_other_service(member: SandboxInfo) -> None:
    s3_session = assume_root(member, S3_UNLOCK)
    _denied(session_client(member, s3_session, "iam").list_mfa_devices)
    _denied(session_client(member, s3_session, "sqs").list_queues)
    sqs_session = assume_root(member, SQS_UNLOCK)
    _denied(session_client(member, sqs_session, "s3").list_buckets)


# ---------------------------------------------------------------------------- IAM tasks
def test_iam_tasks_reach_the_root_user_and_no_iam_user(member: SandboxInfo) -> None:
    for policy in (AUDIT, DELETE):
        iam = session_client(member, assume_root(member, policy), "iam")
        assert len(iam.list_mfa_devices()["MFADevices"]) == 2
        error = _denied(iam.list_mfa_devices, UserName="runbook-admin")
        assert "with an explicit deny in a session policy" in error["Message"]
        assert ":user/runbook-admin" in error["Message"]
    audit = session_client(member, assume_root(member, AUDIT), "iam")
    assert audit.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1


def _deactivate_virtual(member: SandboxInfo, iam: Any) -> str:
    serial = f"arn:aws:iam::{member.target_account_id}:mfa/root-authenticator"
    iam.deactivate_mfa_device(SerialNumber=serial)
    state = member.control.state(member.target_account_id)
    assert state["unassigned_virtual"] == [serial]
    return serial


def test_delete_virtual_mfa_device_with_the_allow_variant(member: SandboxInfo) -> None:
    assert member.control.call("GET", "task-policy-variant") == {"variant": "deny"}  # default
    member.control.set_task_policy_variant("allow")
    assert member.control.switches()["delete-virtual-mfa-in-delete-session"] == "allow"
    iam = session_client(member, assume_root(member, DELETE), "iam")
    serial = _deactivate_virtual(member, iam)
    iam.delete_virtual_mfa_device(SerialNumber=serial)
    assert member.control.state(member.target_account_id)["unassigned_virtual"] == []


def test_delete_virtual_mfa_device_with_the_deny_variant(member: SandboxInfo) -> None:
    member.control.set_task_policy_variant("deny")
    creds = assume_root(member, DELETE)
    iam = session_client(member, creds, "iam")
    serial = _deactivate_virtual(member, iam)  # DeactivateMFADevice acts on the root user
    error = _denied(iam.delete_virtual_mfa_device, SerialNumber=serial)
    assert error["Code"] == "AccessDenied"
    assert error["Message"] == (
        f"User: arn:aws:iam::{member.target_account_id}:root is not authorized to perform: "
        f"iam:DeleteVirtualMFADevice on resource: {serial} with an explicit deny in a session "
        "policy"
    )
    assert member.control.state(member.target_account_id)["unassigned_virtual"] == [serial]

    member.control.set_lookup_rate(0)
    ct = member.client("cloudtrail")
    found = ct.lookup_events(
        LookupAttributes=[{"AttributeKey": "AccessKeyId", "AttributeValue": creds["AccessKeyId"]}]
    )["Events"]
    records = {e["EventName"]: json.loads(e["CloudTrailEvent"]) for e in found}
    assert records["DeleteVirtualMFADevice"]["errorCode"] == "AccessDenied"
    assert "errorCode" not in records["DeactivateMFADevice"]


def test_the_variant_switch_refuses_unknown_variants(member: SandboxInfo) -> None:
    with pytest.raises(ControlApiError) as exc:
        member.control.set_task_policy_variant("maybe")
    assert exc.value.status == 400
    member.control.set_task_policy_variant("deny")
    assert member.control.call("GET", "task-policy-variant") == {"variant": "deny"}
    member.control.set_task_policy_variant("allow")
    assert member.control.call("GET", "task-policy-variant") == {"variant": "allow"}
