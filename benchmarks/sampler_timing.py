"""Thread or process? How well each sampler keeps its schedule under a CPU-bound test.

The main thread spins in pure Python (what a CPU-bound test does) while the session sampler
of pytest-p3monitor samples the process tree every INTERVAL seconds, once in a thread of
this process and once in a separate process. Printed per mode: the intervals between
samples (median, 90th percentile, max, against the INTERVAL asked for) and how much work
the main thread got done compared with no sampler at all.

    python benchmarks/sampler_timing.py [--interval 0.1] [--seconds 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pytest_p3monitor.sampling.handle import SamplerHandle
from pytest_p3monitor.sampling.sampler import SamplerConfig

WORK = "python"
_DATA = list(range(1_000_000))
random.Random(0).shuffle(_DATA)


def spin(seconds: float) -> int:
    """Busy work for ``seconds``; returns how many rounds it did.

    ``python``: a bytecode loop (the interpreter offers the GIL every 5 ms);
    ``c``: long C calls that hold the GIL throughout (sorting a shuffled million-item list).
    """
    rounds = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if WORK == "c":
            sorted(_DATA)
            rounds += 100
            continue
        total = 0
        for i in range(1000):
            total += i * i
        rounds += 1
    return rounds


def gap_stats(times: list[float], prefix: str, window_s: float) -> dict[str, float]:
    """Intervals between samples; fewer than two samples in the window count as one
    interval as long as the window (a lower bound of the real one)."""
    gaps = sorted((b - a) * 1000 for a, b in itertools.pairwise(times)) or [window_s * 1000]
    return {
        f"{prefix}median_ms": statistics.median(gaps),
        f"{prefix}p90_ms": gaps[int(0.9 * (len(gaps) - 1))],
        f"{prefix}max_ms": gaps[-1],
    }


def run(mode: str | None, interval: float, seconds: float, containers: str) -> dict[str, float]:
    handle = None
    if mode is not None:
        config = SamplerConfig(
            root_pid=os.getpid(),
            process_interval=interval,
            container_interval=interval,
            containers={"mode": "filters", "filters": {"label": [containers]}}
            if containers
            else {"mode": "none", "filters": {}},
            cgroup=True,
        )
        handle = SamplerHandle.start(config, mode)  # type: ignore[arg-type]
        time.sleep(1.0)  # let the process start (interpreter + psutil) before timing
    work = spin(seconds)
    result: dict[str, float] = {"work": work}
    if handle is not None:
        end = time.time()
        records = handle.stop()
        handle.close()  # reap the sampler process
        begin = end - seconds
        # only the samples taken while the main thread was busy
        times = [r["t"] for r in records if r.get("kind") == "proc" and begin <= r["t"] <= end]
        result.update(gap_stats(times, "", seconds))
        late = [r["late_ms"] for r in records if "late_ms" in r and begin <= r["t"] <= end]
        if late:
            result["late_median_ms"] = statistics.median(late)
        per_container: dict[str, list[float]] = {}
        for r in records:
            if r.get("kind") == "container" and begin <= r["t"] <= end:
                per_container.setdefault(r["id"], []).append(r["t"])
        first = next(iter(per_container.values()), [])
        if containers:
            result.update(gap_stats(first, "c_", seconds))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--containers",
        default="",
        metavar="LABEL",
        help="also sample the containers with this label (DOCKER_HOST must answer)",
    )
    parser.add_argument("--work", choices=("python", "c"), default="python")
    args = parser.parse_args()
    global WORK
    WORK = args.work
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {os.getloadavg()}")
    print(
        f"interval asked: {args.interval * 1000:.0f} ms, "
        f"busy main thread ({args.work}) for {args.seconds} s"
    )
    baseline: list[float] = []
    results: dict[str, list[dict[str, float]]] = {"thread": [], "process": []}
    for _ in range(args.rounds):
        baseline.append(run(None, args.interval, args.seconds, args.containers)["work"])
        for mode in ("thread", "process"):
            results[mode].append(run(mode, args.interval, args.seconds, args.containers))
    base = statistics.median(baseline)
    nan = float("nan")
    for mode, rows in results.items():
        work = statistics.median(r["work"] for r in rows) / base
        print(f"{mode}: main-thread work {work * 100:5.1f}% of no sampler")
        for prefix, what in (("", "process samples"), ("c_", "container samples")):
            if not any(f"{prefix}median_ms" in r for r in rows):
                continue
            med = statistics.median(r.get(f"{prefix}median_ms", nan) for r in rows)
            p90 = statistics.median(r.get(f"{prefix}p90_ms", nan) for r in rows)
            worst = max(r.get(f"{prefix}max_ms", nan) for r in rows)
            print(
                f"  {what:17s} every: median {med:7.1f} ms  p90 {p90:7.1f} ms  max {worst:7.1f} ms"
            )
        late = statistics.median(r.get("late_median_ms", nan) for r in rows)
        print(f"  process samples late (median): {late:.1f} ms")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
