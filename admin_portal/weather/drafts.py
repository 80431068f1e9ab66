"""What the readers produce: messages with their alert drafts, not yet stored.

A message is the unit of import: `services.weather_alerts_import` stores each one in its own
transaction (all of its alerts, and the ends of the messages it references, or nothing)."""

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class AlertDraft:
    """Everything `services.weather_alert_create` needs, not yet stored."""

    kind: str
    severity: str
    valid_from: datetime
    valid_to: datetime
    city: str
    country: str
    source: str
    source_id: str
    headline: str
    raw_text: str
    airport: str | None = None


@dataclass
class Message:
    """One CAP message or one METAR report.

    `references` are the identifiers of earlier CAP messages this one updates, cancels or
    all-clears: they end at `sent`, this message's own time, never the clock's."""

    source: str
    identifier: str
    sent: datetime
    msg_type: str = "Alert"  # CAP msgType; METAR reports are "Alert"
    references: list[str] = field(default_factory=list)
    drafts: list[AlertDraft] = field(default_factory=list)
    # Why none of its events raised an alert (all-clear, not weather, no airport in its area):
    # a message with neither drafts nor references is reported with this reason.
    reasons: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    messages: list[Message] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per unusable message, with why
    # ATOM entries that only link to their CAP message: (entry key, URL). `poll_weather`
    # fetches them; a file import reports them.
    links: list[tuple[str, str]] = field(default_factory=list)

    def extend(self, other: "ImportReport") -> None:
        self.messages += other.messages
        self.skipped += other.skipped
        self.links += other.links

    @property
    def drafts(self) -> list[AlertDraft]:
        return [draft for message in self.messages for draft in message.drafts]
