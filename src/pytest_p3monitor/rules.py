"""Threshold rules: ``METRIC OP VALUE[UNIT]``, parsed into typed objects and evaluated.

Pure: nothing here touches pytest. The plugin parses the rules of ``p3monitor_fail_on`` /
``p3monitor_warn_on`` with :func:`parse_rule` at configure time (a :class:`RuleError` becomes a
``pytest.UsageError`` naming the ini key or option), builds a mapping of measured metrics at the
end of the session and calls :func:`evaluate`.

The grammar is small and hand-written (never ``eval``)::

    rule   := metric op value
    metric := [A-Za-z_][A-Za-z0-9_]*
    op     := "<" | "<=" | ">" | ">=" | "==" | "!="
    value  := ["$"] number [unit]
    number := ["+" | "-"] digits ["." digits] [("e" | "E") ["+" | "-"] digits]
    unit   := "%" | "ms" | "s" | "m" | "h" | "B" | "KiB" | "MiB" | "GiB" | "$"

with any amount of blank space between the parts.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    Sequence,
    ValuesView,
)
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from .records import TestRecord

__all__ = [
    "DURATION_DIGITS",
    "METRICS",
    "OPERATORS",
    "TEST_RSS_FIGURE",
    "UNITS",
    "Deferred",
    "Family",
    "Kind",
    "Metric",
    "MetricValue",
    "Op",
    "PerTest",
    "Rule",
    "RuleError",
    "RuleResult",
    "Severity",
    "evaluate",
    "format_value",
    "lookup_metric",
    "make_rule",
    "parse_rule",
    "parse_rules",
    "parse_value",
    "per_test_metrics",
    "phase_metric",
    "record_durations",
    "report_metrics",
    "round_all",
    "shown_durations",
]

Op = Literal["<", "<=", ">", ">=", "==", "!="]
#: what a metric measures, which decides the units a rule on it may use
Family = Literal["percent", "time", "bytes", "money", "count", "score"]
#: session: one figure for the run; test: one figure per test (crossed when any test
#: crosses); history: computed over the recent runs in the store
Kind = Literal["session", "test", "history"]
Severity = Literal["critical", "warning"]
Status = Literal["crossed", "ok", "not_evaluated"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

#: unit -> (family, factor to the family's base unit: percent, seconds, bytes, dollars)
UNITS: dict[str, tuple[Family, float]] = {
    "%": ("percent", 1.0),
    "ms": ("time", 0.001),
    "s": ("time", 1.0),
    "m": ("time", 60.0),
    "h": ("time", 3600.0),
    "B": ("bytes", 1.0),
    "KiB": ("bytes", 1024.0),
    "MiB": ("bytes", 1024.0**2),
    "GiB": ("bytes", 1024.0**3),
    "$": ("money", 1.0),
}

#: units people write that we do not accept, with what to write instead
_UNIT_HINTS: dict[str, str] = {
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "min": "m",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "msec": "ms",
    "b": "B",
    "kb": "KiB",
    "kib": "KiB",
    "k": "KiB",
    "mb": "MiB",
    "mib": "MiB",
    "gb": "GiB",
    "gib": "GiB",
    "usd": "$",
    "pct": "%",
    "percent": "%",
}

_FAMILY_UNITS: dict[Family, str] = {
    "percent": "%",
    "time": "ms, s, m or h",
    "bytes": "B, KiB, MiB or GiB",
    "money": "$",
    "count": "no unit",
    "score": "no unit",
}

_FAMILY_WORD: dict[Family, str] = {
    "percent": "a percentage",
    "time": "a duration",
    "bytes": "a size",
    "money": "an amount of money",
    "count": "a count",
    "score": "a score from 0 to 100",
}


# The records of this module are named tuples, not dataclasses: a session imports it at
# configure time, where each dataclass would cost about 0.75 ms to create.


class Metric(NamedTuple):
    """A metric a rule can name."""

    name: str
    kind: Kind
    family: Family
    description: str
    #: why it may be missing from a run, shown when a rule on it is not evaluated
    needs: str = ""


def _m(name: str, kind: Kind, family: Family, description: str, needs: str = "") -> Metric:
    return Metric(name, kind, family, description, needs)


_RESOURCES = "resource sampling"
_HISTORY = "earlier runs in the results store"

#: Every metric a rule can name, in the order of the README's table.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m("success_rate", "session", "percent", "executed tests (not skipped) that passed"),
        _m("tests", "session", "count", "test items in the session"),
        _m("passed", "session", "count", "tests that passed"),
        _m("failed", "session", "count", "tests that failed"),
        _m("errors", "session", "count", "tests with an error in setup or teardown"),
        _m("skipped", "session", "count", "tests skipped"),
        _m("reruns", "session", "count", "reruns (pytest-rerunfailures) over all tests"),
        _m(
            "test_execution_time",
            "session",
            "time",
            "wall time from the first test's start to the last test's end",
        ),
        _m("total_time", "session", "time", "wall time of the whole pytest session"),
        _m(
            "flaky_in_session",
            "session",
            "count",
            "tests that failed then passed on a rerun in this session",
        ),
        _m(
            "health_score",
            "session",
            "score",
            "the health score 0..100 (see p3monitor health)",
        ),
        _m(
            "peak_cpu_percent",
            "session",
            "percent",
            "peak CPU of the test process tree (100% = one core)",
            _RESOURCES,
        ),
        _m(
            "peak_memory_percent",
            "session",
            "percent",
            "peak memory of the test process tree, percent of the limit (cgroup or host)",
            _RESOURCES,
        ),
        _m("peak_rss", "session", "bytes", "peak RSS of the test process tree", _RESOURCES),
        _m(
            "container_cpu_percent",
            "session",
            "percent",
            "peak CPU of the busiest sampled container",
            "container sampling (--p3monitor-containers)",
        ),
        _m(
            "container_memory_percent",
            "session",
            "percent",
            "peak memory of the fullest sampled container, percent of its limit",
            "container sampling (--p3monitor-containers)",
        ),
        _m(
            "docker_build_time",
            "session",
            "time",
            "the docker_build phase (p3monitor fixture or --p3monitor-metric)",
            "a docker_build phase",
        ),
        _m(
            "service_startup_time",
            "session",
            "time",
            "seconds waited for containers (p3monitor.wait_for_container), summed",
            "a service_startup phase",
        ),
        _m(
            "cost_per_build",
            "session",
            "money",
            "total_time priced at ini p3monitor_cost_per_hour",
            "ini p3monitor_cost_per_hour",
        ),
        _m("test_duration", "test", "time", "duration of a test (setup + call + teardown)"),
        _m(
            "test_rss",
            "test",
            "bytes",
            "peak RSS of the process while a test ran",
            "per-test resource figures, which p3monitor_test_resources = false turns off",
        ),
        _m(
            "duration_regression",
            "test",
            "percent",
            "how much slower a test ran than the median of its recent passing runs "
            "(only jumps beyond the noise of those runs and at least 0.5 s)",
            _HISTORY,
        ),
        _m(
            "ci_success_rate",
            "history",
            "percent",
            "runs that passed (no failed or error test) among the last N runs, this one included",
            _HISTORY,
        ),
        _m(
            "test_failure_rate",
            "history",
            "percent",
            "failed or error results among the executed (not skipped) results of the last N runs",
            _HISTORY,
        ),
        _m(
            "flaky_count",
            "history",
            "count",
            "tests of this session classified flaky from history and this session's reruns",
            _HISTORY,
        ),
        _m(
            "flaky_rate",
            "history",
            "percent",
            "flaky tests among the tests of this session",
            _HISTORY,
        ),
    )
}

#: Phase metrics are named after the phase: phase("docker_build") is ``docker_build_time``.
PHASE_SUFFIX = "_time"


class RuleError(ValueError):
    """A rule that does not parse or does not fit its metric. ``str()`` says why."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.text = text


