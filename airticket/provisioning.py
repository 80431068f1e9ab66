"""Create the AWS resources the system needs, idempotently. Each step says what it did."""

from botocore.exceptions import ClientError
from django.conf import settings

from airticket import aws


def _code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def ensure_table() -> str:
    ddb = aws.dynamodb()
    try:
        ddb.create_table(
            TableName=settings.DYNAMODB_TABLE,
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
        return f"table {settings.DYNAMODB_TABLE}: exists"
    ddb.get_waiter("table_exists").wait(TableName=settings.DYNAMODB_TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    ddb.update_time_to_live(TableName=settings.DYNAMODB_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    return f"table {settings.DYNAMODB_TABLE}: created (streams NEW_AND_OLD_IMAGES, TTL on expires_at)"


def stream_arn() -> str:
    return aws.kinesis().describe_stream_summary(StreamName=settings.KINESIS_STREAM)["StreamDescriptionSummary"]["StreamARN"]


def ensure_stream() -> str:
    kinesis = aws.kinesis()
    try:
        kinesis.create_stream(StreamName=settings.KINESIS_STREAM, ShardCount=settings.KINESIS_SHARDS)
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
        return f"stream {settings.KINESIS_STREAM}: exists"
    kinesis.get_waiter("stream_exists").wait(StreamName=settings.KINESIS_STREAM, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return f"stream {settings.KINESIS_STREAM}: created ({settings.KINESIS_SHARDS} shards)"


def ensure_dlq() -> str:
    # create_queue is idempotent for identical attributes.
    aws.sqs().create_queue(QueueName=settings.DLQ_QUEUE, Attributes={"MessageRetentionPeriod": "1209600"})
    return f"queue {settings.DLQ_QUEUE}: ready (14 days retention)"


def ensure_streaming_destination() -> str:
    """DynamoDB -> Kinesis. moto does not implement it; locally `run_bridge` plays its part."""
    if settings.AWS_ENDPOINT_URL:
        return "streaming destination: skipped (local endpoint; moto lacks it, run_bridge stands in)"
    ddb = aws.dynamodb()
    arn = stream_arn()
    described = ddb.describe_kinesis_streaming_destination(TableName=settings.DYNAMODB_TABLE)
    for destination in described.get("KinesisDataStreamDestinations", []):
        if destination["StreamArn"] == arn and destination["DestinationStatus"] in ("ACTIVE", "ENABLING"):
            return f"streaming destination: {destination['DestinationStatus'].lower()}"
    ddb.enable_kinesis_streaming_destination(TableName=settings.DYNAMODB_TABLE, StreamArn=arn)
    return "streaming destination: enabling"


def ensure_event_source_mapping() -> str:
    """Kinesis -> CDC Lambda with the failure settings Zappa's `events` cannot set."""
    if settings.AWS_ENDPOINT_URL:
        return "event source mapping: skipped (local endpoint; run_poller stands in)"
    lam = aws.lambda_()
    arn = stream_arn()
    dlq_arn = aws.sqs().get_queue_attributes(QueueUrl=aws.dlq_url(), AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    wanted = {
        "BatchSize": settings.CDC_BATCH_SIZE,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": settings.CDC_MAX_RETRIES,
        "MaximumRecordAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": dlq_arn}},
    }
    existing = lam.list_event_source_mappings(EventSourceArn=arn, FunctionName=settings.CDC_FUNCTION_NAME)["EventSourceMappings"]
    if existing:
        lam.update_event_source_mapping(UUID=existing[0]["UUID"], **wanted)
        return "event source mapping: updated"
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=settings.CDC_FUNCTION_NAME, StartingPosition="TRIM_HORIZON", **wanted)
    return "event source mapping: created (TRIM_HORIZON, ReportBatchItemFailures, bisect, bounded retries, DLQ)"


STEPS = [ensure_table, ensure_stream, ensure_dlq, ensure_streaming_destination, ensure_event_source_mapping]


def provision() -> list[str]:
    return [step() for step in STEPS]
