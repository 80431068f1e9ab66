"""The shared body of `import_metar` and `import_cap`: read a file, parse, store, report."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from admin_portal import services, weather


class WeatherImportCommand(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def parse(self, data: bytes) -> weather.ImportReport:
        raise NotImplementedError

    def handle(self, *args, file: Path, **options):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        try:
            report = self.parse(data)
        except (ValueError, SyntaxError) as exc:  # XML syntax errors, defusedxml refusals, bad values
            raise CommandError(f"{file}: {exc}") from None
        counts = services.weather_alerts_import(report=report)
        for reason in counts.reasons:
            self.stderr.write(f"skipped {reason}")
        for _key, link in report.links:
            self.stderr.write(f"linked {link} (poll_weather fetches linked entries)")
        self.stdout.write(", ".join(f"{name} {value}" for name, value in counts.as_dict().items()))
