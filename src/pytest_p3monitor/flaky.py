"""Flakiness from history: pure functions over the store's outcome rows.

A test's history is its :class:`~pytest_p3monitor.records.HistoryRow` list, oldest first.
Only ``passed`` (a success) and ``failed`` / ``error`` (a failure) are evidence; skipped,
xfailed and xpassed runs say nothing about flakiness and are only counted.

Evidence that a test is flaky, strongest first:

``rerun``
    it failed and then passed on a rerun inside one session (``reruns > 0`` with a final
    pass): both outcomes, same code, same machine, minutes apart;
``same-commit``
    it both passed and failed on one commit (in different runs);
``intermittent``
    its outcome keeps flipping across commits in a way no single change explains: it
    failed in at least ``min_episodes`` separate spells, with passes between them, on one
    branch.

Not flaky: an outcome that changed once together with the commit and stayed
(``regressed`` / ``fixed``), a test broken for a few commits and then fixed (``fixed``), a
test that fails on every run (``failing``).

A flaky test whose latest runs are a streak that its own flakiness can hardly explain (all
failing, or all cleanly passing, on commits that never showed the other outcome; chance
below ``tail_probability``) is ``regressed`` or ``fixed`` instead: flakiness must not hide
a real break (quarantine trusts the status), nor outlive a real fix.

The score ranks flaky tests: the flip rate over the window with recent runs weighted more
(an exponentially weighted flip rate, after "Modeling and Ranking Flaky Tests at Apple",
Kowalczyk et al., ICSE-SEIP 2020). A run counts as a flip when its outcome differs from the
test's previous run, or when it passed only on a rerun (it flipped inside the session).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final, Literal, NamedTuple

from .records import FAILING_OUTCOMES, HistoryRow, RunInfo, TestRecord

__all__ = [
    "DEFAULT_PARAMS",
    "EVIDENCE",
    "STATUSES",
    "Evidence",
    "FlakyParams",
    "FlakyResult",
    "Status",
    "classify",
    "classify_all",
    "fold_record",
    "fold_session",
    "rank",
    "session_evidence",
    "session_row",
]

Status = Literal[
    "flaky", "failing", "regressed", "fixed", "passing", "insufficient-data", "skipped"
]
#: Every status, in the order a listing groups them.
STATUSES: tuple[Status, ...] = (
    "flaky",
    "regressed",
    "failing",
    "fixed",
    "passing",
    "insufficient-data",
    "skipped",
)
Evidence = Literal["rerun", "same-commit", "intermittent"]
#: Kinds of evidence, strongest first.
EVIDENCE: tuple[Evidence, ...] = ("rerun", "same-commit", "intermittent")

_PASSED = "passed"
_FAILED = "failed"
_ERROR = "error"
_FAILING = FAILING_OUTCOMES


# The classes here are plain or named tuples, not dataclasses: a session imports this
# module at configure time, where each dataclass would cost about 0.75 ms to create.


class FlakyParams:
    """The knobs of the classification. The defaults are what the plugin and CLI use.

    ``half_life``: runs after which a run's weight in the score has halved.
    ``min_runs``: fewer runs with an outcome than this, and no flaky evidence:
    ``insufficient-data``.
    ``min_episodes``: separate failure spells on one branch that make a test
    ``intermittent``.
    ``tail_probability``: a final streak less likely than this under the test's own
    flakiness is a change.
    ``min_runs_before_tail``: runs needed before the final streak to estimate the test's
    flakiness.
    """

    __slots__ = (
        "decay",
        "half_life",
        "min_episodes",
        "min_runs",
        "min_runs_before_tail",
        "tail_probability",
    )

    def __init__(
        self,
        half_life: float = 25.0,
        min_runs: int = 3,
        min_episodes: int = 3,
        tail_probability: float = 1e-4,
        min_runs_before_tail: int = 5,
    ) -> None:
        if not half_life > 0:
            raise ValueError(f"half_life must be positive, not {half_life!r}")
        if min_episodes < 2:
            raise ValueError(f"min_episodes must be at least 2, not {min_episodes!r}")
        self.half_life: Final = half_life
        self.min_runs: Final = min_runs
        self.min_episodes: Final = min_episodes
        self.tail_probability: Final = tail_probability
        self.min_runs_before_tail: Final = min_runs_before_tail
        #: a run's weight, relative to the next one's, in the score
        self.decay: Final = 0.5 ** (1.0 / half_life)


DEFAULT_PARAMS = FlakyParams()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


class FlakyResult(NamedTuple):
    """The verdict on one test over its window of history."""

    nodeid: str
    status: Status
    #: weighted flip rate, 0..1, recent runs weighing more
    score: float
    #: failures / runs
    fail_rate: float
    #: runs with an outcome (passed, failed or error)
    runs: int
    #: runs whose final outcome was failed or error
    failures: int
    #: outcome changes between consecutive runs
    flips: int = 0
    #: runs that passed only on a rerun
    rerun_passes: int = 0
    #: runs that were no evidence (skipped, xfailed, xpassed)
    skipped: int = 0
    evidence: tuple[Evidence, ...] = ()
    #: commits that showed both outcomes (across runs, or within one run through a rerun)
    flaky_commits: tuple[str, ...] = ()
    first_seen_flaky: float | None = None
    last_seen_flaky: float | None = None
    last_failure: str | None = None
    last_outcome: str | None = None
    last_run: float | None = None
    #: for regressed / fixed (and failing after passes): the commit the current state began
    since_commit: str | None = None

    @property
    def is_flaky(self) -> bool:
        return self.status == "flaky"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; times as ISO 8601 (UTC)."""
        return {
            "nodeid": self.nodeid,
            "status": self.status,
            "score": round(self.score, 4),
            "fail_rate": round(self.fail_rate, 4),
            "runs": self.runs,
            "failures": self.failures,
            "flips": self.flips,
            "rerun_passes": self.rerun_passes,
            "skipped": self.skipped,
            "evidence": list(self.evidence),
            "flaky_commits": list(self.flaky_commits),
            "first_seen_flaky": _iso(self.first_seen_flaky),
            "last_seen_flaky": _iso(self.last_seen_flaky),
            "last_failure": self.last_failure,
            "last_outcome": self.last_outcome,
            "last_run": _iso(self.last_run),
            "since_commit": self.since_commit,
        }


