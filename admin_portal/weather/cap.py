"""CAP alerts read as their publishers mean them (parsed with `defusedxml`).

Documents: a CAP 1.1 or 1.2 `<alert>`; any wrapper holding such alerts (an ATOM feed with the
alerts inline, an EDXL-DE distribution, a list such as SMHI's `<alerts>`); an ATOM feed whose
entries only link to their CAP message (NWS and MeteoAlarm indexes: the links are returned for
`poll_weather` to fetch). CAP 1.0 is refused with that reason.

Per message (`Actual` only):
- `Alert`/`Update` raise alerts; an `Update` also ends the messages it `references` (it
  replaces them), a `Cancel` only ends them. An event whose `responseType` is `AllClear`, or
  whose urgency is `Past`, raises nothing: it is over. Every end takes effect at the message's
  own `sent`, never at the clock, so a replayed feed gives the same alerts.
- Events, not languages: `info` blocks are translations of one another when they are the n-th
  block of their language (ECCC/NAADS send en + fr, Iceland is + en, MeteoAlarm one block per
  language), so each event is one alert, classified from any of its languages.
- Kind: the publisher's own code first (`eventCode` NWS/SAME and CAP-CP event codes,
  MeteoAlarm's `awareness_type`), then the event text matched on whole words in English,
  French, Spanish, German, Swedish and Icelandic ("Flash Flood" is not "ash"). Only
  meteorological events (`category` Met; volcanic ash also from Geo) are weather: an
  earthquake, a fire or a missing child is reported and not imported.
- Window (how long the weather lasts, not how long the message is current): from `onset`
  (else `effective`, else `sent`) to the publisher's event end: the `eventEndingTime`
  parameter (NWS, MeteoAlarm), else the end of the NWS VTEC code, else `expires`. NWS sets
  `expires` to its next scheduled update, which can be before the onset; with no event end
  after the start, the alert lasts `CAP_DEFAULT_HOURS` from it, until an Update replaces it.
- Place: an area with a `polygon` or `circle` covers the airports inside it (by IATA code, with
  or without a city in the airport data), not every airport of the cities it touches; an area
  without geometry covers the cities its `areaDesc` names.
"""

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from airticket.airports import airports, cities

from ..models import AlertKind, AlertSource, Severity
from .drafts import AlertDraft, ImportReport, Message

CAP_NAMESPACES = ("urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1")
CAP_10 = "http://www.incident.com/cap/1.0"
ATOM = "http://www.w3.org/2005/Atom"
CAP_DEFAULT_HOURS = 24
WEATHER_CATEGORIES = {"Met"}

_SEVERITIES = {"Extreme": Severity.EXTREME, "Severe": Severity.SEVERE, "Moderate": Severity.MODERATE, "Minor": Severity.MINOR}

# --- kinds --------------------------------------------------------------------------------------

# NWS product codes (the SAME event code, and the same three letters under NationalWeatherService).
# Floods, heat, cold, surf and fire weather are weather but none of our kinds: OTHER, explicitly.
_NWS_CODES = {
    **dict.fromkeys(["TOR", "TOA", "SVR", "SVA", "SVS", "SMW"], AlertKind.THUNDERSTORM),
    **dict.fromkeys(["HUW", "HUA", "HLS", "TRW", "TRA", "TYW", "TYA", "TCV"], AlertKind.TYPHOON),
    **dict.fromkeys(["WSW", "WSA", "BZW", "BZA", "SQW", "WWY", "LEW", "LEA", "HSW"], AlertKind.SNOW),
    **dict.fromkeys(["ISW", "ZRY", "IPW"], AlertKind.FREEZING_RAIN),
    **dict.fromkeys(["FGY", "ZFY", "SMY"], AlertKind.LOW_VISIBILITY),
    **dict.fromkeys(["HWW", "HWA", "EWW", "WIY", "LWY", "GLW", "SRW", "HFW"], AlertKind.HIGH_WIND),
    **dict.fromkeys(["DSW", "DSY", "BDY"], AlertKind.SANDSTORM),
    **dict.fromkeys(["ASY", "VOW"], AlertKind.VOLCANIC_ASH),
    **dict.fromkeys(
        ["FFW", "FFA", "FFS", "FLW", "FLA", "FLS", "FAW", "FAY", "HTY", "EHW", "EHA", "BHS", "CFW", "RFW", "FWW"],
        AlertKind.OTHER,
    ),
}
# Canada's CAP-CP event list (profile:CAP-CP:Event:0.4).
_CAP_CP_CODES = {
    **dict.fromkeys(["thunderstorm", "tornado", "hail"], AlertKind.THUNDERSTORM),
    **dict.fromkeys(["hurricane", "tropStorm", "typhoon"], AlertKind.TYPHOON),
    **dict.fromkeys(["snowfall", "blizzard", "snowSquall", "blowingSnow", "winterStorm", "snow"], AlertKind.SNOW),
    **dict.fromkeys(["freezRain", "freezDrzl", "iceStorm", "icing"], AlertKind.FREEZING_RAIN),
    **dict.fromkeys(["fog", "freezFog", "smog"], AlertKind.LOW_VISIBILITY),
    **dict.fromkeys(["wind", "squall", "stormSurge"], AlertKind.HIGH_WIND),
    **dict.fromkeys(["dustStorm"], AlertKind.SANDSTORM),
    **dict.fromkeys(["volcano", "volcanicAsh"], AlertKind.VOLCANIC_ASH),
    **dict.fromkeys(["rainfall", "flashFlood", "flood", "heat", "coldWave", "frost", "arcticOutflow"], AlertKind.OTHER),
}
# MeteoAlarm's awareness_type: "<number>; <name>".
_METEOALARM_TYPES = {
    "1": AlertKind.HIGH_WIND,
    "2": AlertKind.SNOW,
    "3": AlertKind.THUNDERSTORM,
    "4": AlertKind.LOW_VISIBILITY,
    **dict.fromkeys(["5", "6", "7", "8", "9", "10", "11", "12", "13"], AlertKind.OTHER),
}


