"""What the monitor costs each test, measured inside single pytest sessions.

A session's wall or CPU time cannot resolve a few microseconds a test on the machines this
project is measured on: their vCPUs switch between two speeds every few seconds (see
``bench_corun.py``). Inside one session, though, neighbouring tests run at the same speed.
So a probe plugin switches one part on and off every ``--block`` tests (default 20, about
10 ms) and times each block; the difference between the two blocks of a pair, divided by
the block's tests, is what the part costs a test, and the median over the pairs of a
session ignores the blocks a speed change, a garbage collection or a batch of folding fell
in. The parts:

  dispatch  bare pytest with a plugin whose ``pytest_runtest_logreport`` does nothing,
            registered and unregistered: what pluggy's call of one more report hook costs
            (three reports a test)
  monitor   ``--p3monitor``: the monitor's report hook does its work (keeps the report and,
            at teardown, runs the resource meter) or returns at once (the call stays)
  meter     ``--p3monitor``: the resource meter on or off (the report hook keeps the reports)
  syscalls  ``--p3monitor``: in the meter's place, only its two system calls (``getrusage``
            and a read of ``/proc/self/statm``, the least an exact per-test CPU time and
            peak RSS need) or nothing: what the meter cannot do without, on this machine

Each figure includes what the part costs pytest's own work after it (the caches it evicts),
which a loop of its own (``bench_sampling.py``) does not see. What it leaves out: the start
and the end of the session, and the garbage collector's work on what the part keeps.

    python benchmarks/bench_pertest.py [--tests 5000] [--sessions 5] [--block 20]
                                       [--parts dispatch,monitor,meter,syscalls]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_overhead import SUITE, pytest_command, session_env

# Loaded with -p: switches its part every BLOCK tests (counted by pytest_runtest_logfinish,
# one call a test in both states) and writes the blocks' seconds at exit.
PROBE = """
import atexit, functools, json, os, resource, time

import pytest

BLOCK = int(os.environ["PERTEST_BLOCK"])
PART = os.environ["PERTEST_PART"]
clock = time.perf_counter
blocks = []  # (part on?, seconds)
state = {"tests": 0, "on": False, "t": None}


class _Noop:
    def pytest_runtest_logreport(self, report):
        pass


def _noop_report(report):
    pass


_rusage = functools.partial(resource.getrusage, resource.RUSAGE_SELF)
_statm = os.open("/proc/self/statm", os.O_RDONLY) if PART == "syscalls" else -1


def _syscalls():
    _rusage()
    os.pread(_statm, 256, 0)
    return {}


_noop = _Noop()
_parts = {}


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    pm = session.config.pluginmanager
    if PART == "dispatch":
        _parts["on"] = lambda: pm.register(_noop, "pertest-noop")
        _parts["off"] = lambda: pm.unregister(_noop)
        return
    monitor = pm.get_plugin("p3monitor-session")
    if PART == "monitor":
        impl = next(i for i in pm.hook.pytest_runtest_logreport.get_hookimpls()
                    if i.plugin is monitor)
        work = impl.function

        def on():
            impl.function = work

        def off():
            impl.function = _noop_report
    else:
        builder = monitor.builder
        meter = builder.meter if PART == "meter" else _syscalls

        def on():
            builder.meter = meter

        def off():
            builder.meter = None
    _parts["on"], _parts["off"] = on, off
    off()


def pytest_runtest_logfinish(nodeid, location):
    state["tests"] += 1
    if state["tests"] % BLOCK:
        return
    now = clock()
    if state["t"] is not None:
        blocks.append((state["on"], now - state["t"]))
    state["on"] = not state["on"]
    _parts["on" if state["on"] else "off"]()
    state["t"] = clock()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    if PART != "dispatch" and _parts:
        _parts["on"]()  # the session ends with the monitor as it was built


def _write():
    with open(os.environ["PERTEST_OUT"], "w") as f:
        json.dump(blocks, f)


atexit.register(_write)
"""

PARTS = {
    "dispatch": ["-p", "no:p3monitor"],
    "monitor": ["--p3monitor"],
    "meter": ["--p3monitor"],
    "syscalls": ["--p3monitor"],
}


def session_costs(work: Path, part: str, block: int) -> list[float]:
    """One session; the per-test cost (seconds) of ``part`` in each pair of blocks."""
    env = session_env()
    env.update(PERTEST_BLOCK=str(block), PERTEST_PART=part, PERTEST_OUT=str(work / "blocks"))
    extra = PARTS[part]
    if "--p3monitor" in extra:
        extra = [f"--p3monitor-db={work / 'results.db'}", *extra]
    subprocess.run(
        pytest_command("-p", "pertest_probe", *extra),
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    blocks = [(bool(on), float(s)) for on, s in json.loads((work / "blocks").read_text())]
    costs = []
    for first, second in zip(blocks[1::2], blocks[2::2], strict=False):  # skip the first block
        on, off = (first, second) if first[0] else (second, first)
        if on[0] and not off[0]:
            costs.append((on[1] - off[1]) / block)
    return costs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tests", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--block", type=int, default=20)
    ap.add_argument("--parts", default=",".join(PARTS))
    args = ap.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown parts: {', '.join(unknown)} (known: {', '.join(PARTS)})")
    with tempfile.TemporaryDirectory(prefix="p3m-pertest-") as tmp:
        work = Path(tmp)
        (work / "test_bench.py").write_text(SUITE.format(n=args.tests))
        (work / "pytest.ini").write_text("[pytest]\n")
        (work / "pertest_probe.py").write_text(PROBE)
        session_costs(work, parts[0], args.block)  # warm up: bytecode caches, the store
        medians: dict[str, list[float]] = {p: [] for p in parts}
        for _ in range(args.sessions):
            for part in parts:  # the parts alternate, session by session
                medians[part].append(statistics.median(session_costs(work, part, args.block)))
    print(
        f"{args.tests} trivial tests, blocks of {args.block} tests, {args.sessions} sessions a part"
    )
    print(f"python {sys.version.split()[0]}")
    print(f"{'part':<10} {'us a test':>10}   sessions (median of each session's pairs)")
    for part in parts:
        each = " ".join(f"{m * 1e6:.1f}" for m in medians[part])
        print(f"{part:<10} {statistics.median(medians[part]) * 1e6:>10.1f}   {each}")
    print("us a test = median over sessions of the median over pairs of blocks of")
    print("(block with the part - block without) / tests in a block")


if __name__ == "__main__":
    main()
