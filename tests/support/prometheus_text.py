"""/metrics read the way Prometheus reads it: with ``prometheus_client``'s parser, so a
test depends on the series and their values, not on label order or number formatting."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def parse(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def values(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called ``name`` whose labels include ``labels``: (labels, value)."""
    return [
        (s.labels, s.value)
        for s in parse(text)
        if s.name == name and labels.items() <= s.labels.items()
    ]


def value(text: str, name: str, **labels: str) -> float | None:
    """The one sample called ``name`` with these labels, or None when there is none."""
    found = values(text, name, **labels)
    assert len(found) <= 1, found
    return found[0][1] if found else None


def types(text: str) -> dict[str, str]:
    """Family name -> type (counter, gauge, histogram)."""
    return {f.name: f.type for f in text_string_to_metric_families(text)}
