"""An order copies its flight's route and times. The command side may book on a recently read
copy of the flight, so these check that the copy an order gets is always the flight as it is."""

import pytest

from airticket.errors import Conflict
from bookings import maintenance, services
from bookings import repository as repo
from tests.factories import flight_data, make_customer


def test_a_booking_after_a_reschedule_copies_the_new_times(aws_env):
    make_customer("ann")
    make_customer("bob")
    flight = services.flight_create(**flight_data(departure_time="08:00", arrival_time="10:00"))
    key = {"flight_number": flight["flight_number"], "flight_date": flight["flight_date"]}
    first = services.order_place(customer_id="ann", **key)
    services.flight_reschedule(**key, departure_time="09:30", arrival_time="11:30")

    second = services.order_place(customer_id="bob", **key)

    assert (first["departure_time"], second["departure_time"], second["arrival_time"]) == ("08:00", "09:30", "11:30")
    assert services.flight_get(**key)["seats_booked"] == 2


def test_a_flight_created_again_under_the_same_number_and_date_is_booked_with_its_new_route(aws_env):
    make_customer("ann")
    make_customer("bob")
    data = flight_data(origin="PVG", transfers=[], destination="PEK")
    key = {"flight_number": data["flight_number"], "flight_date": data["flight_date"]}
    services.flight_create(**data)
    services.order_place(customer_id="ann", **key)
    repo.delete(repo.flight_key(**key))  # a truncate, then the schedule loaded again
    services.flight_create(**{**data, "origin": "CAN", "transfers": ["CTU"], "destination": "URC"})

    order = services.order_place(customer_id="bob", **key)

    assert (order["origin"], order["transfers"], order["destination"]) == ("CAN", ["CTU"], "URC")
    assert services.flight_get(**key)["seats_booked"] == 1


def test_booking_a_flight_cancelled_since_it_was_last_booked_is_refused(aws_env):
    make_customer("ann")
    make_customer("bob")
    flight = services.flight_create(**flight_data())
    key = {"flight_number": flight["flight_number"], "flight_date": flight["flight_date"]}
    services.order_place(customer_id="ann", **key)
    services.flight_cancel(**key)

    with pytest.raises(Conflict) as refused:
        services.order_place(customer_id="bob", **key)
    assert refused.value.code == "flight_cancelled"
    assert services.flight_get(**key)["seats_booked"] == 1


# --- seats across flight incarnations (a flight removed, then created again) ----------------------


def test_cancelling_an_order_of_a_flight_created_again_succeeds_without_freeing_the_new_flights_seat(aws_env):
    make_customer("ann")
    make_customer("bob")
    data = flight_data(capacity=1)
    key = {"flight_number": data["flight_number"], "flight_date": data["flight_date"]}
    services.flight_create(**data)
    old = services.order_place(customer_id="ann", **key)
    repo.delete(repo.flight_key(**key))  # a truncate that left ann's order behind, then the schedule again
    services.flight_create(**data)
    services.order_place(customer_id="bob", **key)

    cancelled = services.order_cancel(customer_id="ann", order_id=old["order_id"])

    assert cancelled["status"] == "CANCELLED"
    assert services.flight_get(**key)["seats_booked"] == 1  # bob's seat, on the only seat there is
    with pytest.raises(Conflict) as full:
        services.order_place(customer_id="ann", **key)
    assert full.value.code == "flight_full"


def test_an_order_whose_flight_is_gone_can_be_cancelled(aws_env):
    make_customer("ann")
    data = flight_data()
    key = {"flight_number": data["flight_number"], "flight_date": data["flight_date"]}
    services.flight_create(**data)
    order = services.order_place(customer_id="ann", **key)
    repo.delete(repo.flight_key(**key))
    repo.delete(repo.guard_key("ann", key["flight_number"], key["flight_date"]))

    assert services.order_cancel(customer_id="ann", order_id=order["order_id"])["status"] == "CANCELLED"
    assert repo.get(repo.flight_key(**key)) is None  # freeing the seat did not create a flight item


def test_an_order_records_the_incarnation_and_version_of_the_flight_it_was_booked_on(aws_env):
    make_customer("ann")
    flight = services.flight_create(**flight_data())
    key = {"flight_number": flight["flight_number"], "flight_date": flight["flight_date"]}
    services.flight_reschedule(**key, departure_time="23:00")

    order = services.order_place(customer_id="ann", **key)

    assert (order["flight_created_at"], order["flight_version"]) == (flight["created_at"], 2)


def test_truncate_catches_a_booking_made_between_its_scan_and_its_deletes(aws_env, settings, monkeypatch):
    settings.AIRTICKET_ALLOW_TRUNCATE = True
    make_customer("ann")
    make_customer("bob")
    data = flight_data()
    key = {"flight_number": data["flight_number"], "flight_date": data["flight_date"]}
    services.flight_create(**data)
    delete_many, booked = repo.delete_many, []

    def booking_meanwhile(keys):
        if not booked:
            booked.append(services.order_place(customer_id="bob", **key))  # after the scan, before the deletes
        delete_many(keys)

    monkeypatch.setattr(repo, "delete_many", booking_meanwhile)

    maintenance.data_truncate()

    assert booked and repo.scan_keys() == []
