"""MySQL read models. They change only through the CDC projection (`cdc_lambda`), except the
query side's own records (airports, weather alerts, notifications, CDC bookkeeping).

Relations carry no database constraint (`db_constraint=False`): change records for different
items arrive on different shards in any order, so a booking may land before its customer or
flight. Every projected row keeps the source item's `version`; a removed item leaves a
tombstone (`deleted=True`) whose version is one past the last image, so a late change is ignored.
"""

import unicodedata
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import models

from airticket.airports import airports, cities


class KeyField(models.CharField):
    """A column that mirrors (part of) a DynamoDB key, and so compares the way DynamoDB does:
    byte for byte. `Alice` and `alice` are two customers on the command side, so they must be
    two rows here, not one row under MySQL's default case-insensitive collation.

    The collation is chosen per database: `utf8mb4_bin` on MySQL/MariaDB; none on SQLite,
    whose default (BINARY) already compares bytes. Foreign keys to a KeyField take its
    collation (Django copies the target's), so the referencing columns match too."""

    MYSQL_COLLATION = "utf8mb4_bin"

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "mysql":
            params["collation"] = self.MYSQL_COLLATION
        return params


class Airport(models.Model):
    """IATA airports, loaded from the `airportsdata` package (`load_airports`)."""

    iata = models.CharField(max_length=3, primary_key=True)
    icao = models.CharField(max_length=4, blank=True)
    name = models.CharField(max_length=200)
    city = models.CharField(max_length=100, db_index=True)
    subdivision = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, db_index=True)
    tz = models.CharField("time zone", max_length=64)
    lat = models.FloatField(null=True)
    lon = models.FloatField(null=True)

    class Meta:
        ordering = ["iata"]

    def __str__(self) -> str:
        return f"{self.iata} {self.city}"


class Projected(models.Model):
    version = models.PositiveBigIntegerField()
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField(null=True)
    projected_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Customer(Projected):
    customer_id = KeyField(max_length=64, primary_key=True)
    full_name = models.CharField(max_length=200, db_index=True)
    mobile = models.CharField(max_length=32, blank=True)
    email = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["customer_id"]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.full_name}"


class FlightStatus(models.TextChoices):
    SCHEDULED = "SCHEDULED"
    DELAYED = "DELAYED"
    CANCELLED = "CANCELLED"


