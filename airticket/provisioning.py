"""Create the AWS resources the system needs, idempotently. Each step says what it did."""

import json

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


def list_shards() -> list[dict]:
    """Every shard of the stream, open and closed (a reshard leaves its parents listed, closed
    and still readable until they expire); ListShards pages at 1,000."""
    kinesis = aws.kinesis()
    shards, token = [], None
    while True:
        page = kinesis.list_shards(NextToken=token) if token else kinesis.list_shards(StreamName=settings.KINESIS_STREAM)
        shards += page["Shards"]
        token = page.get("NextToken")
        if not token:
            return shards


def open_shard_count() -> int:
    return sum(1 for shard in list_shards() if "EndingSequenceNumber" not in shard["SequenceNumberRange"])


def check_shard_count() -> str:
    """Say whether the stream has KINESIS_SHARDS open shards (provisioning never reshards on
    its own: a reshard closes every shard it touches and costs a while of double reading)."""
    have = open_shard_count()
    if have == settings.KINESIS_SHARDS:
        return f"stream {settings.KINESIS_STREAM}: {have} open shards, as KINESIS_SHARDS says"
    return f"stream {settings.KINESIS_STREAM}: {have} open shards, KINESIS_SHARDS={settings.KINESIS_SHARDS} (run provision_aws --reshard)"


def reshard() -> str:
    """Move the stream to KINESIS_SHARDS open shards (UpdateShardCount, UNIFORM_SCALING). AWS
    allows at most double or half the current count in one call, so a bigger change is refused
    here with what to do, rather than half done. Consumers drain the parent shards before
    their children (the event source mapping does; so does the local poller)."""
    have, want = open_shard_count(), settings.KINESIS_SHARDS
    if have == want:
        return f"stream {settings.KINESIS_STREAM}: already {have} open shards"
    if not have / 2 <= want <= have * 2:
        raise ValueError(
            f"KINESIS_SHARDS={want}: UpdateShardCount goes from {have} open shards to at most {have * 2} and at least {-(-have // 2)} in one step"
        )
    kinesis = aws.kinesis()
    kinesis.update_shard_count(StreamName=settings.KINESIS_STREAM, TargetShardCount=want, ScalingType="UNIFORM_SCALING")
    kinesis.get_waiter("stream_exists").wait(StreamName=settings.KINESIS_STREAM, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    return f"stream {settings.KINESIS_STREAM}: resharded from {have} to {want} open shards"


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
    wanted = mapping_settings(dlq_arn=dlq_arn)
    existing = lam.list_event_source_mappings(EventSourceArn=arn, FunctionName=settings.CDC_FUNCTION_NAME)["EventSourceMappings"]
    if existing:
        lam.update_event_source_mapping(UUID=existing[0]["UUID"], **wanted)
        return "event source mapping: updated"
    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=settings.CDC_FUNCTION_NAME, StartingPosition="TRIM_HORIZON", **wanted)
    return (
        "event source mapping: created (TRIM_HORIZON, ReportBatchItemFailures, bisect, bounded retries, DLQ, "
        f"parallelization factor {settings.CDC_PARALLELIZATION_FACTOR})"
    )


def mapping_settings(*, dlq_arn: object) -> dict:
    """The CDC mapping's batching and failure settings, for boto3 and for the stack's
    `AWS::Lambda::EventSourceMapping` alike (`dlq_arn` may be a CloudFormation reference)."""
    return {
        "BatchSize": settings.CDC_BATCH_SIZE,
        # Concurrent batches per shard; Lambda keeps each partition key (item) in order.
        "ParallelizationFactor": settings.CDC_PARALLELIZATION_FACTOR,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": settings.CDC_MAX_RETRIES,
        "MaximumRecordAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": dlq_arn}},
    }


STEPS = [ensure_table, ensure_stream, check_shard_count, ensure_dlq, ensure_streaming_destination, ensure_event_source_mapping]


def provision() -> list[str]:
    return [step() for step in STEPS]


# --- alarms (`provision_aws --alarms`) -------------------------------------------------------
# Each alarm notifies the SNS topic when it fires and when it clears. docs/RUNBOOK.md has a
# section per alarm (its name without the project prefix): what it means, how to look, how
# to recover. `put_metric_alarm` overwrites an alarm of the same name, so re-running updates.

MINUTE = 60


