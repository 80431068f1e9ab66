"""Weather alerts from standard sources: METAR reports and CAP 1.2 alerts.

Both importers only read and map; `services.weather_alert_create` stores, so re-importing the
same report or CAP message is a no-op (alerts are keyed by source and source id).

METAR (parsed with the `metar` package). A report raises an alert for each condition that
grounds or diverts flights at that airport:

| condition (METAR)                                   | kind            | severity                      |
|-----------------------------------------------------|-----------------|-------------------------------|
| thunderstorm `TS` (any intensity), hail `GR`         | THUNDERSTORM    | SEVERE; EXTREME when heavy    |
| freezing precipitation `FZRA`, `FZDZ`, ice pellets `PL` | FREEZING_RAIN | SEVERE; EXTREME when heavy    |
| heavy snow `+SN`, heavy snow grains `+SG`, blowing snow `BLSN` | SNOW   | SEVERE                        |
| prevailing visibility below 800 m                   | LOW_VISIBILITY  | SEVERE; EXTREME below 200 m   |
| gusts of 35 kt or more, or mean wind of 30 kt or more | HIGH_WIND     | SEVERE; EXTREME from 50 kt    |
| squall `SQ`, funnel cloud / tornado `FC`             | HIGH_WIND       | EXTREME                       |
| volcanic ash `VA`                                   | VOLCANIC_ASH    | EXTREME                       |
| sand or dust storm `SS`, `DS`                       | SANDSTORM       | SEVERE; EXTREME when heavy    |

800 m is about the lowest runway visual range most operators accept for a Category I
approach (550 m) plus margin; 35 kt gusts are beyond the crosswind limits of most airliners
on a runway not aligned with the wind. A METAR describes the present, so its alert is valid
from the observation time for `METAR_VALID_HOURS` (reports come at least hourly; a newer
report raises its own alert).

CAP 1.2 (parsed with `defusedxml`): every `info` block of an `Actual` `Alert`/`Update` becomes
alerts for the cities its areas cover: airports inside a `polygon` or `circle`, else cities
named in `areaDesc`. The kind comes from the event text, the severity from CAP's severity,
the window from onset/effective to expires. A `Cancel` message expires the alerts it references.
"""

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from metar import Metar

from airticket.airports import airports

from .models import AlertKind, AlertSource, Severity

METAR_VALID_HOURS = 3
LOW_VISIBILITY_M = 800
VERY_LOW_VISIBILITY_M = 200
GUST_KT = 35
MEAN_WIND_KT = 30
EXTREME_WIND_KT = 50
CAP_NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
CAP_DEFAULT_HOURS = 24


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
class ImportReport:
    drafts: list[AlertDraft] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what was not imported, and why
    cancels: list[str] = field(default_factory=list)  # CAP identifiers a Cancel message withdraws
    cancelled_at: datetime | None = None  # when they end: the Cancel's own `sent`, never the clock


# --- METAR ----------------------------------------------------------------------------------


def _icao_index() -> dict[str, dict]:
    return {data["icao"]: data for data in airports().values() if data.get("icao")}


@dataclass(frozen=True)
class Condition:
    kind: str
    severity: str
    what: str


