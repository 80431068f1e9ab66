"""The data plane as one CloudFormation stack, deployed through a change set.

`template()` describes the table (with its stream and Kinesis streaming destination), the
Kinesis stream, the DLQ, the CDC event source mapping, the alarms, their SNS topic and the
dashboard, from the same settings and definitions `airticket.provisioning` uses;
`infra/airticket.json` is that template for the default settings. `deploy()` makes a change
set, reports its changes, and executes it (an update only when asked to).
"""

import json
import re
import time
import uuid

from botocore.exceptions import ClientError
from django.conf import settings

from airticket import aws
from airticket.provisioning import alarm_definitions, dashboard_body, mapping_settings

DESCRIPTION = "air-ticket CQRS data plane: table, change stream, DLQ, CDC trigger, alarms, dashboard"


def _logical_id(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _table() -> dict:
    return {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "TableName": settings.DYNAMODB_TABLE,
            "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "KinesisStreamSpecification": {"StreamArn": {"Fn::GetAtt": ["ChangeStream", "Arn"]}},
        },
    }


def _mapping() -> dict:
    """The CDC trigger, with the failure settings Zappa's `events` cannot set. Only once the
    function exists (`zappa deploy cdc`), hence the condition."""
    return {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Condition": "CdcFunctionDeployed",
        "Properties": {
            "EventSourceArn": {"Fn::GetAtt": ["ChangeStream", "Arn"]},
            "FunctionName": settings.CDC_FUNCTION_NAME,
            "StartingPosition": "TRIM_HORIZON",
            **mapping_settings(dlq_arn={"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}),
        },
    }


def _topic() -> dict:
    properties: dict = {"TopicName": settings.ALARM_TOPIC}
    if settings.ALARM_EMAIL:
        properties["Subscription"] = [{"Protocol": "email", "Endpoint": settings.ALARM_EMAIL}]
    return {"Type": "AWS::SNS::Topic", "Properties": properties}


def template() -> dict:
    resources = {
        "Table": _table(),
        "ChangeStream": {
            "Type": "AWS::Kinesis::Stream",
            "Properties": {"Name": settings.KINESIS_STREAM, "ShardCount": settings.KINESIS_SHARDS},
        },
        "DeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": settings.DLQ_QUEUE, "MessageRetentionPeriod": 1209600}},
        "CdcTrigger": _mapping(),
        "AlarmTopic": _topic(),
        "Dashboard": {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {"DashboardName": settings.ZAPPA_PROJECT, "DashboardBody": json.dumps(dashboard_body())},
        },
    }
    for alarm in alarm_definitions():
        actions = [{"Ref": "AlarmTopic"}]
        resources[f"Alarm{_logical_id(alarm['AlarmName'])}"] = {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {**alarm, "ActionsEnabled": True, "AlarmActions": actions, "OKActions": actions},
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": DESCRIPTION,
        "Parameters": {
            "CdcFunctionDeployed": {
                "Type": "String",
                "AllowedValues": ["true", "false"],
                "Default": "false",
                "Description": "true once `zappa deploy cdc` made the CDC function: then the stack adds its trigger",
            }
        },
        "Conditions": {"CdcFunctionDeployed": {"Fn::Equals": [{"Ref": "CdcFunctionDeployed"}, "true"]}},
        "Resources": resources,
        "Outputs": {
            "ChangeStreamArn": {"Value": {"Fn::GetAtt": ["ChangeStream", "Arn"]}},
            "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
            "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}},
        },
    }


def _stack_exists(name: str) -> bool:
    try:
        stacks = aws.cloudformation().describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    return bool(stacks) and stacks[0]["StackStatus"] != "REVIEW_IN_PROGRESS"


def _wait(check, *, what: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = check()
        status = state.get("Status") or state.get("StackStatus", "")
        if not status.endswith("IN_PROGRESS") and status != "CREATE_PENDING":
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} still {status} after {timeout:.0f} s")
        time.sleep(2)


def _change_lines(changes: list[dict]) -> list[str]:
    lines = []
    for change in changes:
        resource = change["ResourceChange"]
        replace = " (replacement)" if resource.get("Replacement") == "True" else ""
        lines.append(f"  {resource['Action']:<7} {resource['LogicalResourceId']} {resource['ResourceType']}{replace}")
    return lines


def deploy(*, stack_name: str, cdc_function_deployed: bool = False, confirm_update: bool = False) -> list[str]:
    """Create or update the stack through a change set. Returns what it did, the change set's
    changes first. A new stack is created at once; an update is executed only when confirmed,
    otherwise its change set is left for review (then `--yes`, or `aws cloudformation
    execute-change-set`)."""
    cfn = aws.cloudformation()
    kind = "UPDATE" if _stack_exists(stack_name) else "CREATE"
    name = f"{stack_name}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"  # unique: one may be left for review
    cfn.create_change_set(
        StackName=stack_name,
        ChangeSetName=name,
        ChangeSetType=kind,
        TemplateBody=json.dumps(template()),
        Parameters=[{"ParameterKey": "CdcFunctionDeployed", "ParameterValue": "true" if cdc_function_deployed else "false"}],
        Description=DESCRIPTION,
    )
    described = _wait(lambda: cfn.describe_change_set(StackName=stack_name, ChangeSetName=name), what=f"change set {name}")
    changes = described.get("Changes", [])
    lines = [f"change set {name} ({kind.lower()}): {len(changes)} change(s)", *_change_lines(changes)]
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        if "didn't contain changes" in reason or "No updates" in reason:
            cfn.delete_change_set(StackName=stack_name, ChangeSetName=name)
            return [*lines, f"stack {stack_name}: up to date"]
        raise RuntimeError(f"change set {name} failed: {reason}")
    if kind == "UPDATE" and not confirm_update:
        return [*lines, f"stack {stack_name}: change set {name} left for review; run again with --yes to apply"]
    cfn.execute_change_set(StackName=stack_name, ChangeSetName=name)
    stack = _wait(lambda: cfn.describe_stacks(StackName=stack_name)["Stacks"][0], what=f"stack {stack_name}")
    if not stack["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]:
        raise RuntimeError(f"stack {stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
    return [*lines, f"stack {stack_name}: {stack['StackStatus']}"]