def _alarm(
    name: str,
    *,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    statistic: str,
    threshold: float,
    period: int = MINUTE,
    periods: int = 1,
    below: bool = False,
    description: str,
) -> dict:
    """An alarm on `metric` going over `threshold` (with `below`, under it) for `periods`
    periods. An alarm over a threshold treats no data as no news: no batch ran, no request
    came. One below a threshold watches for something that must keep happening, so no data
    breaches it: it stopped happening."""
    return {
        "AlarmName": f"{settings.ZAPPA_PROJECT}-{name}",
        "AlarmDescription": f"{description} See docs/RUNBOOK.md#{name.split('.')[0]}.",
        "Namespace": namespace,
        "MetricName": metric,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Statistic": statistic,
        "Threshold": threshold,
        "ComparisonOperator": "LessThanThreshold" if below else "GreaterThanThreshold",
        "Period": period,
        "EvaluationPeriods": periods,
        "TreatMissingData": "breaching" if below else "notBreaching",
    }


def _function(stage: str) -> str:
    return f"{settings.ZAPPA_PROJECT}-{stage}"


def alarm_definitions() -> list[dict]:
    """Every alarm, as `put_metric_alarm` keyword arguments (without the actions)."""
    ours = {"service": settings.METRICS_SERVICE}  # the dimensions of our EMF metrics
    alarms = [
        _alarm(
            "cdc-iterator-age",
            namespace="AWS/Lambda",
            metric="IteratorAge",
            dimensions={"FunctionName": settings.CDC_FUNCTION_NAME},
            statistic="Maximum",
            threshold=60_000,  # milliseconds
            periods=3,
            description="The CDC trigger's oldest unread record has been over 60 s old for 3 minutes.",
        ),
        _alarm(
            "dlq-depth",
            namespace="AWS/SQS",
            metric="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": settings.DLQ_QUEUE},
            statistic="Maximum",
            threshold=0,
            period=5 * MINUTE,  # SQS publishes every 5 minutes
            description="A change record sits in the CDC dead-letter queue.",
        ),
        _alarm(
            "projection-lag",
            namespace=settings.METRICS_NAMESPACE,
            metric="ProjectionLag",
            dimensions=ours,
            statistic="Maximum",
            threshold=60,  # seconds
            periods=3,
            description="The newest change the CDC applied was over 60 s old for 3 minutes.",
        ),
        _alarm(
            "reconcile-differences",
            namespace=settings.METRICS_NAMESPACE,
            metric="ReconcileDifferences",
            dimensions=ours,
            statistic="Maximum",
            threshold=0,
            period=6 * 60 * MINUTE,  # the schedule runs every 6 hours
            description="The last reconcile found the read models apart from DynamoDB.",
        ),
    ]
    for stage in settings.HTTP_STAGES:
        alarms.append(
            _alarm(
                f"5xx-rate.{stage}",
                namespace="AWS/ApiGateway",
                metric="5XXError",
                dimensions={"ApiName": _function(stage), "Stage": stage},
                statistic="Average",  # the share of requests answered 5xx
                threshold=0.05,
                period=5 * MINUTE,
                description=f"Over 5% of the {stage} stage's requests failed with 5xx in 5 minutes.",
            )
        )
    for function in [*map(_function, settings.HTTP_STAGES), settings.CDC_FUNCTION_NAME]:
        for metric in ("Errors", "Throttles"):
            alarms.append(
                _alarm(
                    f"lambda-{metric.lower()}.{function}",
                    namespace="AWS/Lambda",
                    metric=metric,
                    dimensions={"FunctionName": function},
                    statistic="Sum",
                    threshold=0,
                    period=5 * MINUTE,
                    description=f"Lambda {function} had {metric.lower()} in 5 minutes.",
                )
            )
    for number, (kind, url) in enumerate(settings.WEATHER_SOURCES, 1):
        alarms.append(
            _alarm(
                f"weather-source-failing.{kind}-{number}",
                namespace=settings.METRICS_NAMESPACE,
                # Successes, not failures: when polling stops altogether (the schedule disabled,
                # the query stage broken before it polls) no failure is counted either.
                metric="WeatherPollSucceeded",
                dimensions={**ours, "source": url},
                statistic="Sum",
                threshold=1,
                below=True,
                period=10 * MINUTE,  # the schedule polls every 10 minutes
                periods=3,
                description=f"No poll of weather source {url} succeeded for 30 minutes: it fails, or polling stopped.",
            )
        )
    return alarms


def ensure_alarm_topic() -> str:
    """The SNS topic (create_topic is idempotent), with ALARM_EMAIL subscribed once."""
    sns = aws.sns()
    arn = sns.create_topic(Name=settings.ALARM_TOPIC)["TopicArn"]
    if settings.ALARM_EMAIL:
        subscribed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        if not any(s["Protocol"] == "email" and s["Endpoint"] == settings.ALARM_EMAIL for s in subscribed):
            sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=settings.ALARM_EMAIL)
    return arn


