from admin_portal import weather

from ._weather_import import WeatherImportCommand


class Command(WeatherImportCommand):
    help = "Raise, update or end weather alerts from a CAP 1.1/1.2 file: an alert, an ATOM feed, an EDXL-DE wrapper or a list of alerts."

    def parse(self, data: bytes) -> weather.ImportReport:
        return weather.parse_cap_xml(data)
