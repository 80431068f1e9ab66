"""METAR and SPECI reports (parsed with the `metar` package) -> alerts per airport.

A report raises an alert for each condition that grounds or diverts flights at that airport:

| condition (METAR)                                        | kind           | severity                     |
|----------------------------------------------------------|----------------|------------------------------|
| thunderstorm `TS` (any intensity), hail `GR`              | THUNDERSTORM   | SEVERE; EXTREME when heavy   |
| freezing precipitation `FZRA`, `FZDZ`, ice pellets `PL`   | FREEZING_RAIN  | SEVERE; EXTREME when heavy   |
| heavy snow `+SN`, `+SG`, blowing snow `BLSN`              | SNOW           | SEVERE                       |
| visibility at or below 1/2 SM (805 m), or an RVR at or below 550 m | LOW_VISIBILITY | SEVERE; EXTREME below 200 m visibility or 300 m RVR |
| gusts of 35 kt or more, or mean wind of 30 kt or more     | HIGH_WIND      | SEVERE; EXTREME from 50 kt   |
| squall `SQ`, funnel cloud / tornado `FC`                  | HIGH_WIND      | EXTREME                      |
| volcanic ash `VA`                                         | VOLCANIC_ASH   | EXTREME                      |
| sand or dust storm `SS`, `DS`                             | SANDSTORM      | SEVERE; EXTREME when heavy   |

Visibility limits are the Category I precision-approach minima a dispatcher plans with: FAA
1/2 statute mile (805 m; RVR 2400 ft, 1800 ft = 550 m with touchdown-zone and centre-line
lights) and ICAO/EASA 800 m visibility or 550 m RVR. At or below them an ordinary (CAT I)
approach is at its limit, so the alert is SEVERE; below CAT II (300 m RVR) only CAT III
aircraft and crews can land, so it is EXTREME, as is a visibility under 200 m. 35 kt gusts are
beyond the crosswind limits of most airliners on a runway not aligned with the wind.

Dates: a report carries only day, hour and minute. NOAA cycle files put a `YYYY/MM/DD hh:mm`
line before each report, and the aviationweather.gov JSON API gives each report's `obsTime`;
those fix month and year. Otherwise the `metar` package infers them from the clock, rolling
back to last month when the day is still ahead (on the 1st, `301200Z` is yesterday, the 30th).

Wind without a unit (`26026G40`) is in knots, the ICAO default; the package would read m/s.

A METAR describes the present, so its alert is valid from the observation for
`METAR_VALID_HOURS` (reports come at least hourly; a newer report raises its own alert).
"""

import json
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from metar import Metar

from airticket.airports import airports

from ..models import AlertKind, AlertSource, Severity
from .drafts import AlertDraft, ImportReport, Message

METAR_VALID_HOURS = 3
LOW_VISIBILITY_M = 805  # 1/2 statute mile (FAA CAT I); covers ICAO's 800 m
VERY_LOW_VISIBILITY_M = 200
LOW_RVR_M = 550  # CAT I RVR minimum (ICAO 550 m; FAA 1800 ft)
VERY_LOW_RVR_M = 300  # CAT II RVR minimum: below it only CAT III approaches
GUST_KT = 35
MEAN_WIND_KT = 30
EXTREME_WIND_KT = 50


@cache
def _icao_index() -> dict[str, dict]:
    return {data["icao"]: data for data in airports().values() if data.get("icao")}


@dataclass(frozen=True)
class Condition:
    kind: str
    severity: str
    what: str


def _weather_conditions(report: Metar.Metar) -> list[Condition]:
    found = []
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
    return found


def _visibility_condition(report: Metar.Metar) -> Condition | None:
    visibility = report.vis.value("M") if report.vis is not None else None
    rvr = min((low.value("M") for _name, low, _high, _unit in report.runway), default=None)
    low = (visibility is not None and visibility <= LOW_VISIBILITY_M) or (rvr is not None and rvr <= LOW_RVR_M)
    if not low:
        return None
    extreme = (visibility is not None and visibility < VERY_LOW_VISIBILITY_M) or (rvr is not None and rvr < VERY_LOW_RVR_M)
    parts = [f"visibility {visibility:.0f} m" if visibility is not None else "", f"RVR {rvr:.0f} m" if rvr is not None else ""]
    return Condition(AlertKind.LOW_VISIBILITY, Severity.EXTREME if extreme else Severity.SEVERE, ", ".join(filter(None, parts)))


def _wind_condition(report: Metar.Metar) -> Condition | None:
    gust = report.wind_gust.value("KT") if report.wind_gust else 0
    mean = report.wind_speed.value("KT") if report.wind_speed else 0
    if gust < GUST_KT and mean < MEAN_WIND_KT:
        return None
    severity = Severity.EXTREME if max(gust, mean) >= EXTREME_WIND_KT else Severity.SEVERE
    return Condition(AlertKind.HIGH_WIND, severity, f"wind {mean:.0f} kt gusting {gust:.0f} kt")


