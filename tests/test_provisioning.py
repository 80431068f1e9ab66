"""What `provision_aws` does on AWS (not under a local endpoint), checked against moto: the CDC
function's Kinesis trigger carries the failure settings Zappa's `events` cannot set."""

import io
import json
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

from airticket import aws, provisioning, stack


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
    settings.CDC_MAX_RETRIES, settings.CDC_PARALLELIZATION_FACTOR = 3, 2
    assert provisioning.ensure_event_source_mapping().startswith("event source mapping: created")
    settings.CDC_MAX_RETRIES, settings.CDC_PARALLELIZATION_FACTOR = 4, 5
    assert provisioning.ensure_event_source_mapping() == "event source mapping: updated"

    [mapping] = aws.lambda_().list_event_source_mappings(FunctionName=settings.CDC_FUNCTION_NAME)["EventSourceMappings"]
    dlq_arn = aws.sqs().get_queue_attributes(QueueUrl=aws.dlq_url(), AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert mapping["EventSourceArn"] == provisioning.stream_arn()
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 4
    assert mapping["ParallelizationFactor"] == 5
    assert mapping["MaximumRecordAgeInSeconds"] == 3600
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": dlq_arn}}


def alarms_by_name() -> dict[str, dict]:
    pages = aws.cloudwatch().get_paginator("describe_alarms").paginate()
    return {alarm["AlarmName"]: alarm for page in pages for alarm in page["MetricAlarms"]}


def test_provision_aws_alarms_puts_every_alarm_on_one_topic_and_rerunning_changes_nothing(aws_env, settings):
    settings.ALARM_EMAIL = "oncall@example.com"
    settings.WEATHER_SOURCES = [("metar", "https://aviationweather.example/metar?ids={airports}")]
    out = io.StringIO()
    call_command("provision_aws", "--alarms", stdout=out)
    call_command("provision_aws", "--alarms", stdout=io.StringIO())

    alarms = alarms_by_name()
    [topic] = [t["TopicArn"] for t in aws.sns().list_topics()["Topics"] if t["TopicArn"].endswith(f":{settings.ALARM_TOPIC}")]
    [subscription] = aws.sns().list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "oncall@example.com")
    assert f"alarms: {len(alarms)} put" in out.getvalue()
    assert all(a["AlarmActions"] == [topic] and a["OKActions"] == [topic] for a in alarms.values())

    def watches(name: str) -> tuple:
        alarm = alarms[f"airticket-{name}"]
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        return (
            alarm["Namespace"],
            alarm["MetricName"],
            dimensions,
            alarm["Statistic"],
            alarm["Threshold"],
            alarm["Period"] * alarm["EvaluationPeriods"],
        )

    ours = {"service": settings.METRICS_SERVICE}
    assert watches("cdc-iterator-age") == (
        "AWS/Lambda",
        "IteratorAge",
        {"FunctionName": settings.CDC_FUNCTION_NAME},
        "Maximum",
        60_000,
        180,
    )
    assert watches("dlq-depth") == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": settings.DLQ_QUEUE}, "Maximum", 0, 300)
    assert watches("projection-lag") == (settings.METRICS_NAMESPACE, "ProjectionLag", ours, "Maximum", 60, 180)
    assert watches("reconcile-differences")[:5] == (settings.METRICS_NAMESPACE, "ReconcileDifferences", ours, "Maximum", 0)
    assert watches("weather-source-failing.metar-1") == (
        settings.METRICS_NAMESPACE,
        "WeatherPollSucceeded",
        {**ours, "source": "https://aviationweather.example/metar?ids={airports}"},
        "Sum",
        1,
        1800,
    )
    for stage in ("command", "query"):
        assert watches(f"5xx-rate.{stage}")[:4] == (
            "AWS/ApiGateway",
            "5XXError",
            {"ApiName": f"airticket-{stage}", "Stage": stage},
            "Average",
        )
    for function in ("airticket-command", "airticket-query", "airticket-cdc"):
        assert watches(f"lambda-errors.{function}")[:3] == ("AWS/Lambda", "Errors", {"FunctionName": function})
        assert watches(f"lambda-throttles.{function}")[:3] == ("AWS/Lambda", "Throttles", {"FunctionName": function})
    weather = {name for name in alarms if "weather-source-failing" in name}
    assert weather and all(alarms[name]["ComparisonOperator"] == "LessThanThreshold" for name in weather)
    assert all(a["ComparisonOperator"] == "GreaterThanThreshold" for name, a in alarms.items() if name not in weather)


