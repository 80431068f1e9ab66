from admin_portal import weather

from ._weather_import import WeatherImportCommand


class Command(WeatherImportCommand):
    help = "Raise (or, for a Cancel, expire) weather alerts from a CAP 1.2 alert XML file."

    def parse(self, data: bytes) -> weather.ImportReport:
        return weather.parse_cap_xml(data)
