from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework import serializers

from admin_portal import selectors
from admin_portal.models import Flight, Notification, WeatherAlert
from admin_portal.pagination import DeferredJoinPaginator
from admin_portal.serializers import PassengerOutput
from tests.admin_portal.factories import BookingFactory, CustomerFactory, WeatherAlertFactory, airport, local_today, make_flight

DAY = date(2026, 12, 10)
PASSENGERS = "/api/v1/query/passengers"


def order_ids(response) -> set[str]:
    return {row["order_id"] for row in response.json()["results"]}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/query/customers",
        f"{PASSENGERS}?flight_number=MU5159&flight_date=2026-12-10",
        "/api/v1/query/weather-alerts",
    ],
)
def test_the_query_api_refuses_anonymous_callers_and_customer_tokens(path, anonymous_api, customer_api):
    assert anonymous_api.get(path).status_code == 401
    response = customer_api.get(path)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_customer_tokens_may_not_notify_passengers(customer_api):
    body = {"flight_number": "MU5159", "flight_date": "2026-12-10", "subject": "s", "message": "m"}
    assert customer_api.post("/api/v1/notifications", body, format="json").status_code == 403


def test_staff_lists_the_passengers_of_a_flight_with_their_contact_and_route(staff_api):
    flight = make_flight(number="MU5159", day=DAY, route=("PVG", "PEK", "CAN"))
    booking = BookingFactory(flight=flight, customer=CustomerFactory(customer_id="alice", full_name="Alice", email="alice@example.com"))
    BookingFactory(flight=flight, status="CANCELLED")

    response = staff_api.get(PASSENGERS, {"flight_number": "MU5159", "flight_date": "2026-12-10"})

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1 and body["next"] is None and body["previous"] is None
    [row] = body["results"]
    assert row["order_id"] == booking.order_id
    assert row["status"] == "ORDERED"
    assert row["customer"] == {"customer_id": "alice", "full_name": "Alice", "mobile": "+86 138 0000 0000", "email": "alice@example.com"}
    assert row["route"] == ["PVG", "PEK", "CAN"]
    assert row["flight_number"] == "MU5159" and row["flight_date"] == "2026-12-10"


def test_the_status_filter_selects_cancelled_bookings(staff_api):
    flight = make_flight(number="MU5159", day=DAY)
    BookingFactory(flight=flight)
    cancelled = BookingFactory(flight=flight, status="CANCELLED")

    response = staff_api.get(PASSENGERS, {"flight_number": "MU5159", "flight_date": "2026-12-10", "status": "CANCELLED"})

    assert order_ids(response) == {cancelled.order_id}


def test_staff_finds_the_bookings_through_a_city_including_transfer_only_stops(staff_api):
    transfer = BookingFactory(flight=make_flight(day=DAY, route=("CAN", "SHA", "NRT")))
    origin = BookingFactory(flight=make_flight(day=DAY + timedelta(days=6), route=("PVG", "PEK")))
    BookingFactory(flight=make_flight(day=DAY + timedelta(days=7), route=("PVG", "PEK")))
    BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PEK")))

    response = staff_api.get(PASSENGERS, {"city": "Shanghai", "date_from": "2026-12-10", "date_to": "2026-12-16"})

    assert response.status_code == 200
    assert order_ids(response) == {transfer.order_id, origin.order_id}


def test_staff_lists_the_passengers_under_active_weather(staff_api):
    WeatherAlertFactory(city="Shanghai")
    airport("SHA")
    hit = BookingFactory(flight=make_flight(day=local_today("SHA"), route=("CAN", "SHA", "NRT")))
    BookingFactory(flight=make_flight(day=local_today("SHA") + timedelta(days=5), route=("CAN", "SHA", "NRT")))

    response = staff_api.get(PASSENGERS, {"weather": "active"})

    assert order_ids(response) == {hit.order_id}


