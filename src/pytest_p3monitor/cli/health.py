"""``p3monitor health``: the health score of the newest run with its recent history.

Every component and KPI is shown with its value, target and score. With ``--check`` the
command exits 1, printing one line per cause, when the score is below ``--min-score``
(default 85), when the newest run crossed a fail rule (a critical alert), or when a
``--fail-on`` rule given here is crossed.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import health
from ..flaky import flaky_count_of_run
from ..records import RunRow
from ..report.json_report import iso
from ..rules import RuleError, RuleResult, evaluate, format_value, parse_rule, report_metrics
from ..runinfo import usable_cpus
from .common import (
    MAX_RUNS,
    CommandError,
    add_command,
    counting,
    guarded,
    print_json,
    reading_store,
    render_table,
)

DEFAULT_WINDOW = 20
DEFAULT_MIN_SCORE = 85.0
FLAKY_WINDOW = 100


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a score is within 0..100, not {value:g}")
    return value


def _rule(text: str) -> Any:
    try:
        return parse_rule(text)
    except RuleError as exc:
        raise argparse.ArgumentTypeError(f"rule {text!r} is not valid: {exc}") from None


def add_parser(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "health",
        "the health score of the newest run and its recent history, with every KPI",
        run,
    )
    parser.add_argument(
        "--window",
        type=counting("runs", MAX_RUNS),
        default=DEFAULT_WINDOW,
        metavar="N",
        help=f"recent runs to judge the success rate and wait time on (default {DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--branch",
        default=None,
        help="the newest run of this branch, and its history (default: the newest run, and "
        "the history of its branch, as its session judged it)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1, one line per cause, when the score is below --min-score or a critical "
        "rule is crossed",
    )
    parser.add_argument(
        "--min-score",
        type=_score,
        default=DEFAULT_MIN_SCORE,
        metavar="N",
        help=f"the lowest passing score for --check (default {DEFAULT_MIN_SCORE:g})",
    )
    parser.add_argument(
        "--fail-on",
        type=_rule,
        action="append",
        default=[],
        metavar="RULE",
        help="a rule such as 'ci_success_rate < 90%%' that --check also fails on (repeatable)",
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="KPI=VALUE",
        help="override a KPI target, e.g. total_ci_time=10m (repeatable)",
    )
    parser.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="COMPONENT=W",
        help="override a component weight, e.g. reliability=0.5 (repeatable)",
    )


def _stored_figure(row: RunRow, name: str) -> float | None:
    """A figure the run's session computed and stored (``metrics.figures``), if any."""
    figures = (row.metrics.get("metrics") or {}).get("figures")
    value = figures.get(name) if isinstance(figures, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _critical_alerts(row: RunRow) -> list[str]:
    alerts = row.metrics.get("alerts") or []
    return [
        str(a.get("message") or a.get("rule"))
        for a in alerts
        if isinstance(a, dict)
        and a.get("severity") == "critical"
        and a.get("status", "crossed") == "crossed"
    ]


@guarded
def run(args: argparse.Namespace) -> int:
    try:
        targets = health.parse_targets(args.target)
        weights = health.parse_weights(args.weight)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    with reading_store(args) as store:
        branch = args.branch
        if branch is None:  # the newest run's branch: its history, as its session judged it
            newest = store.recent_runs(limit=1)
            branch = newest[0].run.branch if newest else None
        rows = store.recent_runs(limit=args.window, branch=branch)
        if not rows:
            raise CommandError(
                "no runs stored yet"
                + (f" on branch {args.branch!r}" if args.branch else "")
                + ": run pytest --p3monitor first"
            )
        current, history = rows[0], rows[1:]
        # The run's flaky tests as its session judged them (flaky_rate is a share of the
        # run's own tests); judged here from the history only for a run stored without them.
        stored_count = _stored_figure(current, "flaky_count")
        if stored_count is not None:
            flaky_count = int(stored_count)
        else:
            histories = store.failing_histories(FLAKY_WINDOW, branch)
            flaky_count = flaky_count_of_run(current.run.run_id, histories)
    result = health.run_health(
        current,
        history,
        flaky_count=flaky_count,
        cpu_count=usable_cpus(),
        targets=targets,
        weights=weights or None,
    )

    # figures the session stored (cost_per_build needs its ini), then those read again
    stored = ((current.metrics.get("metrics") or {}).get("figures")) or {}
    figures: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {}
    figures.update({k: v for k, v in report_metrics(current.metrics).items() if v is not None})
    figures.update(health.history_metrics(current, history))
    figures["flaky_count"] = float(flaky_count)
    figures["flaky_rate"] = health.flaky_rate(current, flaky_count)
    figures["health_score"] = result.score
    rule_results: list[RuleResult] = evaluate(args.fail_on, figures, "critical")

    causes: list[str] = []
    if args.check:
        if result.score is None:
            causes.append("no health score: nothing was measured")
        elif result.score < args.min_score:
            causes.append(
                f"health score {result.score:.1f} is below the minimum {args.min_score:g}"
            )
        causes += [f"the newest run crossed a fail rule: {m}" for m in _critical_alerts(current)]
        causes += [r.message for r in rule_results if r.crossed]

    if args.format == "json":
        print_json(
            {
                "score": result.score,
                "runs": len(rows),
                "newest_run": {
                    "id": current.run.run_id,
                    "started_at": iso(current.run.started_at),
                    "branch": current.run.branch,
                    "commit": current.run.commit,
                },
                "health": result.to_dict(),
                "flaky_count": flaky_count,
                "rules": [r.to_dict() for r in rule_results],
                "check": (
                    {"min_score": args.min_score, "passed": not causes, "causes": causes}
                    if args.check
                    else None
                ),
            }
        )
    else:
        _print_tables(result, current, len(rows), rule_results, args.format)
        if args.check:
            for cause in causes:
                print(f"FAILED: {cause}")
            if not causes:
                print(f"OK: health score {result.score:.1f} >= {args.min_score:g}")
    return 1 if causes else 0


def _print_tables(
    result: health.Health,
    current: RunRow,
    runs: int,
    rule_results: list[RuleResult],
    fmt: str,
) -> None:
    score = "n/a" if result.score is None else f"{result.score:.1f}/100"
    when = (iso(current.run.started_at) or "")[:19].replace("T", " ")
    where = f", branch {current.run.branch}" if current.run.branch else ""
    heading = (
        f"health score {score} (newest run {current.run.run_id[:12]} at {when} UTC{where}; "
        f"{runs} runs)"
    )
    print(f"**{heading}**" if fmt == "markdown" else heading)
    print()
    print(
        render_table(
            ("component", "score", "weight"),
            [
                (c.name, None if c.score is None else round(c.score, 1), c.weight)
                for c in result.components
            ],
            fmt,
        )
    )
    print()
    print(
        render_table(
            ("KPI", "component", "value", "target", "score", "met"),
            [
                (
                    k.name,
                    k.component,
                    None if k.value is None else format_value(k.value, k.family),
                    k.target_text,
                    None if k.score is None else round(k.score, 1),
                    None if k.met is None else ("yes" if k.met else "NO"),
                )
                for k in result.kpis
            ],
            fmt,
        )
    )
    if rule_results:
        print()
        for r in rule_results:
            print(f"{r.status}: {r.message}")