def ensure_alarms() -> list[str]:
    topic = ensure_alarm_topic()
    alarms = alarm_definitions()
    for alarm in alarms:
        aws.cloudwatch().put_metric_alarm(**alarm, ActionsEnabled=True, AlarmActions=[topic], OKActions=[topic])
    aws.cloudwatch().put_dashboard(DashboardName=settings.ZAPPA_PROJECT, DashboardBody=json.dumps(dashboard_body()))
    email = f", {settings.ALARM_EMAIL} subscribed (confirm the email)" if settings.ALARM_EMAIL else ", no ALARM_EMAIL"
    return [f"alarm topic {settings.ALARM_TOPIC}: ready{email}", f"alarms: {len(alarms)} put", f"dashboard {settings.ZAPPA_PROJECT}: put"]


def ensure_stage_throttling() -> list[str]:
    """API Gateway's throttle on every method of each Zappa HTTP stage (API `<project>-<stage>`,
    stage `<stage>`, as Zappa names them): the first line on AWS, before a request costs a
    Lambda invocation. Zappa has no setting for it, so it is set here, after `zappa deploy`,
    and set again by every run (a redeploy keeps it; a new API needs this run)."""
    client = aws.apigateway()
    apis = [api for page in client.get_paginator("get_rest_apis").paginate() for api in page["items"]]
    rate, burst = settings.API_THROTTLE_RATE, settings.API_THROTTLE_BURST
    operations = [
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(rate)},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(burst)},
    ]
    lines = []
    for stage in settings.HTTP_STAGES:
        name = _function(stage)
        deployed = [api["id"] for api in apis if api["name"] == name]
        for api_id in deployed:
            client.update_stage(restApiId=api_id, stageName=stage, patchOperations=operations)
        done = f"throttled at {rate} requests/s, bursts of {burst}" if deployed else f"not deployed (zappa deploy {stage} first): skipped"
        lines.append(f"API {name} stage {stage}: {done}")
    return lines


def dashboard_body() -> dict:
    """The CloudWatch dashboard: one graph per alarm's metric (docs/dashboard.json is this,
    with the default settings)."""
    widgets = []
    for number, alarm in enumerate(alarm_definitions()):
        dimensions = [part for d in alarm["Dimensions"] for part in (d["Name"], d["Value"])]
        widgets.append(
            {
                "type": "metric",
                "x": 12 * (number % 2),
                "y": 6 * (number // 2),
                "width": 12,
                "height": 6,
                "properties": {
                    "title": alarm["AlarmName"],
                    "region": settings.AWS_REGION,
                    "stat": alarm["Statistic"],
                    "period": alarm["Period"],
                    "metrics": [[alarm["Namespace"], alarm["MetricName"], *dimensions]],
                    "annotations": {"horizontal": [{"label": "alarm", "value": alarm["Threshold"]}]},
                },
            }
        )
    ns, service = settings.METRICS_NAMESPACE, settings.METRICS_SERVICE
    overview = [
        (
            "Commands",
            [
                [ns, "CommandAccepted", "service", service],
                [ns, "CommandConditionRetries", "service", service],
                [ns, "CommandTransactionConflicts", "service", service],
            ],
        ),
        ("Commands refused, by reason", [[{"expression": f"SEARCH('{{{ns},reason,service}} MetricName=\"CommandRefused\"', 'Sum', 300)"}]]),
        ("CDC", [[ns, name, "service", service] for name in ("CdcRecords", "CdcChangesApplied", "CdcDuplicatesIgnored", "CdcPoison")]),
        # Concurrent batches conflicting on shared rows, retried in place (cdc_lambda.batch).
        ("CDC conflicts retried", [[ns, name, "service", service] for name in ("CdcDeadlockRetries", "CdcLockWaitRetries")]),
        (
            "Notifications",
            [[ns, name, "service", service] for name in ("NotificationsSent", "NotificationsFailed", "NotificationsSkipped")],
        ),
        (
            "Weather polls, by source",
            [
                [
                    {
                        "expression": f"SEARCH('{{{ns},service,source}} (MetricName=\"WeatherPollFailed\" OR MetricName=\"WeatherPollSucceeded\")', 'Sum', 600)"
                    }
                ]
            ],
        ),
    ]
    top = 6 * ((len(widgets) + 1) // 2)
    for number, (title, metrics) in enumerate(overview):
        widgets.append(
            {
                "type": "metric",
                "x": 12 * (number % 2),
                "y": top + 6 * (number // 2),
                "width": 12,
                "height": 6,
                "properties": {"title": title, "region": settings.AWS_REGION, "stat": "Sum", "period": 300, "metrics": metrics},
            }
        )
    return {"widgets": widgets}
