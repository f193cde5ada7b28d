"""Accuracy of ``p3monitor flaky`` on suites whose truth is known.

Builds one test suite whose tests behave by plan: flaky at several failure rates, flaky
only since some commit, regressions that stay, fixes, windows of breakage, always
failing, skipped, stable. Then it runs the suite many times in real pytest sessions under
the plugin (``pytest --p3monitor --p3monitor-commit SHA``, one subprocess per session,
several sessions per commit), asks ``p3monitor flaky --format json --all``, and compares
its verdicts with the truth::

    python benchmarks/flaky_simulation.py                  # 12 commits x 3 runs, seed 1
    python benchmarks/flaky_simulation.py --commits 30 --runs-per-commit 2 --seed 7
    python benchmarks/flaky_simulation.py --reruns-every 4  # every 4th session: --reruns 1

The flaky tests draw their failures at random (seeded, so a run is reproducible); the
others are a function of the commit alone. Prints precision and recall over every test,
and the false positives / negatives among the tests whose runs showed both outcomes on
one commit (the target: none).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pytest_p3monitor.store.sqlite import SQLiteStore

TEST_FILE = """
import json, os, random, pathlib
import pytest

HERE = pathlib.Path(__file__).parent
PLAN = json.loads((HERE / "plan.json").read_text())
COMMIT = int(os.environ["SIM_COMMIT"])
SESSION = int(os.environ["SIM_SESSION"])
ATTEMPTS = {}


def broken(spec):
    kind = spec["kind"]
    if kind == "failing":
        return True
    if kind in ("regression", "window", "fix"):
        return spec["start"] <= COMMIT < spec["end"]
    if kind in ("flaky", "flaky-since"):
        if COMMIT < spec["start"]:
            return False
        name = spec["name"]
        ATTEMPTS[name] = ATTEMPTS.get(name, 0) + 1  # a rerun draws again
        draw = random.Random(f"{PLAN['seed']}-{SESSION}-{name}-{ATTEMPTS[name]}").random()
        return draw < spec["rate"]
    return False


@pytest.mark.parametrize("name", sorted(PLAN["tests"]))
def test_case(name):
    spec = PLAN["tests"][name]
    if spec["kind"] == "skipped":
        pytest.skip("skipped by plan")
    assert not broken(spec), f"{name} broke"
