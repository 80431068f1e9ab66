"""Forms of the admin's intermediate action pages."""

from django import forms
from django.core.validators import RegexValidator

from bookings.serializers import TIME

hhmm = RegexValidator(f"^(?:{TIME.pattern})$", "a time as HH:MM")
# A mail subject is a header: a line break in it would be header injection (and Django refuses
# to send it), so it is refused here, before any row is recorded.
single_line = RegexValidator(r"\A[^\r\n]*\Z", "a single line: no line breaks")


class ConfirmForm(forms.Form):
    """Nothing to fill in: the page only asks to confirm."""


class NotifyForm(forms.Form):
    subject = forms.CharField(max_length=200, validators=[single_line])
    message = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 6, "cols": 80}))


class WeatherNotifyForm(forms.Form):
    message = forms.CharField(
        max_length=5000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        help_text="leave empty for the standard warning built from the alert",
    )


class RescheduleForm(forms.Form):
    departure_time = forms.CharField(
        max_length=5, required=False, validators=[hhmm], help_text="HH:MM; a new time marks the flight DELAYED"
    )
    arrival_time = forms.CharField(max_length=5, required=False, validators=[hhmm], help_text="HH:MM")
    capacity = forms.IntegerField(min_value=1, max_value=1000, required=False)

    def clean(self):
        data = super().clean()
        if not self.errors and not any(data.get(name) not in (None, "") for name in self.fields):
            raise forms.ValidationError("give a new departure time, arrival time or capacity")
        return data


class FlightDelayForm(forms.Form):
    """New local times for one flight, and why: the reason is kept in the flight's history."""

    departure_time = forms.CharField(max_length=5, validators=[hhmm])
    arrival_time = forms.CharField(max_length=5, validators=[hhmm])
    reason = forms.CharField(max_length=200, help_text="why, in a few words (kept in the flight's history of staff actions)")

    def __init__(self, *args, current: dict[str, str], zones: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.current = current
        self.fields["departure_time"].label = f"new departure (HH:MM, local at the origin, {zones['origin']})"
        self.fields["arrival_time"].label = f"new arrival (HH:MM, local at the destination, {zones['destination']})"
        self.fields["departure_time"].help_text = f"now {current['departure_time']}"
        self.fields["arrival_time"].help_text = f"now {current['arrival_time']}"

    def clean(self):
        data = super().clean()
        if not self.errors and all(data.get(name) == value for name, value in self.current.items()):
            raise forms.ValidationError("these are the current times: change the departure or the arrival")
        return data
