import base64
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from admin_portal import selectors
from admin_portal.models import Customer, Flight, Notification, ShardCheckpoint, WeatherAlert
from airticket import aws
from airticket.auth import STAFF, issue_token
from bookings import repository as repo
from bookings import services as commands
from cdc_lambda import bridge, dlq, poller
from tests import factories as command_factories
from tests.admin_portal.factories import BookingFactory, CustomerFactory, WeatherAlertFactory, airport, make_flight
from tests.conftest import client_with

DAY = date(2026, 12, 10)
BOOKINGS = "/admin/admin_portal/booking/"
OPERATIONS = "/admin/admin_portal/shardcheckpoint/"


def shown(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


@pytest.mark.django_db
def test_the_portal_sends_anonymous_visitors_to_the_login_page(client):
    response = client.get(BOOKINGS)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["airport", "customer", "flight", "booking", "weatheralert", "notification", "flightevent"])
def test_every_changelist_renders_without_counting_a_whole_table(admin_client, model):
    BookingFactory.create_batch(3)
    WeatherAlertFactory()
    with CaptureQueriesContext(connection) as queries:
        # follow: the flight list opens on today by redirecting to its date filter
        shown(admin_client.get(f"/admin/admin_portal/{model}/", follow=True))
    full_counts = [q["sql"] for q in queries if q["sql"].upper().startswith("SELECT COUNT(*)") and "LIMIT" not in q["sql"].upper()]
    assert full_counts == []


@pytest.mark.django_db
def test_read_models_cannot_be_added_changed_or_deleted_in_the_admin(admin_client):
    booking = BookingFactory()
    assert admin_client.get(f"{BOOKINGS}add/").status_code == 403
    assert admin_client.get(f"{BOOKINGS}{booking.pk}/delete/").status_code == 403
    page = shown(admin_client.get(f"{BOOKINGS}{booking.pk}/change/"))
    assert 'name="_save"' not in page


@pytest.mark.django_db
def test_the_passengers_of_a_flight_view_lists_only_that_flight(admin_client):
    mine = BookingFactory(flight=make_flight(number="MU5159", day=DAY))
    other = BookingFactory(flight=make_flight(number="MU5160", day=DAY))

    page = shown(admin_client.get(BOOKINGS, {"flight_number": "mu5159", "flight_date": "2026-12-10"}))

    assert mine.order_id in page and other.order_id not in page


@pytest.mark.django_db
def test_the_city_view_includes_bookings_that_only_transfer_there(admin_client):
    transfer = BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PVG", "NRT")))
    other = BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PEK")))
    later = BookingFactory(flight=make_flight(day=date(2026, 12, 20), route=("PVG", "PEK")))

    page = shown(admin_client.get(BOOKINGS, {"city": "Shanghai", "city_from": "2026-12-10", "city_to": "2026-12-16"}))

    assert transfer.order_id in page
    assert other.order_id not in page and later.order_id not in page


@pytest.mark.django_db
def test_a_bad_filter_value_is_refused_not_widened(admin_client):
    BookingFactory()
    response = admin_client.get(BOOKINGS, {"flight_number": "MU5159' OR 1=1", "flight_date": "2026-12-10"})
    assert response.status_code == 302 and "e=1" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["MU5159", "Shanghai", "PVG", "alice", "Alice Lid"])
def test_the_booking_search_finds_by_flight_city_code_customer_id_and_name(admin_client, term):
    alice = CustomerFactory(customer_id="alice", full_name="Alice Liddell")
    mine = BookingFactory(customer=alice, flight=make_flight(number="MU5159", day=DAY, route=("CAN", "PVG", "NRT")))
    other = BookingFactory(flight=make_flight(number="CA1234", day=DAY, route=("CAN", "PEK")))

    page = shown(admin_client.get(BOOKINGS, {"q": term}))

    assert mine.order_id in page and other.order_id not in page