"""


def make_plan(commits: int, seed: int) -> dict[str, Any]:
    """The truth: what each test does at each commit."""
    rng = random.Random(seed)
    tests: dict[str, dict[str, Any]] = {}

    def add(kind: str, label: str, count: int, **spec: Any) -> None:
        for i in range(count):
            name = f"{label}-{i}"
            entry = {"name": name, "kind": kind, "start": 0, "end": commits, "rate": 0.0}
            entry.update({k: v(rng) if callable(v) else v for k, v in spec.items()})
            tests[name] = entry

    for rate in (0.05, 0.1, 0.2, 0.3, 0.5):
        add("flaky", f"flaky{int(rate * 100):02d}", 5, rate=rate)
    add("flaky-since", "flaky-since", 4, rate=0.25, start=lambda r: r.randrange(2, commits - 4))
    add("regression", "regression", 6, start=lambda r: r.randrange(1, commits - 1))
    add("fix", "fix", 4, start=0, end=lambda r: r.randrange(1, commits - 1))
    for i in range(6):
        start = rng.randrange(1, commits - 5)
        add("window", f"window{i}", 1, start=start, end=start + rng.randint(1, 4))
    add("failing", "failing", 3)
    add("skipped", "skipped", 3)
    add("stable", "stable", 15)
    return {"seed": seed, "tests": tests}


def run_sessions(
    suite: Path, commits: int, per_commit: int, reruns_every: int, quiet: bool
) -> float:
    began = time.perf_counter()
    session = 0
    for commit in range(commits):
        sha = f"{commit + 1:07x}" + "0" * 33
        for _ in range(per_commit):
            session += 1
            argv = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--p3monitor",
                "--p3monitor-commit",
                sha,
                "--p3monitor-branch",
                "main",
            ]
            if reruns_every and session % reruns_every == 0:
                argv += ["--reruns", "1"]
            env = dict(os.environ, SIM_COMMIT=str(commit), SIM_SESSION=str(session))
            for name in ("P3MONITOR_DB", "P3MONITOR_COMMIT", "P3MONITOR_BRANCH"):
                env.pop(name, None)
            proc = subprocess.run(argv, cwd=suite, env=env, capture_output=True, text=True)
            if proc.returncode not in (0, 1):
                sys.exit(f"session {session} exited with {proc.returncode}:\n{proc.stdout}")
            if not quiet:
                last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
                print(f"  commit {commit:2d} session {session:3d}: {last}", flush=True)
    return time.perf_counter() - began


def verdicts(db: Path, window: int) -> list[dict[str, Any]]:
    script = Path(sys.executable).parent / "p3monitor"
    code = "import sys; from pytest_p3monitor.cli import main; sys.exit(main())"
    head = [str(script)] if script.exists() else [sys.executable, "-c", code]
    argv = [*head, "flaky", "--db", str(db), "--format", "json", "--all", "--window", str(window)]
    data: list[dict[str, Any]] = json.loads(subprocess.check_output(argv))
    return data


def both_on_one_commit(db: Path, window: int) -> set[str]:
    """Tests whose runs (in the window) passed and failed on one commit: read from the store."""
    found = set()
    with SQLiteStore(db, create=False) as store:
        for nodeid, rows in store.histories(window):
            seen: dict[str | None, set[bool]] = defaultdict(set)
            for r in rows:
                if r.outcome == "passed":
                    seen[r.commit].add(True)
                    if r.reruns:
                        seen[r.commit].add(False)
                elif r.outcome in ("failed", "error"):
                    seen[r.commit].add(False)
            if any(len(v) == 2 for c, v in seen.items() if c is not None):
                found.add(nodeid)
    return found


def ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=12)
    parser.add_argument("--runs-per-commit", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reruns-every", type=int, default=0, metavar="K")
    parser.add_argument("--keep", type=Path, default=None, help="build the suite in this folder")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.commits < 8:
        parser.error("--commits must be at least 8")

    suite = args.keep or Path(tempfile.mkdtemp(prefix="p3m-flaky-sim-"))
    suite.mkdir(parents=True, exist_ok=True)
    plan = make_plan(args.commits, args.seed)
    (suite / "plan.json").write_text(json.dumps(plan, indent=1))
    (suite / "test_sim.py").write_text(textwrap.dedent(TEST_FILE))
    (suite / "pytest.ini").write_text("[pytest]\n")
    sessions = args.commits * args.runs_per_commit
    print(
        f"{len(plan['tests'])} tests, {args.commits} commits x {args.runs_per_commit} sessions "
        f"= {sessions} pytest sessions in {suite}"
    )
    seconds = run_sessions(suite, args.commits, args.runs_per_commit, args.reruns_every, args.quiet)
    db = suite / ".p3monitor" / "results.db"
    window = max(100, sessions)
    listed = {v["nodeid"]: v for v in verdicts(db, window)}
    mixed = both_on_one_commit(db, window)

    def nodeid(name: str) -> str:
        return f"test_sim.py::test_case[{name}]"

    rows: dict[str, list[str]] = defaultdict(list)
    tp = fp = fn = 0
    mixed_fp = mixed_fn = mixed_n = 0
    undetectable = 0
    for name, spec in plan["tests"].items():
        truth = spec["kind"] in ("flaky", "flaky-since")
        verdict = listed.get(nodeid(name), {"status": "absent"})
        said = verdict["status"] == "flaky"
        label = spec["kind"] + (f" {int(spec['rate'] * 100)}%" if truth else "")
        rows[label].append(verdict["status"])
        tp += truth and said
        fp += (not truth) and said
        fn += truth and not said
        if nodeid(name) in mixed:
            mixed_n += 1
            mixed_fp += (not truth) and said
            mixed_fn += not said
        elif truth and verdict.get("failures", 0) == 0 and not verdict.get("rerun_passes"):
            undetectable += 1

    print(f"\nsessions ran in {seconds:.0f}s; verdicts of p3monitor flaky --all:\n")
    print(f"{'truth':<16} {'tests':>5}  verdicts")
    for label in sorted(rows):
        counts = Counter(rows[label])
        text = ", ".join(f"{status} {n}" for status, n in counts.most_common())
        print(f"{label:<16} {len(rows[label]):>5}  {text}")
    print(
        f"\nall tests: precision {ratio(tp, tp + fp)} ({tp} of {tp + fp} listed flaky are "
        f"flaky), recall {ratio(tp, tp + fn)} ({tp} of {tp + fn} flaky tests listed; "
        f"{undetectable} of them never failed in these sessions)"
    )
    print(
        f"tests whose runs showed both outcomes on one commit: {mixed_n}; "
        f"false positives {mixed_fp}, false negatives {mixed_fn}"
    )
    return 0 if mixed_fp == 0 and mixed_fn == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