def _words(*patterns: str) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


# First match wins: "tropical storm" is a typhoon, "winter storm" snow, "dust storm" sand,
# before "storm" is wind.
_TEXT_KINDS = [
    (
        _words(
            "typhoons?",
            "hurricanes?",
            "tropical (?:cyclone|storm|depression)s?",
            "cyclones?",
            "ouragans?",
            "tempêtes? tropicales?",
            "huracán",
            "huracanes",
            "ciclón",
            "ciclones",
            "ciclón tropical",
            "tormentas? tropical(?:es)?",
            "taifun",
            "tropischer wirbelsturm",
            "tyfon",
        ),
        AlertKind.TYPHOON,
    ),
    (
        _words(
            "thunderstorms?",
            "t-storms?",
            "lightning",
            "hail",
            "tornado(?:es)?",
            "orages?",
            "orageux",
            "grêle",
            "tornades?",
            "tormentas? eléctricas?",
            "granizo",
            "gewittern?",
            "hagel",
            "åska",
            "åskväder",
            "þrumuveður",
            "haglél",
        ),
        AlertKind.THUNDERSTORM,
    ),
    (
        _words(
            "freezing (?:rain|drizzle|fog)",
            "ice storms?",
            "sleet",
            "icing",
            "pluie verglaçante",
            "bruine verglaçante",
            "verglas",
            "lluvia engelante",
            "glatteis",
            "glätte",
            "underkylt regn",
            "ísing",
        ),
        AlertKind.FREEZING_RAIN,
    ),
    (
        _words(
            "snow(?:fall|storms?|squalls?)?",
            "blizzards?",
            "winter (?:storm|weather)",
            "neige",
            "poudrerie",
            "tempête hivernale",
            "nieve",
            "nevadas?",
            "schnee(?:fall)?",
            "schneeverwehungen",
            "snö(?:fall|storm)?",
            "snödrev",
            "snjókoma",
            "hríð",
        ),
        AlertKind.SNOW,
    ),
    (_words("fog", "dense fog", "low visibility", "brouillard", "niebla", "nebel", "dimma", "þoka"), AlertKind.LOW_VISIBILITY),
    (
        _words(
            "volcan(?:o|ic|oes)\\w*",
            "ash ?fall",
            "volcanic ash",
            "cendres volcaniques",
            "ceniza volcánica",
            "vulkanasche",
            "gjóska",
            "eldgos",
        ),
        AlertKind.VOLCANIC_ASH,
    ),
    (
        _words(
            "sand ?storms?",
            "dust ?storms?",
            "blowing dust",
            "tempête de (?:sable|poussière)",
            "tormenta de (?:arena|polvo)",
            "sandsturm",
            "staubsturm",
        ),
        AlertKind.SANDSTORM,
    ),
    (
        _words(
            "winds?",
            "windstorms?",
            "gales?",
            "storms?",
            "squalls?",
            "gusts?",
            "vents?",
            "rafales",
            "tempêtes?",
            "vientos?",
            "rachas",
            "sturm",
            "orkan",
            "böen",
            "vind",
            "storm",
            "stormur",
            "vindur",
            "hvassviðri",
        ),
        AlertKind.HIGH_WIND,
    ),
]


