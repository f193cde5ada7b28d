"""Feature plugin: resource usage of the session, per test, and phases.

Registered in every process of a ``--p3monitor`` session (see ``plugin.FEATURES``):

- wherever tests run (the only process, or each xdist worker) it measures each test's own
  CPU time, peak RSS and I/O (:mod:`.sampling.pertest`), from the end of the test before
  to the test's teardown report: into the test's record, or in a worker onto that report
  (with the phases the ``p3monitor`` fixture measured), which carries them to the
  controller;
- on the controller it runs the session sampler (a separate process: the process tree,
  its cgroup, the containers, disk and probes), and at the end fills
  ``metrics.resource_usage``, ``metrics.performance.phases`` / ``services``, each test's
  container peaks, and the resource lines of the terminal summary.

Settings: ``p3monitor_sample_interval`` (process tree every S seconds, default 0.5;
containers every 2 S), ``p3monitor_test_resources`` (ini, default true: ``false`` measures
no test on its own), ``p3monitor_io_chars`` (ini: per test also ``read_chars`` and
``write_chars``), ``p3monitor_containers``, ``p3monitor_probes`` (ini, ``host:port``
per line), ``--p3monitor-metric NAME=VALUE`` (repeatable) and ``P3MONITOR_METRIC_<NAME>``
for durations measured by earlier CI steps.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from .collect import FIGURES_ATTR
from .config import Setting, boolean, parse_with, seconds, setting, setting_list
from .phases import RECORDER_KEY, PhaseRecorder, summarize
from .report.terminal import fmt_bytes
from .sampling.pertest import RSS_PEAK, TestMeter
from .sampling.settings import (
    PROCESS_INTERVAL,
    ContainerSelection,
    Probe,
    parse_probe,
    parse_selection,
)
from .warnings import SamplingWarning

# Imported when used, on the controller only (xdist workers never need them): the sampler
# when the session starts, the summaries at its end.
if TYPE_CHECKING:
    from .sampling.handle import SamplerHandle
    from .session import MonitorSession

METRIC_ENV_PREFIX = "P3MONITOR_METRIC_"
# Patterns, not compiled regexes: compiling both at import took ~0.35 ms, for values that
# are seldom given (re compiles and caches them on first use).
_METRIC_NAME = r"[A-Za-z_][A-Za-z0-9_.:-]*\Z"
_METRIC_VALUE = r"\s*(\+?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(ms|s|m|min|h)?\s*\Z"
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}
CONTAINERS_SHOWN = 5


def _children_peak() -> int | None:
    """The largest peak RSS of a finished process the session started and waited for (a
    test's subprocess shorter than the sampling interval, a worker), from ``getrusage``;
    each is a lower bound of the process tree's peak too. None where unknown."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return int(maxrss * (1 if sys.platform == "darwin" else 1024)) or None


def _shown(name: str) -> str:
    """A phase name as the terminal shows it: control characters escaped (a newline in a
    name must not start a line of its own)."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def parse_metric_value(text: str) -> float:
    """``12.5``, ``12.5s``, ``800ms``, ``3m``, ``1h`` -> seconds; ValueError otherwise."""
    if text.strip().startswith("-"):
        raise ValueError(f"{text!r} is negative: a duration is 0 or more")
    match = re.match(_METRIC_VALUE, text)
    if not match:
        raise ValueError(f"{text!r} is not a number of seconds (units: ms, s, m, h)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_metric(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` -> (name, seconds); ValueError saying what is wrong."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep:
        raise ValueError(f"{text!r} has no '='")
    if not re.match(_METRIC_NAME, name):
        raise ValueError(f"{name!r} is not a metric name (letters, digits, _ . : -)")
    return name, parse_metric_value(value)


def external_metrics(config: pytest.Config, environ: Mapping[str, str]) -> dict[str, float]:
    """Durations from earlier CI steps: P3MONITOR_METRIC_<NAME> variables, then the CLI."""
    metrics: dict[str, float] = {}
    for key in sorted(k for k in environ if k.startswith(METRIC_ENV_PREFIX)):
        if len(key) > len(METRIC_ENV_PREFIX):
            name = key[len(METRIC_ENV_PREFIX) :].lower()
            value = parse_with(
                Setting(environ[key], key),
                parse_metric_value,
                None,
                "a number of seconds such as 42.5, 42.5s or 800ms",
            )
            if value is not None:
                metrics[name] = value
    for text in config.getoption("p3monitor_metric", None) or []:
        name, value = parse_with(
            Setting(str(text), "--p3monitor-metric"),
            parse_metric,
            ("", 0.0),
            "NAME=SECONDS such as docker_build=42.5 (units: ms, s, m, h)",
        )
        metrics[name] = value
    return metrics


def parse_probes(values: list[str], where: str) -> list[Probe]:
    probes = []
    for line in values:
        for text in line.replace(",", " ").split():
            probes.append(
                parse_with(
                    Setting(text, where), parse_probe, Probe("", 0), "HOST:PORT, such as db:5432"
                )
            )
    return probes


def container_selection(config: pytest.Config) -> ContainerSelection:
    values, where = setting_list(config, "p3monitor_containers")
    try:
        return parse_selection(values)
    except ValueError as exc:
        raise pytest.UsageError(
            f"p3monitor: {where} = {' '.join(values)!r} is not valid: {exc}; expected none, "
            "all, or Docker filters KEY=VALUE such as label=com.docker.compose.project=app"
        ) from None


def _pct(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}%" if abs(value) < 10 else f"{value:.0f}%"


class ResourcesPlugin:
    """See the module docstring."""

    name = "p3monitor-resources"

    def __init__(self, config: pytest.Config, monitor: MonitorSession) -> None:
        self.config = config
        self.monitor = monitor
        self.is_worker = hasattr(config, "workerinput")
        self.recorder = PhaseRecorder()
        config.stash[RECORDER_KEY] = self.recorder
        # Each test's own figures (the session sampler runs either way). The meter is only
        # made when used: it holds /proc files open and resets the peak RSS.
        per_test = parse_with(
            setting(config, "p3monitor_test_resources"), boolean, True, "true or false"
        )
        chars = parse_with(setting(config, "p3monitor_io_chars"), boolean, False, "true or false")
        self.meter = TestMeter(chars=chars) if per_test else None
        # Tests run in this process unless it is an xdist controller (set at sessionstart).
        self.runs_tests = True
        self.phase_entries: list[dict[str, Any]] = []
        self.handle: SamplerHandle | None = None
        self.records: list[dict[str, Any]] = []
        self.mode = "none"
        if self.is_worker:
            return
        self.interval = parse_with(
            setting(config, "p3monitor_sample_interval"),
            seconds,
            PROCESS_INTERVAL,
            "a positive number of seconds such as 0.5",
        )
        self.selection = container_selection(config)
        probes, where = setting_list(config, "p3monitor_probes")
        self.probes = parse_probes(probes, where)
        self.metrics = external_metrics(config, os.environ)

    # -- controller: the session sampler --------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not self.is_worker:
            self.runs_tests = not self.config.pluginmanager.hasplugin("dsession")
        self._register_meter()
        if self.is_worker:
            return
        from .sampling.handle import SamplerHandle
        from .sampling.sampler import SamplerConfig

        config = SamplerConfig(
            root_pid=os.getpid(),
            process_interval=self.interval,
            container_interval=2 * self.interval,
            containers=self.selection.to_json(),
            disk_path=str(self.config.rootpath),
            probes=[str(p) for p in self.probes],
        )
        try:
            self.handle = SamplerHandle.start(config)
        except Exception as exc:  # never let sampling stop the session
            self.monitor.warn(f"resource sampling not started: {exc}", SamplingWarning)

    def _stop_sampler(self) -> None:
        handle = self.handle
        if handle is None or handle.stopped:
            return
        from .sampling.summary import warnings_of

        # Asked to stop at sessionfinish; returns once the sampler has written its records.
        # It is reaped at unconfigure.
        self.records = handle.stop()
        self.mode = handle.mode
        for problem in handle.problems:
            self.monitor.warn(problem, SamplingWarning)
        for text in warnings_of(self.records):
            self.monitor.warn(text, SamplingWarning)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            if not handle.stopped:  # the session ended before the report was built
                handle.stop(timeout=5.0)
            # After the summary and the store, the sampler has normally exited: no wait.
            handle.close()
        if self.meter is not None:
            self.meter.close()

    # -- wherever tests run: per-test figures -----------------------------------------------
    def _register_meter(self) -> None:
        """Where this process's tests are measured, and how their figures travel.

        Without xdist the monitor's record builder calls the meter at each teardown report
        and keeps the figures in the record: no hook of its own per test. An xdist worker
        has no builder: a plugin of its own puts them on the teardown report, which carries
        them to the controller. The controller only collects the phases the workers measured.
        With ``p3monitor_test_resources = false`` no test is metered; a worker's plugin still
        carries the phases.
        """
        if self.is_worker:
            self.config.pluginmanager.register(_WorkerMeter(self), "p3monitor-meter")
        elif self.runs_tests:
            if self.meter is not None:
                self.monitor.builder.meter = self.meter.lap
        else:
            self.config.pluginmanager.register(_PhaseCollector(self), "p3monitor-meter")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        # The first test is measured from here (each later one from the end of the one before).
        if self.meter is not None and (self.is_worker or self.runs_tests):
            self.meter.start()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            if self.recorder.entries:
                # Phases measured after the last test's teardown report: send them along.
                workeroutput: dict[str, Any] = getattr(self.config, "workeroutput", {})
                workeroutput["p3monitor_phases"] = self.recorder.drain()
            return
        # The session's end begins (tryfirst: before the monitor builds the report): the
        # sampler takes its final measurements meanwhile, and _stop_sampler then only
        # waits for them.
        if self.handle is not None:
            self.handle.request_stop()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        entries = (getattr(node, "workeroutput", None) or {}).get("p3monitor_phases")
        if isinstance(entries, list):
            self.phase_entries.extend(e for e in entries if isinstance(e, dict))

    # -- controller: the report ---------------------------------------------------------------
    def pytest_p3monitor_measure(self, monitor: MonitorSession, report: dict[str, Any]) -> None:
        if self.is_worker:
            return
        from .sampling import summary

        self._stop_sampler()
        records = self.records
        metrics = report["metrics"]
        usage = metrics.setdefault("resource_usage", {})

        process = summary.process_summary(records)
        # The per-test peaks (VmHWM) catch spikes between samples; each is a lower bound of
        # the tree's peak, as is every sample.
        test_peaks = [rec.figures.get(RSS_PEAK) for rec in monitor.records.values()]
        children = _children_peak()  # a short subprocess of a test, between two samples
        known = [p for p in (process["rss_bytes_peak"], children, *test_peaks) if p is not None]
        if known:
            process["rss_bytes_peak"] = int(max(known))
            limit = process.get("memory_limit_bytes")
            if limit:
                process["memory_percent_peak"] = 100.0 * process["rss_bytes_peak"] / limit
        usage["process"] = {**usage.get("process", {}), **process}
        usage["cgroup"] = summary.cgroup_summary(records)
        started = monitor.run.started_at
        usage["containers"] = summary.container_summaries(records, started)
        usage["disk"] = summary.disk_summary(records)
        usage["network"] = summary.network_summary(records)
        usage["sampler"] = summary.sampler_summary(records, self.mode)

        self._per_test(monitor)

        self.phase_entries.extend(self.recorder.drain())
        phases, services = summarize(self.phase_entries)
        performance = metrics.setdefault("performance", {})
        merged = dict(performance.get("phases") or {})
        merged.update(self.metrics)
        merged.update(phases)
        performance["phases"] = merged
        performance["services"] = services

    def _per_test(self, monitor: MonitorSession) -> None:
        """Each test's container peaks, on its record (the report's entries come from those)."""
        from .sampling.summary import per_test_container_peaks

        if not any(r.get("kind") == "container" for r in self.records):
            return
        tests = [(r.nodeid, r.start, r.stop) for r in monitor.records.values()]
        for nodeid, figures in per_test_container_peaks(self.records, tests).items():
            record = monitor.records.get(nodeid)
            if record is not None:
                record.figures = {**record.figures, **figures}  # not the report's dict

    def pytest_p3monitor_terminal_summary(
        self,
        monitor: MonitorSession,
        report: dict[str, Any],
        terminalreporter: pytest.TerminalReporter,
    ) -> None:
        if self.is_worker:
            return
        for line in summary_lines(report):
            terminalreporter.write_line(line)


class _WorkerMeter:
    """In an xdist worker: each test's figures, and the phases measured during it, travel
    to the controller on its teardown report."""

    def __init__(self, plugin: ResourcesPlugin) -> None:
        self.lap = plugin.meter.lap if plugin.meter is not None else None
        self.recorder = plugin.recorder

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # tryfirst: before xdist serializes the report for the controller.
        if report.when != "teardown":
            return
        attrs = report.__dict__  # the optional attributes, without getattr's defaults
        if self.lap is not None:
            attrs[FIGURES_ATTR] = self.lap()
        if self.recorder.entries:
            attrs["p3monitor_phases"] = self.recorder.drain()


class _PhaseCollector:
    """On the xdist controller: the phases measured in the workers, from their reports."""

    def __init__(self, plugin: ResourcesPlugin) -> None:
        self.phase_entries = plugin.phase_entries

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entries = report.__dict__.get("p3monitor_phases")
        if isinstance(entries, list):
            self.phase_entries.extend(e for e in entries if isinstance(e, dict))


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The resource lines of the terminal summary (peaks first)."""
    metrics = report.get("metrics") or {}
    usage = metrics.get("resource_usage") or {}
    lines = []
    process = usage.get("process") or {}
    if process.get("samples") or process.get("rss_bytes_peak") is not None:
        limit = process.get("memory_limit_bytes")
        of_limit = (
            f" ({_pct(process.get('memory_percent_peak'))} of {fmt_bytes(limit)})" if limit else ""
        )
        lines.append(
            f"resources: pytest processes cpu peak {_pct(process.get('cpu_percent_peak'))}"
            f" mean {_pct(process.get('cpu_percent_mean'))},"
            f" memory peak {fmt_bytes(process.get('rss_bytes_peak'))}{of_limit}"
        )
    cgroup = usage.get("cgroup")
    if cgroup:
        limit = cgroup.get("memory_limit_bytes")
        of_limit = f" ({_pct(cgroup.get('memory_percent_peak'))} of limit {fmt_bytes(limit)})"
        lines.append(
            f"cgroup v{cgroup.get('version')}: cpu peak {_pct(cgroup.get('cpu_percent_peak'))},"
            f" memory peak {fmt_bytes(cgroup.get('memory_bytes_peak'))}"
            + (of_limit if limit else " (no limit)")
        )
    containers = usage.get("containers") or []
    for c in containers[:CONTAINERS_SHOWN]:
        memory = fmt_bytes(c.get("memory_bytes_peak"))
        if c.get("memory_percent_peak") is not None:
            memory += f" ({_pct(c.get('memory_percent_peak'))} of limit)"
        lines.append(
            f"container {c.get('name')}: cpu peak {_pct(c.get('cpu_percent_peak'))}"
            f" mean {_pct(c.get('cpu_percent_mean'))}, memory peak {memory},"
            f" net {fmt_bytes(c.get('net_rx_bytes'))} in / {fmt_bytes(c.get('net_tx_bytes'))} out"
        )
    if len(containers) > CONTAINERS_SHOWN:
        lines.append(
            f"... and {len(containers) - CONTAINERS_SHOWN} more containers (see the report)"
        )
    disk = usage.get("disk") or {}
    if disk.get("free_bytes_start") is not None:
        text = (
            f"disk: {fmt_bytes(disk.get('free_bytes_start'))} free at start,"
            f" {fmt_bytes(disk.get('free_bytes_end'))} at end ({disk.get('path')})"
        )
        if disk.get("engine_bytes_end") is not None:
            text += f"; Docker engine uses {fmt_bytes(disk.get('engine_bytes_end'))}"
        lines.append(text)
    phases = (metrics.get("performance") or {}).get("phases") or {}
    if phases:
        lines.append("phases: " + ", ".join(f"{_shown(k)} {v:.2f}s" for k, v in phases.items()))
    return lines
