import pytest
from django.core.management import call_command

from admin_portal.models import Airport
from airticket.airports import airports

pytestmark = pytest.mark.django_db(transaction=True)


def test_load_airports_loads_every_iata_airport_and_is_safe_to_run_again():
    call_command("load_airports", stdout=None)
    Airport.objects.filter(pk="PVG").update(city="Somewhere else")
    call_command("load_airports", stdout=None)
    assert Airport.objects.count() == len(airports())
    pvg = Airport.objects.get(pk="PVG")
    assert (pvg.city, pvg.country, pvg.tz, pvg.icao) == ("Shanghai", "CN", "Asia/Shanghai", "ZSPD")
