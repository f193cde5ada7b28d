"""Benchmark: the results store at scale, on SQLite and on PostgreSQL.

For each backend it builds a history of 10,000 tests x 200 runs (2 million results), then
prints:

- the time to store one more 10,000-test run through ``Store.save_run`` (what
  ``pytest --p3monitor`` does at the end of a session), median of several;
- the wall time of ``p3monitor flaky --format json``, ``p3monitor trends --days 30``,
  ``p3monitor health`` and ``p3monitor report --format html`` (the newest run's dashboard),
  each in a fresh interpreter (what a user types), median of several after one warm-up run.
  A command that does not exist yet is reported as missing.

The history is bulk-loaded, not saved run by run: the schema is created by opening the
store (its own migrations), then the rows go straight into the tables in the order of the
results' primary key (run, test): one ``executemany`` transaction on SQLite (whose results
have no other index); ``COPY`` on PostgreSQL, with the index of the results by test and the
foreign keys dropped during the load and added back after (one join instead of a trigger per
row), then ``VACUUM ANALYZE``. The timed parts use the store and the commands
as shipped.

PostgreSQL: a throwaway server is started with scripts/postgres.sh (and removed at the end)
unless ``--pg-url`` names a database to use (its p3m_ tables are dropped first!).

    python benchmarks/bench_store.py                      # both backends, 10,000 x 200
    python benchmarks/bench_store.py --backend sqlite --tests 1000 --runs 50
    python benchmarks/bench_store.py --pg-url postgresql://postgres@127.0.0.1:5432/bench

Targets on the project's 2-core machine: storing a run < 0.5 s, each report < 1 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_p3monitor.records import CIInfo, RunInfo, TestRecord
from pytest_p3monitor.store import open_store

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
COMMANDS = {
    "flaky": ["flaky", "--format", "json"],
    "trends": ["trends", "--days", "30"],
    "health": ["health"],
    "report": ["report", "--format", "html"],
}


# -- the synthetic history ------------------------------------------------------------------


class History:
    """10,000 tests with known behaviours over 200 runs, spread over the last 50 days."""

    def __init__(self, tests: int, runs: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.nodeids = [f"tests/test_mod{i // 20:03d}.py::test_case_{i}" for i in range(tests)]
        # kind per test: 2 % flaky, 1 % failing from some run on, 0.5 % always failing,
        # 1.5 % skipped, the rest stable
        self.kinds: list[tuple[str, float, int]] = []
        for _ in range(tests):
            x = rng.random()
            if x < 0.02:
                self.kinds.append(("flaky", rng.choice((0.05, 0.1, 0.3)), 0))
            elif x < 0.03:
                self.kinds.append(("regressed", 0.0, rng.randrange(runs)))
            elif x < 0.035:
                self.kinds.append(("failing", 0.0, 0))
            elif x < 0.05:
                self.kinds.append(("skipped", 0.0, 0))
            else:
                self.kinds.append(("stable", 0.0, 0))
        self.base_s = [rng.lognormvariate(-4.0, 1.2) for _ in range(tests)]
        self.figures = [
            json.dumps(
                {"rss_bytes_peak": 50_000_000 + t, "cpu_percent": 12.5}, separators=(",", ":")
            )
            for t in range(tests)
        ]
        now = time.time()
        span = 50 * DAY
        self.runs: list[RunInfo] = []
        for r in range(runs):
            started = now - span + span * r / max(1, runs)
            self.runs.append(
                RunInfo(
                    run_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                    started_at=started,
                    commit=f"{r // 2:040x}",
                    branch="main" if r % 5 else f"feature/{r}",
                    ci=CIInfo("github", str(10_000 + r), "tests", f"https://ci.example/{r}"),
                    hostname=f"runner-{r % 4}",
                    python="3.11.7",
                    pytest="9.0.3",
                    workers=2,
                    finished_at=started + 600.0,
                    exit_status=0,
                )
            )

    def outcome(self, t: int, r: int) -> tuple[str, int, str | None]:
        kind, rate, start = self.kinds[t]
        if kind == "flaky":
            if self.rng.random() < rate:
                if self.rng.random() < 0.5:
                    return "passed", 1, None  # passed on rerun
                return "failed", 0, "AssertionError: timing-dependent result"
            return "passed", 0, None
        if kind == "regressed" and r >= start:
            return "failed", 0, "AssertionError: expected 200, got 500"
        if kind == "failing":
            return "error", 0, "fixture 'db' not found"
        if kind == "skipped":
            return "skipped", 0, "needs a GPU"
        return "passed", 0, None

    def result_row(self, t: int, r: int) -> tuple[Any, ...]:
        """(outcome, setup, call, teardown, start, stop, reruns, worker, message, figures)"""
        outcome, reruns, message = self.outcome(t, r)
        call = self.base_s[t] * self.rng.uniform(0.8, 1.25)
        start = self.runs[r].started_at + 1.0 + t * 0.05
        figures = self.figures[t]
        return (outcome, 0.001, call, 0.0005, start, start + call, reruns, f"gw{t % 2}",
                message, figures)  # fmt: skip

    def metrics(self, r: int) -> dict[str, Any]:
        rng = self.rng
        slowest = sorted(range(len(self.base_s)), key=self.base_s.__getitem__)[-10:]
        return {
            "health_score": round(rng.uniform(70, 98), 1),
            "health": {
                "reliability": round(rng.uniform(90, 100), 1),
                "performance": round(rng.uniform(60, 100), 1),
                "efficiency": round(rng.uniform(60, 100), 1),
                "user_satisfaction": round(rng.uniform(60, 100), 1),
            },
            "metrics": {
                "performance": {
                    "total_time_s": 610.0 + rng.uniform(-30, 30),
                    "test_execution_time_s": 600.0 + rng.uniform(-30, 30),
                    "phases": {"collection": 4.2, "tests": 600.0},
                    "slowest": [
                        {"nodeid": self.nodeids[t], "duration_s": self.base_s[t]} for t in slowest
                    ],
                },
                "reliability": {"success_rate": round(rng.uniform(97, 100), 2)},
                "resource_usage": {
                    "process": {
                        "cpu_percent_peak": rng.uniform(80, 200),
                        "cpu_percent_mean": rng.uniform(40, 90),
                        "rss_bytes_peak": rng.randint(200, 900) * 2**20,
                        "memory_percent_peak": rng.uniform(5, 60),
                    },
                    "containers": [],
                },
            },
            "alerts": [],
        }

    def counts(self, r: int, outcomes: list[str], reruns: int) -> tuple[int, ...]:
        return (
            len(outcomes),
            outcomes.count("passed"),
            outcomes.count("failed"),
            outcomes.count("error"),
            outcomes.count("skipped"),
            0,
            0,
            reruns,
        )

    def fresh_run(self) -> tuple[RunInfo, list[TestRecord]]:
        """One more run of the whole suite, as a default session would save it."""
        r = len(self.runs) - 1
        run = RunInfo(
            run_id=uuid.uuid4().hex,
            started_at=time.time(),
            commit="f" * 40,
            branch="main",
            hostname="runner-0",
            python="3.11.7",
            pytest="9.0.3",
            workers=2,
            finished_at=time.time() + 600,
            exit_status=0,
        )
        records = []
        for t, nodeid in enumerate(self.nodeids):
            row = self.result_row(t, r)
            records.append(
                TestRecord(
                    nodeid=nodeid,
                    outcome=row[0],
                    file=nodeid.split("::", 1)[0],
                    line=10 + t % 20 * 7,
                    setup_s=row[1],
                    call_s=row[2],
                    teardown_s=row[3],
                    start=row[4],
                    stop=row[5],
                    reruns=row[6],
                    worker=row[7],
                    message=row[8],
                    # the resource meter's figures in a default session
                    figures={
                        "cpu_time_s": row[2] * 0.9,
                        "rss_peak_bytes": 50_000_000 + 4096 * t,
                        "read_bytes": 0,
                        "write_bytes": 4096 * (t % 50 == 0),
                    },
                )
            )
        return run, records

    def results(self) -> Iterator[tuple[int, int, tuple[Any, ...]]]:
        """(test index, run index, result row), in primary-key order (run, then test)."""
        for r in range(len(self.runs)):
            for t in range(len(self.nodeids)):
                yield t, r, self.result_row(t, r)


def run_values(run: RunInfo, counts: tuple[int, ...], metrics: dict[str, Any]) -> tuple[Any, ...]:
    return (
        run.run_id, run.started_at, run.finished_at, run.commit, run.branch, run.ci.provider,
        run.ci.run_id, run.ci.job, run.ci.url, run.hostname, run.python, run.pytest,
        run.workers, run.exit_status, *counts, 600.0,
        json.dumps(metrics, separators=(",", ":")),
    )  # fmt: skip


RUN_INSERT_COLUMNS = (
    "run_id, started_at, finished_at, commit_sha, branch, ci_provider, ci_run_id, ci_job,"
    " ci_url, hostname, python, pytest, workers, exit_status, tests, passed, failed, errors,"
    " skipped, xfailed, xpassed, reruns, test_execution_time_s, metrics"
)
RESULT_COLUMNS = (
    "test, run, outcome, setup_s, call_s, teardown_s, start_at, stop_at, reruns, worker,"
    " message, figures"
)


def run_rows(h: History) -> list[tuple[Any, ...]]:
    # Counts come from the same seeded outcomes: compute them with a separate generator
    # pass would double the work, so the runs carry approximate counts (the commands read
    # results for tests, counts for runs; exact counts are not what is measured).
    rows = []
    n = len(h.nodeids)
    for r, run in enumerate(h.runs):
        failed = int(n * 0.012)
        counts = (n, n - failed - int(n * 0.015), failed, int(n * 0.005), int(n * 0.015), 0, 0,
                  int(n * 0.005))  # fmt: skip
        rows.append(run_values(run, counts, h.metrics(r)))
    return rows


# -- bulk loading ---------------------------------------------------------------------------


def load_sqlite(path: Path, h: History) -> None:
    import sqlite3

    open_store(str(path)).close()  # the schema, by the store's own migrations
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.executemany(
        f"INSERT INTO p3m_runs ({RUN_INSERT_COLUMNS}) VALUES ({', '.join(['?'] * 24)})",
        run_rows(h),
    )
    seqs = [s for (s,) in conn.execute("SELECT seq FROM p3m_runs ORDER BY seq")]
    conn.executemany(
        "INSERT INTO p3m_tests (nodeid, file, line) VALUES (?, ?, ?)",
        ((n, n.split("::", 1)[0], 10) for n in h.nodeids),
    )
    ids = dict(conn.execute("SELECT nodeid, id FROM p3m_tests"))
    test_ids = [ids[n] for n in h.nodeids]
    conn.executemany(
        f"INSERT INTO p3m_results ({RESULT_COLUMNS}) VALUES ({', '.join(['?'] * 12)})",
        ((test_ids[t], seqs[r], *row) for t, r, row in h.results()),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def load_postgres(url: str, h: History) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS p3m_results, p3m_tests, p3m_runs, p3m_meta, p3m_suites")
    open_store(url).close()  # the schema, by the store's own migrations
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        # Checked once after the load (one join) instead of by a trigger per row.
        cur.execute(
            "ALTER TABLE p3m_results DROP CONSTRAINT p3m_results_test_fkey,"
            " DROP CONSTRAINT p3m_results_run_fkey"
        )
        cur.execute("DROP INDEX p3m_results_test")
        cur.executemany(
            f"INSERT INTO p3m_runs ({RUN_INSERT_COLUMNS}) VALUES ({', '.join(['%s'] * 24)})",
            run_rows(h),
        )
        cur.execute("SELECT seq FROM p3m_runs ORDER BY seq")
        seqs = [s for (s,) in cur.fetchall()]
        with cur.copy("COPY p3m_tests (nodeid, file, line) FROM STDIN") as copy:
            for n in h.nodeids:
                copy.write_row((n, n.split("::", 1)[0], 10))
        cur.execute("SELECT nodeid, id FROM p3m_tests")
        ids = dict(cur.fetchall())
        test_ids = [ids[n] for n in h.nodeids]
        with cur.copy(f"COPY p3m_results ({RESULT_COLUMNS}) FROM STDIN") as copy:
            for t, r, row in h.results():
                copy.write_row((test_ids[t], seqs[r], *row))
        cur.execute("CREATE INDEX p3m_results_test ON p3m_results (test, run)")
        cur.execute(
            "ALTER TABLE p3m_results"
            " ADD CONSTRAINT p3m_results_test_fkey FOREIGN KEY (test) REFERENCES p3m_tests (id),"
            " ADD CONSTRAINT p3m_results_run_fkey FOREIGN KEY (run) REFERENCES p3m_runs (seq)"
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# -- timing ---------------------------------------------------------------------------------


def time_saves(url: str, h: History, repeat: int) -> list[float]:
    times = []
    store = open_store(url)
    try:
        for _ in range(repeat):
            run, records = h.fresh_run()
            t0 = time.perf_counter()
            store.save_run(run, records, h.metrics(0))
            times.append(time.perf_counter() - t0)
    finally:
        store.close()
    return times


def p3monitor() -> list[str]:
    """The installed ``p3monitor`` command, or the same entry point through this Python."""
    script = shutil.which("p3monitor", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from pytest_p3monitor.cli import main; "
            "sys.exit(main())"]  # fmt: skip


def command_exists(name: str) -> bool:
    return importlib.util.find_spec(f"pytest_p3monitor.cli.{name}") is not None


def time_command(url: str, args: list[str], repeat: int) -> tuple[list[float], str]:
    cmd = [*p3monitor(), *args, "--db", url]
    times = []
    out = ""
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - t0
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        out = proc.stdout
        if i:  # the first run warms the page cache
            times.append(elapsed)
    return times, out


def startup_time(repeat: int) -> float:
    cmd = [*p3monitor(), "--version"]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(name: str, url: str, h: History, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== {name}: {url}", flush=True)
    t0 = time.perf_counter()
    if name == "sqlite":
        load_sqlite(Path(url), h)
    else:
        load_postgres(url, h)
    load_s = time.perf_counter() - t0
    total = len(h.nodeids) * len(h.runs)
    print(f"bulk load of {len(h.nodeids)} tests x {len(h.runs)} runs ({total:,} results): "
          f"{load_s:.1f} s", flush=True)  # fmt: skip
    saves = time_saves(url, h, args.repeat)
    figures: dict[str, Any] = {"load_s": load_s, "save_run_s": statistics.median(saves)}
    print(f"save_run of one {len(h.nodeids)}-test run: median {statistics.median(saves):.3f} s "
          f"(all: {', '.join(f'{s:.3f}' for s in saves)})", flush=True)  # fmt: skip
    for cmd, cmd_args in COMMANDS.items():
        if not command_exists(cmd):
            print(f"p3monitor {' '.join(cmd_args)}: MISSING (no pytest_p3monitor/cli/{cmd}.py)")
            figures[cmd] = None
            continue
        times, out = time_command(url, cmd_args, args.repeat)
        figures[cmd] = statistics.median(times)
        detail = ""
        if cmd == "flaky":
            detail = f", {len(json.loads(out))} flaky tests"
        print(f"p3monitor {' '.join(cmd_args)}: median {statistics.median(times):.3f} s"
              f" (all: {', '.join(f'{s:.3f}' for s in times)}){detail}", flush=True)  # fmt: skip
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["both", "sqlite", "postgresql"], default="both")
    parser.add_argument("--tests", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions")
    parser.add_argument("--pg-url", default=None, help="use this database (tables dropped!)")
    args = parser.parse_args()

    h = History(args.tests, args.runs)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; "
          f"interpreter + import start-up of the command: {startup_time(3):.3f} s")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="p3monitor-bench-"))
    server_dir: Path | None = None
    results: dict[str, dict[str, Any]] = {}
    try:
        if args.backend in ("both", "sqlite"):
            results["sqlite"] = bench("sqlite", str(work / "results.db"), h, args)
        if args.backend in ("both", "postgresql"):
            url = args.pg_url
            if url is None:
                server_dir = Path(tempfile.mkdtemp(prefix="p3monitor-bench-pg-"))
                proc = subprocess.run(
                    ["sh", str(ROOT / "scripts" / "postgres.sh"), "start", str(server_dir)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                url = proc.stdout.strip()
            results["postgresql"] = bench("postgresql", url, h, args)
    finally:
        if server_dir is not None:
            subprocess.run(["sh", str(ROOT / "scripts" / "postgres.sh"), "destroy",
                            str(server_dir)], check=False)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)

    print("\nsummary (seconds; targets: save_run < 0.5, each report < 1.0)")
    print(f"{'backend':<12}{'save_run':>10}{'flaky':>10}{'trends':>10}{'health':>10}{'report':>10}")
    for name, f in results.items():
        cells = [f["save_run_s"], f["flaky"], f["trends"], f["health"], f["report"]]
        print(f"{name:<12}" + "".join(f"{'missing' if c is None else f'{c:.3f}':>10}"
                                      for c in cells))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
