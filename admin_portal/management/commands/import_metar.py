from admin_portal import weather

from ._weather_import import WeatherImportCommand


class Command(WeatherImportCommand):
    help = "Raise weather alerts from a file of METAR/SPECI reports (thresholds: admin_portal/weather.py)."

    def parse(self, data: bytes) -> weather.ImportReport:
        return weather.parse_metar_text(data.decode("ascii", "replace"))