def test_the_weather_alarm_fires_when_polling_stops_altogether_not_only_when_polls_fail(aws_env, settings):
    """A stopped schedule publishes no metric at all: the alarm watches the successes and takes
    missing data as breaching, in the alarms `provision_aws --alarms` puts and in the stack."""
    settings.WEATHER_SOURCES = [("metar", "https://metar.example/?ids={airports}"), ("cap", "https://cap.example/feed.xml")]
    call_command("provision_aws", "--alarms", stdout=io.StringIO())
    put = [a for name, a in alarms_by_name().items() if "weather-source-failing" in name]
    stacked = [
        r["Properties"] for r in stack.template()["Resources"].values() if "weather-source-failing" in r["Properties"].get("AlarmName", "")
    ]

    assert len(put) == len(stacked) == 2
    for alarm in (*put, *stacked):
        assert (alarm["MetricName"], alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
            "WeatherPollSucceeded",
            "Sum",
            "LessThanThreshold",
            1,
        )
        assert alarm["TreatMissingData"] == "breaching"
        assert alarm["Period"] * alarm["EvaluationPeriods"] == 1800
    # Every other alarm still takes no data as no news (no batch ran, no request came).
    others = [a for name, a in alarms_by_name().items() if "weather-source-failing" not in name]
    assert others and all(a["TreatMissingData"] == "notBreaching" for a in others)


def test_the_projection_lag_alarm_fires_on_the_metric_the_cdc_publishes(aws_env, settings):
    call_command("provision_aws", "--alarms", stdout=io.StringIO())
    name = "airticket-projection-lag"
    aws.cloudwatch().set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="lag 75 s")  # moto does not evaluate

    assert alarms_by_name()[name]["StateValue"] == "ALARM"
    assert alarms_by_name()[name]["AlarmDescription"].endswith("See docs/RUNBOOK.md#projection-lag.")


def test_the_dashboard_in_docs_is_the_one_provision_aws_puts(aws_env):
    call_command("provision_aws", "--alarms", stdout=io.StringIO())

    body = json.loads(aws.cloudwatch().get_dashboard(DashboardName="airticket")["DashboardBody"])
    assert body == provisioning.dashboard_body()
    assert json.loads((Path(settings.BASE_DIR) / "docs" / "dashboard.json").read_text()) == body


def test_the_stack_is_created_through_a_change_set_and_an_update_is_shown_before_it_is_applied(aws_env, settings):
    settings.DYNAMODB_TABLE, settings.KINESIS_STREAM, settings.DLQ_QUEUE = "stacked", "stacked-changes", "stacked-dlq"
    settings.ALARM_TOPIC, settings.ALARM_EMAIL = "stacked-alarms", "oncall@example.com"
    created = io.StringIO()
    call_command("provision_aws", "--stack", stdout=created)

    assert "(create)" in created.getvalue() and f"stack {settings.STACK_NAME}: CREATE_COMPLETE" in created.getvalue()
    assert "Add     Table AWS::DynamoDB::Table" in created.getvalue()
    table = aws.dynamodb().describe_table(TableName="stacked")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert (
        aws.kinesis().describe_stream_summary(StreamName="stacked-changes")["StreamDescriptionSummary"]["OpenShardCount"]
        == settings.KINESIS_SHARDS
    )
    assert aws.sqs().get_queue_url(QueueName="stacked-dlq")["QueueUrl"].endswith("/stacked-dlq")
    [topic] = [t["TopicArn"] for t in aws.sns().list_topics()["Topics"] if t["TopicArn"].endswith(":stacked-alarms")]
    assert json.loads(aws.cloudwatch().get_dashboard(DashboardName="airticket")["DashboardBody"]) == provisioning.dashboard_body()

    settings.KINESIS_SHARDS += 1
    shown = io.StringIO()
    call_command("provision_aws", "--stack", stdout=shown)
    applied = io.StringIO()
    call_command("provision_aws", "--stack", "--yes", stdout=applied)

    assert "(update): 1 change(s)" in shown.getvalue() and "Modify  ChangeStream AWS::Kinesis::Stream" in shown.getvalue()
    assert "left for review" in shown.getvalue()
    assert f"stack {settings.STACK_NAME}: UPDATE_COMPLETE" in applied.getvalue()
    assert (
        aws.kinesis().describe_stream_summary(StreamName="stacked-changes")["StreamDescriptionSummary"]["OpenShardCount"]
        == settings.KINESIS_SHARDS
    )


def test_the_template_in_infra_is_the_one_provision_aws_deploys_with_every_alarm(aws_env):
    template = stack.template()
    alarms = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]

    assert json.loads((Path(settings.BASE_DIR) / "infra" / "airticket.json").read_text()) == template
    assert [
        {k: v for k, v in a.items() if not k.endswith("Actions") and k != "ActionsEnabled"} for a in alarms
    ] == provisioning.alarm_definitions()
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms)
    assert template["Resources"]["Table"]["Properties"]["KinesisStreamSpecification"] == {
        "StreamArn": {"Fn::GetAtt": ["ChangeStream", "Arn"]}
    }
    assert template["Resources"]["CdcTrigger"]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_provision_aws_reports_a_shard_count_apart_from_the_setting_and_reshard_moves_the_stream_there(aws_env, settings):
    settings.KINESIS_SHARDS = 4
    out = io.StringIO()
    call_command("provision_aws", stdout=out)
    assert "2 open shards, KINESIS_SHARDS=4 (run provision_aws --reshard)" in out.getvalue()
    out = io.StringIO()
    call_command("provision_aws", "--reshard", stdout=out)
    assert "resharded from 2 to 4 open shards" in out.getvalue()
    assert provisioning.open_shard_count() == 4
    assert "4 open shards, as KINESIS_SHARDS says" in provisioning.check_shard_count()
