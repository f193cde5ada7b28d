"""What `--p3monitor` costs a session in CPU time, measured so that the machine's speed cancels.

The vCPUs of the machines this project is measured on switch between two speeds every few
seconds (a fixed loop takes 1.0x or about 1.6x its best time; each vCPU on its own), so
two sessions run one after the other (``bench_overhead.py``) seldom run at the same speed,
and the median of 101 per-round wall-time ratios still moves by several points between runs
of the same code. Here the variants of a round start at the same moment, all pinned to one
CPU (the rounds alternate between the CPUs): the kernel switches between them every few
milliseconds, so every variant gets its share of each speed, and the ratio of the CPU time
each pytest process used is the ratio of the work it did.

What it measures is the CPU time of the pytest process itself (from its own
``getrusage`` at exit, through a small plugin every variant loads), not wall time: the
session sampler's process (``children``, which a real session runs on another core) and
any waiting are not in it. The sessions also share the CPU's caches, and switching
between them costs each something; ``bare CPU s`` alone against ``bench_overhead.py``'s
shows how much.

    python benchmarks/bench_corun.py [--tests 5000] [--rounds 10] [--variants p3monitor,...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_overhead import SUITE, median_ci, pytest_command, session_env, variants

# Loaded with -p in every variant: the process's own CPU seconds (and its waited-for
# children's) at interpreter exit, into the file named by the environment.
PROBE = """
import atexit, os, resource

def _write():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.environ["CORUN_OUT"], "w") as f:
        f.write(f"{own.ru_utime + own.ru_stime} {children.ru_utime + children.ru_stime}")

atexit.register(_write)
"""


def run_round(work: Path, names: dict[str, list[str]], cpu: int) -> dict[str, tuple[float, float]]:
    """Start every variant at once on ``cpu``; (own CPU s, children's CPU s) of each."""
    procs = {}
    for name, extra in names.items():
        env = session_env()
        env["CORUN_OUT"] = str(work / f"cpu-{name}.txt")
        procs[name] = subprocess.Popen(
            pytest_command("-p", "corun_probe", *extra),
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
    out = {}
    for name, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"pytest failed ({proc.returncode}) in variant {name}")
        own, children = (work / f"cpu-{name}.txt").read_text().split()
        out[name] = float(own), float(children)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tests", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument(
        "--variants",
        default="p3monitor",
        help="comma-separated variants of bench_overhead.py to run beside bare",
    )
    args = ap.parse_args()
    if not hasattr(os, "sched_setaffinity"):
        raise SystemExit("bench_corun.py pins processes to a CPU: Linux only")
    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="p3m-corun-") as tmp:
        work = Path(tmp)
        (work / "test_bench.py").write_text(SUITE.format(n=args.tests))
        (work / "pytest.ini").write_text("[pytest]\n")
        (work / "corun_probe.py").write_text(PROBE)
        every = variants(work)
        wanted = ["bare", *(v for v in args.variants.split(",") if v and v != "bare")]
        unknown = [v for v in wanted if v not in every]
        if unknown:
            raise SystemExit(f"unknown variants: {', '.join(unknown)} (known: {', '.join(every)})")
        names = {v: every[v] for v in wanted}
        run_round(work, names, cpus[0])  # warm up: bytecode caches, the store's schema
        own: dict[str, list[float]] = {v: [] for v in names}
        children: dict[str, list[float]] = {v: [] for v in names}
        for r in range(args.rounds):
            for name, (cpu_s, child_s) in run_round(work, names, cpus[r % len(cpus)]).items():
                own[name].append(cpu_s)
                children[name].append(child_s)
    print(f"{args.tests} trivial tests, {args.rounds} rounds, the variants of a round started")
    print(f"together on one CPU (alternating between {len(cpus)}), installed plugins autoloaded")
    print(f"python {sys.version.split()[0]}")
    print(
        f"{'variant':<12} {'CPU s':>7} {'ratio':>7} {'95% CI':>13} {'ratio IQR':>13}"
        f" {'children CPU s':>15}"
    )
    for name in names:
        ratios = [c / b for c, b in zip(own[name], own["bare"], strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        print(
            f"{name:<12} {statistics.median(own[name]):>7.3f} {statistics.median(ratios):>7.3f}"
            f" {'{:.3f}-{:.3f}'.format(*median_ci(ratios)):>13} {f'{q1:.3f}-{q3:.3f}':>13}"
            f" {statistics.median(children[name]):>15.3f}"
        )
    print("ratio = median over rounds of (the pytest process's own CPU seconds / bare's in the")
    print("same round), with a 95% bootstrap confidence interval and the interquartile range;")
    print("children = the processes it started and waited for (p3monitor's sampler, git).")


if __name__ == "__main__":
    main()