class Rule(NamedTuple):
    """One parsed rule. ``value`` is in the base unit of the metric's family."""

    metric: str
    op: Op
    value: float
    unit: str  # as written ("" for none)
    kind: Kind
    family: Family

    @property
    def threshold_text(self) -> str:
        """The threshold as the user wrote it, e.g. ``95%`` or ``1.5GiB``."""
        return format_value(self.value, self.family, self.unit, digits=6)

    @property
    def text(self) -> str:
        """Canonical text, e.g. ``success_rate < 95%``."""
        return f"{self.metric} {self.op} {self.threshold_text}"

    def crossed(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.value)

    def __str__(self) -> str:
        return self.text


# Patterns, not compiled patterns: ``re`` compiles each on first use (about 0.15-0.3 ms
# each) and caches it. A session with the default rules uses none: those are built with
# make_rule().
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_OP = r"<=|>=|==|!=|<|>"
_BAD_OP = r"=<|=>|=!|<>|=|!|≤|≥|≠"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"

_ACCEPTED = "METRIC OP VALUE[UNIT], e.g. 'success_rate < 95%' or 'test_duration > 10s'"


def lookup_metric(
    name: str, extra: Mapping[str, Metric] | None = None
) -> tuple[Metric | None, str | None]:
    """The metric called ``name`` and None, or None and a suggestion for a misspelled name.

    A name not in :data:`METRICS` (or ``extra``) that ends in ``_time`` is a phase metric
    (``docker_build`` -> ``docker_build_time``), unless it is a near miss of a known metric.
    """
    known = dict(METRICS)
    if extra:
        known.update(extra)
    if name in known:
        return known[name], None
    lowered = name.lower()
    if lowered in known:
        return None, lowered
    import difflib  # only for a name that is not known

    close = difflib.get_close_matches(lowered, list(known), n=1, cutoff=0.75)
    if lowered.endswith(PHASE_SUFFIX) and len(lowered) > len(PHASE_SUFFIX):
        near = difflib.get_close_matches(lowered, list(known), n=1, cutoff=0.88)
        if near:
            return None, near[0]
        return Metric(name, "session", "time", f"the {name[: -len(PHASE_SUFFIX)]} phase"), None
    return None, close[0] if close else None


