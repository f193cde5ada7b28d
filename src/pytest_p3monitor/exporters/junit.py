"""Each test case of pytest's JUnit XML (``--junitxml``) carries the test's figures.

The properties are added straight to the test case's node reporter of pytest's ``LogXML``
(``node_reporter(report).add_property``) from ``pytest_runtest_logreport``, just before
junitxml closes the test case on its teardown report. Unlike the
``record_property`` fixture this needs no fixture in the tests and issues no warning for
``junit_family=xunit2``.

Names are ``p3monitor_<figure>``: ``p3monitor_duration_s``, ``p3monitor_setup_s``,
``p3monitor_call_s``, ``p3monitor_teardown_s`` (of that attempt: with pytest-rerunfailures
junitxml writes one test case per attempt), ``p3monitor_reruns`` (attempts rerun so far),
``p3monitor_worker`` (under xdist) and one per figure measured for the test
(``p3monitor_rss_bytes_peak`` ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from ..collect import FIGURES_ATTR

if TYPE_CHECKING:
    from _pytest.junitxml import LogXML

__all__ = ["PREFIX", "JUnitProperties", "format_value", "properties_for"]

PREFIX = "p3monitor_"


def format_value(value: object) -> str | None:
    """A property value as text: integers plain, floats with up to 6 decimals, None dropped."""
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    text = str(value)
    return text or None


def properties_for(
    *,
    setup_s: float,
    call_s: float,
    teardown_s: float,
    reruns: int = 0,
    worker: str | None = None,
    figures: Mapping[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """The (name, value) properties of one test case, in a stable order."""
    pairs: list[tuple[str, object]] = [
        ("duration_s", setup_s + call_s + teardown_s),
        ("setup_s", setup_s),
        ("call_s", call_s),
        ("teardown_s", teardown_s),
    ]
    if reruns:
        pairs.append(("reruns", reruns))
    if worker:
        pairs.append(("worker", worker))
    taken = {name for name, _ in pairs}
    for name, value in sorted((figures or {}).items()):
        if not isinstance(name, str) or name in taken or isinstance(value, (dict, list, tuple)):
            continue
        pairs.append((name, value))
    result = []
    for name, value in pairs:
        text = format_value(value)
        if text is not None:
            result.append((PREFIX + name, text))
    return result


@dataclass
class _Pending:
    setup_s: float = 0.0
    call_s: float = 0.0
    teardown_s: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


class JUnitProperties:
    """Registered on the controller when ``--junitxml`` is on; adds properties per test case."""

    name = "p3monitor-junit"

    def __init__(self, xml: LogXML) -> None:
        self._xml = xml
        self._pending: dict[tuple[str, object], _Pending] = {}
        self._reruns: dict[str, int] = {}

    # A plain hookimpl on purpose: it runs after the ``tryfirst`` ones (the monitor puts the
    # test's figures on the teardown report there, or an xdist worker did) and, being
    # registered after pytest's LogXML, before LogXML closes the test case on that report.
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        key = (report.nodeid, getattr(report, "node", None))
        pending = self._pending.setdefault(key, _Pending())
        duration = float(getattr(report, "duration", 0.0) or 0.0)
        if report.outcome == "rerun":  # type: ignore[comparison-overlap]  # pytest-rerunfailures
            # each attempt is its own test case in junitxml; the count carries on to the next
            self._reruns[report.nodeid] = self._reruns.get(report.nodeid, 0) + 1
        if report.when == "setup":
            pending.setup_s += duration
        elif report.when == "call" and getattr(report, "context", None) is None:
            pending.call_s += duration  # a subtest's report (context) is part of the call's time
        figures = getattr(report, FIGURES_ATTR, None)
        if isinstance(figures, Mapping):
            pending.figures.update(figures)
        if report.when != "teardown":
            return
        pending.teardown_s += duration
        del self._pending[key]
        worker = getattr(report, "worker_id", None) or getattr(
            getattr(report, "node", None), "gateway", None
        )
        worker_id = worker if isinstance(worker, str) else getattr(worker, "id", None)
        # pytest-rerunfailures numbers the attempts (from 0: the reruns before this one);
        # counting its rerun reports counts a failed call and teardown of one attempt twice.
        attempt = getattr(report, "rerun", None)
        props = properties_for(
            setup_s=pending.setup_s,
            call_s=pending.call_s,
            teardown_s=pending.teardown_s,
            reruns=attempt if isinstance(attempt, int) else self._reruns.get(report.nodeid, 0),
            worker=worker_id if isinstance(worker_id, str) else None,
            figures=pending.figures,
        )
        reporter = self._xml.node_reporter(report)
        for name, value in props:
            reporter.add_property(name, value)
