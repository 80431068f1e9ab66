"""Builders for command-side state, through the public service functions."""

import itertools
from datetime import date, timedelta

from bookings import services

_numbers = itertools.count(100)


def flight_number() -> str:
    return f"MU{next(_numbers)}"


def future_date(days: int = 30) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


def flight_data(**overrides) -> dict:
    data = {
        "flight_number": flight_number(),
        "flight_date": future_date(),
        "origin": "PVG",
        "transfers": [],
        "destination": "PEK",
        "departure_time": "08:00",
        "arrival_time": "10:15",
        "capacity": 100,
    }
    data.update(overrides)
    return data


def make_flight(**overrides) -> dict:
    return services.flight_create(**flight_data(**overrides))


def make_customer(customer_id: str = "alice", **overrides) -> dict:
    data = {
        "customer_id": customer_id,
        "full_name": customer_id.title(),
        "mobile": "+86 138 0000 0000",
        "email": f"{customer_id}@example.com",
    }
    data.update(overrides)
    return services.customer_register(**data)
