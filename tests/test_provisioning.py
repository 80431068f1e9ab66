"""What `provision_aws` does on AWS (not under a local endpoint), checked against moto: the CDC
function's Kinesis trigger carries the failure settings Zappa's `events` cannot set."""

import io
import zipfile

from django.conf import settings

from airticket import aws, provisioning


def cdc_function() -> None:
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    role = aws.client("iam").create_role(RoleName="cdc", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    aws.lambda_().create_function(
        FunctionName=settings.CDC_FUNCTION_NAME,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )


def test_the_cdc_trigger_is_created_once_with_failure_handling_and_then_updated(aws_env, settings):
    cdc_function()
    settings.AWS_ENDPOINT_URL = ""  # behave as on AWS; boto3 still reaches moto through the environment
    settings.CDC_MAX_RETRIES = 3
    assert provisioning.ensure_event_source_mapping().startswith("event source mapping: created")
    settings.CDC_MAX_RETRIES = 4
    assert provisioning.ensure_event_source_mapping() == "event source mapping: updated"

    [mapping] = aws.lambda_().list_event_source_mappings(FunctionName=settings.CDC_FUNCTION_NAME)["EventSourceMappings"]
    dlq_arn = aws.sqs().get_queue_attributes(QueueUrl=aws.dlq_url(), AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert mapping["EventSourceArn"] == provisioning.stream_arn()
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 4
    assert mapping["MaximumRecordAgeInSeconds"] == 3600
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": dlq_arn}}