def classify(
    nodeid: str, rows: Sequence[HistoryRow], params: FlakyParams = DEFAULT_PARAMS
) -> FlakyResult:
    """Classify one test from its rows (oldest first; the caller chose the window).

    O(len(rows)) with small constants: the common case, a test that never failed and
    never needed a rerun, is decided by a few C-level scans.
    """
    if not rows:
        return FlakyResult(nodeid, "insufficient-data", 0.0, 0.0, 0, 0)
    outcomes = [r.outcome for r in rows]
    if _FAILED not in outcomes and _ERROR not in outcomes and not any(r.reruns for r in rows):
        return _never_failed(nodeid, rows, outcomes, params)
    return _classify_slow(nodeid, rows, params)


def _never_failed(
    nodeid: str, rows: Sequence[HistoryRow], outcomes: list[str], params: FlakyParams
) -> FlakyResult:
    runs = outcomes.count(_PASSED)
    status: Status
    if runs == 0:
        status = "skipped"
    elif runs < params.min_runs:
        status = "insufficient-data"
    else:
        status = "passing"
    last = rows[-1]
    return FlakyResult(
        nodeid,
        status,
        0.0,
        0.0,
        runs,
        0,
        skipped=len(rows) - runs,
        last_outcome=last.outcome,
        last_run=last.started_at,
    )