def parse_value(text: str) -> tuple[float, str]:
    """Parse ``VALUE[UNIT]`` (``"95%"``, ``"1.5 GiB"``, ``"$3"``) into (number, unit).

    The number is as written (not converted); the unit is "" when none is given.
    """
    rest = text.strip()
    dollar_first = rest.startswith("$")
    if dollar_first:
        rest = rest[1:].lstrip()
    match = re.match(_NUMBER, rest)
    if match is None:
        shown = rest.split()[0] if rest.split() else ""
        if not shown:
            raise ValueError("a number is missing")
        raise ValueError(f"{shown!r} is not a number")
    number = float(match.group())
    if not math.isfinite(number):
        raise ValueError(f"{match.group()!r} is too large")
    tail = rest[match.end() :].split(None, 1)
    unit = tail[0] if tail else ""
    extra = tail[1].strip() if len(tail) > 1 else ""
    if dollar_first:
        if unit and unit != "$":
            raise ValueError(f"'${match.group()}{unit}' mixes '$' with {unit!r}")
        unit = "$"
    if unit and unit not in UNITS:
        hint = _UNIT_HINTS.get(unit) or _UNIT_HINTS.get(unit.lower())
        accepted = " ".join(UNITS)
        if hint:
            raise ValueError(f"unknown unit {unit!r}; write {hint!r} (units: {accepted})")
        raise ValueError(f"unknown unit {unit!r} (units: {accepted})")
    if extra:
        raise ValueError(f"unexpected {extra!r} after the value; one rule per line")
    return number, unit