class Flight(Projected):
    flight_key = KeyField(max_length=32, primary_key=True, help_text="<number>#<date>")
    flight_number = KeyField(max_length=8)
    flight_date = models.DateField()
    origin = models.ForeignKey(Airport, models.DO_NOTHING, db_constraint=False, related_name="+")
    destination = models.ForeignKey(Airport, models.DO_NOTHING, db_constraint=False, related_name="+")
    transfers = models.JSONField(default=list, help_text="IATA codes of the transfer stops, in order")
    departure_time = models.TimeField()
    arrival_time = models.TimeField()
    capacity = models.PositiveIntegerField()
    seats_booked = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=FlightStatus.choices)

    class Meta:
        ordering = ["flight_date", "flight_number"]
        indexes = [
            models.Index(fields=["flight_number", "flight_date"]),
            models.Index(fields=["flight_date", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.flight_number} {self.flight_date}"

    @property
    def route(self) -> list[str]:
        return [self.origin_id, *self.transfers, self.destination_id]


class StopKind(models.TextChoices):
    ORIGIN = "ORIGIN"
    TRANSFER = "TRANSFER"
    DESTINATION = "DESTINATION"


class FlightStop(models.Model):
    """A flight's route as ordered stops, so "touches city X between dates" is an index lookup
    on (airport, flight_date) instead of a scan of every route.

    `flight_date` is the local date at that airport when the flight is there (an overnight
    flight's destination is on the next day); a transfer, whose time the model does not have,
    has a row for each local date the flight may be there (see `cdc_lambda.stops`)."""

    # No single-column indexes: the unique (flight, seq, date) and (airport, flight_date, flight) cover them.
    flight = models.ForeignKey(Flight, models.DO_NOTHING, db_constraint=False, db_index=False, related_name="stops")
    seq = models.PositiveSmallIntegerField()
    airport = models.ForeignKey(Airport, models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+")
    kind = models.CharField(max_length=12, choices=StopKind.choices)
    flight_date = models.DateField(help_text="the local date at this airport when the flight is there")
    local_time = models.TimeField(null=True, blank=True, help_text="local departure (origin) or arrival (destination) time")

    class Meta:
        ordering = ["flight", "seq"]
        constraints = [models.UniqueConstraint(fields=["flight", "seq", "flight_date"], name="flightstop_flight_seq_date")]
        indexes = [models.Index(fields=["airport", "flight_date", "flight"], name="flightstop_airport_date")]

    def __str__(self) -> str:
        return f"{self.flight_id} #{self.seq} {self.airport_id}"


class BookingStatus(models.TextChoices):
    ORDERED = "ORDERED"
    CANCELLED = "CANCELLED"


class BookingQuerySet(models.QuerySet):
    """Bookings, with an optional cheaper plan for the exact `count()` of one selection."""

    _count_query = None

    def counted_by(self, count_query) -> "BookingQuerySet":
        """This selection, counted by `count_query.count()` (the same rows, selected another
        way, or counted from `FlightPassengerCount`). The hint lives on this queryset only: Django rebuilds a queryset for every
        `filter()`, `order_by()` or slice, and the rebuilt one counts itself again, so a
        narrowed selection is never counted by the wider query."""
        clone = self._chain()
        clone._count_query = count_query
        return clone

    def count(self) -> int:
        if self._count_query is not None and self._result_cache is None:
            return self._count_query.count()
        return super().count()


class Booking(Projected):
    """One row per order, denormalised with its flight's route snapshot."""

    order_id = KeyField(max_length=32, primary_key=True)
    # Covered by the composite indexes below; a single-column index each would only slow writes.
    customer = models.ForeignKey(Customer, models.DO_NOTHING, db_constraint=False, db_index=False, related_name="bookings")
    flight = models.ForeignKey(Flight, models.DO_NOTHING, db_constraint=False, db_index=False, related_name="bookings")
    flight_number = KeyField(max_length=8)
    flight_date = models.DateField()
    origin = models.CharField(max_length=3)
    transfers = models.JSONField(default=list)
    destination = models.CharField(max_length=3)
    departure_time = models.TimeField()
    arrival_time = models.TimeField()
    status = models.CharField(max_length=10, choices=BookingStatus.choices)
    # The incarnation (creation time) of the flight the order was booked on: a flight removed
    # and created again under the same number and date is another flight, whose events are
    # not this booking's business. NULL for orders written before orders carried it.
    flight_created_at = models.DateTimeField(null=True, blank=True)
    # The version of that flight the booking was made on: schedule changes (delays) at a higher
    # version happened after the booking, those at or below it before. NULL as above.
    flight_version = models.PositiveBigIntegerField(null=True, blank=True)

    objects = BookingQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        # `deleted` closes the passenger indexes so "live bookings of these flights" (the query
        # API's and the admin's hot path) is answered, counted and paginated from the index alone.
        indexes = [
            models.Index(fields=["flight_number", "flight_date", "status", "deleted"], name="booking_flight_live"),
            models.Index(fields=["flight", "status", "deleted"], name="booking_flightkey_live"),
            models.Index(fields=["customer", "status", "deleted"], name="booking_customer_live"),
            models.Index(fields=["status", "flight_date"], name="booking_status_date"),
            models.Index(fields=["created_at"], name="booking_created"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} {self.flight_number} {self.flight_date}"


class FlightPassengerCount(models.Model):
    """How many live bookings a flight has, per booking status. Kept by the CDC projection in
    the same transaction as the bookings (a delta per booking change that wins), so exact
    counts are one index read instead of a count over the bookings."""

    flight = models.ForeignKey(Flight, models.DO_NOTHING, db_constraint=False, db_index=False, related_name="passenger_counts")
    status = models.CharField(max_length=10, choices=BookingStatus.choices)
    passengers = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flight", "status"], name="passengercount_once")]

    def __str__(self) -> str:
        return f"{self.flight_id} {self.status}: {self.passengers}"


class FlightEventKind(models.TextChoices):
    CANCELLED = "CANCELLED"
    DELAYED = "DELAYED"


class FlightEvent(models.Model):
    """Domain event the projection emits when a flight is cancelled or delayed (an outbox row,
    written in the same transaction as the flight). The query side notifies passengers from it."""

    flight = models.ForeignKey(Flight, models.DO_NOTHING, db_constraint=False, related_name="events")
    kind = models.CharField(max_length=10, choices=FlightEventKind.choices)
    flight_version = models.PositiveBigIntegerField()
    # Which incarnation of the flight: one created again under the same number and date (a
    # truncate, then the schedule loaded again) starts over at version 1, and its events are new.
    flight_created_at = models.DateTimeField(null=True)
    detail = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["flight", "flight_created_at", "kind", "flight_version"], name="flightevent_once")]
        indexes = [models.Index(fields=["processed_at"], name="flightevent_pending")]

    def __str__(self) -> str:
        return f"{self.kind} {self.flight_id} v{self.flight_version}"


class ShardCheckpoint(models.Model):
    """Where a local consumer (the CDC poller or the DynamoDB-stream bridge) is in a shard."""

    consumer = models.CharField(max_length=32)  # "poller" or "bridge"
    # AWS names are case-sensitive ("Changes" and "changes" are two streams).
    stream = KeyField(max_length=256)
    shard_id = KeyField(max_length=128)
    sequence_number = models.CharField(max_length=128, blank=True)
    # Which instance of the stream the position belongs to (its creation time, and the shard's
    # first sequence number where that is stable): a stream deleted and created again under the
    # same name (or moto started again) numbers its records from the start, so a position of
    # another instance would skip records. See `cdc_lambda.checkpoints.position`.
    stream_instance = models.CharField(max_length=128, blank=True)
    records = models.PositiveBigIntegerField(default=0)
    last_record_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["consumer", "shard_id"]
        constraints = [models.UniqueConstraint(fields=["consumer", "stream", "shard_id"], name="checkpoint_once")]

    def __str__(self) -> str:
        return f"{self.consumer} {self.shard_id} @ {self.sequence_number or 'start'}"


class ConsistencyOutcome(models.TextChoices):
    AGREED = "AGREED", "both sides agree"
    REPAIRED = "REPAIRED", "diverged; repaired through the stream"
    DIVERGED = "DIVERGED", "diverged; not repaired"


class ConsistencyCheck(models.Model):
    """What the local system found when it compared the command side (DynamoDB) with the read
    models at start, and what it did about it (`cdc_lambda.consistency`). /healthz and the
    operations page show the latest."""

    checked_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=10, choices=ConsistencyOutcome.choices)
    # {entity: {"items": n, "versions": sum of versions}} of live items, on each side.
    command_side = models.JSONField(default=dict)
    query_side = models.JSONField(default=dict)
    ghosts = models.PositiveIntegerField(default=0)  # live in the read model, absent from DynamoDB
    missing = models.PositiveIntegerField(default=0)  # in DynamoDB, absent (or older) in the read model
    ahead = models.PositiveIntegerField(default=0)  # newer in the read model than in DynamoDB
    resent = models.PositiveIntegerField(default=0)  # change records put on the stream to repair
    examples = models.JSONField(default=dict)  # a few keys per kind of difference
    summary = models.TextField()

    class Meta:
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"{self.checked_at:%Y-%m-%d %H:%M:%S} {self.outcome}"


class AlertKind(models.TextChoices):
    THUNDERSTORM = "THUNDERSTORM"
    SNOW = "SNOW"
    FREEZING_RAIN = "FREEZING_RAIN"
    LOW_VISIBILITY = "LOW_VISIBILITY"
    HIGH_WIND = "HIGH_WIND"
    TYPHOON = "TYPHOON"
    SANDSTORM = "SANDSTORM"
    VOLCANIC_ASH = "VOLCANIC_ASH"
    OTHER = "OTHER"


class Severity(models.TextChoices):
    MINOR = "MINOR"
    MODERATE = "MODERATE"
    SEVERE = "SEVERE"
    EXTREME = "EXTREME"


class AlertSource(models.TextChoices):
    MANUAL = "MANUAL"
    API = "API"
    METAR = "METAR"
    CAP = "CAP"


# Weather warnings last hours or days, not years (METAR-based ones 3 hours, CAP typhoon
# warnings a few days): a longer window, or one outside these years, is a typing error, and
# such dates overflow time-zone arithmetic at the ends of the calendar.
MAX_ALERT_DURATION = timedelta(days=31)
ALERT_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
ALERT_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class WeatherAlert(models.Model):
    """Extreme weather for a city (every airport in it) or a single airport."""

    city = models.CharField(max_length=100, db_index=True, blank=True, help_text="taken from the airport when only an airport is given")
    country = models.CharField(max_length=2, blank=True)
    airport = models.ForeignKey(Airport, models.DO_NOTHING, db_constraint=False, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField()
    source = models.CharField(max_length=8, choices=AlertSource.choices, default=AlertSource.MANUAL)
    source_id = models.CharField(max_length=200, blank=True, help_text="the report or CAP identifier, to import once")
    headline = models.CharField(max_length=200, blank=True)
    raw_text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-valid_from"]
        indexes = [
            models.Index(fields=["valid_to", "valid_from"], name="alert_window"),
            models.Index(fields=["source", "source_id"], name="alert_source_id"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.airport_id or self.city} {self.valid_from:%Y-%m-%d %H:%M}"

    def clean(self):
        """An alert names a city or an airport (whose city it then takes) and a non-empty window.
        A city is one that has an airport (the only places an alert can reach), and an alert
        naming both must name the airport's own city: matching goes by the airport, so a
        "Beijing" alert on PVG would be listed under a city it does not touch."""
        if self.airport_id:
            # The airport data package, not the Airport table: an alert can be raised before
            # (or without) `load_airports`.
            airport = airports().get(self.airport_id)
            if airport is None:
                raise ValidationError({"airport": f"unknown airport {self.airport_id}"})
            if not self.city:
                self.city, self.country = airport["city"], airport["country"]
            elif self.city.casefold() != airport["city"].casefold():
                raise ValidationError({"city": f"{self.airport_id} is in {airport['city'] or 'no city'}, not {self.city}"})
        # An airport whose data has no city (many small fields) still counts by its IATA code.
        elif not self.city:
            raise ValidationError({"city": "give a city or an airport"})
        else:
            self._clean_city()
        errors = {}
        for name in ("valid_from", "valid_to"):
            value = getattr(self, name)
            if value and not ALERT_EARLIEST <= value <= ALERT_LATEST:
                errors[name] = f"must be between {ALERT_EARLIEST:%Y-%m-%d} and {ALERT_LATEST:%Y-%m-%d} (UTC)"
        if errors:
            raise ValidationError(errors)
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValidationError({"valid_to": "must be after valid_from"})
        if self.valid_from and self.valid_to and self.valid_to - self.valid_from > MAX_ALERT_DURATION:
            raise ValidationError({"valid_to": f"an alert lasts at most {MAX_ALERT_DURATION.days} days"})

    def _clean_city(self) -> None:
        if any(unicodedata.category(char) in ("Cc", "Cf") for char in self.city):
            raise ValidationError({"city": "a city name has no control or formatting characters"})
        places = cities().get(self.city.casefold())
        if not places:
            raise ValidationError({"city": f"no airport is in a city called {self.city!r}"})
        countries = {country for _, country in places}
        if self.country and self.country not in countries:
            raise ValidationError({"country": f"{self.city} is in {', '.join(sorted(countries))}, not {self.country}"})


class WeatherMessage(models.Model):
    """A CAP message seen by an import: imported itself, or only named in the `references` of a
    later Update, Cancel or AllClear. Either way `ended_at` records when a later message ended
    it, so the message arriving late (feeds are not ordered) raises nothing past that."""

    source = models.CharField(max_length=8, choices=AlertSource.choices)
    identifier = models.CharField(max_length=200)
    msg_type = models.CharField(max_length=8, blank=True)
    sent = models.DateTimeField(null=True, blank=True)
    imported_at = models.DateTimeField(null=True, blank=True, help_text="empty while it is only known as a reference")
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-sent"]
        constraints = [models.UniqueConstraint(fields=["source", "identifier"], name="weathermessage_once")]

    def __str__(self) -> str:
        return f"{self.msg_type} {self.identifier}"


class WeatherSource(models.Model):
    """A feed `poll_weather` fetches (settings.WEATHER_SOURCES), with its HTTP validators for
    conditional GET and what the last polls did."""

    url = models.CharField(max_length=500, unique=True, help_text="as configured ({airports} not yet replaced)")
    kind = models.CharField(max_length=8)  # "metar" or "cap"
    fetched_url = models.CharField(max_length=2000, blank=True)
    etag = models.CharField(max_length=300, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    seen_entries = models.JSONField(default=list, blank=True, help_text="ATOM entries (id|updated) already fetched")
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    alerts_created = models.PositiveIntegerField(default=0)
    alerts_updated = models.PositiveIntegerField(default=0)
    alerts_ended = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["kind", "url"]

    def __str__(self) -> str:
        return f"{self.kind} {self.url}"


class NotificationStatus(models.TextChoices):
    # PENDING is the claim a sender inserts before sending, so two concurrent senders never
    # both send; a claim left behind by a crash is retried once it is stale.
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class Notification(models.Model):
    """One message to one passenger about one booking for one reason; never sent twice."""

    booking = models.ForeignKey(Booking, models.DO_NOTHING, db_constraint=False, related_name="notifications")
    customer = models.ForeignKey(Customer, models.DO_NOTHING, db_constraint=False, related_name="notifications")
    # Part of the once-per-reason key, and it embeds flight keys: compared byte for byte too.
    reason = KeyField(max_length=200, help_text="what it is about, e.g. flight-cancelled:MU5159#2026-12-01")
    recipient = models.CharField(max_length=254)
    subject = models.CharField(max_length=200)
    message = models.TextField()
    status = models.CharField(max_length=8, choices=NotificationStatus.choices)
    error = models.TextField(blank=True)
    sent_by = models.CharField(max_length=150, blank=True)
    # The sender run that holds this row (PENDING) or last held it: senders claim a chunk of
    # rows at once and read back the ones carrying their own token (`services.passengers_notify`).
    claim = models.CharField(max_length=32, blank=True, default="")
    # When the row was last claimed: a PENDING claim older than `services.STALE_CLAIM` (the lease)
    # belongs to a sender that died, and may be claimed again.
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["booking", "reason"], name="notification_once")]
        indexes = [models.Index(fields=["reason"], name="notification_reason")]

    def __str__(self) -> str:
        return f"{self.reason} -> {self.customer_id}"


class ReconcileRun(models.Model):
    """The outcome of one `reconcile` (DynamoDB against the read models), for the operations page."""

    finished_at = models.DateTimeField(auto_now_add=True, db_index=True)
    items = models.PositiveBigIntegerField()
    differences = models.PositiveBigIntegerField()
    repaired = models.PositiveBigIntegerField(default=0)
    detail = models.JSONField(default=dict, help_text="counts and sample keys by entity and kind")

    class Meta:
        ordering = ["-finished_at"]

    def __str__(self) -> str:
        return f"reconcile {self.finished_at:%Y-%m-%d %H:%M}: {self.differences} differences"


class MetricCounter(models.Model):
    """Locally, the metrics' counters shared by every process (web, poller, notifier), for the
    operations page; on AWS the same numbers are in CloudWatch (`airticket.observability`)."""

    key = KeyField(max_length=255, primary_key=True, help_text="name, then dimension=value pairs")
    value = models.FloatField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key} = {self.value:g}"
