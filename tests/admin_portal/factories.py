"""Read-model builders. In production only the CDC projection writes these rows; tests build
them directly so the query side is tested on its own."""

import itertools
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

import factory
from django.db.models import F
from django.utils import timezone

from admin_portal.models import Airport, Booking, Customer, Flight, FlightEvent, FlightPassengerCount, FlightStop, StopKind, WeatherAlert
from airticket.airports import airports

_numbers = itertools.count(1000)


def airport(code: str) -> Airport:
    """The real airport from the airport data, stored once."""
    data = airports()[code]
    found, _ = Airport.objects.get_or_create(
        iata=code,
        defaults={
            "icao": data["icao"],
            "name": data["name"],
            "city": data["city"],
            "subdivision": data["subd"],
            "country": data["country"],
            "tz": data["tz"],
            "lat": data["lat"],
            "lon": data["lon"],
        },
    )
    return found


def local_today(code: str) -> date:
    """Today's date at an airport, by the clock the code reads: flights are dated in local
    time, so at 23:30 UTC Shanghai's flights are already tomorrow's."""
    return timezone.now().astimezone(ZoneInfo(airports()[code]["tz"])).date()


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    customer_id = factory.Sequence(lambda n: f"cust-{n}")
    full_name = factory.Sequence(lambda n: f"Passenger {n}")
    mobile = "+86 138 0000 0000"
    email = factory.LazyAttribute(lambda o: f"{o.customer_id}@example.com")
    version = 1
    created_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)


def make_flight(
    *,
    number: str | None = None,
    day: date | None = None,
    route: tuple[str, ...] = ("PVG", "PEK"),
    status: str = "SCHEDULED",
    capacity: int = 300,
) -> Flight:
    """A flight and its route stops, as the projection writes them."""
    number = number or f"MU{next(_numbers)}"
    day = day or date.today() + timedelta(days=30)
    for code in route:
        airport(code)
    flight = Flight.objects.create(
        flight_key=f"{number}#{day.isoformat()}",
        flight_number=number,
        flight_date=day,
        origin_id=route[0],
        destination_id=route[-1],
        transfers=list(route[1:-1]),
        departure_time=time(8, 0),
        arrival_time=time(12, 30),
        capacity=capacity,
        status=status,
        version=1,
        created_at=timezone.now(),
        updated_at=timezone.now(),
    )
    kinds = [StopKind.ORIGIN, *[StopKind.TRANSFER] * (len(route) - 2), StopKind.DESTINATION]
    FlightStop.objects.bulk_create(
        FlightStop(flight=flight, seq=seq, airport_id=code, kind=kind, flight_date=day)
        for seq, (code, kind) in enumerate(zip(route, kinds, strict=True))
    )
    return flight


class BookingFactory(factory.django.DjangoModelFactory):
    """A booking of `flight` (default: a new PVG -> PEK flight) with its route snapshot."""

    class Meta:
        model = Booking

    order_id = factory.Sequence(lambda n: f"ord-{n:08d}")
    customer = factory.SubFactory(CustomerFactory)
    flight = factory.LazyFunction(make_flight)
    flight_number = factory.LazyAttribute(lambda o: o.flight.flight_number)
    flight_date = factory.LazyAttribute(lambda o: o.flight.flight_date)
    origin = factory.LazyAttribute(lambda o: o.flight.origin_id)
    transfers = factory.LazyAttribute(lambda o: list(o.flight.transfers))
    destination = factory.LazyAttribute(lambda o: o.flight.destination_id)
    departure_time = factory.LazyAttribute(lambda o: o.flight.departure_time)
    arrival_time = factory.LazyAttribute(lambda o: o.flight.arrival_time)
    status = "ORDERED"
    version = 1
    created_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)
    flight_created_at = factory.LazyAttribute(lambda o: o.flight.created_at)
    flight_version = factory.LazyAttribute(lambda o: o.flight.version)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """The booking, and its count in its flight's passenger counts, as the projection keeps them."""
        booking = super()._create(model_class, *args, **kwargs)
        if not booking.deleted:
            counts, _ = FlightPassengerCount.objects.get_or_create(flight_id=booking.flight_id, status=booking.status)
            FlightPassengerCount.objects.filter(pk=counts.pk).update(passengers=F("passengers") + 1)
        return booking


class WeatherAlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WeatherAlert

    city = "Shanghai"
    country = "CN"
    kind = "TYPHOON"
    severity = "SEVERE"
    valid_from = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    valid_to = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=12))
    source = "MANUAL"
    headline = "Typhoon warning"


class FlightEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FlightEvent

    flight = factory.LazyFunction(make_flight)
    kind = "CANCELLED"
    flight_version = 2
