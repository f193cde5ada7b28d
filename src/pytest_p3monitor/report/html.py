"""A stored run's health report (:mod:`.run_report`) as one self-contained HTML page.

Pure: the report object in, the page out. The page has its CSS inline and no script, image
or font from elsewhere: it opens offline, from a CI artifact or an e-mail, and prints. Every
text that comes from the tests or the environment (node ids, messages, branch names, URLs,
host names) is escaped; a URL is a link only when it is http(s).
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..rules import format_value
from ..trends import Period
from .run_report import (
    TREND_DAYS,
    day_periods,
    failed_tests,
    kpi_family,
    resource_peaks,
    trend_periods,
)
from .text import when

__all__ = ["render_html", "safe_link", "trend_chart"]

#: What a cell shows for a value not measured (an en dash).
DASH = "\u2013"
#: Slowest tests the page lists.
SLOWEST_SHOWN = 10
#: Health scores from here up are good, from WARN_SCORE up middling, below poor.
GOOD_SCORE = 85.0
WARN_SCORE = 70.0

_CSS = """
:root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --muted: #59636e;
  --line: #d1d9e0; --bg: #f6f8fa; --fg: #1f2328; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 24px; color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 0 0 8px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; }
code { overflow-wrap: anywhere; }
a { color: #0969da; }
header.top { display: flex; gap: 24px; justify-content: space-between; align-items: flex-start; }
.meta { color: var(--muted); margin: 0 0 8px; }
dl.run { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 2px 14px;
  margin: 8px 0 0; }
dl.run dt { color: var(--muted); }
dl.run dd { margin: 0; overflow-wrap: anywhere; }
.score { min-width: 150px; text-align: center; border: 2px solid currentColor; border-radius: 12px;
  padding: 10px 16px; }
.score .num { font-size: 44px; font-weight: 700; line-height: 1.1; }
.score small { display: block; color: var(--muted); }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
.na { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 14px;
  margin-top: 22px; }
.card { border: 1px solid var(--line); border-radius: 10px; padding: 14px; background: var(--bg);
  break-inside: avoid; }
.card .big { font-size: 26px; font-weight: 700; }
.card table { width: 100%; }
.card td { border: 0; padding: 1px 0; }
.card td.v { text-align: right; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px;
  border-bottom: 1px solid var(--line); }
th { background: var(--bg); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
pre.msg { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 14em;
  overflow: auto; }
.bar { display: inline-block; height: 8px; background: #8c959f; border-radius: 2px;
  vertical-align: middle; }
.empty { color: var(--muted); font-style: italic; }
.note { color: var(--muted); font-size: 12.5px; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { font: 10px system-ui, sans-serif; fill: var(--muted); }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@media print {
  body { padding: 0; max-width: none; font-size: 11px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; }
  tr, .card, svg.chart { break-inside: avoid; }
  pre.msg { max-height: none; overflow: visible; }
  a[href]::after { content: " (" attr(href) ")"; font-size: 10px; color: var(--muted); }
}
"""


def _e(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def safe_link(url: Any) -> str:
    """An http(s) URL as an escaped link; anything else (``javascript:``, a file path, a
    scheme-less text) as escaped text only."""
    if not url:
        return ""
    text = str(url)
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return _e(text)
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return f'<a href="{_e(text.strip())}" rel="noopener noreferrer">{_e(text)}</a>'
    return _e(text)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _time(value: Any) -> str:
    number = _num(value)
    return DASH if number is None else _e(format_value(number, "time"))


def _percent(value: Any) -> str:
    number = _num(value)
    return DASH if number is None else f"{number:.1f}%"


def _bytes(value: Any) -> str:
    number = _num(value)
    return DASH if number is None else _e(format_value(number, "bytes"))


def _band(score: Any) -> str:
    number = _num(score)
    if number is None:
        return "na"
    return "ok" if number >= GOOD_SCORE else "warn" if number >= WARN_SCORE else "bad"


def _rate_band(rate: float | None) -> str:
    if rate is None:
        return "na"
    return "ok" if rate >= 100.0 else "warn" if rate >= 80.0 else "bad"


_NUMERIC = ' class="n"'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    """A table of already escaped cells; columns in ``numeric`` aligned right."""
    head = "".join(
        f'<th{_NUMERIC if i in numeric else ""} scope="col">{_e(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{_NUMERIC if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


# -- the parts of the page -----------------------------------------------------------------


def _header(report: Mapping[str, Any]) -> str:
    run = _mapping(report.get("run"))
    perf = _mapping(_mapping(report.get("metrics")).get("performance"))
    ci = _mapping(run.get("ci"))
    score = _num(report.get("health_score"))
    fields: list[tuple[str, str]] = [
        ("commit", f"<code>{_e(run.get('commit'))}</code>" if run.get("commit") else DASH),
        ("branch", f"<code>{_e(run.get('branch'))}</code>" if run.get("branch") else DASH),
        ("started", _e(f"{when(run.get('started_at'))} UTC") if run.get("started_at") else DASH),
        (
            "finished",
            _e(f"{when(run.get('finished_at'))} UTC") if run.get("finished_at") else DASH,
        ),
        ("duration", _time(perf.get("total_time_s"))),
        (
            "exit status",
            DASH if run.get("exit_status") is None else _e(run.get("exit_status")),
        ),
        ("python", _e(run.get("python") or DASH)),
        ("pytest", _e(run.get("pytest") or DASH)),
        ("workers", _e(run.get("workers") or 0)),
        ("host", _e(run.get("hostname") or DASH)),
    ]
    if any(ci.get(k) for k in ("provider", "run_id", "job", "url")):
        fields += [
            ("CI", _e(ci.get("provider") or DASH)),
            ("CI job", _e(ci.get("job") or DASH)),
            ("CI run", _e(ci.get("run_id") or DASH)),
            ("CI URL", safe_link(ci.get("url")) or DASH),
        ]
    details = "".join(f"<dt>{_e(name)}</dt><dd>{value}</dd>" for name, value in fields)
    band = _band(score)
    shown = "n/a" if score is None else f"{score:.0f}"
    return (
        '<header class="top"><div>'
        "<h1>Test run health report</h1>"
        f'<p class="meta">run <code>{_e(run.get("id"))}</code></p>'
        f'<dl class="run">{details}</dl></div>'
        f'<div class="score {band}" role="img" aria-label="health score {shown} of 100">'
        f'<span class="num">{shown}</span><span>/100</span><small>health score</small></div>'
        "</header>"
    )


def _card(title: str, score: Any, lines: Sequence[tuple[str, str]]) -> str:
    number = _num(score)
    big = (
        f'<div class="big {_band(number)}">{number:.0f}<small>/100</small></div>'
        if number is not None
        else f'<div class="big na">{DASH}</div>'
    )
    rows = "".join(f'<tr><td>{_e(k)}</td><td class="v">{v}</td></tr>' for k, v in lines)
    return f'<div class="card"><h3>{_e(title)}</h3>{big}<table>{rows}</table></div>'


def _cards(report: Mapping[str, Any]) -> str:
    metrics = _mapping(report.get("metrics"))
    health = _mapping(report.get("health"))
    rel = _mapping(metrics.get("reliability"))
    perf = _mapping(metrics.get("performance"))
    reliability = [
        ("success rate", _percent(rel.get("success_rate"))),
        ("tests", _e(rel.get("tests", 0))),
        ("passed", _e(rel.get("passed", 0))),
        ("failed", _e(rel.get("failed", 0))),
        ("errors", _e(rel.get("errors", 0))),
        ("skipped", _e(rel.get("skipped", 0))),
        ("xfailed / xpassed", f"{_e(rel.get('xfailed', 0))} / {_e(rel.get('xpassed', 0))}"),
        ("reruns", _e(rel.get("reruns", 0))),
        ("flaky tests known", _e(len(report.get("flaky") or ()))),
    ]
    slowest = [s for s in perf.get("slowest") or () if isinstance(s, Mapping)]
    performance = [
        ("total time", _time(perf.get("total_time_s"))),
        ("test execution", _time(perf.get("test_execution_time_s"))),
        ("sum of test durations", _time(perf.get("tests_duration_sum_s"))),
        ("slowest test", _time(slowest[0].get("duration_s")) if slowest else DASH),
    ]
    for name, seconds in _mapping(perf.get("phases")).items():
        performance.append((f"phase {name}", _time(seconds)))
    peaks = resource_peaks(report)
    resources: list[tuple[str, str]] = []
    for peak in peaks[:4]:
        resources.append((f"{peak.source} cpu peak", _percent(peak.cpu_percent_peak)))
        memory = _bytes(peak.memory_bytes_peak)
        if peak.memory_percent_peak is not None:
            memory += f" ({_percent(peak.memory_percent_peak)})"
        resources.append((f"{peak.source} memory peak", memory))
    if not resources:
        resources.append(("resources", "not sampled"))
    satisfaction = [
        (name, f"{_num(health.get(name)):.0f}" if _num(health.get(name)) is not None else DASH)
        for name in ("reliability", "performance", "efficiency", "user_satisfaction")
    ]
    return (
        '<section class="cards">'
        + _card("Reliability", health.get("reliability"), reliability)
        + _card("Performance", health.get("performance"), performance)
        + _card("Resources (efficiency)", health.get("efficiency"), resources)
        + _card("Health components", report.get("health_score"), satisfaction)
        + "</section>"
    )


def _health_section(report: Mapping[str, Any]) -> str:
    health = _mapping(report.get("health"))
    kpis = _mapping(health.get("kpis"))
    weights = _mapping(health.get("weights"))
    note = (
        '<p class="note">The run has no health score of its own (its session ran without the '
        "gates): computed from the store, as <code>p3monitor health</code> does.</p>"
        if report.get("health_source") == "computed"
        else ""
    )
    if not kpis:
        return "<h2>Health</h2>" + note + _empty("no KPI recorded")
    rows = []
    for name, kpi in kpis.items():
        k = _mapping(kpi)
        family = kpi_family(str(name))
        value, target = _num(k.get("value")), _num(k.get("target"))
        sign = "≥" if k.get("direction") == "at_least" else "<"
        met = k.get("met")
        rows.append(
            (
                f"<code>{_e(name)}</code>",
                _e(k.get("component") or DASH),
                _e(format_value(value, family)) if value is not None else "not measured",
                _e(f"{sign} {format_value(target, family)}") if target is not None else DASH,
                _e(f"{float(k['score']):.1f}") if _num(k.get("score")) is not None else DASH,
                DASH
                if met is None
                else ('<span class="ok">yes</span>' if met else '<span class="bad">no</span>'),
                _e(weights.get(str(k.get("component")), DASH)),
            )
        )
    headers = ("KPI", "component", "value", "target", "score", "met", "weight")
    return "<h2>Health KPIs</h2>" + note + _table(headers, rows, {2, 4, 6})


def _failed_section(report: Mapping[str, Any]) -> str:
    failed = failed_tests(report)
    title = f"<h2>Failed and errored tests ({len(failed)})</h2>"
    if not failed:
        return title + _empty("none")
    rows = [
        (
            f"<code>{_e(t.get('nodeid'))}</code>",
            f'<span class="bad">{_e(t.get("outcome"))}</span>',
            _e(t.get("reruns") or 0),
            f'<pre class="msg">{_e(t.get("message"))}</pre>' if t.get("message") else DASH,
        )
        for t in failed
    ]
    return title + _table(("test", "outcome", "reruns", "message"), rows, {2})


def _flaky_section(report: Mapping[str, Any]) -> str:
    flaky = [f for f in report.get("flaky") or () if isinstance(f, Mapping)]
    title = f"<h2>Flaky tests known from history ({len(flaky)})</h2>"
    note = (
        '<p class="note">Classified from the recent history of the store, as '
        "<code>p3monitor flaky</code> does.</p>"
    )
    if not flaky:
        return title + note + _empty("none")
    rows = []
    for f in flaky:
        session = _mapping(f.get("session"))
        outcome = session.get("outcome")
        rows.append(
            (
                f"<code>{_e(f.get('nodeid'))}</code>",
                _e(f"{_num(f.get('score')) or 0:.2f}"),
                _percent(100 * (_num(f.get("fail_rate")) or 0)),
                _e(f.get("runs", 0)),
                _e(f.get("failures", 0)),
                _e(", ".join(str(x) for x in f.get("evidence") or ()) or DASH),
                _e(outcome) if outcome else '<span class="na">not in this run</span>',
                f'<pre class="msg">{_e(f.get("last_failure"))}</pre>'
                if f.get("last_failure")
                else DASH,
            )
        )
    headers = (
        "test",
        "score",
        "fail rate",
        "runs",
        "failures",
        "evidence",
        "this run",
        "last failure",
    )
    return title + note + _table(headers, rows, {1, 2, 3, 4})


def _slowest_section(report: Mapping[str, Any]) -> str:
    perf = _mapping(_mapping(report.get("metrics")).get("performance"))
    slowest = [s for s in perf.get("slowest") or () if isinstance(s, Mapping)][:SLOWEST_SHOWN]
    if not slowest:
        return "<h2>Slowest tests</h2>" + _empty("no tests")
    outcomes = {t.get("nodeid"): t.get("outcome") for t in report.get("tests") or ()}
    longest = max((_num(s.get("duration_s")) or 0.0) for s in slowest) or 1.0
    rows = []
    for s in slowest:
        seconds = _num(s.get("duration_s")) or 0.0
        width = max(1, round(120 * seconds / longest))
        rows.append(
            (
                f"<code>{_e(s.get('nodeid'))}</code>",
                _e(outcomes.get(s.get("nodeid")) or DASH),
                _time(seconds),
                f'<span class="bar" style="width:{width}px"></span>',
            )
        )
    return "<h2>Slowest tests</h2>" + _table(("test", "outcome", "time", ""), rows, {2})


def _days_ending(last: _dt.date, days: int) -> list[str]:
    return [(last - _dt.timedelta(days=days - 1 - i)).isoformat() for i in range(days)]


def trend_chart(days: Sequence[Period], last_day: str, n_days: int = TREND_DAYS) -> str:
    """An inline SVG bar chart: the mean test execution time of each of the ``n_days`` UTC
    days up to ``last_day`` (``YYYY-MM-DD``), each bar coloured by the share of that day's
    runs without a failure. Days without runs show a grey mark on the axis."""
    try:
        last = _dt.date.fromisoformat(last_day[:10])
    except ValueError:
        return ""
    by_day = {d.period: d for d in days}
    labels = _days_ending(last, n_days)
    width, height, left, bottom, top = 720, 200, 48, 24, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    highest = max((d.mean_execution_time_s or 0.0 for d in days), default=0.0) or 1.0
    slot = plot_w / n_days
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="mean test execution time per day, last {n_days} days">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" '
        'stroke="#d1d9e0"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">'
        f"{_e(format_value(highest, 'time'))}</text>",
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    colours = {"ok": "#2da44e", "warn": "#bf8700", "bad": "#cf222e", "na": "#8c959f"}
    for i, label in enumerate(labels):
        x = left + i * slot + slot * 0.15
        bar_w = slot * 0.7
        day = by_day.get(label)
        if day is None:
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - 2}" width="{bar_w:.1f}" height="2" '
                f'fill="#d1d9e0"><title>{_e(label)}: no runs</title></rect>'
            )
        else:
            mean = day.mean_execution_time_s or 0.0
            h = max(2.0, plot_h * mean / highest)
            colour = colours[_rate_band(day.ci_success_rate)]
            tip = (
                f"{label}: {day.runs} run{'s' if day.runs != 1 else ''}, "
                f"mean {format_value(mean, 'time')}, runs passed "
                f"{_percent(day.ci_success_rate)}, tests passed {_percent(day.success_rate)}"
            )
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{_e(tip)}</title></rect>'
            )
        if i % 5 == 0 or i == n_days - 1:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                f"{_e(label[5:])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _trends_section(report: Mapping[str, Any]) -> str:
    run = _mapping(report.get("run"))
    anchor = str(run.get("finished_at") or run.get("started_at") or "")
    days = day_periods(report)
    chart = trend_chart(days, anchor) if anchor else ""
    legend = (
        '<p class="note">Bars: mean test execution time per UTC day, up to this run. Colour: '
        '<span class="ok">every run passed</span>, <span class="warn">80% or more</span>, '
        '<span class="bad">fewer</span>.</p>'
    )
    periods = trend_periods(report)
    rows = [
        (
            _e(p.period),
            _e(p.runs),
            _e(p.tests),
            _percent(p.success_rate),
            _percent(p.ci_success_rate),
            _time(p.mean_execution_time_s),
            _time(p.p95_execution_time_s),
            _percent(p.peak_memory_percent),
            _bytes(p.peak_rss_bytes),
        )
        for p in periods
    ]
    headers = (
        "period",
        "runs",
        "tests",
        "tests passed",
        "runs passed",
        "mean time",
        "p95 time",
        "peak memory %",
        "peak RSS",
    )
    table = _table(headers, rows, set(range(1, 9))) if rows else _empty("no runs")
    return f"<h2>Trends, last {TREND_DAYS} days</h2>" + chart + legend + table


def _resources_section(report: Mapping[str, Any]) -> str:
    peaks = resource_peaks(report)
    if not peaks:
        return "<h2>Resource peaks</h2>" + _empty("not sampled")
    rows = [
        (
            _e(p.source),
            _percent(p.cpu_percent_peak),
            _percent(p.cpu_percent_mean),
            _bytes(p.memory_bytes_peak),
            _percent(p.memory_percent_peak),
        )
        for p in peaks
    ]
    headers = ("measured", "cpu peak", "cpu mean", "memory peak", "memory % of limit")
    return "<h2>Resource peaks</h2>" + _table(headers, rows, {1, 2, 3, 4})


def _alerts_section(report: Mapping[str, Any]) -> str:
    alerts = [a for a in report.get("alerts") or () if isinstance(a, Mapping)]
    if not alerts:
        return ""
    items = "".join(
        f'<li><strong class="{"bad" if a.get("severity") == "critical" else "warn"}">'
        f"{_e(a.get('severity') or 'alert')}</strong> "
        f"{_e(a.get('message') or a.get('rule') or '')}</li>"
        for a in alerts
    )
    return f"<h2>Alerts ({len(alerts)})</h2><ul>{items}</ul>"


def render_html(report: Mapping[str, Any]) -> str:
    """The dashboard page of a report (:func:`.run_report.build_stored`)."""
    run = _mapping(report.get("run"))
    score = _num(report.get("health_score"))
    title = f"p3monitor: run {str(run.get('id') or '')[:12]}, health " + (
        "n/a" if score is None else f"{score:.0f}/100"
    )
    body = "".join(
        (
            _header(report),
            _cards(report),
            _failed_section(report),
            _flaky_section(report),
            _slowest_section(report),
            _trends_section(report),
            _resources_section(report),
            _health_section(report),
            _alerts_section(report),
        )
    )
    footer = (
        f"<footer>pytest-p3monitor {_e(__version__)} · {_e(report.get('schema') or '')} · "
        f"report time {_e(when(report.get('timestamp')) or DASH)} UTC</footer>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}{footer}</body></html>\n"
    )
