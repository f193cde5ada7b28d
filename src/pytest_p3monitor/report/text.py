"""A stored run's health report (:mod:`.run_report`) as text tables or Markdown.

Pure: the report object in, the text out. The tables are those of the other ``p3monitor``
commands (:func:`~pytest_p3monitor.cli.common.render_table`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..cli.common import render_table
from ..rules import format_value
from ..trends import Period
from .run_report import (
    day_periods,
    failed_tests,
    kpi_family,
    resource_peaks,
    trend_periods,
)

__all__ = ["MESSAGE_WIDTH", "SLOWEST_SHOWN", "one_line", "render_text", "when"]

TextFormat = Literal["table", "markdown"]

#: Characters of a failure message a table shows (the JSON and HTML show it whole).
MESSAGE_WIDTH = 100
#: Slowest tests a table shows.
SLOWEST_SHOWN = 10


def one_line(text: str | None, width: int = MESSAGE_WIDTH) -> str | None:
    """``text`` on one line (its first non-blank line), cut to ``width`` characters."""
    if not text:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    first = " ".join(lines[0].split())
    if len(first) > width:
        return first[: width - 1].rstrip() + "…"
    return first + " …" if len(lines) > 1 else first


def when(iso: Any) -> str | None:
    """An ISO 8601 time as ``2026-11-29 03:44:05`` (UTC), None when unknown."""
    return str(iso)[:19].replace("T", " ") if iso else None


def _time(value: Any) -> str | None:
    return format_value(float(value), "time") if isinstance(value, (int, float)) else None


def _percent(value: Any) -> str | None:
    return f"{value:.1f}%" if isinstance(value, (int, float)) else None


def _bytes(value: Any) -> str | None:
    return format_value(float(value), "bytes") if isinstance(value, (int, float)) else None


def _score(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "n/a"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def run_lines(report: Mapping[str, Any]) -> list[str]:
    """The run: id, commit and branch, CI, times, exit status, versions."""
    run = _mapping(report.get("run"))
    perf = _mapping(_mapping(report.get("metrics")).get("performance"))
    lines = []
    where = [f"commit {run['commit']}" if run.get("commit") else "no commit"]
    where.append(f"branch {run['branch']}" if run.get("branch") else "no branch")
    lines.append(", ".join(where))
    ci = _mapping(run.get("ci"))
    if any(ci.get(k) for k in ("provider", "run_id", "job", "url")):
        parts = [f"CI {ci.get('provider') or 'unknown'}"]
        parts += [f"job {ci['job']}"] if ci.get("job") else []
        parts += [f"run {ci['run_id']}"] if ci.get("run_id") else []
        parts += [str(ci["url"])] if ci.get("url") else []
        lines.append(", ".join(parts))
    times = [f"started {when(run.get('started_at')) or '?'} UTC"]
    finished = when(run.get("finished_at"))
    times.append(f"finished {finished} UTC" if finished else "not finished")
    duration = _time(perf.get("total_time_s"))
    if duration:
        times.append(f"duration {duration}")
    status = run.get("exit_status")
    times.append(f"exit status {'unknown' if status is None else status}")
    lines.append(", ".join(times))
    versions = [
        f"python {run.get('python') or '?'}",
        f"pytest {run.get('pytest') or '?'}",
        f"workers {run.get('workers') or 0}",
    ]
    if run.get("hostname"):
        versions.append(f"host {run['hostname']}")
    lines.append(", ".join(versions))
    return lines


def heading(report: Mapping[str, Any]) -> str:
    run = _mapping(report.get("run"))
    score = report.get("health_score")
    shown = "n/a" if not isinstance(score, (int, float)) else f"{score:.1f}/100"
    return f"run {run.get('id')}: health score {shown}"


def _health_tables(report: Mapping[str, Any], fmt: TextFormat) -> list[str]:
    data = _mapping(report.get("health"))
    weights = _mapping(data.get("weights"))
    components = [
        (name, None if data.get(name) is None else round(float(data[name]), 1), weights.get(name))
        for name in ("reliability", "performance", "efficiency", "user_satisfaction")
    ]
    out = [render_table(("component", "score", "weight"), components, fmt)]
    kpis = _mapping(data.get("kpis"))
    if kpis:
        rows = []
        for name, kpi in kpis.items():
            k = _mapping(kpi)
            family = kpi_family(name)
            value, target = k.get("value"), k.get("target")
            sign = ">=" if k.get("direction") == "at_least" else "<"
            met = k.get("met")
            rows.append(
                (
                    name,
                    k.get("component"),
                    None if not isinstance(value, (int, float)) else format_value(value, family),
                    None
                    if not isinstance(target, (int, float))
                    else f"{sign} {format_value(target, family)}",
                    None if k.get("score") is None else round(float(k["score"]), 1),
                    None if met is None else ("yes" if met else "NO"),
                )
            )
        out.append(render_table(("KPI", "component", "value", "target", "score", "met"), rows, fmt))
    return out


def _reliability_table(report: Mapping[str, Any], fmt: TextFormat) -> str:
    rel = _mapping(_mapping(report.get("metrics")).get("reliability"))
    keys = ("tests", "passed", "failed", "errors", "skipped", "xfailed", "xpassed", "reruns")
    return render_table(
        (*keys, "success rate"),
        [(*(rel.get(k) for k in keys), _percent(rel.get("success_rate")))],
        fmt,
    )


def _slowest_table(report: Mapping[str, Any], fmt: TextFormat) -> str | None:
    perf = _mapping(_mapping(report.get("metrics")).get("performance"))
    slowest = [s for s in perf.get("slowest") or () if isinstance(s, Mapping)]
    if not slowest:
        return None
    outcomes = {t.get("nodeid"): t.get("outcome") for t in report.get("tests") or ()}
    rows = [
        (s.get("nodeid"), outcomes.get(s.get("nodeid")), _time(s.get("duration_s")))
        for s in slowest[:SLOWEST_SHOWN]
    ]
    return render_table(("test", "outcome", "time"), rows, fmt)


def _failed_table(report: Mapping[str, Any], fmt: TextFormat) -> str | None:
    failed = failed_tests(report)
    if not failed:
        return None
    rows = [
        (t.get("nodeid"), t.get("outcome"), t.get("reruns"), one_line(t.get("message")))
        for t in failed
    ]
    return render_table(("test", "outcome", "reruns", "message"), rows, fmt)


def _evidence(entry: Mapping[str, Any]) -> str | None:
    return ", ".join(str(e) for e in entry.get("evidence") or ()) or None


def _flaky_table(report: Mapping[str, Any], fmt: TextFormat) -> str | None:
    flaky = [f for f in report.get("flaky") or () if isinstance(f, Mapping)]
    if not flaky:
        return None
    rows = []
    for f in flaky:
        session = _mapping(f.get("session"))
        rows.append(
            (
                f.get("nodeid"),
                f"{f.get('score', 0):.2f}",
                _percent(100 * float(f.get("fail_rate") or 0)),
                f.get("runs"),
                f.get("failures"),
                _evidence(f),
                session.get("outcome") or "not run",
            )
        )
    headers = ("test", "score", "fail rate", "runs", "failures", "evidence", "in this run")
    return render_table(headers, rows, fmt)


def _memory(period: Period) -> str | None:
    parts = []
    if period.peak_memory_percent is not None:
        parts.append(f"{period.peak_memory_percent:.1f}%")
    if period.peak_rss_bytes is not None:
        parts.append(format_value(period.peak_rss_bytes, "bytes"))
    return " / ".join(parts) or None


TREND_HEADERS = (
    "period",
    "runs",
    "tests",
    "success",
    "runs passed",
    "mean time",
    "p95 time",
    "peak memory",
)


def trend_row(period: Period) -> tuple[Any, ...]:
    """A period as a row of :data:`TREND_HEADERS` (as ``p3monitor trends`` shows it)."""
    return (
        period.period,
        period.runs,
        period.tests,
        _percent(period.success_rate),
        _percent(period.ci_success_rate),
        _time(period.mean_execution_time_s),
        _time(period.p95_execution_time_s),
        _memory(period),
    )


def _resources_table(report: Mapping[str, Any], fmt: TextFormat) -> str | None:
    peaks = resource_peaks(report)
    if not peaks:
        return None
    rows = [
        (
            p.source,
            _percent(p.cpu_percent_peak),
            _percent(p.cpu_percent_mean),
            _bytes(p.memory_bytes_peak),
            _percent(p.memory_percent_peak),
        )
        for p in peaks
    ]
    headers = ("measured", "cpu peak", "cpu mean", "memory peak", "memory % of limit")
    return render_table(headers, rows, fmt)


def _alert_lines(report: Mapping[str, Any]) -> list[str]:
    return [
        f"{a.get('severity') or 'alert'}: {one_line(str(a.get('message') or a.get('rule')))}"
        for a in report.get("alerts") or ()
        if isinstance(a, Mapping)
    ]


def render_text(report: Mapping[str, Any], fmt: TextFormat = "table") -> str:
    """The report as aligned text tables (``table``) or Markdown, one section after another."""
    markdown = fmt == "markdown"
    out: list[str] = []

    def section(title: str, body: Sequence[str] | str | None, empty: str) -> None:
        out.append("")
        out.append(f"### {title}" if markdown else title)
        out.append("")
        if body is None or not body:
            out.append(empty)
        elif isinstance(body, str):
            out.append(body)
        else:
            for i, block in enumerate(body):
                if i:
                    out.append("")
                out.append(block)

    # In Markdown, text from the run (a branch, a URL, a message) is shown as written, not
    # taken for HTML by the renderer (the tables escape their cells the same way).
    md = (lambda text: html.escape(text, quote=False)) if markdown else (lambda text: text)
    top = heading(report)
    out.append(f"## {md(top)}" if markdown else top)
    out.append("")
    for line in run_lines(report):
        out.append(f"- {md(line)}" if markdown else f"  {line}")
    source = report.get("health_source")
    note = " (computed from the store: the run has none of its own)" if source == "computed" else ""
    section(f"health{note}", _health_tables(report, fmt), "not measured")
    section("reliability", _reliability_table(report, fmt), "no tests")
    section("slowest tests", _slowest_table(report, fmt), "no tests")
    section("failed and errored tests", _failed_table(report, fmt), "none")
    section(
        "flaky tests (classified from the store's history, as `p3monitor flaky`)",
        _flaky_table(report, fmt),
        "none",
    )
    periods = trend_periods(report)
    section(
        "trends (up to this run)",
        render_table(TREND_HEADERS, [trend_row(p) for p in periods], fmt) if periods else None,
        "no runs",
    )
    days = day_periods(report)
    if days:
        section("per day (UTC)", render_table(TREND_HEADERS, [trend_row(d) for d in days], fmt), "")
    section("resource peaks", _resources_table(report, fmt), "not sampled")
    alerts = _alert_lines(report)
    if alerts:
        section(
            "alerts",
            [("\n".join(f"- {md(a)}" for a in alerts) if markdown else "\n".join(alerts))],
            "",
        )
    return "\n".join(out) + "\n"
