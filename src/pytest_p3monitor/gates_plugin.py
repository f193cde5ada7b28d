"""Threshold gates, alerts, the health score, anomalies, recommendations and trends.

The feature plugin behind ``p3monitor_fail_on`` / ``p3monitor_warn_on``. Rules are parsed
when the plugin is built (at configure time), so a bad rule is a ``pytest.UsageError``
(exit 4) before any test runs. At the end of the session, in ``pytest_p3monitor_evaluate``,
it reads the session's figures from the report and the tests' from the records (and the
history from the results store), evaluates the rules, and fills ``alerts``,
``health_score``, ``health``, ``recommendations`` and ``trends``. A crossed fail rule
becomes one line in ``monitor.gate_failures``; the monitor turns the exit status to 1 only
when it was 0.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from . import anomalies, health, recommend, trends
from .config import parse_with, setting, setting_list
from .records import RunRow, TestRecord
from .rules import (
    DURATION_DIGITS,
    Deferred,
    Metric,
    MetricValue,
    Rule,
    RuleError,
    RuleResult,
    evaluate,
    make_rule,
    parse_rule,
    per_test_metrics,
    phase_metric,
    record_durations,
    report_metrics,
)
from .runinfo import usable_cpus
from .store import StoreError
from .store.sql import stored_nodeid

if TYPE_CHECKING:
    from .session import MonitorSession

__all__ = [
    "DEFAULT_WARN_RULES",
    "GatesPlugin",
    "parse_rule_settings",
]

#: Used, as warnings only, when the user configured no rule of their own. Built rather
#: than parsed: parsing compiles the rule grammar's regular expressions (~0.5 ms).
_DEFAULT_RULES: tuple[Rule, ...] = (
    make_rule("ci_success_rate", "<", 80, "%"),
    make_rule("test_execution_time", ">", 600, "s"),
    make_rule("peak_memory_percent", ">", 80, "%"),
    make_rule("test_failure_rate", ">", 5, "%"),
)
#: The default rules as a user would write them ("ci_success_rate < 80%", ...).
DEFAULT_WARN_RULES: tuple[str, ...] = tuple(rule.text for rule in _DEFAULT_RULES)

#: Results of each test read from the store to classify flakiness (when the flaky
#: feature is off) ...
TEST_HISTORY_WINDOW = 100
#: ... and for duration jumps alone (anomalies.duration_jumps looks at 20 passing runs).
DURATION_HISTORY_WINDOW = 25
#: Up to this many tests, their histories are read one query each; beyond, in one scan.
PER_TEST_QUERIES = 300
#: At most this many runs feed the report's 30-day trends.
TREND_RUNS = 2000
_DAY = 24 * 3600.0


# -- settings ----------------------------------------------------------------------------------


def _ingested_names(config: pytest.Config) -> dict[str, Metric]:
    """Durations ingested with ``--p3monitor-metric NAME=SECONDS`` / ``P3MONITOR_METRIC_NAME``
    are phases: a rule names them ``NAME_time``, even when that is close to a known metric."""
    names = [
        str(v).partition("=")[0].strip() for v in config.getoption("p3monitor_metric", None) or []
    ]
    names += [
        key[len("P3MONITOR_METRIC_") :].lower()
        for key in os.environ
        if key.startswith("P3MONITOR_METRIC_")
    ]
    metrics = {}
    for name in filter(None, names):
        metric = phase_metric(name)
        metrics[metric] = Metric(metric, "session", "time", f"the {name} phase (ingested)")
    return metrics


def parse_rule_settings(
    texts: Sequence[str], where: str, extra: Mapping[str, Metric] | None = None
) -> list[Rule]:
    """Parse the rules of one setting; a bad one is a UsageError naming ``where``."""
    rules = []
    for text in texts:
        try:
            rules.append(parse_rule(text, extra))
        except RuleError as exc:
            raise pytest.UsageError(
                f"p3monitor: {where}: rule {text!r} is not valid: {exc.reason}\n"
                "  a rule is METRIC OP VALUE[UNIT], e.g. 'success_rate < 95%' or "
                "'test_duration > 10s' (operators < <= > >= == !=; units % ms s m h B KiB MiB "
                "GiB $)"
            ) from None
    return rules


def _money(text: str) -> float:
    value = float(text.strip().lstrip("$").strip())
    if not (value >= 0 and value != float("inf")):
        raise ValueError("must be an amount >= 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _ini_lines(config: pytest.Config, name: str) -> list[str]:
    try:
        value = config.getini(name)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


# -- figures -----------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def current_run_row(monitor: MonitorSession, report: Mapping[str, Any]) -> RunRow:
    """This session as the store will hold it, for analysis next to the stored runs."""
    rel = _mapping(_mapping(report.get("metrics")).get("reliability"))
    perf = _mapping(_mapping(report.get("metrics")).get("performance"))

    def count(name: str) -> int:
        value = rel.get(name)
        return int(value) if isinstance(value, (int, float)) else 0

    return RunRow(
        run_seq=0,
        run=monitor.run,
        tests=count("tests"),
        passed=count("passed"),
        failed=count("failed"),
        errors=count("errors"),
        skipped=count("skipped"),
        xfailed=count("xfailed"),
        xpassed=count("xpassed"),
        reruns=count("reruns"),
        test_execution_time_s=_num(perf.get("test_execution_time_s")) or 0.0,
        metrics={"metrics": report.get("metrics")},
    )


def _may_exceed(values: Collection[float], limit: float) -> bool:
    """Whether any of ``values`` may be above ``limit``: their maximum, a scan in C (with a
    nan among them, which ``max`` may skip or return, the answer is yes)."""
    return not math.isfinite(sum(values)) or max(values) > limit


# -- the plugin --------------------------------------------------------------------------------


class GatesPlugin:
    """Rules, alerts, health score, anomalies, recommendations and trends of a session."""

    name = "p3monitor-gates"

    def __init__(self, config: pytest.Config, monitor: MonitorSession) -> None:
        self.config = config
        self.monitor = monitor
        extra = _ingested_names(config)
        fail_texts, fail_where = setting_list(config, "p3monitor_fail_on")
        warn_texts, warn_where = setting_list(config, "p3monitor_warn_on")
        self.fail_rules = parse_rule_settings(fail_texts, fail_where, extra)
        self.warn_rules = parse_rule_settings(warn_texts, warn_where, extra)
        self.using_defaults = not fail_texts and not warn_texts
        if self.using_defaults:
            self.warn_rules = list(_DEFAULT_RULES)

        self.cost_per_hour: float | None = parse_with(
            setting(config, "p3monitor_cost_per_hour"),
            _money,
            None,
            "the CI runner's price per hour, e.g. 0.48 or $0.48",
        )
        self.history_window: int = parse_with(
            setting(config, "p3monitor_history_window"),
            _positive_int,
            20,
            "a number of runs, e.g. 20",
        )
        try:
            self.targets = health.parse_targets(_ini_lines(config, "p3monitor_health_targets"))
        except ValueError as exc:
            raise pytest.UsageError(
                f"p3monitor: ini p3monitor_health_targets is not valid: {exc}; expected lines "
                "such as 'total_ci_time = 10m' or 'success_rate = 90%' "
                f"(KPIs: {', '.join(health.KPIS)})"
            ) from None
        try:
            self.weights = health.parse_weights(_ini_lines(config, "p3monitor_health_weights"))
        except ValueError as exc:
            raise pytest.UsageError(
                f"p3monitor: ini p3monitor_health_weights is not valid: {exc}; expected e.g. "
                "'reliability=0.4 performance=0.3 efficiency=0.2 user_satisfaction=0.1'"
            ) from None
        self.results: list[RuleResult] = []
        self.anomalies: list[anomalies.Anomaly] = []
        self.health: health.Health | None = None
        self.recommendations: list[recommend.Recommendation] = []

    # -- evaluation ----------------------------------------------------------------------------
    def pytest_p3monitor_evaluate(self, monitor: MonitorSession, report: dict[str, Any]) -> None:
        durations = record_durations(monitor.records)
        metrics = report_metrics(report, cost_per_hour=self.cost_per_hour)
        metrics.update(per_test_metrics(monitor.records, durations))
        cpu_count = usable_cpus()
        current = current_run_row(monitor, report)
        history: list[RunRow] = []
        trend_rows: list[RunRow] = []
        flaky_entries: list[dict[str, Any]] = [
            e for e in report.get("flaky") or () if isinstance(e, dict)
        ]
        now = time.time()

        store = monitor.open_store()
        if store is not None:
            try:
                history, trend_rows, test_figures = self._read_history(
                    store, current, report, durations
                )
            except StoreError as exc:  # one warning, with the run kept in the outbox
                monitor.store_failed(exc)
            except Exception as exc:  # the store failing must not stop the gates
                monitor.warn(f"history not read, history rules not evaluated: {exc}")
            else:
                metrics.update(health.history_metrics(current, history))
                metrics.update(test_figures.metrics)
                self.anomalies.extend(test_figures.anomalies)
                if not flaky_entries:
                    flaky_entries = test_figures.flaky

        self._session_anomalies(current, history, metrics)

        flaky_rate = metrics.get("flaky_rate")
        in_session = metrics.get("flaky_in_session")
        kpis = health.kpi_values(
            current,
            history,
            flaky_rate=float(flaky_rate) if isinstance(flaky_rate, (int, float)) else None,
            flaky_in_session=int(in_session) if isinstance(in_session, (int, float)) else 0,
            cpu_count=cpu_count,
            min_runs=health.MIN_HISTORY_RUNS,
        )
        self.health = health.compute_health(kpis, self.targets, self.weights or None)
        report["health_score"] = self.health.score
        report["health"] = self.health.to_dict()
        metrics["health_score"] = self.health.score

        self.results = evaluate(self.fail_rules, metrics, "critical") + evaluate(
            self.warn_rules, metrics, "warning", default=self.using_defaults
        )
        alerts = [r.to_dict() for r in self.results if r.crossed]
        alerts += [a.to_alert() for a in self.anomalies]
        report["alerts"] = list(report.get("alerts") or []) + alerts
        report["gates"] = [r.to_dict() for r in self.results]
        report["metrics"]["figures"] = {
            name: value for name, value in metrics.items() if not isinstance(value, Mapping)
        }
        for result in self.results:
            if result.crossed and result.severity == "critical":
                monitor.gate_failures.append(_gate_line(result))

        process = _mapping(_mapping(report["metrics"].get("resource_usage")).get("process"))
        containers = _mapping(report["metrics"].get("resource_usage")).get("containers") or []
        shown = metrics.get("test_duration")  # rounded as the report shows them, when read
        if not isinstance(shown, Mapping) or not recommend.may_advise(
            durations.values(), monitor.run.workers, cpu_count, error=10.0**-DURATION_DIGITS
        ):
            shown = {}  # no advice on workers or slow tests can come of them: not rounded
        self.recommendations = recommend.recommendations(
            durations=shown,
            current_workers=monitor.run.workers,
            cpu_count=cpu_count,
            flaky=flaky_entries,
            quarantined=self._quarantining(),
            memory_percent=_num(process.get("memory_percent_peak")),
            containers=[c for c in containers if isinstance(c, Mapping)],
        )
        report["recommendations"] = [r.to_dict() for r in self.recommendations]
        report["trends"] = trends.summaries([current, *trend_rows], now)

    def _quarantining(self) -> bool:
        """Whether the session quarantines known-flaky tests (the flaky feature's setting)."""
        flaky = self.config.pluginmanager.get_plugin("p3monitor-flaky")
        return bool(getattr(flaky, "quarantine", False))

    def _read_history(
        self,
        store: Any,
        current: RunRow,
        report: Mapping[str, Any],
        durations: Mapping[str, float],
    ) -> tuple[list[RunRow], list[RunRow], _TestFigures]:
        run = self.monitor.run
        own = run.run_id
        history = [
            r
            for r in store.recent_runs(limit=self.history_window, branch=run.branch)
            if r.run.run_id != own
        ][: max(0, self.history_window - 1)]
        trend_rows = [
            r
            for r in store.trend_runs(limit=TREND_RUNS, since=time.time() - 30 * _DAY)
            if r.run.run_id != own
        ]
        records = self.monitor.records
        # The flaky feature classifies this session's tests already (report["flaky"]);
        # only when it is off (-p no:p3monitor-flaky) is it done here, over every test.
        classify = self.config.pluginmanager.get_plugin("p3monitor-flaky") is None
        candidates: Mapping[str, float] = durations
        if classify:
            wanted = list(records)
        elif durations and _may_exceed(durations.values(), anomalies.MIN_JUMP_S):
            # A test that ran under the minimum jump cannot have jumped: no need to look.
            # The few that ran longer, by a comparison per test (a comprehension filtering
            # the tests directly would run unspecialized on CPython 3.11: its condition is
            # rarely true) and itertools.compress.
            limit = anomalies.MIN_JUMP_S
            longer = [duration > limit for duration in durations.values()]
            candidates = {
                nodeid: duration
                for nodeid, duration in itertools.compress(durations.items(), longer)
                if records[nodeid].outcome == "passed"
            }
            wanted = list(candidates)
        else:  # no test ran that long (most sessions): one scan in C tells
            wanted = []
        window = TEST_HISTORY_WINDOW if classify else DURATION_HISTORY_WINDOW
        stream: Iterable[tuple[str, Sequence[Any]]] = ()
        if len(wanted) > PER_TEST_QUERIES:  # one scan of the last runs beats many queries
            as_stored = {stored_nodeid(nodeid): nodeid for nodeid in wanted}
            stream = (
                (as_stored[stored], rows)
                for stored, rows in store.histories(window=window, branch=run.branch)
                if stored in as_stored
            )
        elif wanted:
            stream = store.histories(window=window, branch=run.branch, nodeids=wanted)
        figures = _test_figures(
            stream,
            records,
            durations,
            run,
            report,
            classify_flaky=classify,
            history_runs=len(history),
            current=candidates,
        )
        return history, trend_rows, figures

    def _session_anomalies(
        self, current: RunRow, history: Sequence[RunRow], metrics: Mapping[str, MetricValue]
    ) -> None:
        own = current.run.run_id
        if current.tests:
            slow = anomalies.slow_session(current.test_execution_time_s, history, exclude_run=own)
            if slow is not None:
                self.anomalies.append(slow)
        rate = metrics.get("success_rate")
        if isinstance(rate, (int, float)):
            drop = anomalies.success_rate_drop(float(rate), history, exclude_run=own)
            if drop is not None:
                self.anomalies.append(drop)

    # -- terminal --------------------------------------------------------------------------------
    def pytest_p3monitor_terminal_summary(
        self,
        monitor: MonitorSession,
        report: dict[str, Any],
        terminalreporter: pytest.TerminalReporter,
    ) -> None:
        tr = terminalreporter
        if self.health is not None and self.health.score is not None:
            parts = [
                f"{c.name.replace('_', ' ')} " + ("n/a" if c.score is None else f"{c.score:.0f}")
                for c in self.health.components
            ]
            tr.write_line("health: " + ", ".join(parts))
            if tr.verbosity > 0:
                for line in self.health.lines():
                    tr.write_line("  " + line)
        for result in self.results:
            if result.crossed and result.severity == "critical":
                tr.write_line(_gate_line(result), red=True, bold=True)
        for result in self.results:
            if result.crossed and result.severity == "warning":
                tr.write_line(f"p3monitor warning: {result.message}", yellow=True)
        for anomaly in self.anomalies:
            tr.write_line(f"p3monitor anomaly: {anomaly.message}", yellow=True)
        for result in self.results:
            if result.status == "not_evaluated" and not result.default:
                tr.write_line(f"p3monitor: {result.message}")
        shown = [r for r in self.recommendations if r.priority == "high"][:3]
        for rec in shown:
            tr.write_line(f"recommendation: {rec.recommendation} ({rec.expected_impact})")


def _gate_line(result: RuleResult) -> str:
    """The one line of a crossed fail rule: figure, threshold, tests concerned."""
    return f"p3monitor gate failed: {result.message}"


# -- per-test history ------------------------------------------------------------------------


class _TestFigures:
    def __init__(
        self,
        metrics: dict[str, MetricValue],
        found: list[anomalies.Anomaly],
        flaky: list[dict[str, Any]],
    ) -> None:
        self.metrics = metrics
        self.anomalies = found
        self.flaky = flaky


def _test_figures(
    histories: Iterable[tuple[str, Sequence[Any]]],
    records: Mapping[str, TestRecord],
    durations: Mapping[str, float],
    run: Any,
    report: Mapping[str, Any],
    *,
    classify_flaky: bool = True,
    history_runs: int = 0,
    current: Mapping[str, float] | None = None,
) -> _TestFigures:
    """Stream the tests' histories once: duration jumps, duration_regression, flakiness.

    ``durations`` are the records' (:func:`~pytest_p3monitor.rules.record_durations`);
    ``current`` those of the tests whose histories come (default: ``durations``), looked up
    one by one.
    """
    if current is None:
        current = durations
    from . import flaky

    jumped: dict[str, float] = {}
    found: list[anomalies.Anomaly] = []
    flaky_results: list[dict[str, Any]] = []
    seen: set[str] = set()
    for nodeid, rows in histories:
        seen.add(nodeid)
        record = records.get(nodeid)
        if record is None:
            continue
        if record.outcome == "passed":
            jumps = anomalies.duration_jumps(
                {nodeid: current[nodeid]}, [(nodeid, rows)], exclude_run=run.run_id
            )
            jumped.update(jumps.regression)
            found.extend(jumps.anomalies)
        if classify_flaky:
            folded = flaky.fold_record(rows, record, run, TEST_HISTORY_WINDOW)
            result = flaky.classify(nodeid, folded)
            if result.is_flaky:
                flaky_results.append(result.to_dict())
    if classify_flaky:
        for nodeid, record in records.items():
            if nodeid in seen:
                continue  # a test new to the store: only this session's evidence
            folded = flaky.fold_record((), record, run, TEST_HISTORY_WINDOW)
            result = flaky.classify(nodeid, folded)
            if result.is_flaky:
                flaky_results.append(result.to_dict())

    # With enough runs stored, a passing test under the minimum jump is known not to have
    # jumped: 0 for each (thousands of entries, built only if a rule reads them).
    known_steady = history_runs >= anomalies.MIN_RUNS

    def steady() -> Iterator[str]:
        for nodeid, duration in durations.items():
            if duration <= anomalies.MIN_JUMP_S and records[nodeid].outcome == "passed":
                yield nodeid

    def regression() -> dict[str, float]:
        out = dict(jumped)
        if known_steady:
            for nodeid in steady():
                out.setdefault(nodeid, 0.0)
        return out

    measured = bool(jumped) or (known_steady and any(True for _ in steady()))
    found.sort(key=lambda a: a.value - a.baseline, reverse=True)
    reported = [
        e
        for e in report.get("flaky") or ()
        if isinstance(e, Mapping)
        and e.get("status", "flaky") == "flaky"
        and e.get("nodeid") in records
    ]
    flaky_count = len(flaky_results) if classify_flaky else len(reported)
    tests = len(records)
    metrics: dict[str, MetricValue] = {
        "duration_regression": Deferred(regression) if measured else None,
        "flaky_count": float(flaky_count),
        "flaky_rate": 100.0 * flaky_count / tests if tests else None,
    }
    return _TestFigures(metrics, found, flaky_results)
