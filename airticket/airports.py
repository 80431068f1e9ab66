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