#: Metrics that are shares or scores: from 0 to 100 (a CPU percentage is not: it counts cores).
AT_MOST_100 = frozenset(
    {
        "success_rate",
        "peak_memory_percent",
        "container_memory_percent",
        "ci_success_rate",
        "test_failure_rate",
        "flaky_rate",
        "health_score",
    }
)


def parse_rule(text: str, extra: Mapping[str, Metric] | None = None) -> Rule:
    """Parse one rule. Raises :class:`RuleError` (a ValueError) saying what is wrong.

    ``extra`` adds metrics known to this session (e.g. ingested with --p3monitor-metric).
    """
    src = text.strip()
    if not src:
        raise RuleError(f"the rule is empty; expected {_ACCEPTED}", text)

    name_match = re.match(_NAME, src)
    if name_match is None:
        raise RuleError(f"a rule starts with a metric name; expected {_ACCEPTED}", text)
    name = name_match.group()
    rest = src[name_match.end() :].lstrip()

    metric, suggestion = lookup_metric(name, extra)
    if metric is None:
        if suggestion:
            raise RuleError(f"unknown metric {name!r}; did you mean {suggestion!r}?", text)
        raise RuleError(
            f"unknown metric {name!r} (known: {', '.join(METRICS)}, or a phase as PHASE_time)",
            text,
        )

    # "<>" would read as "<" then a bad value: it is reported as the operator it means
    op_match = None if rest.startswith("<>") else re.match(_OP, rest)
    if op_match is None:
        bad = re.match(_BAD_OP, rest)
        if bad:
            fixes = {"=": "==", "=<": "<=", "=>": ">=", "<>": "!=", "=!": "!=", "!": "!="}
            fixes.update({"≤": "<=", "≥": ">=", "≠": "!="})
            raise RuleError(
                f"unknown operator {bad.group()!r}; write {fixes[bad.group()]!r} "
                "(operators: < <= > >= == !=)",
                text,
            )
        after = f" after {name!r}"
        raise RuleError(f"an operator (< <= > >= == !=) is missing{after}", text)
    op: Op = op_match.group()  # type: ignore[assignment]
    rest = rest[op_match.end() :].strip()
    if not rest:
        raise RuleError(f"a value is missing after {op!r}; expected {_ACCEPTED}", text)

    try:
        number, unit = parse_value(rest)
    except ValueError as exc:
        raise RuleError(str(exc), text) from None

    family = metric.family
    if unit:
        unit_family, factor = UNITS[unit]
        if unit_family != family and not (family == "score" and unit == "%"):
            raise RuleError(
                f"{name} is {_FAMILY_WORD[family]} ({_FAMILY_UNITS[family]}); "
                f"{unit!r} does not fit",
                text,
            )
    else:
        factor = 1.0
    value = number * factor
    if not math.isfinite(value):
        raise RuleError(f"{number:g}{unit} is too large", text)
    if (family in ("percent", "count", "time", "bytes", "money") or name in AT_MOST_100) and (
        value < 0
    ):
        raise RuleError(f"{name} is never negative; {number:g}{unit} is not a threshold", text)
    if name in AT_MOST_100 and value > 100:
        raise RuleError(
            f"{name} is at most 100; {number:g}{unit} is not a threshold (the rule would "
            "always or never be crossed)",
            text,
        )
    return Rule(metric=metric.name, op=op, value=value, unit=unit, kind=metric.kind, family=family)


def parse_rules(texts: Iterable[str], extra: Mapping[str, Metric] | None = None) -> list[Rule]:
    """Parse several rules; the first bad one raises :class:`RuleError`."""
    return [parse_rule(text, extra) for text in texts]


