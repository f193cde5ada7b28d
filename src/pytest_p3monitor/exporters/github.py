"""GitHub Actions: workflow commands, step outputs and the job summary.

Used automatically when ``GITHUB_ACTIONS=true``:

* the headline figures folded in a ``::group::`` on stdout;
* ``key=value`` lines appended to the file named by ``$GITHUB_OUTPUT`` (for later steps:
  ``steps.<id>.outputs.health_score``);
* a Markdown job summary appended to ``$GITHUB_STEP_SUMMARY`` (kept far below GitHub's
  1 MiB limit per step);
* ``::error`` / ``::warning`` annotations, with ``file=`` and ``line=``, for crossed rules and
  flaky tests - at most 10 of each kind, which is also what GitHub shows per step.

Everything here is a pure function of the report dict except :func:`write_outputs` and
:func:`write_summary`, which append to the files.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..report.terminal import fmt_bytes
from .figures import Location, SessionFigures, figures, is_critical, location_of, number

__all__ = [
    "MAX_ANNOTATIONS",
    "SUMMARY_MAX_BYTES",
    "GitHubError",
    "annotation_lines",
    "escape_data",
    "escape_property",
    "find_rule_line",
    "group_lines",
    "output_lines",
    "step_summary",
    "workflow_command",
    "write_outputs",
    "write_summary",
]

#: Annotations of one kind (errors, warnings) emitted at most; GitHub shows 10 per step.
MAX_ANNOTATIONS = 10
#: The job summary is kept below this size (GitHub's limit is 1 MiB per step).
SUMMARY_MAX_BYTES = 64 * 1024
#: Rows per table in the job summary.
SUMMARY_ROWS = 15
_CELL_MAX = 160


class GitHubError(Exception):
    """A GitHub Actions file could not be written; the message names the variable and path."""


# -- the workflow-command format ------------------------------------------------------------


def escape_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (also ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(
    name: str, message: str, properties: Mapping[str, object] | None = None
) -> str:
    """``::name key=value,...::message``, escaped; None-valued properties are left out."""
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in (properties or {}).items()
        if value is not None and str(value) != ""
    )
    head = f"::{name} {props}" if props else f"::{name}"
    return f"{head}::{escape_data(message)}"


# -- figures ------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return ""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def output_values(fig: SessionFigures) -> dict[str, str]:
    """The step outputs: one flat string per key (empty when not measured)."""
    return {
        "run_id": fig.run_id or "",
        "test_execution_time": _fmt(fig.test_execution_time_s, 3),
        "total_time": _fmt(fig.total_time_s, 3),
        "success_rate": _fmt(fig.success_rate),
        "health_score": _fmt(fig.health_score, 1),
        "flaky_count": str(fig.flaky_count),
        "tests": str(fig.tests),
        "failed": str(fig.failed),
        "errors": str(fig.errors),
        "alerts": str(len(fig.alerts)),
        "critical_alerts": str(sum(1 for a in fig.alerts if is_critical(a))),
    }


def output_lines(report: Mapping[str, Any]) -> list[str]:
    """Lines for ``$GITHUB_OUTPUT``: ``key=value``, or a heredoc for a multi-line value."""
    lines: list[str] = []
    for key, value in output_values(figures(report)).items():
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
            lines.extend([f"{key}<<{delimiter}", *value.splitlines(), delimiter])
        else:
            lines.append(f"{key}={value}")
    return lines


def group_lines(report: Mapping[str, Any], title: str = "p3monitor metrics") -> list[str]:
    """The figures folded in a ``::group::`` for the job log."""
    body = [f"{key}: {value}" for key, value in output_values(figures(report)).items()]
    fig = figures(report)
    if fig.cpu_percent_peak is not None:
        body.append(f"peak_cpu_percent: {_fmt(fig.cpu_percent_peak, 1)}")
    if fig.rss_bytes_peak is not None:
        body.append(f"peak_rss_bytes: {int(fig.rss_bytes_peak)}")
    for container in fig.containers:
        peak = number(container.get("memory_bytes_peak"))
        if peak is not None:
            name = container.get("name") or container.get("id")
            body.append(f"container {name}: peak memory {int(peak)} B")
    # A line starting with "::" would be read as a command; none of ours should, but be safe.
    body = [" " + line if line.startswith("::") else line for line in body]
    return [workflow_command("group", title), *body, "::endgroup::"]


# -- annotations ---------------------------------------------------------------------------


def find_rule_line(ini_text: str, rule: str) -> int | None:
    """The 1-based line of ``ini_text`` where ``rule`` is written, or None.

    Whitespace differences are ignored, so ``success_rate<95%`` matches
    ``success_rate < 95 %`` in the ini file.
    """
    wanted = "".join(rule.split()).lower()
    if not wanted:
        return None
    pattern = re.compile(r"(?:^|[=,\[\"'])" + re.escape(wanted) + r"(?:$|[,\]\"'])")
    for number_, line in enumerate(ini_text.splitlines(), start=1):
        if line.lstrip().startswith(("#", ";")):
            continue
        if pattern.search("".join(line.split()).lower()):
            return number_
    return None


def _tests_by_nodeid(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    tests = report.get("tests")
    if not isinstance(tests, list):
        return {}
    return {str(t["nodeid"]): t for t in tests if isinstance(t, Mapping) and t.get("nodeid")}


def annotation_lines(
    report: Mapping[str, Any],
    *,
    rule_location: Callable[[str], Location | None] = lambda rule: None,
    path_of: Callable[[str], str] = lambda path: path,
    limit: int = MAX_ANNOTATIONS,
) -> list[str]:
    """``::error`` / ``::warning`` commands for crossed rules and flaky tests.

    A rule that names tests (``alert["tests"]``) is annotated on those tests; any other rule
    on the line of the ini file where it is written (``rule_location``). At most ``limit``
    errors and ``limit`` warnings; the rest are counted in one ``::notice``.
    ``path_of`` turns a rootdir-relative path into one relative to the repository.
    """
    fig = figures(report)
    tests = _tests_by_nodeid(report)
    errors: list[str] = []
    warnings: list[str] = []
    dropped = 0

    def add(level: str, message: str, title: str, where: Location | None) -> None:
        nonlocal dropped
        bucket = errors if level == "error" else warnings
        if len(bucket) >= limit:
            dropped += 1
            return
        props: dict[str, object] = {}
        if where is not None:
            props["file"] = path_of(where.path)
            props["line"] = where.line
        props["title"] = title
        bucket.append(workflow_command(level, message, props))

    for alert in fig.alerts:
        level = "error" if is_critical(alert) else "warning"
        rule = str(alert.get("rule") or alert.get("metric") or "rule")
        message = str(alert.get("message") or rule)
        title = f"p3monitor: {rule}"
        concerned = alert.get("tests")
        if isinstance(concerned, list) and concerned:
            for nodeid in concerned:
                nodeid = str(nodeid.get("nodeid") if isinstance(nodeid, Mapping) else nodeid)
                entry = tests.get(nodeid)
                where = location_of(entry if entry is not None else nodeid)
                add(level, f"{nodeid}: {message}", title, where)
        else:
            add(level, message, title, rule_location(rule))

    for flaky in fig.flaky:
        entry = tests.get(flaky.nodeid)
        where = location_of(entry if entry is not None else flaky.nodeid)
        detail = []
        if flaky.score is not None:
            detail.append(f"score {flaky.score:.2f}")
        if flaky.evidence:
            detail.append(flaky.evidence)
        suffix = f" ({'; '.join(detail)})" if detail else ""
        add("warning", f"{flaky.nodeid} is flaky{suffix}", "p3monitor: flaky test", where)

    result = errors + warnings
    if dropped:
        result.append(
            workflow_command(
                "notice",
                f"{dropped} more p3monitor annotation(s) not shown; see the job summary",
                {"title": "p3monitor"},
            )
        )
    return result


# -- the job summary -----------------------------------------------------------------------


def _flat(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _CELL_MAX else text[: _CELL_MAX - 1] + "…"


def _cell(value: object) -> str:
    """Plain table cell text: no line breaks, no raw HTML, no column breaks."""
    text = _flat(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|")


def _code(value: object) -> str:
    """A code span in a table cell (entities are not decoded in code spans, so none used)."""
    text = _flat(value).replace("`", "'").replace("|", "\\|")
    return f"`{text}`" if text else ""


def _with_unit(value: object, unit: object) -> str:
    figure = number(value)
    if figure is None:
        return "" if value is None else str(value)
    text = f"{figure:.4g}"
    return f"{text} {unit}" if isinstance(unit, str) and unit else text


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], total: int) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    shown = 0
    for row in rows:
        if shown >= SUMMARY_ROWS:
            break
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
        shown += 1
    if total > shown:
        lines.append(f"\n… and {total - shown} more.")
    return [*lines, ""]


def step_summary(report: Mapping[str, Any], max_bytes: int = SUMMARY_MAX_BYTES) -> str:
    """The Markdown job summary, at most ``max_bytes`` of UTF-8."""
    fig = figures(report)
    critical = [a for a in fig.alerts if is_critical(a)]
    mark = "❌" if critical else ("⚠️" if fig.alerts or fig.failed or fig.errors else "✅")
    score = f"{_fmt(fig.health_score, 1)}/100" if fig.health_score is not None else "not scored"
    lines = [f"## {mark} p3monitor: health {score}", ""]
    facts = []
    if fig.run_id:
        facts.append(f"run {_code(fig.run_id)}")
    if fig.commit:
        facts.append(f"commit {_code(fig.commit[:12])}")
    if fig.branch:
        facts.append(f"branch {_code(fig.branch)}")
    facts.append(f"{fig.tests} tests")
    if fig.success_rate is not None:
        facts.append(f"{_fmt(fig.success_rate)} % succeeded")
    if fig.failed or fig.errors:
        facts.append(f"{fig.failed} failed, {fig.errors} errors")
    if fig.test_execution_time_s is not None:
        facts.append(f"{_fmt(fig.test_execution_time_s)} s of tests")
    if fig.total_time_s is not None:
        facts.append(f"{_fmt(fig.total_time_s)} s in all")
    lines += [" · ".join(facts), ""]

    health = report.get("health")
    if isinstance(health, Mapping):
        raw_weights = health.get("weights")
        weights: Mapping[str, Any] = raw_weights if isinstance(raw_weights, Mapping) else {}
        rows = [
            (name, _fmt(number(health.get(name)), 1), _fmt(number(weights.get(name))))
            for name in ("reliability", "performance", "efficiency", "user_satisfaction")
            if number(health.get(name)) is not None
        ]
        if rows:
            lines += ["### Health", "", *_table(("component", "score", "weight"), rows, len(rows))]

    if fig.alerts:
        lines += [f"### Alerts ({len(fig.alerts)})", ""]
        ordered = sorted(fig.alerts, key=lambda a: not is_critical(a))
        alert_rows = (
            (
                "❌ critical" if is_critical(a) else "⚠️ warning",
                _code(a.get("rule") or a.get("metric") or ""),
                _cell(_with_unit(a.get("value"), a.get("unit"))),
                _cell(_with_unit(a.get("threshold"), a.get("unit"))),
                _cell(a.get("message") or ""),
            )
            for a in ordered
        )
        lines += _table(
            ("severity", "rule", "value", "threshold", "message"), alert_rows, len(ordered)
        )

    if fig.flaky:
        lines += [f"### Flaky tests ({fig.flaky_count})", ""]
        flaky_rows = (
            (_code(f.nodeid), _fmt(f.score) if f.score is not None else "", _cell(f.evidence))
            for f in fig.flaky
        )
        lines += _table(("test", "score", "evidence"), flaky_rows, fig.flaky_count)

    if fig.durations:
        total = sum(d for _, d in fig.durations) or 1.0
        lines += ["### Slowest tests", ""]
        slow_rows = (
            (_code(nodeid), f"{duration:.3f} s", f"{100 * duration / total:.1f} %")
            for nodeid, duration in fig.durations
        )
        lines += _table(
            ("test", "duration", "share"), slow_rows, min(len(fig.durations), SUMMARY_ROWS)
        )

    resource_rows: list[tuple[str, str, str, str]] = []
    if fig.cpu_percent_peak is not None or fig.rss_bytes_peak is not None:
        resource_rows.append(
            (
                "test process",
                f"{_fmt(fig.cpu_percent_peak, 1)} %" if fig.cpu_percent_peak is not None else "",
                fmt_bytes(fig.rss_bytes_peak, ""),
                f"{_fmt(fig.memory_percent_peak, 1)} %"
                if fig.memory_percent_peak is not None
                else "",
            )
        )
    for c in fig.containers:
        cpu, mem_pct = number(c.get("cpu_percent_peak")), number(c.get("memory_percent_peak"))
        resource_rows.append(
            (
                _code(c.get("name") or c.get("id") or "container"),
                f"{_fmt(cpu, 1)} %" if cpu is not None else "",
                fmt_bytes(number(c.get("memory_bytes_peak")), ""),
                f"{_fmt(mem_pct, 1)} %" if mem_pct is not None else "",
            )
        )
    if resource_rows:
        lines += ["### Resource peaks", ""]
        lines += _table(
            ("what", "CPU peak", "memory peak", "memory %"), resource_rows, len(resource_rows)
        )

    return _fit("\n".join(lines).rstrip("\n") + "\n", max_bytes)


def _fit(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    note = "\n… (summary cut to stay under the size limit)\n"
    budget = max(0, max_bytes - len(note.encode("utf-8")))
    cut = data[:budget].decode("utf-8", errors="ignore")
    cut = cut[: cut.rfind("\n") + 1] if "\n" in cut else ""
    return cut + note


# -- writing -------------------------------------------------------------------------------


def _append(variable: str, path: str, text: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise GitHubError(
            f"could not append to ${variable} ({path}): {exc.strerror or exc}"
        ) from None


def write_outputs(
    report: Mapping[str, Any], environ: Mapping[str, str] = os.environ
) -> Path | None:
    """Append the step outputs to ``$GITHUB_OUTPUT``; None when the variable is unset."""
    path = environ.get("GITHUB_OUTPUT")
    if not path:
        return None
    _append("GITHUB_OUTPUT", path, "\n".join(output_lines(report)) + "\n")
    return Path(path)


def write_summary(
    report: Mapping[str, Any], environ: Mapping[str, str] = os.environ
) -> Path | None:
    """Append the job summary to ``$GITHUB_STEP_SUMMARY``; None when the variable is unset."""
    path = environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    _append("GITHUB_STEP_SUMMARY", path, step_summary(report) + "\n")
    return Path(path)
