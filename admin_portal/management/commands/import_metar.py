from admin_portal import weather

from ._weather_import import WeatherImportCommand


class Command(WeatherImportCommand):
    help = "Raise weather alerts from METAR/SPECI reports, one per line, or aviationweather.gov JSON (thresholds: admin_portal/weather/metar.py)."

    def parse(self, data: bytes) -> weather.ImportReport:
        return weather.parse_metar_text(data.decode("utf-8", "replace"))
