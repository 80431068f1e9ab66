"""Weather import speed: reading the real corpus (tests/data/weather), matching CAP polygons
against every airport, and storing a feed's messages (one transaction each) on MariaDB.

    .venv/bin/python bench/weather_bench.py [--rounds 20] [--write-docs]
"""

import argparse
import os
import platform
import statistics
import time

from common import ROOT, setup_django, use_database, write_docs

DATA = ROOT / "tests" / "data" / "weather"
CAP_READABLE = [p for p in sorted((DATA / "cap").iterdir()) if p.name not in ("invalid_xmlns.cap", "pelmorex.atom")]


def timed(fn, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    use_database("airticket_bench_weather")
    setup_django()
    from admin_portal import services, weather
    from admin_portal.models import WeatherAlert, WeatherMessage

    cap_bytes = [p.read_bytes() for p in CAP_READABLE]
    metar_texts = [p.read_text() for p in sorted((DATA / "metar").iterdir())]
    weather.parse_cap_xml(cap_bytes[0])  # warm the airport caches
    cap_times = timed(lambda: [weather.parse_cap_xml(b) for b in cap_bytes], args.rounds)
    metar_lines = sum(len(weather.parse_metar_text(t).messages) + len(weather.parse_metar_text(t).skipped) for t in metar_texts)
    metar_times = timed(lambda: [weather.parse_metar_text(t) for t in metar_texts], args.rounds)
    mexico = (DATA / "cap" / "mexico.xml").read_bytes()
    polygon_times = timed(lambda: weather.parse_cap_xml(mexico), args.rounds)

    def store():
        WeatherAlert.objects.all().delete()
        WeatherMessage.objects.all().delete()
        for data in cap_bytes:
            services.weather_alerts_import(report=weather.parse_cap_xml(data))
        for text in metar_texts:
            services.weather_alerts_import(report=weather.parse_metar_text(text))

    store_times = timed(store, max(3, args.rounds // 4))
    alerts = WeatherAlert.objects.count()
    rows = [
        ("read the 24 readable CAP files (CAP 1.1/1.2, ATOM, EDXL-DE, lists)", statistics.median(cap_times) * 1000),
        (f"read the {metar_lines} METAR reports (JSON and text)", statistics.median(metar_times) * 1000),
        ("one CAP message whose polygon is matched against 7,884 airports (mexico.xml)", statistics.median(polygon_times) * 1000),
        (f"import all of it into MariaDB, one transaction per message ({alerts} alerts)", statistics.median(store_times) * 1000),
    ]
    body = "\n".join(
        [
            f"`.venv/bin/python bench/weather_bench.py --rounds {args.rounds}` — Python {platform.python_version()}, "
            f"MariaDB on loopback, 2 CPUs shared (load average {os.getloadavg()[0]:.1f}); medians of {args.rounds} rounds "
            "(the import: of its rounds).",
            "",
            "| step | median ms |",
            "|---|---:|",
            *[f"| {name} | {ms:.1f} |" for name, ms in rows],
        ]
    )
    print(body)
    if args.write_docs:
        write_docs("## Weather import", body)


if __name__ == "__main__":
    main()