def cap_text_kind(text: str) -> str | None:
    return next((kind for pattern, kind in _TEXT_KINDS if pattern.search(text)), None)


def _code_kind(name: str, value: str) -> str | None:
    name, value = name.strip(), value.strip()
    if name in ("SAME", "NationalWeatherService"):
        return _NWS_CODES.get(value.upper())
    if name.startswith("profile:CAP-CP:Event"):
        return _CAP_CP_CODES.get(value)
    if name == "awareness_type":
        return _METEOALARM_TYPES.get(value.split(";")[0].strip())
    return None


# --- XML helpers --------------------------------------------------------------------------------


def _ns(element: Element) -> str:
    return element.tag[1:].split("}")[0] if element.tag.startswith("{") else ""


def _local(element: Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


@dataclass
class _Doc:
    """Namespace-bound look-ups for one CAP alert (1.1 and 1.2 share their element names)."""

    ns: str

    def q(self, name: str) -> str:
        return f"{{{self.ns}}}{name}"

    def text(self, element: Element | None, name: str) -> str:
        found = element.find(self.q(name)) if element is not None else None
        return (found.text or "").strip() if found is not None else ""

    def texts(self, element: Element, name: str) -> list[str]:
        return [(found.text or "").strip() for found in element.findall(self.q(name))]

    def pairs(self, element: Element, name: str) -> list[tuple[str, str]]:
        """`eventCode`, `parameter` or `geocode` children as (valueName, value)."""
        return [(self.text(pair, "valueName"), self.text(pair, "value")) for pair in element.findall(self.q(name))]


def _when(value: str) -> datetime | None:
    """CAP date-times carry their offset (`2019-07-12T17:59:29-00:00`); one without is UTC."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- places -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Airport:
    iata: str
    lat: float
    lon: float
    city: str
    country: str


@cache
def _located_airports() -> tuple[_Airport, ...]:
    return tuple(
        _Airport(code, data["lat"], data["lon"], data.get("city", ""), data.get("country", ""))
        for code, data in airports().items()
        if data.get("lat") is not None and data.get("lon") is not None
    )


def _points(polygon: str) -> list[tuple[float, float]]:
    return [(float(lat), float(lon)) for lat, lon in (pair.split(",")[:2] for pair in polygon.split())]


def _inside(lat: float, lon: float, polygon: list[tuple[float, float]]) -> bool:
    """Ray casting; CAP polygons are small enough for a flat-earth test."""
    inside = False
    for (lat1, lon1), (lat2, lon2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (lon1 > lon) != (lon2 > lon) and lat < (lat2 - lat1) * (lon - lon1) / (lon2 - lon1) + lat1:
            inside = not inside
    return inside


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2, dphi, dlambda = map(math.radians, (lat1, lat2, lat2 - lat1, lon2 - lon1))
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(a))


def _airports_in_polygon(polygon: list[tuple[float, float]]) -> set[_Airport]:
    if len(polygon) < 3:
        return set()
    lats, lons = [p[0] for p in polygon], [p[1] for p in polygon]
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    return {a for a in _located_airports() if south <= a.lat <= north and west <= a.lon <= east and _inside(a.lat, a.lon, polygon)}


def _airports_in_circle(circle: str) -> set[_Airport]:
    centre, _, radius = circle.strip().partition(" ")
    clat, clon = (float(v) for v in centre.split(",")[:2])
    km = float(radius or 0)
    return {a for a in _located_airports() if _km(a.lat, a.lon, clat, clon) <= km}


# Whole names only: "Central and Southern Lewis and Clark" (a Montana zone) is not the city of Central.
_AREA_NAME_SPLIT = re.compile(r"[,;/]| - ")


@dataclass(frozen=True)
class Place:
    """An airport (by IATA code) or a whole city."""

    airport: str = ""
    city: str = ""
    country: str = ""

    @property
    def key(self) -> str:
        return self.airport or f"{self.city}:{self.country}"


def area_places(doc: _Doc, area: Element) -> set[Place]:
    """Airports inside the area's polygons and circles; without geometry, the cities its
    description names."""
    polygons = [_points(text) for text in doc.texts(area, "polygon") if text]
    circles = [text for text in doc.texts(area, "circle") if text]
    if polygons or circles:
        inside = set().union(*(_airports_in_polygon(p) for p in polygons), *(_airports_in_circle(c) for c in circles))
        return {Place(airport=a.iata, city=a.city, country=a.country) for a in inside}
    names = {part.strip().casefold() for part in _AREA_NAME_SPLIT.split(doc.text(area, "areaDesc")) if part.strip()}
    return {Place(city=city, country=country) for name in names for city, country in cities().get(name, ())}


# --- events -------------------------------------------------------------------------------------


@dataclass
class _Event:
    """The `info` blocks of one event: one per language."""

    infos: list[Element] = field(default_factory=list)


def _events(doc: _Doc, alert: Element) -> list[_Event]:
    """Group `info` blocks into events: the n-th block of each language is the n-th event."""
    events: list[_Event] = []
    per_language: dict[str, int] = {}
    for info in alert.findall(doc.q("info")):
        language = (doc.text(info, "language") or "en-US").casefold()
        index = per_language.get(language, 0)
        per_language[language] = index + 1
        while len(events) <= index:
            events.append(_Event())
        events[index].infos.append(info)
    return events


def _english_first(doc: _Doc, infos: list[Element]) -> list[Element]:
    return sorted(infos, key=lambda info: not (doc.text(info, "language") or "en").casefold().startswith("en"))


def _event_kind(doc: _Doc, infos: list[Element]) -> str:
    for info in infos:
        for name, value in doc.pairs(info, "eventCode") + doc.pairs(info, "parameter"):
            if kind := _code_kind(name, value):
                return kind
    for element in ("event", "headline"):
        for info in infos:
            if kind := cap_text_kind(doc.text(info, element)):
                return kind
    return AlertKind.OTHER


_VTEC_END = re.compile(r"\.\d{6}T\d{4}Z-(\d{6}T\d{4})Z/")


def _event_end(doc: _Doc, infos: list[Element]) -> datetime | None:
    parameters = [pair for info in infos for pair in doc.pairs(info, "parameter")]
    for name, value in parameters:
        if name == "eventEndingTime" and value:
            return _when(value)
    for name, value in parameters:
        if name == "VTEC" and (match := _VTEC_END.search(value)) and not match.group(1).startswith("000000"):
            return datetime.strptime(match.group(1), "%y%m%dT%H%M").replace(tzinfo=UTC)
    expires = [when for info in infos if (when := _when(doc.text(info, "expires")))]
    return min(expires) if expires else None


def event_window(doc: _Doc, infos: list[Element], sent: datetime) -> tuple[datetime, datetime]:
    first = infos[0]
    start = _when(doc.text(first, "onset")) or _when(doc.text(first, "effective")) or sent
    end = _event_end(doc, infos)
    if end is None or end <= start:
        end = start + timedelta(hours=CAP_DEFAULT_HOURS)
    return start, end


def _is_over(doc: _Doc, infos: list[Element]) -> bool:
    return any("AllClear" in doc.texts(info, "responseType") or doc.text(info, "urgency") == "Past" for info in infos)


def _event_drafts(doc: _Doc, event: _Event, *, identifier: str, number: int, sent: datetime) -> list[AlertDraft] | str:
    """The alerts of one event, or why it raises none."""
    infos = _english_first(doc, event.infos)
    name = doc.text(infos[0], "event") or "event"
    kind = _event_kind(doc, infos)
    categories = {category for info in infos for category in doc.texts(info, "category")}
    if not categories & WEATHER_CATEGORIES and not (kind == AlertKind.VOLCANIC_ASH and "Geo" in categories):
        return f"{name}: category {'/'.join(sorted(categories)) or 'missing'}, not weather"
    if _is_over(doc, infos):
        return f"{name}: all clear"
    valid_from, valid_to = event_window(doc, infos, sent)
    places = set().union(*(area_places(doc, area) for info in infos for area in info.findall(doc.q("area"))))
    if not places:
        return f"{name}: no known airport in its area"
    preferred = infos[0]
    text = "\n\n".join(filter(None, [doc.text(preferred, "description"), doc.text(preferred, "instruction")]))
    return [
        AlertDraft(
            kind=kind,
            severity=_SEVERITIES.get(doc.text(preferred, "severity"), Severity.MODERATE),
            valid_from=valid_from,
            valid_to=valid_to,
            city=place.city,
            country=place.country,
            airport=place.airport or None,
            source=AlertSource.CAP,
            source_id=f"{identifier}#{number}@{place.key}"[:200],
            headline=(doc.text(preferred, "headline") or name)[:200],
            raw_text=text,
        )
        for place in sorted(places, key=lambda p: p.key)
    ]


def _reference_ids(references: str) -> list[str]:
    """`sender,identifier,sent` triples, space-separated -> identifiers."""
    return [ref.split(",")[1] for ref in references.split() if ref.count(",") == 2]


def cap_message(alert: Element) -> Message | str:
    """One CAP `<alert>` -> a message, or the reason it cannot be used."""
    doc = _Doc(_ns(alert))
    identifier = doc.text(alert, "identifier") or "(no identifier)"
    status, msg_type = doc.text(alert, "status"), doc.text(alert, "msgType")
    if status != "Actual":
        return f"{identifier}: status {status or 'missing'}, not Actual"
    if msg_type not in ("Alert", "Update", "Cancel"):
        return f"{identifier}: msgType {msg_type or 'missing'} carries no alert"
    try:
        sent = _when(doc.text(alert, "sent"))
    except ValueError:
        return f"{identifier}: unreadable <sent> time"
    if sent is None:
        return f"{identifier}: no <sent> time"
    message = Message(source=AlertSource.CAP, identifier=identifier, sent=sent, msg_type=msg_type)
    if msg_type in ("Update", "Cancel"):
        message.references = _reference_ids(doc.text(alert, "references"))
    if msg_type == "Cancel":
        return message if message.references else f"{identifier}: a Cancel that references nothing"
    for number, event in enumerate(_events(doc, alert)):
        try:
            drafts = _event_drafts(doc, event, identifier=identifier, number=number, sent=sent)
        except ValueError as exc:  # a bad time or coordinate in this event
            drafts = f"event {number}: unreadable ({exc})"
        if isinstance(drafts, str):
            message.reasons.append(drafts)
        else:
            message.drafts += drafts
    if not message.drafts and not message.references:
        return f"{identifier}: " + ("; ".join(message.reasons) or "no info block")
    return message


# --- documents ----------------------------------------------------------------------------------


def _entry_link(entry: Element) -> str:
    """Where an ATOM entry's CAP message is: the link typed as CAP, else the alternate one,
    else the entry id when it is a URL (NWS indexes)."""
    links = entry.findall(f"{{{ATOM}}}link")
    for wanted in (lambda link: "cap" in link.get("type", ""), lambda link: link.get("rel", "alternate") == "alternate"):
        for link in links:
            if wanted(link) and link.get("href", "").startswith(("http://", "https://")):
                return link.get("href")
    entry_id = (entry.findtext(f"{{{ATOM}}}id") or "").strip()
    return entry_id if entry_id.startswith(("http://", "https://")) else ""


def _is_cap_alert(element: Element) -> bool:
    return _local(element) == "alert" and _ns(element) in CAP_NAMESPACES


def parse_cap_xml(xml: bytes | str) -> ImportReport:
    """A CAP document (see the module doc) -> its messages, oldest first, and the reasons for
    the ones that cannot be used."""
    root = ElementTree.fromstring(xml)
    result = ImportReport()
    if _local(root) == "alert" and _ns(root) == CAP_10:
        raise ValueError("CAP 1.0 is not supported (CAP 1.1 and 1.2 are)")
    alerts = [element for element in root.iter() if _is_cap_alert(element)]
    if _ns(root) == ATOM:
        for entry in root.findall(f"{{{ATOM}}}entry"):
            if any(_is_cap_alert(element) for element in entry.iter()):
                continue
            entry_id = (entry.findtext(f"{{{ATOM}}}id") or "").strip()
            updated = (entry.findtext(f"{{{ATOM}}}updated") or "").strip()
            if link := _entry_link(entry):
                result.links.append((f"{entry_id}|{updated}", link))
            else:
                result.skipped.append(f"entry {entry_id or '(no id)'}: no CAP message inline and no link to one")
    elif not alerts:
        raise ValueError(
            f"not a CAP 1.1/1.2 alert, a feed or list of them, or an EDXL-DE wrapper (root <{_local(root)}> in {_ns(root) or 'no namespace'})"
        )
    for alert in alerts:
        message = cap_message(alert)
        if isinstance(message, str):
            result.skipped.append(message[:300])
        else:
            result.messages.append(message)
    result.messages.sort(key=lambda message: message.sent)
    return result