def metar_conditions(report: Metar.Metar) -> list[Condition]:
    """The flight-stopping conditions in one parsed report, per the table above."""
    found: list[Condition] = []
    for intensity, descriptor, precipitation, obscuration, other in report.weather:
        heavy = intensity == "+"
        precipitation, obscuration, other, descriptor = precipitation or "", obscuration or "", other or "", descriptor or ""
        if descriptor == "TS" or "GR" in precipitation:
            found.append(Condition(AlertKind.THUNDERSTORM, Severity.EXTREME if heavy else Severity.SEVERE, "thunderstorm"))
        if (descriptor == "FZ" and any(p in precipitation for p in ("RA", "DZ", "UP"))) or "PL" in precipitation:
            found.append(Condition(AlertKind.FREEZING_RAIN, Severity.EXTREME if heavy else Severity.SEVERE, "freezing precipitation"))
        if (heavy and ("SN" in precipitation or "SG" in precipitation)) or (descriptor == "BL" and "SN" in precipitation):
            found.append(Condition(AlertKind.SNOW, Severity.SEVERE, "heavy or blowing snow"))
        if other in ("SQ", "FC", "+FC"):
            found.append(Condition(AlertKind.HIGH_WIND, Severity.EXTREME, "squall" if other == "SQ" else "funnel cloud"))
        if obscuration == "VA":
            found.append(Condition(AlertKind.VOLCANIC_ASH, Severity.EXTREME, "volcanic ash"))
        if other in ("SS", "DS"):
            found.append(Condition(AlertKind.SANDSTORM, Severity.EXTREME if heavy else Severity.SEVERE, "sand or dust storm"))
    if report.vis is not None:
        metres = report.vis.value("M")
        if metres < LOW_VISIBILITY_M:
            severity = Severity.EXTREME if metres < VERY_LOW_VISIBILITY_M else Severity.SEVERE
            found.append(Condition(AlertKind.LOW_VISIBILITY, severity, f"visibility {metres:.0f} m"))
    gust = report.wind_gust.value("KT") if report.wind_gust else 0
    mean = report.wind_speed.value("KT") if report.wind_speed else 0
    if gust >= GUST_KT or mean >= MEAN_WIND_KT:
        severity = Severity.EXTREME if max(gust, mean) >= EXTREME_WIND_KT else Severity.SEVERE
        found.append(Condition(AlertKind.HIGH_WIND, severity, f"wind {mean:.0f} kt gusting {gust:.0f} kt"))
    # One alert per kind: the most severe condition of that kind wins.
    rank = list(Severity.values)
    best: dict[str, Condition] = {}
    for condition in found:
        if condition.kind not in best or rank.index(condition.severity) > rank.index(best[condition.kind].severity):
            best[condition.kind] = condition
    return list(best.values())


_DATE_LINE = re.compile(r"(\d{4})/(\d{2})/(\d{2}) \d{2}:\d{2}")


def parse_metar_text(text: str, *, now: datetime | None = None) -> ImportReport:
    """Reports one per line (`METAR`/`SPECI` prefix optional). NOAA's cycle files put a
    `YYYY/MM/DD hh:mm` line before each report; it fixes the report's month and year, which
    the report itself does not carry (otherwise the current month is assumed)."""
    now = now or datetime.now(UTC)
    year, month = now.year, now.month
    stations = _icao_index()
    result = ImportReport()
    for raw_line in text.splitlines():
        line = raw_line.strip().rstrip("=").strip()
        if not line or line.startswith("#"):
            continue
        if dated := _DATE_LINE.fullmatch(line):
            year, month = int(dated.group(1)), int(dated.group(2))
            continue
        try:
            report = Metar.Metar(line, month=month, year=year, strict=False)
        except Metar.ParserError as exc:
            result.skipped.append(f"{line[:40]}: unreadable ({exc})"[:200])
            continue
        station = stations.get(report.station_id or "")
        if station is None or not station.get("iata"):
            result.skipped.append(f"{report.station_id}: not an airport with an IATA code")
            continue
        observed = (report.time or now.replace(tzinfo=None)).replace(tzinfo=UTC)
        for condition in metar_conditions(report):
            result.drafts.append(
                AlertDraft(
                    kind=condition.kind,
                    severity=condition.severity,
                    valid_from=observed,
                    valid_to=observed + timedelta(hours=METAR_VALID_HOURS),
                    city=station["city"],
                    country=station["country"],
                    airport=station["iata"],
                    source=AlertSource.METAR,
                    source_id=f"{report.station_id}:{observed:%Y%m%dT%H%MZ}:{condition.kind}",
                    headline=f"{condition.what} at {station['iata']} ({report.station_id})"[:200],
                    raw_text=line,
                )
            )
    return result


# --- CAP 1.2 --------------------------------------------------------------------------------

_KINDS = [
    (("typhoon", "hurricane", "tropical cyclone", "tropical storm", "cyclone"), AlertKind.TYPHOON),
    (("thunder", "lightning", "hail", "tornado"), AlertKind.THUNDERSTORM),
    (("freezing rain", "ice storm", "sleet", "freezing drizzle", "icing"), AlertKind.FREEZING_RAIN),
    (("snow", "blizzard", "winter storm"), AlertKind.SNOW),
    (("fog", "visibility", "haze", "smog"), AlertKind.LOW_VISIBILITY),
    (("volcan", "ash"), AlertKind.VOLCANIC_ASH),
    (("sand", "dust"), AlertKind.SANDSTORM),
    (("wind", "gale", "storm", "squall"), AlertKind.HIGH_WIND),
]
_SEVERITIES = {"Extreme": Severity.EXTREME, "Severe": Severity.SEVERE, "Moderate": Severity.MODERATE, "Minor": Severity.MINOR}