def make_rule(metric: str, op: Op, number: float, unit: str = "") -> Rule:
    """The rule ``METRIC OP NUMBER[UNIT]`` as :func:`parse_rule` reads it, built without
    parsing: for rules known to be valid, such as the defaults."""
    known = METRICS[metric]
    factor = UNITS[unit][1] if unit else 1.0
    return Rule(metric, op, number * factor, unit, known.kind, known.family)


# -- formatting --------------------------------------------------------------------------------


def _num(value: float, digits: int = 2) -> str:
    """At most ``digits`` decimals (three significant digits below 10), no trailing zeros."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) < 10:
        text = f"{value:.{max(digits + 1, 3)}g}"
        if "e" in text:
            return text
    else:
        text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_value(value: float, family: Family, unit: str = "", digits: int = 2) -> str:
    """A value for people: in ``unit`` when given, else in a natural unit of its family."""
    if unit:
        _, factor = UNITS[unit]
        shown = _num(value / factor, digits)
        return f"${shown}" if unit == "$" else f"{shown}{unit}"
    if family == "percent":
        return f"{_num(value, digits)}%"
    if family == "time":
        if abs(value) >= 3600:
            return f"{_num(value / 3600, digits)}h"
        if abs(value) >= 120:
            return f"{_num(value / 60, digits)}m"
        if 0 < abs(value) < 1:
            return f"{_num(value * 1000, max(digits - 1, 0))}ms"
        return f"{_num(value, digits)}s"
    if family == "bytes":
        for name in ("GiB", "MiB", "KiB"):
            factor = UNITS[name][1]
            if abs(value) >= factor:
                return f"{_num(value / factor, max(digits - 1, 0))}{name}"
        return f"{_num(value, 0)}B"
    if family == "money":
        return f"${value:.{digits}f}"
    return _num(value, digits)


def _shown(value: float, rule: Rule) -> str:
    """``value`` in the rule's unit, precise enough not to look equal to the threshold."""
    shown = format_value(value, rule.family, rule.unit)
    digits = 2
    while value != rule.value and shown == rule.threshold_text and digits < 8:
        digits += 1
        shown = format_value(value, rule.family, rule.unit, digits)
    return shown


# -- evaluation --------------------------------------------------------------------------------

#: What :func:`evaluate` reads: a number for session and history metrics, a mapping
#: ``nodeid -> number`` for per-test metrics, None (or absent) when it was not measured.
MetricValue = float | int | Mapping[str, float] | None

_MAX_NAMED = 5


class RuleResult(NamedTuple):
    """The outcome of one rule on one run. ``alert()`` gives the report's ``alerts`` entry."""

    rule: Rule
    severity: Severity
    status: Status
    value: float | None  # the figure compared (worst test for per-test metrics)
    message: str
    tests: tuple[str, ...] = ()  # tests concerned, worst first (per-test metrics)
    default: bool = False  # one of the defaults used when no rule was configured

    @property
    def crossed(self) -> bool:
        return self.status == "crossed"

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule.text,
            "severity": self.severity,
            "status": self.status,
            "metric": self.rule.metric,
            "value": self.value,
            "threshold": self.rule.value,
            "unit": self.rule.unit,
            "message": self.message,
            "tests": list(self.tests),
            "default": self.default,
        }