def test_pages_carry_count_next_and_previous(staff_api):
    flight = make_flight(number="MU5159", day=DAY)
    BookingFactory.create_batch(5, flight=flight)
    query = {"flight_number": "MU5159", "flight_date": "2026-12-10", "page_size": 2}

    first = staff_api.get(PASSENGERS, {**query, "page": 1}).json()
    last = staff_api.get(PASSENGERS, {**query, "page": 3}).json()

    assert first["count"] == 5 and len(first["results"]) == 2
    assert "page=2" in first["next"] and first["previous"] is None
    assert len(last["results"]) == 1 and last["next"] is None


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"flight_number": "MU5159", "flight_date": "10/12/2026"}, "flight_date"),
        ({"flight_number": "MU5159", "flight_date": "2026-02-30"}, "flight_date"),
        ({"flight_number": "MU5159' OR '1'='1", "flight_date": "2026-12-10"}, "flight_number"),
        ({"flight_number": "MU5159"}, "flight_date"),
        ({"flight_number": "MU5159", "flight_date": "2026-12-10", "status": "BOARDED"}, "status"),
        ({"flight_number": "MU5159", "flight_date": "2026-12-10", "page": "-1"}, "page"),
        ({"flight_number": "MU5159", "flight_date": "2026-12-10", "page": "0"}, "page"),
        ({"flight_number": "MU5159", "flight_date": "2026-12-10", "page_size": "100000"}, "page_size"),
        ({"flight_number": "MU5159", "flight_date": "2026-12-10", "flight_no": "x"}, "flight_no"),
        ({"city": "'; DROP TABLE admin_portal_booking; --"}, "city"),
        ({"city": "Shanghai", "date_from": "2026-12-10", "date_to": "2026-12-01"}, "date_to"),
        ({"city": "Shanghai", "date_from": "yesterday"}, "date_from"),
        ({"date_from": "2026-12-10"}, "city"),
        ({"weather": "sunny"}, "weather"),
        ({"weather": "active", "city": "Shanghai"}, "non_field_errors"),
        ({}, "non_field_errors"),
    ],
)
def test_bad_passenger_parameters_are_a_400_naming_the_parameter(staff_api, query, parameter):
    response = staff_api.get(PASSENGERS, query)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert parameter in error["fields"]


def test_customers_are_searched_by_id_or_name_prefix(staff_api):
    CustomerFactory(customer_id="alice", full_name="Alice Liddell")
    CustomerFactory(customer_id="bob", full_name="Bob Builder")

    response = staff_api.get("/api/v1/query/customers", {"search": "Ali"})

    assert response.status_code == 200
    assert [c["customer_id"] for c in response.json()["results"]] == ["alice"]
    assert staff_api.get("/api/v1/query/customers", {"search": "x' OR 1=1 --"}).status_code == 400