@pytest.mark.django_db
def test_the_notify_action_asks_for_a_message_then_sends_it_once(admin_client):
    bookings = BookingFactory.create_batch(2, flight=make_flight(day=DAY))
    selection = {"action": "notify_passengers", ACTION_CHECKBOX_NAME: [b.pk for b in bookings], "index": 0}

    form = admin_client.post(BOOKINGS, selection)
    sent = admin_client.post(BOOKINGS, {**selection, "apply": "Send", "subject": "Gate change", "message": "Gate B12"}, follow=True)
    admin_client.post(BOOKINGS, {**selection, "apply": "Send", "subject": "Gate change", "message": "Gate B12"})

    assert 'name="subject"' in shown(form)
    assert "Sent 2, skipped 0" in shown(sent)
    assert len(mail.outbox) == 2
    assert Notification.objects.filter(sent_by="admin").count() == 2


@pytest.mark.django_db
def test_the_cancel_action_cancels_the_flight_on_the_command_side(admin_client, aws_env):
    flight = command_factories.make_flight()
    projected = make_flight(number=flight["flight_number"], day=date.fromisoformat(flight["flight_date"]))
    selection = {"action": "cancel_flights", ACTION_CHECKBOX_NAME: [projected.pk], "index": 0, "apply": "Cancel these flights"}

    response = admin_client.post("/admin/admin_portal/flight/", selection, follow=True)

    assert "1 flight(s) changed on the command side" in shown(response)
    assert commands.flight_get(flight_number=flight["flight_number"], flight_date=flight["flight_date"])["status"] == "CANCELLED"


@pytest.mark.django_db
def test_the_reschedule_action_delays_the_flight_on_the_command_side(admin_client, aws_env):
    flight = command_factories.make_flight()
    projected = make_flight(number=flight["flight_number"], day=date.fromisoformat(flight["flight_date"]))
    selection = {"action": "reschedule_flights", ACTION_CHECKBOX_NAME: [projected.pk], "index": 0, "apply": "Reschedule"}

    refused = admin_client.post("/admin/admin_portal/flight/", {**selection, "departure_time": "25:00"})
    admin_client.post("/admin/admin_portal/flight/", {**selection, "departure_time": "09:45", "arrival_time": "12:00"})

    assert "a time as HH:MM" in shown(refused)
    changed = commands.flight_get(flight_number=flight["flight_number"], flight_date=flight["flight_date"])
    assert (changed["status"], changed["departure_time"]) == ("DELAYED", "09:45")


@pytest.mark.django_db
def test_staff_enter_a_weather_alert_and_notify_everyone_it_affects(admin_client):
    airport("PVG")
    BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PVG", "NRT")))
    form = {
        "city": "",
        "airport": "PVG",
        "kind": "TYPHOON",
        "severity": "EXTREME",
        "valid_from_0": "2026-12-10",
        "valid_from_1": "00:00:00",
        "valid_to_0": "2026-12-11",
        "valid_to_1": "00:00:00",
        "headline": "Typhoon In-fa",
        "raw_text": "",
    }

    created = admin_client.post("/admin/admin_portal/weatheralert/add/", form)
    alert = WeatherAlert.objects.get()
    admin_client.post(
        "/admin/admin_portal/weatheralert/",
        {"action": "notify_affected", ACTION_CHECKBOX_NAME: [alert.pk], "index": 0, "apply": "Send", "message": ""},
    )

    assert created.status_code == 302
    assert (alert.city, alert.source) == ("Shanghai", "MANUAL")
    assert len(mail.outbox) == 1 and "Typhoon In-fa" in mail.outbox[0].body


def _letter(*, data: bytes, reason: str = dlq.RETRIES_EXHAUSTED, error: str = "database was down") -> str:
    record = poller.lambda_record(
        record={
            "Data": data,
            "PartitionKey": "CUSTOMER#zed|PROFILE",
            "SequenceNumber": "49000000000000000001",
            "ApproximateArrivalTimestamp": datetime.now(UTC),
        },
        shard_id="shardId-000000000000",
        stream_arn="arn:aws:kinesis:us-east-1:123456789012:stream/airticket-changes",
    )
    return dlq.body(dlq.Letter(record=record, reason=reason, error=error))


