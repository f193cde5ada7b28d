"""The health score: KPIs against targets, four components, one weighted score 0..100.

Pure: the plugin and ``p3monitor health`` gather the KPI values (see :data:`KPIS`) and call
:func:`compute_health`; every KPI and component comes back with its score so a user can see
why the score is what it is.

Scoring a KPI: meeting its target scores 100. A time that misses its target scores
``100 * target / value`` (twice the target time scores 50). A percentage that should be high
is scored on what it misses: with a target of 95% a value of 90% misses 10 points where 5
are allowed, and scores ``100 * 5 / 10 = 50``. A component is the mean of its measured KPIs;
the health score is the weighted mean of the measured components (weights renormalised over
them), so a KPI that was not measured neither helps nor hurts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from .anomalies import median
from .records import RunRow
from .rules import UNITS, Family, MetricValue, format_value, parse_value

__all__ = [
    "COMPONENTS",
    "DEFAULT_WEIGHTS",
    "KPIS",
    "MIN_HISTORY_RUNS",
    "ComponentResult",
    "Health",
    "KpiResult",
    "KpiSpec",
    "ci_success_rate",
    "compute_health",
    "failure_rate",
    "history_metrics",
    "kpi_score",
    "kpi_values",
    "parse_targets",
    "parse_weights",
    "resource_utilisation",
    "run_total_time",
]

Component = Literal["reliability", "performance", "efficiency", "user_satisfaction"]
Direction = Literal["at_least", "at_most"]

COMPONENTS: tuple[Component, ...] = (
    "reliability",
    "performance",
    "efficiency",
    "user_satisfaction",
)
DEFAULT_WEIGHTS: dict[str, float] = {
    "reliability": 0.4,
    "performance": 0.3,
    "efficiency": 0.2,
    "user_satisfaction": 0.1,
}


# Named tuples, not dataclasses: a session imports this module at configure time, where
# each dataclass would cost about 0.75 ms to create.


class KpiSpec(NamedTuple):
    """A KPI: which component it feeds, its default target and which side is good."""

    name: str
    component: Component
    direction: Direction
    target: float  # percent or seconds
    family: Family
    description: str


KPIS: dict[str, KpiSpec] = {
    k.name: k
    for k in (
        KpiSpec(
            "success_rate",
            "reliability",
            "at_least",
            95.0,
            "percent",
            "runs that passed among the recent runs (this session's test success rate "
            "when there is no history)",
        ),
        KpiSpec(
            "test_stability",
            "reliability",
            "at_least",
            99.0,
            "percent",
            "tests not flaky (100% - flaky_rate; from reruns in this session without history)",
        ),
        KpiSpec(
            "total_ci_time",
            "performance",
            "at_most",
            300.0,
            "time",
            "wall time of the pytest session",
        ),
        KpiSpec(
            "test_execution_time",
            "performance",
            "at_most",
            180.0,
            "time",
            "wall time from the first test's start to the last test's end",
        ),
        KpiSpec(
            "resource_utilisation",
            "efficiency",
            "at_most",
            80.0,
            "percent",
            "the higher of the peak memory % (test processes, containers) and the mean CPU "
            "use of the test processes as a share of the machine's CPUs",
        ),
        KpiSpec(
            "developer_wait_time",
            "user_satisfaction",
            "at_most",
            300.0,
            "time",
            "the median total CI time of the recent runs, this one included",
        ),
    )
}


def kpi_score(value: float, target: float, direction: Direction, family: Family) -> float:
    """Score one KPI value 0..100 against its target (see the module docstring)."""
    if direction == "at_most":
        if value <= target:
            return 100.0
        return 100.0 * target / value if value > 0 else 0.0
    if value >= target:
        return 100.0
    if family == "percent":
        allowed = 100.0 - target
        missed = 100.0 - value
        return max(0.0, min(100.0, 100.0 * allowed / missed)) if allowed > 0 else 0.0
    return max(0.0, 100.0 * value / target) if target > 0 else 100.0


class KpiResult(NamedTuple):
    name: str
    component: Component
    value: float | None
    target: float
    direction: Direction
    family: Family
    score: float | None  # None when not measured

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return (
            self.value >= self.target if self.direction == "at_least" else self.value <= self.target
        )

    @property
    def target_text(self) -> str:
        sign = ">=" if self.direction == "at_least" else "<"
        return f"{sign} {format_value(self.target, self.family)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "value": self.value,
            "target": self.target,
            "direction": self.direction,
            "met": self.met,
            "score": _round(self.score),
        }


class ComponentResult(NamedTuple):
    name: Component
    weight: float  # as configured, normalised to sum 1 over all components
    score: float | None  # mean of the measured KPIs; None when none was measured
    kpis: tuple[str, ...]


class Health(NamedTuple):
    """The health score with everything that went into it."""

    score: float | None
    components: tuple[ComponentResult, ...]
    kpis: tuple[KpiResult, ...]
    weights: dict[str, float]  # normalised, per component

    def component(self, name: str) -> ComponentResult:
        for item in self.components:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The report's ``health`` object: each component, the weights, every KPI."""
        data: dict[str, Any] = {c.name: _round(c.score) for c in self.components}
        data["score"] = _round(self.score)
        data["weights"] = dict(self.weights)
        data["kpis"] = {k.name: k.to_dict() for k in self.kpis}
        return data

    def lines(self) -> list[str]:
        """Human lines: components, then each KPI with value, target and score."""
        out = []
        for comp in self.components:
            shown = "not measured" if comp.score is None else f"{comp.score:.1f}"
            out.append(f"{comp.name} {shown} (weight {comp.weight:g})")
            for kpi in self.kpis:
                if kpi.component != comp.name:
                    continue
                if kpi.value is None:
                    out.append(f"  {kpi.name}: not measured (target {kpi.target_text})")
                    continue
                mark = "ok" if kpi.met else "MISSED"
                out.append(
                    f"  {kpi.name}: {format_value(kpi.value, kpi.family)} "
                    f"(target {kpi.target_text}) {mark}, score {kpi.score:.1f}"
                )
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def compute_health(
    values: Mapping[str, float | None],
    targets: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
) -> Health:
    """The health score from KPI ``values`` (names of :data:`KPIS`; missing = not measured).

    ``targets`` and ``weights`` override the defaults name by name; weights are normalised.
    """
    merged_weights = dict(DEFAULT_WEIGHTS)
    merged_weights.update(weights or {})
    # Relative to the largest first: weights near the float's limit must not add up to inf.
    top = max(merged_weights.values())
    if not top > 0:
        raise ValueError("the health weights must not all be zero")
    scaled = {name: merged_weights[name] / top for name in COMPONENTS}
    total = sum(scaled.values())
    norm = {name: scaled[name] / total for name in COMPONENTS}

    kpis: list[KpiResult] = []
    for spec in KPIS.values():
        target = (targets or {}).get(spec.name, spec.target)
        raw = values.get(spec.name)
        value = float(raw) if raw is not None and _finite(raw) else None
        score = None if value is None else kpi_score(value, target, spec.direction, spec.family)
        kpis.append(
            KpiResult(spec.name, spec.component, value, target, spec.direction, spec.family, score)
        )

    components: list[ComponentResult] = []
    for comp in COMPONENTS:
        mine = [k for k in kpis if k.component == comp]
        scores = [k.score for k in mine if k.score is not None]
        comp_score = sum(scores) / len(scores) if scores else None
        components.append(
            ComponentResult(comp, round(norm[comp], 4), comp_score, tuple(k.name for k in mine))
        )

    measured = [(norm[c.name], c.score) for c in components if c.score is not None]
    weight_sum = sum(w for w, _ in measured)
    score = None
    if measured and weight_sum > 0:
        score = round(sum(w * s for w, s in measured) / weight_sum, 2)
    return Health(score, tuple(components), tuple(kpis), {c: round(norm[c], 4) for c in COMPONENTS})


