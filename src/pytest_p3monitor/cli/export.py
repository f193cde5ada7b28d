"""``p3monitor export``: stored runs as JSON, OpenMetrics or CSV; ``--flush`` the outbox.

``p3monitor export --format json|openmetrics|csv [--since 7d|2026-01-31] [--branch B]
[--output PATH]`` writes the runs of the store, oldest first. OpenMetrics gives one
timestamped sample per run and metric (``promtool tsdb create-blocks-from openmetrics`` can
load it into Prometheus).

``p3monitor export --flush`` delivers what sessions kept in ``.p3monitor/outbox/``: runs
that could not be stored go into the store (``save_run`` is idempotent per run id),
reports an endpoint refused are POSTed again, webhook messages posted again. The endpoint
and webhook URLs come from ``--endpoint`` / ``--webhook``, else ``P3MONITOR_ENDPOINT`` /
``P3MONITOR_WEBHOOK``, else the ini file of the session that kept them.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import outbox
from ..exporters.redact import redact_obj, redact_text, redact_url, url_secrets
from ..fsutil import atomic_write_text
from ..records import RunInfo, RunRow, TestRecord
from ..store import Store, StoreError, open_store, store_identity
from .common import (
    CommandError,
    add_command,
    db_url,
    for_command,
    guarded,
    print_json,
    store_url,
)
from .prune import parse_duration
from .runs import run_dict

FORMATS = ("json", "openmetrics", "csv")
_SINCE_FORM = (
    "a duration back from now (90d, 12h, 2w, 30m) or a date / time in ISO 8601 "
    "(2026-01-31, 2026-01-31T12:00:00Z)"
)
#: Rows read from the store at most (a guard, far above any real retention).
MAX_RUNS = 10_000_000


def add_parser(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "export",
        "export stored runs as JSON, OpenMetrics or CSV; --flush delivers the outbox",
        run,
        formats=FORMATS,
    )
    parser.add_argument(
        "--since", default=None, metavar="WHEN", help=f"only runs started since: {_SINCE_FORM}"
    )
    parser.add_argument("--branch", default=None, help="only runs of this branch")
    parser.add_argument(
        "--output", "-o", default=None, metavar="PATH", help="write to PATH instead of stdout"
    )
    parser.add_argument(
        "--flush",
        action="store_true",
        help="deliver what .p3monitor/outbox/ keeps: runs into the store, reports to the "
        "endpoint, alerts to the webhook",
    )
    parser.add_argument(
        "--outbox",
        default=None,
        metavar="DIR",
        help="the outbox folder (default: .p3monitor/outbox in this folder or the nearest "
        "parent that has one)",
    )
    parser.add_argument("--endpoint", default=None, metavar="URL", help="endpoint for --flush")
    parser.add_argument("--webhook", default=None, metavar="URL", help="webhook for --flush")
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds each delivery may take, retries included (default 10)",
    )


# -- pure parts -------------------------------------------------------------------------------


def parse_since(text: str, now: float) -> float:
    """Epoch seconds from ``7d``-style durations (back from ``now``) or ISO 8601 dates/times.

    A date or time without a zone is UTC. Raises ValueError naming the accepted forms.
    """
    value = text.strip()
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"invalid --since {text!r}: expected {_SINCE_FORM}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


CSV_COLUMNS = (
    "run_id",
    "started_at",
    "finished_at",
    "commit",
    "branch",
    "ci_provider",
    "ci_run_id",
    "ci_job",
    "ci_url",
    "hostname",
    "workers",
    "exit_status",
    "tests",
    "passed",
    "failed",
    "errors",
    "skipped",
    "xfailed",
    "xpassed",
    "reruns",
    "success_rate",
    "test_execution_time_s",
    "total_time_s",
    "health_score",
    "peak_rss_bytes",
    "peak_cpu_percent",
    "alerts",
)


def _stored_metrics(row: RunRow) -> Mapping[str, Any]:
    inner = row.metrics.get("metrics") if isinstance(row.metrics, Mapping) else None
    return inner if isinstance(inner, Mapping) else {}


def _nested(data: Mapping[str, Any], *keys: str) -> Any:
    value: Any = data
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def export_dict(row: RunRow) -> dict[str, Any]:
    """One stored run as JSON: ``p3monitor runs --format json``'s fields plus the metrics."""
    data = run_dict(row)
    data["metrics"] = row.metrics
    return data


