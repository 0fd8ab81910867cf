"""Read a runwsserver's Prometheus metrics, as a scraper would."""

from __future__ import annotations

import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``GET /metrics`` on ``port``, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(port: int, name: str, **labels: str) -> float:
    """One sample's value; 0 for a labelled counter that hasn't counted yet."""
    return scrape(port).get((name, frozenset(labels.items())), 0.0)


def wait_for(
    port: int, name: str, at_least: float, timeout: float, **labels: str
) -> float:
    """Wait until a sample reaches ``at_least``; return its value."""
    deadline = time.monotonic() + timeout
    while (current := value(port, name, **labels)) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name}{labels or ''} is {current} after {timeout}s, "
                f"expected at least {at_least}"
            )
        time.sleep(0.05)
    return current
