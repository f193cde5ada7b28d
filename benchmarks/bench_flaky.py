"""Benchmark: ``p3monitor flaky --format json`` over a store of 10,000 tests x 200 runs.

The store is built through the public Store API (``SQLiteStore.save_run``, one call per
run, exactly what ``pytest --p3monitor`` does at the end of a session), with a mix of
tests whose behaviour is known: mostly stable, some flaky at several rates, regressions,
fixes, windows of breakage, always failing and skipped tests; a new commit every 1-4 runs.

Then it runs the command in a fresh interpreter several times (the first run warms the
page cache and is not counted) and prints the median wall time and the peak memory (max
RSS) of the command::

    python benchmarks/bench_flaky.py                  # 10,000 x 200, 5 timed runs
    python benchmarks/bench_flaky.py --tests 1000 --runs 50 --repeat 3
    python benchmarks/bench_flaky.py --db /tmp/bench.db --keep   # reuse / keep the store

The target is under 1 s on SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_p3monitor.records import RunInfo, TestRecord
from pytest_p3monitor.store.sqlite import SQLiteStore

T0 = 1_700_000_000.0


def _behaviours(tests: int, runs: int, rng: random.Random) -> list[tuple[str, float, int, int]]:
    """(kind, rate, start, end) per test: what its outcome is at each run."""
    kinds: list[tuple[str, float, int, int]] = []
    for _ in range(tests):
        x = rng.random()
        start = rng.randrange(runs)
        end = min(runs, start + rng.randint(2, 10))
        if x < 0.02:
            kinds.append(("flaky", rng.choice((0.02, 0.05, 0.1, 0.3)), 0, runs))
        elif x < 0.03:
            kinds.append(("regression", 0.0, start, runs))
        elif x < 0.035:
            kinds.append(("fix", 0.0, 0, start))
        elif x < 0.04:
            kinds.append(("window", 0.0, start, end))
        elif x < 0.045:
            kinds.append(("failing", 0.0, 0, runs))
        elif x < 0.06:
            kinds.append(("skipped", 0.0, 0, runs))
        else:
            kinds.append(("stable", 0.0, 0, runs))
    return kinds


def build(db: Path, tests: int, runs: int, seed: int = 1) -> float:
    """Write the store through ``save_run``; returns the seconds it took."""
    rng = random.Random(seed)
    kinds = _behaviours(tests, runs, rng)
    nodeids = [f"tests/test_mod{i // 50:03d}.py::test_case_{i}" for i in range(tests)]
    commit_no = 0
    runs_left_on_commit = 0
    began = time.perf_counter()
    with SQLiteStore(db) as store:
        for run_no in range(runs):
            if runs_left_on_commit == 0:
                commit_no += 1
                runs_left_on_commit = rng.randint(1, 4)
            runs_left_on_commit -= 1
            started = T0 + 600.0 * run_no
            run = RunInfo(
                run_id=f"bench-{run_no:05d}",
                started_at=started,
                commit=f"{commit_no:040x}",
                branch="main",
                hostname="bench",
                python="3.11",
                pytest="9",
                finished_at=started + 300.0,
                exit_status=1,
            )
            records = []
            for nodeid, (kind, rate, start, end) in zip(nodeids, kinds, strict=True):
                reruns = 0
                if kind == "skipped":
                    outcome = "skipped"
                elif kind == "failing":
                    outcome = "failed"
                elif kind in ("regression", "window", "fix"):
                    outcome = "failed" if start <= run_no < end else "passed"
                elif kind == "flaky":
                    outcome = "failed" if rng.random() < rate else "passed"
                    if outcome == "failed" and rng.random() < 0.3:
                        outcome, reruns = "passed", 1
                else:
                    outcome = "passed"
                records.append(
                    TestRecord(
                        nodeid=nodeid,
                        outcome=outcome,  # type: ignore[arg-type]
                        call_s=rng.random() * 0.05,
                        setup_s=0.001,
                        teardown_s=0.001,
                        start=started,
                        stop=started + 1.0,
                        reruns=reruns,
                        message="AssertionError: assert 1 == 2"
                        if outcome == "failed" or reruns
                        else None,
                    )
                )
            store.save_run(run, records, {})
    return time.perf_counter() - began


def command() -> list[str]:
    """The installed ``p3monitor`` script next to this interpreter (no pyenv shim)."""
    script = Path(sys.executable).parent / "p3monitor"
    if script.exists():
        return [str(script), "flaky"]
    code = "import sys; from pytest_p3monitor.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "flaky"]


def time_command(argv: list[str]) -> tuple[float, int, bytes]:
    """Wall seconds, peak RSS (bytes) and stdout of one run of ``argv``."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - began
    # the child's own rusage: communicate() reaped it, so ask for all reaped children
    import resource

    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {proc.returncode}")
    return elapsed, peak_kib * 1024, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--db", type=Path, default=None, help="store path (built if missing)")
    parser.add_argument("--keep", action="store_true", help="keep the store afterwards")
    args = parser.parse_args()

    tmp = None
    db = args.db
    if db is None:
        tmp = tempfile.mkdtemp(prefix="p3m-bench-")
        db = Path(tmp) / "results.db"
    if not db.exists():
        print(f"building {args.tests} tests x {args.runs} runs in {db} (Store.save_run) ...")
        seconds = build(db, args.tests, args.runs)
        print(f"  built in {seconds:.1f}s, {db.stat().st_size / 1e6:.0f} MB")
    argv = [*command(), "--db", str(db), "--format", "json"]
    time_command(argv)  # warm-up: page cache, .pyc files
    times: list[float] = []
    peak = 0
    listed = 0
    for _ in range(args.repeat):
        elapsed, peak_rss, out = time_command(argv)
        times.append(elapsed)
        peak = max(peak, peak_rss)
        listed = len(json.loads(out))
    baseline, _, _ = time_command([sys.executable, "-c", "import pytest_p3monitor.cli"])
    print(f"command: {' '.join(argv)}")
    print(
        f"flaky tests listed: {listed}; median {statistics.median(times):.3f}s "
        f"(min {min(times):.3f}s, max {max(times):.3f}s, {args.repeat} runs); "
        f"peak RSS {peak / 2**20:.0f} MiB; interpreter start + import alone {baseline:.3f}s"
    )
    if tmp is not None and not args.keep:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)
    elif args.keep:
        print(f"store kept at {db}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
