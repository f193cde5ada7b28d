"""What `--p3monitor` costs a session in CPU instructions, phase by phase (deterministic).

Wall times on a shared 2-core VM wander by ±10% between identical runs; instruction counts
from valgrind's callgrind do not. This runs the same suite as bench_overhead.py (N trivial
tests, default 5000) once per variant under callgrind and prints the instructions of each
phase of the session and the ratio to bare pytest:

  startup     interpreter, pytest, plugins, imports and configure, to the session's start
  collection  collecting the tests
  loop        running them (the plugin's per-test hooks)
  end         the session's end: the report, gates, flaky verdicts, the store, the summary,
              unconfigure and the interpreter's exit

The phases come from callgrind client requests made by a small plugin (built here with gcc
from valgrind's callgrind.h); without gcc or the header only the totals are printed.

    python benchmarks/bench_instructions.py [--tests 5000] [--variants bare,installed,p3monitor]
                                            [--isolated] [--gc-off] [--parts]

``--isolated``: no plugin autoloading, as in bench_overhead.py.
``--gc-off``: the cyclic garbage collector off in every variant (``gc.disable()`` as pytest
starts), so that no collection lands in the loop of one variant and in the end of another.
``--parts``: two more variants that take the plugin's per-test work apart: ``no-folding``
(the monitor's report hook is dispatched but does nothing, so nothing is recorded or
metered) and ``no-meter`` (the reports are folded into records, no resource meter); the
loop's differences give the cost per test of pluggy's dispatch, of the folding and of the
meter. Best with ``--gc-off``.

Needs valgrind. Each variant takes about a minute per 5000 tests.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench_overhead import SUITE, pytest_command, session_env, variants

PHASES = ("startup", "collection", "loop", "end")

CLIENT_C = """
#include <valgrind/callgrind.h>
void dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""

# Dumps the instructions counted so far at the start and the end of the test loop.
PHASE_PLUGIN = """
import ctypes, gc, os
import pytest

_dump = ctypes.CDLL(os.environ["P3M_BENCH_CLIENT"]).dump
_dump.argtypes = [ctypes.c_char_p]

if os.environ.get("P3M_BENCH_GC_OFF"):
    gc.disable()

# --parts: switch a part of the plugin's per-test work off (private names, benchmark only).
_without = os.environ.get("P3M_BENCH_WITHOUT")
if _without == "meter":
    from pytest_p3monitor.resources_plugin import ResourcesPlugin

    ResourcesPlugin._register_meter = lambda self: None
elif _without == "folding":
    from pytest_p3monitor.collect import RecordBuilder

    RecordBuilder.add = pytest.hookimpl(tryfirst=True)(lambda self, report: None)


def pytest_collection(session):
    _dump(b"startup")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session):
    _dump(b"collection")
    try:
        return (yield)
    finally:
        _dump(b"loop")
"""


