"""What resource sampling costs a CPU-bound test suite, and what it costs per test.

1. Suite overhead: a CPU-bound suite (fixed work per test) runs in pytest subprocesses,
   ``--p3monitor`` without the resources plugin (``-p no:p3monitor-resources``) against
   ``--p3monitor`` with it at the default settings (process tree every 0.5 s, containers
   every 1 s, per-test figures). Runs alternate in pairs (A B, then B A, ...); the figure
   is the time of pytest's test loop, and the ratio of the medians B / A is printed.
   Target: at most 1.02.
2. Per-test hook cost: what the plugin does per test, called directly as pluggy calls it:
   the monitor's record builder folding the three reports (setup, call, teardown) and the
   meter's lap at the teardown report; in an xdist worker, the meter's own report hook.
   Target: under 20 microseconds.

    python benchmarks/bench_sampling.py [--pairs 5] [--tests 30] [--work 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"

CONFTEST = """
import json, os, time
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        return (yield)
    finally:
        with open(os.environ["BENCH_OUT"], "w") as f:
            json.dump({"loop_s": time.perf_counter() - wall,
                       "cpu_s": time.process_time() - cpu}, f)
"""

SUITE = """
import pytest

@pytest.mark.parametrize("i", range({tests}))
def test_cpu(i):
    for _ in range({work}):
        sum(j * j for j in range(200_000))
"""


def run_suite(directory: Path, sampling: bool, env: dict[str, str]) -> dict[str, float]:
    out = directory / "timing.json"
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--p3monitor",
        f"--p3monitor-db={directory / 'results.db'}",
        "--p3monitor-containers=none",
    ]
    if not sampling:
        args += ["-p", "no:p3monitor-resources"]
    proc = subprocess.run(
        args,
        cwd=directory,
        env={**env, "BENCH_OUT": str(out)},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"suite failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if sampling and "resources: pytest processes" not in proc.stdout:
        raise SystemExit("sampling was not on:\n" + proc.stdout[-2000:])
    result: dict[str, float] = json.loads(out.read_text())
    return result


def suite_overhead(pairs: int, tests: int, work: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("P3MONITOR")}
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="p3monitor-bench-") as tmp:
        directory = Path(tmp)
        (directory / "conftest.py").write_text(CONFTEST)
        (directory / "test_suite.py").write_text(SUITE.format(tests=tests, work=work))
        (directory / "pytest.ini").write_text("[pytest]\n")
        run_suite(directory, False, env)  # warm-up: caches, .pyc files
        times: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, list[float]] = {False: [], True: []}
        for pair in range(pairs):
            order = (False, True) if pair % 2 == 0 else (True, False)
            for sampling in order:
                timing = run_suite(directory, sampling, env)
                times[sampling].append(timing["loop_s"])
                cpu[sampling].append(timing["cpu_s"])
    base, sampled = statistics.median(times[False]), statistics.median(times[True])
    print(f"CPU-bound suite: {tests} tests, {pairs} alternating pairs, test-loop seconds")
    print(f"  without sampling: median {base:.3f} s  runs {_fmt(times[False])}")
    print(f"  with sampling:    median {sampled:.3f} s  runs {_fmt(times[True])}")
    print(f"  ratio (with / without): {sampled / base:.4f}  (target <= 1.02)")
    print(
        f"  CPU seconds of the pytest process in the loop: without "
        f"{statistics.median(cpu[False]):.3f}, with {statistics.median(cpu[True]):.3f}"
    )


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def hook_cost(number: int) -> None:
    """What the plugin does per test in the process that runs it, with the meter and
    without: no xdist, the monitor's record builder folds the three reports and calls the
    meter at the teardown report; in an xdist worker the meter's own hook does."""
    sys.path.insert(0, str(SRC))
    import time as _time
    from types import SimpleNamespace

    from _pytest.reports import TestReport

    from pytest_p3monitor.collect import FIGURES_ATTR, RecordBuilder
    from pytest_p3monitor.phases import PhaseRecorder
    from pytest_p3monitor.resources_plugin import _WorkerMeter
    from pytest_p3monitor.sampling.pertest import TestMeter

    now = _time.time()
    tests = [
        [
            TestReport(
                f"test_x.py::test_x[{i}]",
                ("test_x.py", 1, f"test_x[{i}]"),
                {},
                "passed",
                None,
                when,
                [],
                0.0001,
                now,
                now + 0.0001,
                [],
            )
            for when in ("setup", "call", "teardown")
        ]
        for i in range(number)
    ]
    reports = [r for test in tests for r in test]
    meter = TestMeter()
    meter.start()

    def fold(with_meter: bool) -> None:
        builder = RecordBuilder()
        if with_meter:
            builder.meter = meter.lap
        add = builder.add
        for report in reports:
            add(report)
        assert len(builder.records) == number  # folds what is still kept

    worker = _WorkerMeter(SimpleNamespace(meter=meter, recorder=PhaseRecorder()))  # type: ignore[arg-type]

    def in_worker() -> None:
        hook = worker.pytest_runtest_logreport
        for report in reports:
            hook(report)

    def fresh() -> None:
        # The builder leaves the figures on each teardown report (for the JUnit XML, and
        # as an xdist worker's would arrive): taken off before each timed pass, or the
        # next pass would read them there instead of calling the meter.
        for report in reports:
            report.__dict__.pop(FIGURES_ATTR, None)

    def best(func: Any) -> float:
        return min(timeit.repeat(func, setup=fresh, number=1, repeat=5)) / number * 1e6

    folded, plain = best(lambda: fold(True)), best(lambda: fold(False))
    print(
        f"per-test hook cost: {folded:.1f} us  (target < 20 us; best of 5 x {number} tests):"
        f" record folding {plain:.1f} us + meter {folded - plain:.1f} us"
    )
    print(f"per-test hook cost in an xdist worker (the meter): {best(in_worker):.1f} us")
    alone = best(lambda: [meter.lap() for _ in range(number)])
    print(f"  TestMeter.lap alone: {alone:.1f} us  (VmHWM reset works: {meter.reset_works})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--tests", type=int, default=30)
    parser.add_argument("--work", type=int, default=3, help="units of ~15 ms of CPU per test")
    parser.add_argument("--hook-number", type=int, default=20000)
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    started = time.perf_counter()
    hook_cost(args.hook_number)
    if args.pairs > 0:
        suite_overhead(args.pairs, args.tests, args.work)
    print(
        f"done in {time.perf_counter() - started:.0f} s, load average now "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