def test_staff_creates_lists_and_expires_a_weather_alert(staff_api):
    airport("PVG")
    body = {
        "airport": "PVG",
        "kind": "TYPHOON",
        "severity": "EXTREME",
        "valid_from": (timezone.now() - timedelta(hours=1)).isoformat(),
        "valid_to": (timezone.now() + timedelta(days=2)).isoformat(),
        "headline": "Typhoon In-fa",
    }

    created = staff_api.post("/api/v1/query/weather-alerts", body, format="json")

    assert created.status_code == 201, created.json()
    alert = created.json()
    assert alert["city"] == "Shanghai" and alert["country"] == "CN" and alert["source"] == "API" and alert["active"] is True
    listed = staff_api.get("/api/v1/query/weather-alerts", {"active": "true"}).json()
    assert [a["id"] for a in listed["results"]] == [alert["id"]]

    expired = staff_api.post(f"/api/v1/query/weather-alerts/{alert['id']}/expire")

    assert expired.status_code == 200 and expired.json()["active"] is False
    assert staff_api.get("/api/v1/query/weather-alerts", {"active": "true"}).json()["count"] == 0
    assert staff_api.get(f"/api/v1/query/weather-alerts/{alert['id']}").json()["active"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"valid_to": "2025-01-01T00:00:00Z"}, "valid_to"),
        ({"airport": "ZZZ"}, "airport"),
        ({"airport": None}, "city"),
        ({"kind": "DRIZZLE"}, "kind"),
        ({"colour": "red"}, "colour"),
        ({"airport": None, "city": "Atlantis"}, "city"),
        ({"airport": None, "city": "Shang\x07hai"}, "city"),
        ({"airport": None, "city": "Shanghai\x1b[2J"}, "city"),
        ({"airport": None, "city": "\u202eiahgnahS"}, "city"),
        ({"airport": None, "city": "Shanghai", "country": "US"}, "country"),
        # matched by the airport, an alert naming another city would be listed under it
        ({"city": "Beijing"}, "city"),
    ],
)
def test_an_invalid_weather_alert_is_a_400_naming_the_field(staff_api, change, field):
    body = {
        "airport": "PVG",
        "kind": "SNOW",
        "severity": "SEVERE",
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_to": "2026-01-02T00:00:00Z",
    }
    airport("PVG")
    response = staff_api.post("/api/v1/query/weather-alerts", {**body, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not WeatherAlert.objects.exists()


def test_notifying_a_flight_sends_once_and_then_reports_everyone_as_skipped(staff_api):
    flight = make_flight(number="MU5159", day=DAY)
    BookingFactory.create_batch(3, flight=flight)
    body = {"flight_number": "MU5159", "flight_date": "2026-12-10", "subject": "Gate change", "message": "Your gate is now B12."}

    first = staff_api.post("/api/v1/notifications", body, format="json")
    again = staff_api.post("/api/v1/notifications", body, format="json")

    assert first.status_code == 200, first.json()
    assert first.json() | {"reason": ""} == {"selected": 3, "sent": 3, "skipped": 0, "failed": 0, "reason": ""}
    assert again.json()["sent"] == 0 and again.json()["skipped"] == 3
    assert len(mail.outbox) == 3
    assert Notification.objects.filter(status="SENT").count() == 3
    assert "Your gate is now B12." in mail.outbox[0].body


def test_a_notification_with_a_bad_selection_is_a_400_and_sends_nothing(staff_api):
    body = {"city": "Shanghai", "date_from": "soon", "subject": "s", "message": "m"}
    response = staff_api.post("/api/v1/notifications", body, format="json")
    assert response.status_code == 400
    assert "date_from" in response.json()["error"]["fields"]
    assert not mail.outbox


def test_the_schema_documents_both_the_command_and_the_query_side(staff_api):
    response = staff_api.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/customers", "/api/v1/query/passengers", "/api/v1/query/customers", "/api/v1/notifications"} <= set(paths)
    parameters = {p["name"] for p in paths["/api/v1/query/passengers"]["get"]["parameters"]}
    assert {"flight_number", "flight_date", "status", "city", "date_from", "date_to", "weather", "page"} <= parameters


@pytest.mark.django_db
def test_passenger_rows_match_the_generic_serializer():
    """`PassengerOutput` writes its rows out by hand for speed; they must be exactly what DRF's
    generic ModelSerializer path makes of the same fields (formats, time zone, nulls)."""

    class Generic(PassengerOutput):
        to_representation = serializers.ModelSerializer.to_representation

    flight = make_flight(number="MU5159", day=DAY, route=("PVG", "PEK", "CAN"))
    BookingFactory(flight=flight, customer=CustomerFactory(customer_id="alice", full_name="Alice", email="alice@example.com"))
    BookingFactory(flight=flight, customer=CustomerFactory.build(customer_id="late"), created_at=None, updated_at=None)
    rows = list(selectors.passenger_list_by_flight(flight_number="MU5159", flight_date=DAY))

    assert len(rows) == 2
    assert PassengerOutput(rows, many=True).data == Generic(rows, many=True).data


def test_a_city_selection_pages_with_an_exact_count_in_six_queries(staff_api, django_assert_num_queries):
    # The stops, the count (from the per-flight counts), a page's keys, its rows, their
    # customers, their flights (each row shows its flight's current status and times).
    for offset in range(3):
        BookingFactory.create_batch(2, flight=make_flight(day=DAY + timedelta(days=offset), route=("CAN", "PVG", "NRT")))
    query = {"city": "PVG", "date_from": "2026-12-10", "date_to": "2026-12-12", "page_size": 4}

    with django_assert_num_queries(6):
        first = staff_api.get(PASSENGERS, query).json()
    second = staff_api.get(PASSENGERS, {**query, "page": 2}).json()

    assert first["count"] == second["count"] == 6
    assert len(first["results"]) == 4 and len(second["results"]) == 2
    assert not order_ids(staff_api.get(PASSENGERS, query)) & order_ids(staff_api.get(PASSENGERS, {**query, "page": 2}))


def test_a_flight_whose_passengers_fit_on_one_page_is_counted_by_the_page_itself(staff_api, django_assert_num_queries):
    flight = make_flight(number="MU5159", day=DAY)
    BookingFactory.create_batch(3, flight=flight)
    BookingFactory(flight=flight, status="CANCELLED")
    query = {"flight_number": "MU5159", "flight_date": "2026-12-10"}

    with django_assert_num_queries(4) as captured:  # the page's keys (and one more), rows, customers, flights
        short = staff_api.get(PASSENGERS, {**query, "page_size": 3}).json()
    full = staff_api.get(PASSENGERS, {**query, "page_size": 2}).json()  # a full first page: counted
    cancelled = staff_api.get(PASSENGERS, {**query, "status": "CANCELLED"}).json()
    nothing = staff_api.get(PASSENGERS, {**query, "flight_date": "2026-12-11"}).json()

    assert "SUM(" not in " ".join(q["sql"] for q in captured.captured_queries)
    assert (short["count"], len(short["results"]), short["next"]) == (3, 3, None)
    assert (full["count"], len(full["results"])) == (3, 2) and full["next"]
    assert (cancelled["count"], nothing["count"], nothing["results"]) == (1, 0, [])


@pytest.mark.django_db
def test_a_page_reads_its_rows_by_primary_key_alone_and_loads_what_the_list_asks(django_assert_num_queries):
    for _ in range(3):
        BookingFactory(flight=make_flight(day=DAY, route=("CAN", "PVG", "NRT")))
    bookings = selectors.passenger_list_by_city(city="PVG")
    flights = Flight.objects.filter(flight_date=DAY).select_related("origin").order_by("flight_key")

    with django_assert_num_queries(5) as captured:  # count, keys, rows, customers, flights
        page = DeferredJoinPaginator(bookings, 2).page(2)
        assert [booking.customer.full_name for booking in page]
    rows_where = captured.captured_queries[2]["sql"].split("WHERE", 1)[1]
    assert "flight_id" not in rows_where and "deleted" not in rows_where  # the keys' filters are not repeated
    with django_assert_num_queries(3):  # count, keys, rows with their origin joined
        assert [flight.origin.city for flight in DeferredJoinPaginator(flights, 2).page(1)] == ["Guangzhou"] * 2


# --- irregular operations: bad input and stored data --------------------------------------------


@pytest.mark.parametrize(
    ("field", "valid_from", "valid_to"),
    [
        ("valid_to", "2026-12-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("valid_from", "0001-01-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        ("valid_to", "2026-12-01T00:00:00Z", "2027-02-01T00:00:00Z"),
    ],
)
def test_an_alert_window_that_makes_no_sense_for_flights_is_a_400_naming_the_field(staff_api, field, valid_from, valid_to):
    body = {"airport": "JFK", "kind": "SNOW", "severity": "SEVERE", "valid_from": valid_from, "valid_to": valid_to}

    response = staff_api.post("/api/v1/query/weather-alerts", body, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {field}
    assert not WeatherAlert.objects.exists()


@pytest.mark.parametrize("code", ["PVG", "JFK"], ids=["to the end of 9999 east of UTC", "from year one west of UTC"])
def test_an_alert_stored_at_the_ends_of_the_calendar_does_not_break_the_weather_selections(staff_api, code):
    flight = make_flight(day=local_today(code), route=(code, "LHR"))
    BookingFactory(flight=flight)
    now = timezone.now()
    if code == "PVG":
        ends = {"valid_from": now - timedelta(hours=1), "valid_to": datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)}
    else:
        ends = {"valid_from": datetime(1, 1, 1, tzinfo=UTC), "valid_to": now + timedelta(hours=1)}
    airport(code)
    WeatherAlert.objects.create(city=airport(code).city, airport_id=code, kind="SNOW", severity="SEVERE", **ends)  # stored before the rule

    listed = staff_api.get(PASSENGERS, {"weather": "active"})
    notified = staff_api.post("/api/v1/notifications", {"weather": "active", "subject": "Snow", "message": "m"}, format="json")

    assert listed.status_code == 200 and listed.json()["count"] == 1
    assert notified.status_code == 200 and notified.json()["sent"] == 1


def test_a_notification_subject_with_a_line_break_is_a_400_and_records_nothing(staff_api):
    flight = make_flight(number="MU5159", day=DAY)
    BookingFactory(flight=flight)
    body = {"flight_number": "MU5159", "flight_date": "2026-12-10", "subject": "Gate change\r\nBcc: all@example.com", "message": "m"}

    response = staff_api.post("/api/v1/notifications", body, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"subject"}
    assert not Notification.objects.exists() and not mail.outbox


def test_a_body_over_the_upload_limit_is_a_413_in_the_api_error_shape(staff_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {"flight_number": "MU5159", "flight_date": "2026-12-10", "subject": "s", "message": "x" * 2000}

    response = staff_api.post("/api/v1/notifications", body, format="json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_selections_counts_give_totals_by_status_no_email_and_already_notified(staff_api):
    flight = make_flight(number="MU5159", day=DAY, route=("CAN", "PVG", "PEK"))
    BookingFactory.create_batch(3, flight=flight)
    BookingFactory(flight=flight, customer=CustomerFactory(email=""))
    BookingFactory.create_batch(2, flight=flight, status="CANCELLED")
    BookingFactory(flight=make_flight(number="MU5160", day=DAY + timedelta(days=1), route=("PVG", "PEK")))
    staff_api.post(
        "/api/v1/notifications", {"flight_number": "MU5159", "flight_date": "2026-12-10", "subject": "s", "message": "m"}, format="json"
    )

    by_flight = staff_api.get(f"{PASSENGERS}/counts", {"flight_number": "MU5159", "flight_date": "2026-12-10"}).json()
    by_city = staff_api.get(f"{PASSENGERS}/counts", {"city": "Shanghai", "date_from": "2026-12-10", "date_to": "2026-12-11"}).json()
    listed = staff_api.get(PASSENGERS, {"city": "Shanghai", "date_from": "2026-12-10", "date_to": "2026-12-11"}).json()

    assert by_flight == {"by_status": {"ORDERED": 4, "CANCELLED": 2}, "affected": 4, "no_email": 1, "notified": 3}
    assert by_city == {"by_status": {"ORDERED": 5, "CANCELLED": 2}, "affected": 5, "no_email": 1, "notified": 3}
    assert listed["count"] == by_city["affected"]
    assert staff_api.get(f"{PASSENGERS}/counts", {"flight_number": "MU5159"}).status_code == 400
