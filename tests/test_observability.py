"""Structured logs and EMF metrics, read back the way CloudWatch reads them: one JSON object per
log line, and EMF blobs (JSON with an `_aws` key) on stdout."""

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from botocore.stub import Stubber
from django.conf import settings
from django.core.management import CommandError, call_command

from admin_portal import selectors
from admin_portal import services as portal_services
from airticket import aws, observability
from bookings import repository as repo
from bookings import services as command_services
from cdc_lambda.handler import handler
from tests.admin_portal import test_weather_poll
from tests.admin_portal.factories import BookingFactory, CustomerFactory, make_flight
from tests.bookings.api import CUSTOMERS, booking, orders_url
from tests.cdc.changes import SHARD, Items, event, lambda_record, redelivered
from tests.cdc.readmodel import dlq_letters
from tests.factories import flight_data, make_customer

feeds = test_weather_poll.feeds  # the fixture serving feeds over local HTTP


@pytest.fixture
def logs(settings):
    """The JSON lines the root logger writes while the test runs, parsed."""
    settings.METRICS_EMF = True
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.json_formatter())
    handler.addFilter(observability.ContextFilter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    observability.reset()
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous_level)


def emf_blobs(out: str) -> list[dict]:
    """The EMF blobs among the lines on stdout."""
    blobs = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def metric_values(blobs: list[dict], **dimensions) -> dict[str, float]:
    """Every metric of the blobs whose dimensions include `dimensions`, name -> value (summed),
    after checking each blob's directive names it in the configured namespace."""
    values: dict[str, float] = {}
    for blob in blobs:
        [directive] = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == settings.METRICS_NAMESPACE
        assert isinstance(blob["_aws"]["Timestamp"], int)
        if any(blob.get(k) != v for k, v in dimensions.items()):
            continue
        for metric in directive["Metrics"]:
            assert all(d in blob for d in directive["Dimensions"][0])
            value = blob[metric["Name"]]
            values[metric["Name"]] = values.get(metric["Name"], 0) + (sum(value) if isinstance(value, list) else value)
    return values


def test_a_command_logs_json_lines_with_its_request_id_and_counts_accepted_and_refused(staff, logs, capsys):
    body = {"customer_id": "ada", "full_name": "Ada L", "mobile": "", "email": "ada@example.com"}
    accepted = staff.post(CUSTOMERS, body, format="json")
    refused = staff.post(CUSTOMERS, body, format="json")
    flight = staff.post("/api/v1/flights", flight_data(), format="json").json()
    ordered = staff.post(orders_url("ada"), booking(flight), format="json", HTTP_X_REQUEST_ID="trace-0123456789")

    assert (accepted.status_code, refused.status_code, ordered.status_code) == (201, 409, 201)
    assert accepted["X-Request-Id"] != refused["X-Request-Id"]
    assert ordered["X-Request-Id"] == "trace-0123456789"  # a caller's plain id is kept
    lines = logs()
    [access] = [line for line in lines if line.get("request_id") == ordered["X-Request-Id"]]
    assert access["level"] == "INFO" and access["status"] == 201 and access["customer_id"] == "ada"
    assert access["method"] == "POST" and access["path"] == orders_url("ada") and access["service"] == settings.METRICS_SERVICE
    [refusal] = [line for line in lines if line.get("request_id") == refused["X-Request-Id"]]
    assert (refusal["status"], refusal["reason"]) == (409, "customer_exists")

    blobs = emf_blobs(capsys.readouterr().out)
    assert metric_values(blobs)["CommandAccepted"] == 3  # customer, flight, order
    assert metric_values(blobs, reason="customer_exists") == {"CommandRefused": 1}
    assert observability.snapshot()["CommandRefused reason=customer_exists"] == 1


def test_a_forged_request_id_is_replaced(staff, logs):
    response = staff.get("/api/v1/customers/ada", HTTP_X_REQUEST_ID='bad" id\nINFO forged')

    assert response["X-Request-Id"] != 'bad" id\nINFO forged'
    assert len(response["X-Request-Id"]) == 32
    assert all("forged" not in json.dumps(line) for line in logs())