def _customer_change() -> bytes:
    stamp = "2026-11-26T10:00:00.000000Z"
    key = {"PK": "CUSTOMER#zed", "SK": "PROFILE"}
    image = {
        **key,
        "entity": repo.CUSTOMER,
        "customer_id": "zed",
        "full_name": "Zed",
        "mobile": "",
        "email": "zed@example.com",
        "version": 1,
        "created_at": stamp,
        "updated_at": stamp,
    }
    change = {
        "eventID": "1",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime.now(UTC),
            "Keys": repo.marshal(key),
            "NewImage": repo.marshal(image),
            "SizeBytes": 200,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    return bridge.to_kinesis_record(change)["Data"]


@pytest.mark.django_db
def test_the_operations_page_shows_checkpoints_and_dead_letters_and_redrives_them(admin_client, aws_env):
    ShardCheckpoint.objects.create(
        consumer="poller",
        stream="arn:aws:kinesis:us-east-1:123456789012:stream/airticket-changes",
        shard_id="shardId-000000000000",
        records=7,
    )
    aws.sqs().send_message(QueueUrl=aws.dlq_url(), MessageBody=_letter(data=_customer_change()))
    garbage = _letter(data=b"not json", reason=dlq.POISON, error="undecodable")
    poison = aws.sqs().send_message(QueueUrl=aws.dlq_url(), MessageBody=garbage)["MessageId"]

    page = shown(admin_client.get(OPERATIONS))
    redriven = shown(admin_client.post(OPERATIONS, {"command": "redrive"}, follow=True))

    assert "shardId-000000000000" in page and 'id="dlq-depth">2<' in page
    assert "undecodable" in page and "retries_exhausted" in page
    assert "1 applied, 1 still failing" in redriven and f"Letter {poison}: still poison" in redriven  # the id as SQS has it
    assert Customer.objects.get(pk="zed").full_name == "Zed"
    assert 'id="dlq-depth">1<' in shown(admin_client.get(OPERATIONS))


@pytest.mark.django_db
def test_dead_letters_can_be_deleted_one_by_one_or_purged(admin_client, aws_env):
    for _ in range(3):
        aws.sqs().send_message(QueueUrl=aws.dlq_url(), MessageBody=_letter(data=base64.b64encode(b"junk"), reason=dlq.POISON, error="junk"))
    [first, *_] = aws.sqs().receive_message(QueueUrl=aws.dlq_url(), MaxNumberOfMessages=1, VisibilityTimeout=0)["Messages"]

    admin_client.post(OPERATIONS, {"command": "delete", "message_id": first["MessageId"]})
    after_delete = shown(admin_client.get(OPERATIONS))
    admin_client.post(OPERATIONS, {"command": "purge"})

    assert 'id="dlq-depth">2<' in after_delete
    assert "The dead-letter queue is empty." in shown(admin_client.get(OPERATIONS))


@pytest.mark.django_db
def test_a_search_term_that_is_both_a_customer_and_a_city_finds_both(admin_client):
    alices_own = BookingFactory(customer=CustomerFactory(customer_id="alice"), flight=make_flight(day=DAY, route=("PVG", "PEK")))
    through_alice_texas = BookingFactory(flight=make_flight(day=DAY, route=("ALI", "IAH")))
    unrelated = BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PEK")))

    page = shown(admin_client.get(BOOKINGS, {"q": "alice"}))

    assert alices_own.order_id in page and through_alice_texas.order_id in page
    assert unrelated.order_id not in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("admin_query", "api_query"),
    [
        ({"flight_number": "MU5159", "flight_date": "2026-12-10"}, {"flight_number": "MU5159", "flight_date": "2026-12-10"}),
        (
            {"city": "Shanghai", "city_from": "2026-12-10", "city_to": "2026-12-10"},
            {"city": "Shanghai", "date_from": "2026-12-10", "date_to": "2026-12-10"},
        ),
        ({"weather": "ALERT"}, {"weather": "ALERT"}),
    ],
    ids=["flight", "city", "weather"],
)
def test_the_admin_the_api_and_the_notify_action_count_the_same_affected_passengers(admin_client, admin_query, api_query):
    flight = make_flight(number="MU5159", day=DAY, route=("PVG", "PEK"))
    BookingFactory.create_batch(4, flight=flight)
    BookingFactory.create_batch(3, flight=flight, status="CANCELLED")
    alert = WeatherAlertFactory(city="Shanghai", valid_from=datetime(2026, 12, 9, tzinfo=UTC), valid_to=datetime(2026, 12, 11, tzinfo=UTC))
    admin_query = {k: str(alert.pk) if v == "ALERT" else v for k, v in admin_query.items()}
    api_query = {k: str(alert.pk) if v == "ALERT" else v for k, v in api_query.items()}
    staff = client_with(issue_token(role=STAFF))

    in_admin = shown(admin_client.get(BOOKINGS, admin_query))
    cancelled_in_admin = admin_client.get(BOOKINGS, {**admin_query, "status__exact": "CANCELLED"}).context["cl"].result_count
    in_api = staff.get("/api/v1/query/passengers", api_query).json()["count"]
    notified = staff.post("/api/v1/notifications", {**api_query, "subject": "s", "message": "m"}, format="json").json()["selected"]

    assert admin_client.get(BOOKINGS, admin_query).context["cl"].result_count == in_api == notified == 4
    assert cancelled_in_admin == 3
    assert "4 results" in in_admin or "4 bookings" in in_admin
    counts = selectors.flight_passenger_counts(flight=flight)
    assert (counts.by_status, counts.affected, counts.no_email, counts.notified) == ({"ORDERED": 4, "CANCELLED": 3}, 4, 0, 4)