def metar_conditions(report: Metar.Metar) -> list[Condition]:
    """The flight-stopping conditions in one parsed report, per the table above; one per kind
    (the most severe)."""
    found = _weather_conditions(report) + [c for c in (_visibility_condition(report), _wind_condition(report)) if c]
    rank = list(Severity.values)
    best: dict[str, Condition] = {}
    for condition in found:
        if condition.kind not in best or rank.index(condition.severity) > rank.index(best[condition.kind].severity):
            best[condition.kind] = condition
    return list(best.values())


# The wind group right after the time (and an optional AUTO/COR/NIL): `26026G40` with no unit.
_UNITLESS_WIND = re.compile(r"^((?:METAR |SPECI )?[A-Z0-9]{4} \d{6}Z (?:(?:AUTO|COR|CCA|RTD) )*)((?:\d{3}|VRB)\d{2,3}(?:G\d{2,3})?)(?= |$)")


def read_metar(line: str, *, month: int | None = None, year: int | None = None) -> Metar.Metar:
    """Parse one report; month and year only when the source gives them (see the module doc)."""
    line = _UNITLESS_WIND.sub(r"\1\2KT", line)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "unparsed groups": remarks we do not need
        return Metar.Metar(line, month=month, year=year, strict=False)


def metar_message(line: str, *, month: int | None = None, year: int | None = None) -> Message | str:
    """One report -> a message with its alerts, or the reason it cannot be used."""
    try:
        report = read_metar(line, month=month, year=year)
    except (Metar.ParserError, ValueError) as exc:  # ValueError: an impossible date
        return f"{line[:40]}: unreadable ({str(exc).splitlines()[0][:120]})"
    station = _icao_index().get(report.station_id or "")
    if station is None or not station.get("iata"):
        return f"{report.station_id}: not an airport with an IATA code"
    if report.time is None:
        return f"{report.station_id}: no observation time"
    observed = report.time.replace(tzinfo=UTC)
    message = Message(source=AlertSource.METAR, identifier=f"{report.station_id}:{observed:%Y%m%dT%H%MZ}", sent=observed)
    for condition in metar_conditions(report):
        message.drafts.append(
            AlertDraft(
                kind=condition.kind,
                severity=condition.severity,
                valid_from=observed,
                valid_to=observed + timedelta(hours=METAR_VALID_HOURS),
                city=station["city"],
                country=station["country"],
                airport=station["iata"],
                source=AlertSource.METAR,
                source_id=f"{message.identifier}:{condition.kind}",
                headline=f"{condition.what} at {station['iata']} ({report.station_id})"[:200],
                raw_text=line,
            )
        )
    return message


_DATE_LINE = re.compile(r"(\d{4})/(\d{2})/(\d{2}) \d{2}:\d{2}")


def _json_reports(text: str) -> list[tuple[str, int | None, int | None]]:
    """aviationweather.gov's data API (`format=json`: `rawOb`, `obsTime` in epoch seconds) and
    its older dataserver shape (`raw_text`, `observation_time`)."""
    data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("data", {}).get("METAR", data.get("features", []))
    reports = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        raw = item.get("rawOb") or item.get("raw_text") or ""
        when = None
        if isinstance(item.get("obsTime"), int | float):
            when = datetime.fromtimestamp(item["obsTime"], UTC)
        elif isinstance(item.get("observation_time"), str):
            when = datetime.fromisoformat(item["observation_time"].replace("Z", "+00:00"))
        reports.append((raw, when.month if when else None, when.year if when else None))
    return reports


def _text_reports(text: str) -> list[tuple[str, int | None, int | None]]:
    reports, month, year = [], None, None
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if dated := _DATE_LINE.fullmatch(line):
            year, month = int(dated.group(1)), int(dated.group(2))
            continue
        reports.append((line, month, year))
        month = year = None  # a date line dates only the report after it
    return reports


def parse_metar_text(text: str) -> ImportReport:
    """Reports one per line (`METAR`/`SPECI` prefix optional, NOAA date lines honoured), or
    the JSON of aviationweather.gov's data API."""
    result = ImportReport()
    stripped = text.lstrip()
    try:
        reports = _json_reports(stripped) if stripped[:1] in "[{" and stripped else _text_reports(text)
    except ValueError as exc:
        raise ValueError(f"not METAR text or JSON: {exc}") from None
    for line, month, year in reports:
        line = line.strip().rstrip("=").strip()
        if not line:
            continue
        message = metar_message(line, month=month, year=year)
        if isinstance(message, str):
            result.skipped.append(message[:200])
        else:
            result.messages.append(message)
    return result
