from django.core.management.base import BaseCommand
from django.utils import timezone

from admin_portal import demo, selectors


class Command(BaseCommand):
    help = "Raise demo weather alerts dated from now over the demo schedule's cities (again the same day: a no-op)."

    def handle(self, *args, **options):
        for alert in demo.demo_weather_raise(now=timezone.now()):
            affected, more = selectors.weather_alert_affected_count(alert=alert)
            window = f"{alert.valid_from:%Y-%m-%d %H:%M} - {alert.valid_to:%Y-%m-%d %H:%M} UTC"
            self.stdout.write(
                f"alert {alert.pk}: {alert.headline} ({alert.severity}), {window}: {affected}{'+' if more else ''} passengers affected"
            )