def _describe_tests(tests: Sequence[tuple[str, float]], rule: Rule) -> str:
    shown = ", ".join(f"{nodeid} ({_shown(value, rule)})" for nodeid, value in tests[:_MAX_NAMED])
    more = len(tests) - _MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def evaluate_rule(
    rule: Rule,
    metrics: Mapping[str, MetricValue],
    severity: Severity,
    *,
    default: bool = False,
) -> RuleResult:
    """Evaluate one rule. A metric that is absent or None is ``not_evaluated``, never crossed."""
    measured = metrics.get(rule.metric)
    if measured is None:
        need = METRICS[rule.metric].needs if rule.metric in METRICS else ""
        why = f" (needs {need})" if need else ""
        return RuleResult(
            rule,
            severity,
            "not_evaluated",
            None,
            f"{rule.text}: not evaluated, {rule.metric} was not measured in this run{why}",
            default=default,
        )
    if isinstance(measured, Mapping):
        values = [(str(k), float(v)) for k, v in measured.items() if _finite(v)]
        if not values:
            return RuleResult(
                rule,
                severity,
                "not_evaluated",
                None,
                f"{rule.text}: not evaluated, no test has a {rule.metric} figure",
                default=default,
            )
        descending = rule.op in (">", ">=", "!=")
        values.sort(key=lambda item: (-item[1] if descending else item[1], item[0]))
        crossing = [(nodeid, v) for nodeid, v in values if rule.crossed(v)]
        if crossing:
            worst = crossing[0][1]
            count = len(crossing)
            noun = "test" if count == 1 else "tests"
            return RuleResult(
                rule,
                severity,
                "crossed",
                worst,
                f"{rule.text}: {count} {noun} crossed: {_describe_tests(crossing, rule)}",
                tuple(nodeid for nodeid, _ in crossing),
                default=default,
            )
        worst = values[0][1]
        shown = _shown(worst, rule)
        return RuleResult(
            rule,
            severity,
            "ok",
            worst,
            f"{rule.text}: no test crossed (worst {values[0][0]} at {shown})",
            default=default,
        )
    value = float(measured)
    if not math.isfinite(value):
        return RuleResult(
            rule,
            severity,
            "not_evaluated",
            None,
            f"{rule.text}: not evaluated, {rule.metric} is not a finite number",
            default=default,
        )
    shown = _shown(value, rule)
    if rule.crossed(value):
        return RuleResult(
            rule,
            severity,
            "crossed",
            value,
            f"{rule.metric} is {shown} (threshold: {rule.text})",
            default=default,
        )
    return RuleResult(
        rule,
        severity,
        "ok",
        value,
        f"{rule.metric} is {shown} (within {rule.text})",
        default=default,
    )


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def evaluate(
    rules: Iterable[Rule],
    metrics: Mapping[str, MetricValue],
    severity: Severity,
    *,
    default: bool = False,
) -> list[RuleResult]:
    """Evaluate rules against measured metrics, in the order given."""
    return [evaluate_rule(rule, metrics, severity, default=default) for rule in rules]


# -- metrics from a report ---------------------------------------------------------------------

#: Key of ``TestRecord.figures`` (and of a report's test entries) for a test's peak RSS,
#: as sampling.pertest writes it.
TEST_RSS_FIGURE = "rss_peak_bytes"