@pytest.mark.django_db(transaction=True)
def test_a_cdc_batch_with_poison_logs_one_summary_line_with_its_shard_and_range_and_emits_its_metrics(aws_env, logs, capsys):
    items = Items()
    first = items.customer("grace")
    records = [first, lambda_record(data=b"not a change record"), items.customer("grace", full_name="Grace H")]

    assert handler(event(records)) == {"batchItemFailures": []}

    [summary] = [line for line in logs() if "CdcRecords" in line]
    assert summary["level"] == "WARNING"
    assert summary["shard"] == SHARD
    assert (summary["first_sequence"], summary["last_sequence"]) == (
        first["kinesis"]["sequenceNumber"],
        records[-1]["kinesis"]["sequenceNumber"],
    )
    assert (summary["CdcRecords"], summary["CdcChanges"], summary["CdcChangesApplied"], summary["CdcPoison"]) == (3, 2, 1, 1)
    assert summary["CdcDuplicatesIgnored"] == 1  # the first version of grace, superseded in the batch
    [blob] = emf_blobs(capsys.readouterr().out)
    values = metric_values([blob])
    assert {k: values[k] for k in ("CdcRecords", "CdcChangesApplied", "CdcDuplicatesIgnored", "CdcPoison", "CdcPoisonNotQueued")} == {
        "CdcRecords": 3,
        "CdcChangesApplied": 1,
        "CdcDuplicatesIgnored": 1,
        "CdcPoison": 1,
        "CdcPoisonNotQueued": 0,
    }
    units = {m["Name"]: m["Unit"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert (units["CdcBatchDuration"], units["ProjectionLag"], units["CdcPoison"]) == ("Milliseconds", "Seconds", "Count")
    assert 0 <= values["ProjectionLag"] < 60
    assert len(dlq_letters()) == 1


def _summaries(lines: list[dict]) -> list[dict]:
    return [line for line in lines if "CdcRecords" in line]


@pytest.mark.django_db(transaction=True)
def test_a_replayed_batch_counts_every_change_as_a_duplicate_ignored(aws_env, logs, capsys):
    items = Items()
    records = [items.customer("grace"), items.flight("MU5159"), items.order("grace", "o1"), items.customer("grace", full_name="Grace H")]
    older = items.customer("ada")
    newer = items.customer("ada", full_name="Ada L")

    assert handler(event([*records, newer])) == {"batchItemFailures": []}
    assert handler(event([redelivered(record) for record in records])) == {"batchItemFailures": []}
    assert handler(event([older])) == {"batchItemFailures": []}  # an older version, late

    first, replay, late = _summaries(logs())
    assert (first["CdcChanges"], first["CdcChangesApplied"], first["CdcDuplicatesIgnored"]) == (5, 4, 1)
    assert (replay["CdcChanges"], replay["CdcChangesApplied"], replay["CdcDuplicatesIgnored"]) == (4, 0, 4)
    assert (late["CdcChanges"], late["CdcChangesApplied"], late["CdcDuplicatesIgnored"]) == (1, 0, 1)
    blobs = emf_blobs(capsys.readouterr().out)
    assert [metric_values([blob])["CdcDuplicatesIgnored"] for blob in blobs] == [1, 4, 1]


@pytest.mark.django_db
def test_a_notification_run_emits_sent_failed_and_skipped(logs, capsys):
    flight = make_flight()
    BookingFactory(flight=flight)
    BookingFactory(flight=flight, customer=CustomerFactory(email=""))
    bookings = selectors.passenger_list_by_flight(flight_number=flight.flight_number, flight_date=flight.flight_date)

    portal_services.passengers_notify(bookings=bookings, reason="r", subject="s", message="m")
    portal_services.passengers_notify(bookings=bookings, reason="r", subject="s", message="m")

    blobs = emf_blobs(capsys.readouterr().out)
    assert [metric_values([b]) for b in blobs] == [
        {"NotificationsSent": 1, "NotificationsFailed": 1, "NotificationsSkipped": 0},
        {"NotificationsSent": 0, "NotificationsFailed": 1, "NotificationsSkipped": 1},
    ]
    assert observability.snapshot()["NotificationsFailed"] == 2
    assert any(line["message"].startswith("notified Booking for r") for line in logs())


def test_without_emf_the_counters_still_count_and_stdout_stays_quiet(settings, capsys):
    settings.METRICS_EMF = False
    observability.reset()

    observability.count("WeatherPollFailed", source="metar=https://example.org")

    assert observability.snapshot() == {"WeatherPollFailed source=metar=https://example.org": 1}
    assert capsys.readouterr().out == ""


def _log_one_line(**environ) -> subprocess.CompletedProcess:
    code = (
        "import django, logging; django.setup(); from airticket import observability\n"
        "with observability.bind(order_id='o-1'):\n"
        "    logging.getLogger('probe').warning('hello %s', 'world')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "airticket.settings", **environ}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)


def test_log_format_json_makes_every_line_json_and_plain_text_stays_the_default():
    as_json = _log_one_line(LOG_FORMAT="json")
    plain = _log_one_line()

    [line] = [json.loads(text) for text in as_json.stderr.splitlines()]
    assert (line["level"], line["message"], line["order_id"], line["location"]) == ("WARNING", "hello world", "o-1", "<module>:3")
    assert plain.stderr.rstrip().endswith("WARNING probe hello world order_id=o-1")


def test_a_bad_log_format_stops_the_process():
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _log_one_line(LOG_FORMAT="yaml")
    assert "LOG_FORMAT='yaml'" in failed.value.stderr


@pytest.mark.django_db
def test_readyz_times_each_dependency_and_reports_the_dlq_depth_and_the_published_lag(staff, settings):
    settings.CDC_LOCAL_POLLER = False  # as on AWS: the lag is the CDC Lambda's published metric
    aws.sqs().send_message(QueueUrl=aws.dlq_url(), MessageBody=json.dumps({"reason": "poison"}))
    aws.cloudwatch().put_metric_data(
        Namespace=settings.METRICS_NAMESPACE,
        MetricData=[
            {
                "MetricName": "ProjectionLag",
                "Dimensions": [{"Name": "service", "Value": settings.METRICS_SERVICE}],
                "Value": 42.5,
                "Unit": "Seconds",
            }
        ],
    )

    response = staff.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["dependencies"]) == {"database", "dynamodb", "kinesis", "dlq"}
    assert all(d["status"] == "ok" and d["latency_ms"] >= 0 for d in body["dependencies"].values())
    assert body["dependencies"]["dlq"]["depth"] == 1
    assert (body["cdc"]["lag_seconds"], body["cdc"]["source"]) == (42.5, "cloudwatch ProjectionLag")


@pytest.mark.django_db
def test_readyz_locally_reads_the_lag_from_the_poller_checkpoints(staff, settings):
    settings.CDC_LOCAL_POLLER = True

    body = staff.get("/readyz").json()

    assert body["cdc"] == {
        "status": "ok",
        "latency_ms": body["cdc"]["latency_ms"],
        "lag_seconds": 0.0,
        "source": "poller checkpoints",
        "shards": 0,
    }


@pytest.mark.django_db
def test_readyz_is_for_staff_only_and_fails_when_a_dependency_is_down(anonymous, as_customer, staff, settings):
    assert anonymous.get("/readyz").status_code == 401
    assert as_customer("ada").get("/readyz").status_code == 403
    settings.KINESIS_STREAM = "no-such-stream"

    response = staff.get("/readyz")

    assert response.status_code == 503
    assert response.json()["dependencies"]["database"]["status"] == "ok"
    assert response.json()["dependencies"]["kinesis"]["status"].startswith("error: ResourceNotFoundException")


def test_healthz_stays_open_and_answers_without_the_readiness_details(anonymous):
    body = anonymous.get("/healthz").json()

    assert "dependencies" not in body and "checks" in body


@pytest.mark.django_db(transaction=True)
def test_reconcile_publishes_the_differences_it_found(aws_env, logs, capsys):
    make_customer("lin")  # in DynamoDB, never projected: one difference

    with pytest.raises(CommandError):  # the command fails when the sides differ
        call_command("reconcile", stdout=io.StringIO())

    [blob] = emf_blobs(capsys.readouterr().out)
    assert metric_values([blob])["ReconcileDifferences"] == 1
    assert metric_values([blob])["ReconcileItems"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_operations_page_shows_the_counters_every_process_adds_to(aws_env, admin_client, settings):
    settings.METRICS_STORE = True  # as locally: web, poller and notifier share the counters
    observability.reset()
    items = Items()
    handler(event([items.customer("mei"), lambda_record(data=b"junk")]))
    observability._counters.clear()  # another process's memory: the page must not depend on it
    handler(event([items.customer("mei", full_name="Mei W")]))

    page = admin_client.get("/admin/admin_portal/shardcheckpoint/").content.decode()

    assert observability.snapshot()["CdcRecords"] == 3 and observability.snapshot()["CdcPoison"] == 1
    assert "<td>CdcRecords</td><td>3</td>" in page and "<td>CdcPoison</td><td>1</td>" in page


@pytest.mark.django_db
def test_weather_polling_counts_success_and_failure_per_source(feeds, settings, logs, capsys):
    broken = feeds.serve("/cap/broken.atom", b"", status=500)
    metar = feeds.serve("/metar.json", test_weather_poll.metar_now("09028G42KT 0600 +TSRA FG BKN010CB 24/23 Q0998"))
    settings.WEATHER_SOURCES = [("cap", broken), ("metar", metar)]

    call_command("poll_weather", stdout=io.StringIO())

    blobs = emf_blobs(capsys.readouterr().out)
    assert metric_values(blobs, source=broken) == {"WeatherPollFailed": 1}
    assert metric_values(blobs, source=metar) == {"WeatherPollSucceeded": 1}


def test_a_transaction_conflict_and_its_retry_are_counted(aws_env, logs, capsys):
    flight = {**repo.flight_key("MU1", "2026-12-01"), "entity": "FLIGHT", "flight_number": "MU1", "flight_date": "2026-12-01"}
    flight.update(status="SCHEDULED", version=7)
    with Stubber(aws.dynamodb()) as dynamodb:  # moto serialises requests: it never conflicts itself
        dynamodb.add_response("get_item", {"Item": repo.marshal(flight)})
        dynamodb.add_client_error("update_item", service_error_code="TransactionConflictException", http_status_code=400)
        dynamodb.add_response("get_item", {"Item": repo.marshal(flight)})
        dynamodb.add_response("update_item", {"Attributes": repo.marshal({**flight, "status": "CANCELLED", "version": 8})})
        command_services.flight_cancel(flight_number="MU1", flight_date="2026-12-01")

    assert metric_values(emf_blobs(capsys.readouterr().out)) == {"CommandTransactionConflicts": 1, "CommandConditionRetries": 1}