@pytest.mark.django_db
def test_a_booking_row_shows_its_flights_current_status_and_times_and_the_booked_times(admin_client):
    flight = make_flight(number="MU2324", day=DAY)
    booking = BookingFactory(flight=flight)
    # The delay as the projection writes it: the flight row moves, the booking keeps what was booked.
    Flight.objects.filter(pk=flight.pk).update(status="DELAYED", departure_time=time(15, 30), arrival_time=time(17, 40), version=2)
    staff = client_with(issue_token(role=STAFF))

    [row] = staff.get("/api/v1/query/passengers", {"flight_number": "MU2324", "flight_date": "2026-12-10"}).json()["results"]
    page = shown(admin_client.get(BOOKINGS, {"flight_number": "MU2324", "flight_date": "2026-12-10"}))

    assert (row["order_id"], row["flight_status"], row["departure_time"], row["arrival_time"]) == (
        booking.order_id,
        "DELAYED",
        "15:30:00",
        "17:40:00",
    )
    assert (row["booked_departure_time"], row["booked_arrival_time"]) == ("08:00:00", "12:30:00")
    # The list shows the current departure, the booked one struck through beside it.
    assert "15:30" in page and '<s class="muted" title="booked">08:00</s>' in page and "DELAYED" in page


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["flight", "booking"])
def test_the_flight_and_booking_lists_open_on_today_and_clearing_the_date_shows_every_date(admin_client, model):
    today = (timezone.now() - timedelta(hours=12)).date()  # the first date that is still today somewhere
    BookingFactory(flight=make_flight(number="MU7001", day=today - timedelta(days=2)))
    BookingFactory(flight=make_flight(number="MU7002", day=today))

    opened = admin_client.get(f"/admin/admin_portal/{model}/", follow=True)
    every_date = shown(admin_client.get(f"/admin/admin_portal/{model}/", {"flight_date__from": ""}))

    assert opened.redirect_chain[0][0].endswith(f"?flight_date__from={today.isoformat()}")
    assert "MU7002" in shown(opened) and "MU7001" not in shown(opened)
    assert "MU7001" in every_date and "MU7002" in every_date
    assert 'href="?flight_date__from="' in shown(opened)  # the date filter's "clear" link


@pytest.mark.django_db
def test_a_passenger_selection_from_the_sidebar_is_not_narrowed_by_the_date_the_list_opened_on(admin_client):
    past = (timezone.now() - timedelta(days=5)).date()
    mine = BookingFactory(flight=make_flight(number="MU7003", day=past))

    opened = shown(admin_client.get(BOOKINGS, follow=True))
    selection = shown(admin_client.get(BOOKINGS, {"flight_number": "MU7003", "flight_date": past.isoformat()}))

    form = opened.split('data-filter-title="passengers of a flight"')[1].split("</form>")[0]
    assert 'name="flight_date__from"' not in form
    assert mine.order_id in selection