def phase_metric(name: str) -> str:
    """The metric of a phase: ``docker_build`` -> ``docker_build_time``."""
    return name if name.endswith(PHASE_SUFFIX) else f"{name}{PHASE_SUFFIX}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def report_metrics(
    report: Mapping[str, Any], *, cost_per_hour: float | None = None
) -> dict[str, MetricValue]:
    """The session metrics a rule can name, read from the report (the per-test ones come
    from the records: :func:`per_test_metrics`).

    A figure absent from the report (its feature off, nothing sampled) is None: a rule on
    it is not evaluated.
    """
    metrics = _mapping(report.get("metrics"))
    perf = _mapping(metrics.get("performance"))
    rel = _mapping(metrics.get("reliability"))
    usage = _mapping(metrics.get("resource_usage"))
    process = _mapping(usage.get("process"))
    containers = [c for c in usage.get("containers") or () if isinstance(c, Mapping)]

    out: dict[str, MetricValue] = {}
    for name in ("tests", "passed", "failed", "errors", "skipped", "reruns", "success_rate"):
        out[name] = _number(rel.get(name))
    in_session = rel.get("flaky_in_session")
    out["flaky_in_session"] = (
        float(len(in_session)) if isinstance(in_session, list) else _number(in_session)
    )
    out["test_execution_time"] = _number(perf.get("test_execution_time_s"))
    total = _number(perf.get("total_time_s"))
    out["total_time"] = total
    out["peak_cpu_percent"] = _number(process.get("cpu_percent_peak"))
    out["peak_memory_percent"] = _number(process.get("memory_percent_peak"))
    out["peak_rss"] = _number(process.get("rss_bytes_peak"))
    for metric, key in (
        ("container_cpu_percent", "cpu_percent_peak"),
        ("container_memory_percent", "memory_percent_peak"),
    ):
        peaks = [p for p in (_number(c.get(key)) for c in containers) if p is not None]
        out[metric] = max(peaks) if peaks else None
    out["health_score"] = _number(report.get("health_score"))
    out["cost_per_build"] = (
        None if cost_per_hour is None or total is None else total / 3600 * cost_per_hour
    )

    startups = 0.0
    for name, value in _mapping(perf.get("phases")).items():
        seconds = _number(value)
        if seconds is None and isinstance(value, Mapping):
            seconds = _number(value.get("seconds", value.get("duration_s")))
        if name.startswith("service_startup:"):  # one per container waited for
            startups += seconds or 0.0
            out.setdefault("service_startup_time", None)
            continue
        metric = phase_metric(name)
        if out.get(metric) is None:
            out[metric] = seconds
    if "service_startup_time" in out and out["service_startup_time"] is None:
        out["service_startup_time"] = startups

    return out


class PerTest(Mapping[str, float]):
    """nodeid -> number, kept as two lists in the tests' order.

    A session's end reads its per-test figures whole (sums, maxima, a sort, the rules):
    building a dict of thousands of entries would cost more than all of that. The first
    lookup by node id builds one.
    """

    __slots__ = ("_index", "nodeids", "numbers")

    def __init__(self, nodeids: Sequence[str], numbers: Sequence[float]) -> None:
        if len(nodeids) != len(numbers):
            raise ValueError("one number per node id")
        self.nodeids = nodeids
        self.numbers = numbers
        self._index: dict[str, float] | None = None

    def __getitem__(self, nodeid: str) -> float:
        if self._index is None:
            self._index = dict(zip(self.nodeids, self.numbers, strict=True))
        return self._index[nodeid]

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodeids)

    def __len__(self) -> int:
        return len(self.nodeids)

    # views that iterate the lists: no Python call per item
    def values(self) -> ValuesView[float]:
        return _PerTestValues(self)

    def items(self) -> ItemsView[str, float]:
        return _PerTestItems(self)


class _PerTestValues(ValuesView[float]):
    __slots__ = ()
    _mapping: PerTest

    def __iter__(self) -> Iterator[float]:
        return iter(self._mapping.numbers)


class _PerTestItems(ItemsView[str, float]):
    __slots__ = ()
    _mapping: PerTest

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return zip(self._mapping.nodeids, self._mapping.numbers, strict=True)


class Deferred(Mapping[str, float]):
    """A per-test metric (nodeid -> number) built on first read.

    A session of thousands of tests pays for the mapping only when something reads it,
    in practice a rule on the metric; whether the metric was measured at all (None
    otherwise) is decided before, cheaply.
    """

    __slots__ = ("_build", "_data")

    def __init__(self, build: Callable[[], Mapping[str, float]]) -> None:
        self._build = build
        self._data: Mapping[str, float] | None = None

    def _built(self) -> Mapping[str, float]:
        if self._data is None:
            self._data = self._build()
        return self._data

    def __getitem__(self, key: str) -> float:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())

    # the built mapping's own views (a dict's, a PerTest's): no Python call per item
    def keys(self) -> KeysView[str]:
        return self._built().keys()

    def items(self) -> ItemsView[str, float]:
        return self._built().items()

    def values(self) -> ValuesView[float]:
        return self._built().values()