# Patterns, not compiled patterns: ``re`` compiles them on first use, when targets or
# weights are configured at all.
_SPLIT = r"[\s,;]+"


def _pairs(lines: Iterable[str]) -> list[tuple[str, str]]:
    """``NAME = VALUE`` pairs, several per line separated by blanks, commas or semicolons."""
    pairs: list[tuple[str, str]] = []
    for line in lines:
        text = re.sub(r"\s*=\s*", "=", line.strip())
        for item in re.split(_SPLIT, text):
            if not item:
                continue
            name, sep, value = item.partition("=")
            if not sep or not name or not value:
                raise ValueError(f"{item!r} is not NAME=VALUE")
            pairs.append((name, value))
    return pairs


def parse_targets(lines: Iterable[str]) -> dict[str, float]:
    """Parse KPI targets such as ``total_ci_time = 10m`` or ``success_rate = 90%``."""
    import difflib

    targets: dict[str, float] = {}
    for name, text in _pairs(lines):
        spec = KPIS.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(KPIS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (KPIs: {', '.join(KPIS)})"
            raise ValueError(f"unknown KPI {name!r}{hint}")
        number, unit = parse_value(text)
        factor = 1.0
        if unit:
            family, factor = UNITS[unit]
            if family != spec.family:
                raise ValueError(f"{name} takes {spec.family}; {unit!r} does not fit")
        value = number * factor
        if value < 0 or (spec.family == "percent" and value > 100):
            raise ValueError(f"{name} = {text} is out of range")
        targets[name] = value
    return targets


def parse_weights(lines: Iterable[str]) -> dict[str, float]:
    """Parse component weights such as ``reliability=0.5 performance=0.3``."""
    import difflib

    weights: dict[str, float] = {}
    for name, text in _pairs(lines):
        if name not in DEFAULT_WEIGHTS:
            close = difflib.get_close_matches(name, list(DEFAULT_WEIGHTS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" ({', '.join(COMPONENTS)})"
            raise ValueError(f"unknown component {name!r}{hint}")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"weight {name}={text!r} is not a number") from None
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"weight {name}={text} must be a number >= 0")
        weights[name] = value
    merged = {**DEFAULT_WEIGHTS, **weights}
    if not max(merged.values()) > 0:
        raise ValueError("the weights must not all be zero")
    return weights


# -- KPI values from runs ------------------------------------------------------------------------
#
# The plugin (for the session being finished, as a RunRow built from its report) and
# ``p3monitor health`` (for the newest stored run) compute the KPIs the same way.


def _num(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _section(row: RunRow, *path: str) -> Mapping[str, Any]:
    node: Any = row.metrics.get("metrics") if isinstance(row.metrics, Mapping) else None
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def run_total_time(row: RunRow) -> float | None:
    """Wall time of a run's session: from its report, else from its start and finish."""
    stored = _num(_section(row, "performance").get("total_time_s"))
    if stored is not None:
        return stored
    if row.run.finished_at is None:
        return None
    return max(0.0, row.run.finished_at - row.run.started_at)


def resource_utilisation(row: RunRow, cpu_count: int) -> float | None:
    """The higher of peak memory % (process tree, containers) and mean CPU % of the machine."""
    usage = _section(row, "resource_usage")
    process = usage.get("process")
    process = process if isinstance(process, Mapping) else {}
    figures: list[float] = []
    memory = _num(process.get("memory_percent_peak"))
    if memory is not None:
        figures.append(memory)
    cpu_mean = _num(process.get("cpu_percent_mean"))
    if cpu_mean is not None and cpu_count > 0:
        figures.append(min(100.0, cpu_mean / cpu_count))
    containers = usage.get("containers")
    for container in containers if isinstance(containers, list) else ():
        if isinstance(container, Mapping):
            peak = _num(container.get("memory_percent_peak"))
            if peak is not None:
                figures.append(peak)
    return max(figures) if figures else None


def ci_success_rate(rows: Sequence[RunRow]) -> float | None:
    """Percent of runs without a failed or error test."""
    if not rows:
        return None
    return 100.0 * sum(1 for r in rows if r.failed + r.errors == 0) / len(rows)


def failure_rate(rows: Sequence[RunRow]) -> float | None:
    """Percent of executed test results that failed or errored, over ``rows``."""
    executed = sum(r.tests - r.skipped for r in rows)
    if executed <= 0:
        return None
    return 100.0 * sum(r.failed + r.errors for r in rows) / executed


def kpi_values(
    current: RunRow,
    history: Sequence[RunRow],
    *,
    flaky_rate: float | None,
    flaky_in_session: int = 0,
    cpu_count: int = 1,
    min_runs: int = 3,
) -> dict[str, float | None]:
    """The KPI values for ``current`` given the ``history`` before it (newest first).

    With fewer than ``min_runs`` runs in all, the success rate is the session's own and the
    developer wait time is this run's time.
    """
    rows = [current, *history]
    enough = len(rows) >= min_runs
    success = ci_success_rate(rows) if enough else current.success_rate
    if flaky_rate is not None:
        stability: float | None = max(0.0, 100.0 - flaky_rate)
    else:
        executed = current.tests - current.skipped
        stability = 100.0 * (1 - flaky_in_session / executed) if executed > 0 else None
    total = run_total_time(current)
    totals = [t for t in (run_total_time(r) for r in rows) if t is not None]
    wait = median(totals) if enough and totals else total
    return {
        "success_rate": success,
        "test_stability": stability,
        "total_ci_time": total,
        "test_execution_time": current.test_execution_time_s if current.tests else None,
        "resource_utilisation": resource_utilisation(current, cpu_count),
        "developer_wait_time": wait,
    }


def flaky_in_session(row: RunRow) -> int:
    """How many tests the run's session found flaky by its own reruns, as it stored them."""
    found = _section(row, "reliability").get("flaky_in_session")
    return len(found) if isinstance(found, list) else 0


def flaky_rate(row: RunRow, flaky_count: int) -> float | None:
    """``flaky_rate``: the run's flaky tests as a share of its tests (None without tests)."""
    return 100.0 * flaky_count / row.tests if row.tests else None


def run_health(
    row: RunRow,
    history: Sequence[RunRow],
    *,
    flaky_count: int,
    cpu_count: int,
    targets: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
) -> Health:
    """The health of a stored run from its figures and the ``history`` before it, as
    ``p3monitor health`` and ``p3monitor report`` compute it: ``flaky_count`` is the number
    of the run's own tests that are flaky."""
    kpis = kpi_values(
        row,
        history,
        flaky_rate=flaky_rate(row, flaky_count),
        flaky_in_session=flaky_in_session(row),
        cpu_count=cpu_count,
    )
    return compute_health(kpis, targets, weights)


#: Runs (this one included) needed before ci_success_rate / test_failure_rate are measured.
MIN_HISTORY_RUNS = 3


def history_metrics(
    current: RunRow, history: Sequence[RunRow], *, min_runs: int = MIN_HISTORY_RUNS
) -> dict[str, MetricValue]:
    """``ci_success_rate`` and ``test_failure_rate`` over this run and the ``history``
    before it; None with fewer than ``min_runs`` runs in all."""
    rows = [current, *history]
    if len(rows) < min_runs:
        return {"ci_success_rate": None, "test_failure_rate": None}
    return {
        "ci_success_rate": ci_success_rate(rows),
        "test_failure_rate": failure_rate(rows),
    }