def _classify_slow(nodeid: str, rows: Sequence[HistoryRow], params: FlakyParams) -> FlakyResult:
    decay = params.decay
    min_episodes = params.min_episodes
    runs = failures = flips = rerun_passes = skipped = 0
    weighted = total = 0.0
    prev_fail: bool | None = None
    commit_last: dict[str, bool] = {}  # commit -> did its latest run fail
    flaky_commits: dict[str, None] = {}  # ordered set: both outcomes seen on the commit
    branch_last: dict[str | None, bool] = {}
    episodes: dict[str | None, int] = {}
    ev_rerun = ev_commit = ev_intermittent = False
    first_seen: float | None = None
    last_seen: float | None = None
    last_failure: str | None = None
    evidence_rows: list[HistoryRow] = []

    for r in rows:
        outcome = r.outcome
        if outcome == _PASSED:
            fail = False
        elif outcome in _FAILING:
            fail = True
        else:
            skipped += 1
            continue
        runs += 1
        evidence_rows.append(r)
        commit = r.commit
        seen = False
        flip = 0
        if fail:
            failures += 1
            if r.message:
                last_failure = r.message
        elif r.reruns:
            rerun_passes += 1
            flip = 1
            ev_rerun = seen = True
            if r.message:
                last_failure = r.message
            if commit is not None:
                flaky_commits[commit] = None
        if prev_fail is not None and fail is not prev_fail:
            flips += 1
            flip = 1
        prev_fail = fail
        weighted = weighted * decay + flip
        total = total * decay + 1.0
        if commit is not None:
            before = commit_last.get(commit)
            if before is not None and before is not fail:
                flaky_commits[commit] = None
                ev_commit = seen = True
            commit_last[commit] = fail
        branch = r.branch
        if fail and not branch_last.get(branch, False):
            spells = episodes.get(branch, 0) + 1
            episodes[branch] = spells
            if spells >= min_episodes:
                ev_intermittent = seen = True
        branch_last[branch] = fail
        if seen:
            if first_seen is None:
                first_seen = r.started_at
            last_seen = r.started_at

    last = rows[-1]
    evidence = tuple(
        kind
        for kind, found in zip(EVIDENCE, (ev_rerun, ev_commit, ev_intermittent), strict=True)
        if found
    )
    score = min(1.0, weighted / total) if total else 0.0
    fail_rate = failures / runs if runs else 0.0
    status: Status
    since: str | None = None
    if evidence:
        status, since = _tail_verdict(evidence_rows, failures, rerun_passes, flaky_commits, params)
    elif runs == 0:
        status = "skipped"
    elif runs < params.min_runs:
        status = "insufficient-data"
    elif failures == 0:
        status = "passing"
    elif failures == runs:
        status = "failing"
    else:
        status = "regressed" if prev_fail else "fixed"
        since = _streak_start(evidence_rows).commit
    return FlakyResult(
        nodeid,
        status,
        score,
        fail_rate,
        runs,
        failures,
        flips,
        rerun_passes,
        skipped,
        evidence,
        tuple(flaky_commits),
        first_seen,
        last_seen,
        last_failure,
        last.outcome,
        last.started_at,
        since,
    )


def _is_fail(row: HistoryRow) -> bool:
    return row.outcome != _PASSED


def _streak_start(evidence_rows: list[HistoryRow]) -> HistoryRow:
    """The first row of the final run of equal outcomes."""
    last_fail = _is_fail(evidence_rows[-1])
    i = len(evidence_rows) - 1
    while i > 0 and _is_fail(evidence_rows[i - 1]) is last_fail:
        i -= 1
    return evidence_rows[i]


def _tail_verdict(
    evidence_rows: list[HistoryRow],
    failures: int,
    rerun_passes: int,
    flaky_commits: Mapping[str, None],
    params: FlakyParams,
) -> tuple[Status, str | None]:
    """``flaky``, unless the final streak is a change the flakiness cannot explain.

    The final streak is the latest run of failures, or of clean passes (no rerun), on
    commits that never showed both outcomes, starting where the commit changed. Its chance under
    the test's flakiness before it (a Laplace-smoothed rate) must be below
    ``params.tail_probability``.
    """
    n = len(evidence_rows)
    tail_fail = _is_fail(evidence_rows[-1])
    length = 0
    i = n - 1
    while i >= 0:
        r = evidence_rows[i]
        fail = _is_fail(r)
        if fail is not tail_fail or (not fail and r.reruns):
            break
        if r.commit is not None and r.commit in flaky_commits:
            break  # the streak counts from the first commit that never flaked
        length += 1
        i -= 1
    before = n - length
    if length == 0 or before < params.min_runs_before_tail:
        return "flaky", None
    first = evidence_rows[i + 1]
    previous = evidence_rows[i]
    if first.commit is not None and first.commit == previous.commit:
        return "flaky", None  # no change of commit where the streak began
    if tail_fail:
        rate = (failures - length + 1) / (before + 2)
        chance = rate**length
    else:
        rate = (failures + rerun_passes + 1) / (before + 2)
        chance = (1.0 - rate) ** length
    if chance < params.tail_probability:
        return ("regressed" if tail_fail else "fixed"), first.commit
    return "flaky", None


