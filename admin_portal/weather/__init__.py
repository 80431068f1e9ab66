"""Weather alerts from standard sources: METAR reports (`metar`), CAP alerts and their feeds
(`cap`), fetched on a schedule (`feeds`, `services.weather_sources_poll`).

The readers only read and map into messages (`drafts`); `services.weather_alerts_import`
stores each message in one transaction, so re-importing a report or a CAP message is a no-op.
"""

from . import feeds
from .cap import CAP_DEFAULT_HOURS, cap_text_kind, parse_cap_xml
from .drafts import AlertDraft, ImportReport, Message
from .metar import METAR_VALID_HOURS, metar_conditions, parse_metar_text, read_metar

__all__ = [
    "CAP_DEFAULT_HOURS",
    "METAR_VALID_HOURS",
    "AlertDraft",
    "ImportReport",
    "Message",
    "cap_text_kind",
    "feeds",
    "metar_conditions",
    "parse_cap_xml",
    "parse_metar_text",
    "read_metar",
]
