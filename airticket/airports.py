"""IATA airport data from the maintained `airportsdata` package (no hand-typed lists).

Shared by the command side (validating codes, without a database) and the query side
(loading the Airport read model)."""

import functools

import airportsdata


@functools.cache
def airports() -> dict[str, dict]:
    return airportsdata.load("IATA")


def is_known_iata(code: str) -> bool:
    return code in airports()


@functools.cache
def cities() -> dict[str, set[tuple[str, str]]]:
    """Each city that has an airport, by its casefolded name: {(city, country), ...} (one name
    can be a city in several countries)."""
    found: dict[str, set[tuple[str, str]]] = {}
    for data in airports().values():
        if data.get("city"):
            found.setdefault(data["city"].casefold(), set()).add((data["city"], data["country"]))
    return found