def _csv_safe(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def csv_row(row: RunRow) -> list[Any]:
    base = run_dict(row)
    metrics = _stored_metrics(row)
    alerts = row.metrics.get("alerts") if isinstance(row.metrics, Mapping) else None
    values = {
        **base,
        "run_id": base["id"],
        "ci_provider": base["ci"]["provider"],
        "ci_run_id": base["ci"]["run_id"],
        "ci_job": base["ci"]["job"],
        "ci_url": base["ci"]["url"],
        "total_time_s": _nested(metrics, "performance", "total_time_s"),
        "peak_rss_bytes": _nested(metrics, "resource_usage", "process", "rss_bytes_peak"),
        "peak_cpu_percent": _nested(metrics, "resource_usage", "process", "cpu_percent_peak"),
        "alerts": len(alerts) if isinstance(alerts, list) else 0,
    }
    return [_csv_safe(values.get(column)) for column in CSV_COLUMNS]


def render(rows: Sequence[RunRow], fmt: str) -> str:
    """The export of ``rows`` (any order) in ``fmt``, runs oldest first."""
    ordered = sorted(rows, key=lambda r: (r.run.started_at, r.run_seq))
    if fmt == "json":
        import json

        data = [redact_obj(export_dict(r)) for r in ordered]
        return json.dumps(data, indent=2, default=str) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in ordered:
            writer.writerow([redact_text(v) if isinstance(v, str) else v for v in csv_row(r)])
        return buffer.getvalue()
    if fmt == "openmetrics":
        from ..exporters.openmetrics import render_runs

        return render_runs(ordered).decode("utf-8")
    raise ValueError(f"unknown format {fmt!r}")


# -- the ini file of a kept entry ---------------------------------------------------------------


def read_ini(path: Path) -> dict[str, str]:
    """The scalar ``p3monitor_*`` settings of a pytest configuration file ({} if unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    section: Any
    if path.suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10, where pytest itself depends on tomli
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except ValueError:
            return {}
        if path.name == "pyproject.toml":
            tool = data.get("tool", {}).get("pytest", {})
            section = tool.get("ini_options", tool)
        else:
            section = data.get("pytest", {})
    else:
        import iniconfig

        try:
            parsed = iniconfig.IniConfig(str(path), data=text)
        except iniconfig.ParseError:
            return {}
        name = "tool:pytest" if path.name == "setup.cfg" else "pytest"
        section = dict(parsed[name].items()) if name in parsed else {}
    return {
        str(k): str(v).strip()
        for k, v in section.items()
        if str(k).startswith("p3monitor_") and isinstance(v, (str, int, float))
    }


def find_outbox(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / outbox.DEFAULT_DIR
        if candidate.is_dir():
            return candidate
    return here / outbox.DEFAULT_DIR


# -- flushing ------------------------------------------------------------------------------------


def kept_store_url(
    entry: Mapping[str, Any], cli_db: str | None, environ: Mapping[str, str]
) -> str | None:
    """The store a kept run goes to: ``--db`` when given, else the store the session meant
    it for (recorded when it was kept); None for an entry that names none (older versions).

    The recorded URL of a server has no password (``user:***@``): ``P3MONITOR_DB`` is used
    when it names the same store (whoever it logs in as), else libpq finds the password
    (``PGPASSWORD``, ``~/.pgpass``).
    """
    if cli_db:
        return store_url(cli_db)
    kept = entry.get("store")
    if not isinstance(kept, str) or not kept:
        return None
    env = environ.get("P3MONITOR_DB")
    if env and store_identity(store_url(env)) == store_identity(kept):
        return store_url(env)
    if ":***@" not in kept:
        return kept
    return re.sub(r"(://[^:/@]*):\*\*\*@", r"\1@", kept)


def _flush_runs(box: Path, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """Store the kept runs, each in the store it was meant for; return how many are left."""
    paths = outbox.pending("runs", base=box)
    if not paths:
        return 0
    stores: dict[str, Store | StoreError] = {}
    left = 0
    try:
        for path in paths:
            try:
                data = outbox.load(path)
                run = RunInfo.from_dict(data["run"])
                tests = [TestRecord.from_dict(t) for t in data["tests"]]
            except FileNotFoundError:
                continue  # a session stored it meanwhile
            except (OSError, ValueError, KeyError, TypeError) as exc:
                say(f"kept run {path} is unreadable and was left there: {exc}")
                left += 1
                continue
            url = kept_store_url(data, args.db, os.environ) or db_url(args)
            if url not in stores:
                try:
                    stores[url] = open_store(url, create=True)
                except StoreError as exc:
                    stores[url] = exc
            store = stores[url]
            if isinstance(store, StoreError):
                say(f"kept run {path.stem} not stored: {for_command(str(store))}")
                left += 1
                continue
            try:
                store.save_run(run, tests, data.get("metrics") or {})
            except StoreError as exc:
                say(f"kept run {path.stem} not stored: {for_command(str(exc))}")
                left += 1
                continue
            outbox.remove(path)
            say(f"stored run {run.run_id} in {store.display_url}")
    finally:
        for store in stores.values():
            if not isinstance(store, StoreError):
                store.close()
    return left


def _target(
    entry: Mapping[str, Any], cli: str | None, env: str, key: str
) -> tuple[str | None, dict[str, str]]:
    ini: dict[str, str] = {}
    inifile = entry.get("inifile")
    if isinstance(inifile, str) and inifile:
        ini = read_ini(Path(inifile))
    url = cli or os.environ.get(env) or ini.get(key)
    return url, ini


def _flush_posts(box: Path, kind: str, args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """POST the kept endpoint reports or webhook messages again; return how many are left."""
    from ..exporters.endpoint import ConfigError, SendError, auth_headers, post_json

    paths = outbox.pending(kind, base=box)
    left = 0
    for path in paths:
        try:
            entry = outbox.load(path)
            payload = entry["payload"]
        except FileNotFoundError:
            continue  # sent meanwhile by another flush
        except (OSError, ValueError, KeyError) as exc:
            say(f"kept {kind} entry {path} is unreadable and was left there: {exc}")
            left += 1
            continue
        if kind == "endpoint":
            url, ini = _target(entry, args.endpoint, "P3MONITOR_ENDPOINT", "p3monitor_endpoint")
            body = payload
        else:
            url, ini = _target(entry, args.webhook, "P3MONITOR_WEBHOOK", "p3monitor_webhook")
            body = payload.get("message") if isinstance(payload, Mapping) else None
        if not url:
            flag = "--endpoint" if kind == "endpoint" else "--webhook"
            say(f"kept {kind} entry {path.name} not sent: no URL (give {flag} URL)")
            left += 1
            continue
        hide = kind == "webhook"
        shown = redact_url(url, hide_path=hide)
        try:
            headers = (
                auth_headers(
                    ini.get("p3monitor_endpoint_auth_env"),
                    ini.get("p3monitor_endpoint_auth_header"),
                )
                if kind == "endpoint"
                else {}
            )
            post_json(url, body, headers=headers, timeout=args.timeout, what=kind, hide_path=hide)
        except (ConfigError, SendError) as exc:
            say(f"kept {kind} entry {path.name} not sent: {exc}")
            left += 1
            continue
        outbox.remove(path)
        say(f"sent kept {kind} entry {path.stem} to {shown}")
    return left


def flush(args: argparse.Namespace) -> int:
    box = Path(args.outbox) if args.outbox else find_outbox()
    secrets = [*url_secrets(args.endpoint or ""), *url_secrets(args.webhook or "")]

    def say(text: str) -> None:
        print(redact_text(text, secrets))

    if not box.is_dir():
        say(f"nothing to flush: no outbox at {box}")
        return 0
    left = _flush_runs(box, args, say)
    left += _flush_posts(box, "endpoint", args, say)
    left += _flush_posts(box, "webhook", args, say)
    if left:
        say(f"{left} entr{'y' if left == 1 else 'ies'} left in {box}")
        return 1
    say(f"outbox {box} flushed")
    return 0


# -- the command -------------------------------------------------------------------------------


@guarded
def run(args: argparse.Namespace) -> int:
    if args.flush:
        return flush(args)
    since = None
    if args.since is not None:
        try:
            since = parse_since(args.since, time.time())
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    from .common import reading_store

    with reading_store(args) as store:
        rows = store.recent_runs(limit=MAX_RUNS, branch=args.branch, since=since)
    text = render(rows, args.format)
    if args.output:
        try:
            atomic_write_text(Path(args.output), text)
        except OSError as exc:
            raise CommandError(f"could not write {args.output}: {exc}") from None
        print(f"{len(rows)} run(s) written to {args.output}", file=sys.stderr)
        return 0
    if args.format == "json" and not rows:
        print_json([])
        return 0
    sys.stdout.write(text)
    return 0