def build_client(work: Path) -> Path | None:
    """The shared library making the client requests, or None where it can't be built."""
    if shutil.which("gcc") is None or not Path("/usr/include/valgrind/callgrind.h").exists():
        return None
    (work / "client.c").write_text(CLIENT_C)
    lib = work / "libclient.so"
    done = subprocess.run(
        ["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(work / "client.c")],
        capture_output=True,
    )
    return lib if done.returncode == 0 else None


#: --parts: variant -> the part of the plugin's per-test work it switches off.
PARTS = {"no-folding": "folding", "no-meter": "meter"}


def run(
    work: Path,
    name: str,
    extra: list[str],
    client: Path | None,
    isolated: bool = False,
    more_env: dict[str, str] | None = None,
) -> dict[str, int]:
    """Instructions per phase (or just the total) of one session under callgrind."""
    env = {**session_env(isolated), **(more_env or {})}
    plugin: list[str] = []
    if client is not None:
        env["P3M_BENCH_CLIENT"] = str(client)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work), env.get("PYTHONPATH")]))
        plugin = ["-p", "p3m_bench_phases"]
    pytest_cmd = pytest_command(*plugin, *extra)
    # Warm up: bytecode caches, the store's schema.
    subprocess.run(pytest_cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, check=True)
    out = work / f"cg.{name}"
    for old in work.glob(f"cg.{name}*"):
        old.unlink()
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *pytest_cmd],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    counts: dict[str, int] = {}
    for path in work.glob(f"cg.{name}*"):
        head = path.read_text(errors="replace")[:4000]
        trigger = re.search(r"^desc: Trigger: (?:Client Request: )?(.*)$", head, re.M)
        summary = re.search(r"^summary: (\d+)$", head, re.M)
        if trigger and summary:
            label = trigger.group(1).strip()
            label = label if label in PHASES else "end"  # "Program termination"
            counts[label] = counts.get(label, 0) + int(summary.group(1))
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tests", type=int, default=5000)
    ap.add_argument("--variants", default="bare,installed,p3monitor")
    ap.add_argument(
        "--isolated",
        action="store_true",
        help="no plugin autoloading: each variant loads only the plugin it measures",
    )
    ap.add_argument(
        "--gc-off",
        action="store_true",
        help="the garbage collector off in every variant: no collection moves between phases",
    )
    ap.add_argument(
        "--parts",
        action="store_true",
        help="also no-folding and no-meter: the loop's cost per test of each part",
    )
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (Debian: apt-get install valgrind)")
    more_env = {"P3M_BENCH_GC_OFF": "1"} if args.gc_off else {}
    with tempfile.TemporaryDirectory(prefix="p3m-instr-") as tmp:
        work = Path(tmp)
        (work / "test_bench.py").write_text(SUITE.format(n=args.tests))
        (work / "pytest.ini").write_text("[pytest]\n")
        client = build_client(work)
        if client is not None:
            (work / "p3m_bench_phases.py").write_text(PHASE_PLUGIN)
        elif args.gc_off or args.parts:
            raise SystemExit("--gc-off and --parts need gcc and valgrind's callgrind.h")
        known = variants(work, args.isolated)
        wanted = ["bare", *(v for v in args.variants.split(",") if v != "bare")]
        if args.parts:
            for part in PARTS:
                known[part] = known["p3monitor"]
            wanted += [p for p in ("p3monitor", *PARTS) if p not in wanted]
        results = {
            name: run(
                work,
                name,
                known[name],
                client,
                args.isolated,
                {**more_env, "P3M_BENCH_WITHOUT": PARTS[name]} if name in PARTS else more_env,
            )
            for name in wanted
        }
    bare = results["bare"]
    total = sum(bare.values())
    plugins = "no plugin autoloading" if args.isolated else "the installed plugins autoloaded"
    gc_note = ", garbage collector off" if args.gc_off else ""
    print(
        f"{args.tests} trivial tests, {plugins}{gc_note}; instructions (callgrind), millions;"
        " ratio to bare"
    )
    columns = [p for p in PHASES if p in bare] if client is not None else []
    print(f"{'variant':<12}" + "".join(f"{p:>12}" for p in columns) + f"{'total':>12}{'ratio':>8}")
    for name, counts in results.items():
        row = "".join(f"{counts.get(p, 0) / 1e6:>12.1f}" for p in columns)
        n = sum(counts.values())
        print(f"{name:<12}{row}{n / 1e6:>12.1f}{n / total:>8.3f}")
    if columns:
        print("difference to bare, per phase (millions; per test, thousands):")
        for name, counts in results.items():
            if name == "bare":
                continue
            diff = {p: counts.get(p, 0) - bare.get(p, 0) for p in columns}
            parts = ", ".join(f"{p} {d / 1e6:+.1f}" for p, d in diff.items())
            per_test = diff.get("loop", 0) / args.tests / 1e3
            print(f"  {name}: {parts}; in the loop {per_test:+.1f} K per test")
    if args.parts and columns:

        def loop(name: str) -> float:
            return float(results[name].get("loop", 0) / args.tests / 1e3)

        print("the loop's cost per test, by part (thousands of instructions):")
        for label, with_part, without in (
            ("pluggy's dispatch of the monitor's report hook", "no-folding", "bare"),
            ("folding the reports into the record", "no-meter", "no-folding"),
            ("the resource meter", "p3monitor", "no-meter"),
        ):
            print(f"  {label:<48}{loop(with_part) - loop(without):7.1f}")


if __name__ == "__main__":
    main()
