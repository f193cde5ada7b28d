"""What `--p3monitor` costs a session: wall time and peak memory, against bare pytest.

Runs a suite of N trivial tests (default 5000) in fresh pytest processes, the variants in
alternating order each round, and prints per-variant medians and the median of the
per-round ratios to bare pytest. Variants:

  bare         pytest with pytest-p3monitor blocked (-p no:p3monitor)
  installed    pytest-p3monitor installed, not enabled (what every session without the flag pays)
  p3monitor    pytest --p3monitor (store in a fresh SQLite file, growing over the rounds)
  p3m-no-meter the same with p3monitor_test_resources = false (no per-test resource figures)
  json-report  pytest --json-report (pytest-json-report), when installed
  reportlog    pytest --report-log (pytest-reportlog), when installed

With ``--isolated`` no plugin loads by itself (PYTEST_DISABLE_PLUGIN_AUTOLOAD=1) and each
variant loads only the plugin it measures: bare is pytest alone. Otherwise every variant runs
with the plugins installed in the environment (here: the project's test dependencies, such as
hypothesis and pytest-xdist), as a CI job with those installed would.

    python benchmarks/bench_overhead.py [--tests 5000] [--rounds 15] [--variants p3monitor,...]
                                        [--isolated]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_trivial(i):
    assert i >= 0
"""


def variants(work: Path, isolated: bool = False) -> dict[str, list[str]]:
    """The pytest arguments of each variant. ``isolated``: for a run without plugin
    autoloading, each variant names the plugins it needs (bare none)."""

    def load(*modules: str) -> list[str]:
        return [arg for module in modules for arg in ("-p", module)] if isolated else []

    blocked = [] if isolated else ["-p", "no:p3monitor"]
    out = {
        "bare": blocked,
        "installed": load("pytest_p3monitor.plugin"),
        "p3monitor": [
            *load("pytest_p3monitor.plugin"),
            f"--p3monitor-db={work / 'results.db'}",
            "--p3monitor",
        ],
    }
    out["p3m-no-meter"] = [*out["p3monitor"], "-o", "p3monitor_test_resources=false"]
    if importlib.util.find_spec("pytest_jsonreport"):
        out["json-report"] = [
            *blocked,
            *load("pytest_metadata.plugin", "pytest_jsonreport.plugin"),
            "--json-report",
            f"--json-report-file={work / 'r.json'}",
        ]
    if importlib.util.find_spec("pytest_reportlog"):
        out["reportlog"] = [
            *blocked,
            *load("pytest_reportlog.plugin"),
            f"--report-log={work / 'log.jsonl'}",
        ]
    return out


def session_env(isolated: bool = False) -> dict[str, str]:
    """The environment of a measured pytest session: no store from the caller's
    environment, bytecode caches on (as on a developer's machine or a CI runner with a warm
    venv), and plugin autoloading off only when ``isolated``."""
    env = dict(os.environ)
    for name in ("P3MONITOR_DB", "PYTHONDONTWRITEBYTECODE", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(name, None)
    if isolated:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def pytest_command(*args: str) -> list[str]:
    """The command of one measured session of the suite (run in the work directory)."""
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_bench.py"]


def run_once(work: Path, extra: list[str], isolated: bool = False) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (with the processes it started) and peak RSS (bytes)."""
    cmd = pytest_command(*extra)
    env = session_env(isolated)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, env=env)
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"pytest failed ({proc.returncode}): {' '.join(cmd)}")
    return wall, rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss * 1024


def median_ci(values: list[float], resamples: int = 2000) -> tuple[float, float]:
    """A 95% bootstrap confidence interval of the median of ``values`` (fixed seed)."""
    rng = random.Random(0)
    medians = sorted(
        statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)
    )
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tests", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument(
        "--variants",
        default="",
        help="comma-separated subset of the variants to run (bare is always run)",
    )
    ap.add_argument(
        "--isolated",
        action="store_true",
        help="no plugin autoloading: each variant loads only the plugin it measures",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="p3m-bench-") as tmp:
        work = Path(tmp)
        (work / "test_bench.py").write_text(SUITE.format(n=args.tests))
        (work / "pytest.ini").write_text("[pytest]\n")
        names = variants(work, args.isolated)
        if args.variants:
            wanted = {"bare", *args.variants.split(",")}
            names = {k: v for k, v in names.items() if k in wanted}
        for extra in names.values():  # warm up: bytecode caches, the store's schema
            run_once(work, extra, args.isolated)
        walls: dict[str, list[float]] = {k: [] for k in names}
        cpus: dict[str, list[float]] = {k: [] for k in names}
        rss: dict[str, list[int]] = {k: [] for k in names}
        order = list(names)
        for r in range(args.rounds):
            rotated = order[r % len(order) :] + order[: r % len(order)]
            for name in rotated:
                wall, cpu, peak = run_once(work, names[name], args.isolated)
                walls[name].append(wall)
                cpus[name].append(cpu)
                rss[name].append(peak)
    plugins = "no plugin autoloading" if args.isolated else "the installed plugins autoloaded"
    print(f"{args.tests} trivial tests, {args.rounds} rounds, variants alternating each round,")
    print(plugins)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print(
        f"{'variant':<12} {'median s':>9} {'ratio':>7} {'95% CI':>13} {'ratio IQR':>13}"
        f" {'med/med':>8} {'min/min':>8} {'CPU s':>7} {'CPU ratio':>10} {'peak RSS MiB':>13}"
        f" {'+MiB':>6}"
    )
    bare_rss = statistics.median(rss["bare"])
    for name in names:
        ratios = [w / b for w, b in zip(walls[name], walls["bare"], strict=True)]
        cpu_ratios = [c / b for c, b in zip(cpus[name], cpus["bare"], strict=True)]
        med_rss = statistics.median(rss[name])
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios * 3)
        print(
            f"{name:<12} {statistics.median(walls[name]):>9.3f} {statistics.median(ratios):>7.3f}"
            f" {'{:.3f}-{:.3f}'.format(*median_ci(ratios)):>13}"
            f" {f'{q1:.3f}-{q3:.3f}':>13}"
            f" {statistics.median(walls[name]) / statistics.median(walls['bare']):>8.3f}"
            f" {min(walls[name]) / min(walls['bare']):>8.3f}"
            f" {statistics.median(cpus[name]):>7.3f} {statistics.median(cpu_ratios):>10.3f}"
            f" {med_rss / 2**20:>13.1f} {(med_rss - bare_rss) / 2**20:>6.1f}"
        )
    print("ratio = median over rounds of (variant / bare in the same round), with a 95%")
    print("bootstrap confidence interval of that median and the interquartile range of the")
    print("per-round ratios (the machine's noise: `installed` does bare's work); med/med =")
    print("ratio of the median times, min/min = of the fastest runs; CPU includes the")
    print("processes a variant starts (p3monitor's sampler); peak RSS is the pytest process's.")


if __name__ == "__main__":
    main()
