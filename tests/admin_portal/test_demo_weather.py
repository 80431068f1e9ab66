"""`manage.py demo_weather`: alerts dated from now that affect the demo's passengers."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command

from admin_portal import display, selectors
from admin_portal.models import WeatherAlert
from tests.admin_portal.factories import BookingFactory, local_today, make_flight

pytestmark = pytest.mark.django_db


def test_demo_weather_raises_a_current_an_upcoming_and_an_expired_alert_that_affect_demo_passengers():
    tomorrow = local_today("SHA") + timedelta(days=1)
    BookingFactory.create_batch(2, flight=make_flight(number="MU5159", day=tomorrow, route=("SHA", "PEK")))
    BookingFactory(flight=make_flight(number="MU5401", day=tomorrow, route=("SHA", "CTU", "LXA")))

    out = io.StringIO()
    call_command("demo_weather", stdout=out)
    call_command("demo_weather", stdout=io.StringIO())  # the same day again: nothing new

    alerts = {alert.city: alert for alert in WeatherAlert.objects.all()}
    assert WeatherAlert.objects.count() == 3
    assert {city: display.alert_state(alert) for city, alert in alerts.items()} == {
        "Shanghai": "ACTIVE",
        "Chengdu": "UPCOMING",
        "Beijing": "EXPIRED",
    }
    assert selectors.weather_alert_affected_count(alert=alerts["Shanghai"]) == (3, False)
    assert selectors.weather_alert_affected_count(alert=alerts["Chengdu"]) == (1, False)
    assert "Typhoon approaching Shanghai (EXTREME)" in out.getvalue() and "3 passengers affected" in out.getvalue()