def record_durations(records: Mapping[str, TestRecord]) -> PerTest:
    """nodeid -> duration (setup + call + teardown) of each of a session's records.

    The sum written out rather than ``TestRecord.duration_s``: a property call per record
    costs three times as much.
    """
    return PerTest(list(records), [r.setup_s + r.call_s + r.teardown_s for r in records.values()])


#: Per-test durations are compared as the JSON report shows them: to the microsecond.
DURATION_DIGITS = 6


def round_all(values: Sequence[float], digits: int) -> list[float]:
    """``[round(value, digits) for value in values]``, in half the time for many values.

    ``round`` goes through a decimal string (some 2,500 machine instructions a value). Here
    ``s = value * 10**digits`` is within half an ulp of the exact product, and
    ``r = math.remainder(s, 1.0)`` is exactly ``s - n`` for the integer ``n`` nearest ``s``.
    While ``|r|`` stays further than that half ulp from 0.5, the exact product is nearest
    ``n`` too, so ``n`` is what ``round`` rounds to; and ``n / 10**digits``, one correctly
    rounded division of two exact doubles, is the double nearest ``n * 10**-digits``, as
    ``round`` returns. Anything else (a value near a half, not finite, huge, or not
    positive: ``round(-1e-9, 6)`` is ``-0.0``) takes ``round`` itself, for all the values.
    """
    if not values or not 0 <= digits <= 15 or not min(values) > 0:
        return [round(value, digits) for value in values]
    scale = float(10**digits)
    top = sum(values) * scale  # every value being positive: at least each one's product
    if not top < 2.0**50:  # nor inf or nan
        return [round(value, digits) for value in values]
    half_ulp = 2.0 ** (math.frexp(top)[1] - 53)  # at least half an ulp of any product
    scaled = [value * scale for value in values]
    remainders = list(map(math.remainder, scaled, itertools.repeat(1.0)))
    limit = 0.5 - half_ulp
    if max(remainders) >= limit or min(remainders) <= -limit:
        return [round(value, digits) for value in values]
    return [(s - r) / scale for s, r in zip(scaled, remainders, strict=True)]


def shown_durations(durations: Mapping[str, float]) -> Mapping[str, float]:
    """The finite ``durations`` rounded as the report shows them (:data:`DURATION_DIGITS`)."""
    if isinstance(durations, PerTest):
        nodeids, values = durations.nodeids, durations.numbers
    else:
        nodeids, values = list(durations), list(durations.values())
    if math.isfinite(sum(values)):  # all finite (a sum without inf or nan)
        return PerTest(nodeids, round_all(values, DURATION_DIGITS))
    return {
        nodeid: round(duration, DURATION_DIGITS)
        for nodeid, duration in durations.items()
        if math.isfinite(duration)
    }


def _test_rss(records: Mapping[str, TestRecord]) -> dict[str, float]:
    return {
        nodeid: rss
        for nodeid, record in records.items()
        if (rss := _number(record.figures.get(TEST_RSS_FIGURE))) is not None
    }


def per_test_metrics(
    records: Mapping[str, TestRecord], durations: Mapping[str, float] | None = None
) -> dict[str, MetricValue]:
    """The per-test metrics a rule can name, from the session's records (nodeid -> record).

    ``test_duration`` (:func:`shown_durations`; None without tests) and ``test_rss`` (None
    when no test has the figure), each a :class:`Deferred` mapping, built when first read
    (rounding 5000 durations alone takes 2 ms). ``durations`` are the records'
    :func:`record_durations`, when the caller has them already.
    """
    raw = record_durations(records) if durations is None else durations
    has_rss = any(
        _number(r.figures[TEST_RSS_FIGURE]) is not None
        for r in records.values()
        if TEST_RSS_FIGURE in r.figures
    )
    return {
        "test_duration": Deferred(lambda: shown_durations(raw)) if records else None,
        "test_rss": Deferred(lambda: _test_rss(records)) if has_rss else None,
    }