def classify_all(
    histories: Iterable[tuple[str, Sequence[HistoryRow]]],
    params: FlakyParams = DEFAULT_PARAMS,
) -> Iterator[FlakyResult]:
    """Classify a stream of ``(nodeid, rows)`` (as ``Store.histories()`` yields them)."""
    for nodeid, rows in histories:
        yield classify(nodeid, rows, params)


def flaky_count_of_run(
    run_id: str,
    histories: Iterable[tuple[str, Sequence[HistoryRow]]],
    params: FlakyParams = DEFAULT_PARAMS,
) -> int:
    """How many of one run's tests are flaky: those of ``histories`` with a result in the run
    (``flaky_rate`` is a share of the run's own tests, not of the store's)."""
    own = ((n, rows) for n, rows in histories if any(row.run_id == run_id for row in rows))
    return sum(1 for r in classify_all(own, params) if r.is_flaky)


def rank(results: Iterable[FlakyResult]) -> list[FlakyResult]:
    """Flaky tests first, highest score first; then the others by status, score, nodeid."""
    order = {status: i for i, status in enumerate(STATUSES)}
    return sorted(results, key=lambda r: (order[r.status], -r.score, -r.fail_rate, r.nodeid))


# -- the current session -------------------------------------------------------------------


def session_row(record: TestRecord, run: RunInfo, run_seq: int) -> HistoryRow:
    """The row the store will hold for ``record`` once this session's run is saved."""
    return HistoryRow(
        run_seq=run_seq,
        run_id=run.run_id,
        started_at=run.started_at,
        commit=run.commit,
        branch=run.branch,
        outcome=record.outcome,
        reruns=record.reruns,
        duration_s=record.duration_s,
        message=record.message,
    )


def fold_record(
    rows: Sequence[HistoryRow], record: TestRecord, run: RunInfo, window: int
) -> list[HistoryRow]:
    """``rows`` with this session's result of the test appended, cut to ``window`` rows.

    A no-op (apart from the cut) when the store already holds this run.
    """
    if window <= 0:
        return []
    if any(r.run_id == run.run_id for r in rows):
        return list(rows[-window:])
    seq = rows[-1].run_seq + 1 if rows else 1
    return [*rows, session_row(record, run, seq)][-window:]


def fold_session(
    histories: Mapping[str, Sequence[HistoryRow]],
    records: Iterable[TestRecord],
    run: RunInfo,
    window: int,
) -> dict[str, list[HistoryRow]]:
    """Each record's history (empty for a new test) with the session's result folded in."""
    return {
        record.nodeid: fold_record(histories.get(record.nodeid, ()), record, run, window)
        for record in records
    }


def session_evidence(
    record: TestRecord, history: Sequence[HistoryRow], run: RunInfo
) -> tuple[Evidence, ...]:
    """Flaky evidence this session's result adds to the test's stored ``history``.

    ``rerun`` when it passed on a rerun; ``same-commit`` when its outcome differs from an
    earlier run of the same commit (another run of this session's ``run_id`` is ignored).
    """
    found: list[Evidence] = []
    if record.reruns and record.outcome == _PASSED:
        found.append("rerun")
    fail = _fails(record.outcome)
    if run.commit is not None and fail is not None:
        other = not fail
        if any(
            r.commit == run.commit and r.run_id != run.run_id and _fails(r.outcome) is other
            for r in history
        ):
            found.append("same-commit")
    return tuple(found)


def _fails(outcome: str) -> bool | None:
    """True for a failure, False for a pass, None for no evidence."""
    if outcome == _PASSED:
        return False
    if outcome in _FAILING:
        return True
    return None