def cap_kind(event: str) -> str:
    lowered = event.lower()
    return next((kind for words, kind in _KINDS if any(word in lowered for word in words)), AlertKind.OTHER)


def _text(element: Element | None, path: str) -> str:
    found = element.find(path, CAP_NS) if element is not None else None
    return (found.text or "").strip() if found is not None else ""


def _when(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _points(polygon: str) -> list[tuple[float, float]]:
    return [(float(lat), float(lon)) for lat, lon in (pair.split(",") for pair in polygon.split())]


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


def cap_area_cities(area: Element) -> set[tuple[str, str]]:
    """(city, country) pairs an area covers: airports inside its polygons or circles, or else
    the cities its description names."""
    polygons = [_points(p.text) for p in area.findall("cap:polygon", CAP_NS) if p.text]
    circles = []
    for circle in area.findall("cap:circle", CAP_NS):
        centre, _, radius = (circle.text or "").strip().partition(" ")
        lat, lon = (float(v) for v in centre.split(","))
        circles.append((lat, lon, float(radius)))
    if polygons or circles:
        covered = set()
        for data in airports().values():
            lat, lon = data.get("lat"), data.get("lon")
            if lat is None or lon is None:
                continue
            if any(_inside(lat, lon, polygon) for polygon in polygons) or any(
                _km(lat, lon, clat, clon) <= radius for clat, clon, radius in circles
            ):
                covered.add((data["city"], data["country"]))
        return covered
    named = {part.strip().lower() for part in re.split(r"[,;/]| and ", _text(area, "cap:areaDesc")) if part.strip()}
    return {(data["city"], data["country"]) for data in airports().values() if data["city"].lower() in named}


def parse_cap_xml(xml: bytes | str) -> ImportReport:
    """One CAP 1.2 `<alert>` document -> drafts for the cities its areas cover."""
    root = ElementTree.fromstring(xml)
    result = ImportReport()
    if root.tag != f"{{{CAP_NS['cap']}}}alert":
        raise ValueError("not a CAP 1.2 alert (expected urn:oasis:names:tc:emergency:cap:1.2)")
    identifier, status, msg_type = _text(root, "cap:identifier"), _text(root, "cap:status"), _text(root, "cap:msgType")
    if status != "Actual":
        result.skipped.append(f"{identifier}: status {status}, not Actual")
        return result
    # `sent` is required by CAP 1.2; a message without it has no time to take effect at.
    sent = _when(_text(root, "cap:sent"))
    if sent is None:
        raise ValueError(f"{identifier}: no <sent> time")
    if msg_type == "Cancel":
        references = _text(root, "cap:references").split()
        result.cancels = [ref.split(",")[1] for ref in references if ref.count(",") == 2]
        result.cancelled_at = sent
        return result
    for index, info in enumerate(root.findall("cap:info", CAP_NS)):
        event = _text(info, "cap:event")
        valid_from = _when(_text(info, "cap:onset")) or _when(_text(info, "cap:effective")) or sent
        valid_to = _when(_text(info, "cap:expires")) or valid_from + timedelta(hours=CAP_DEFAULT_HOURS)
        cities = set().union(*(cap_area_cities(area) for area in info.findall("cap:area", CAP_NS)))
        if not cities:
            result.skipped.append(f"{identifier}: no known city in its areas")
        for city, country in sorted(cities):
            result.drafts.append(
                AlertDraft(
                    kind=cap_kind(event),
                    severity=_SEVERITIES.get(_text(info, "cap:severity"), Severity.MODERATE),
                    valid_from=valid_from,
                    valid_to=valid_to,
                    city=city,
                    country=country,
                    source=AlertSource.CAP,
                    source_id=f"{identifier}#{index}:{city}:{country}"[:200],
                    headline=(_text(info, "cap:headline") or event)[:200],
                    raw_text="\n\n".join(filter(None, [_text(info, "cap:description"), _text(info, "cap:instruction")])),
                )
            )
    return result
