"""The flakiness classification: plain unit tests and hypothesis properties."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_p3monitor import flaky
from pytest_p3monitor.flaky import (
    DEFAULT_PARAMS,
    FlakyParams,
    FlakyResult,
    classify,
    classify_all,
    flaky_count_of_run,
    fold_record,
    fold_session,
    rank,
    session_evidence,
)
from pytest_p3monitor.records import HistoryRow, RunInfo, TestRecord

#: letters of the history mini-language
_OUTCOME = {
    "P": ("passed", 0),
    "F": ("failed", 0),
    "E": ("error", 0),
    "S": ("skipped", 0),
    "X": ("xfailed", 0),
    "Y": ("xpassed", 0),
    "R": ("passed", 1),  # passed on a rerun
    "G": ("failed", 2),  # failed, and failed its two reruns too
}


def history(
    *blocks: tuple[str | None, str] | tuple[str | None, str, str | None],
    t0: float = 1_700_000_000.0,
) -> list[HistoryRow]:
    """Rows from ``(commit, "PPF", [branch])`` blocks, one row per letter, oldest first."""
    rows: list[HistoryRow] = []
    for block in blocks:
        commit, letters = block[0], block[1]
        branch = block[2] if len(block) > 2 else "main"
        for letter in letters:
            outcome, reruns = _OUTCOME[letter]
            seq = len(rows) + 1
            rows.append(
                HistoryRow(
                    run_seq=seq,
                    run_id=f"run-{seq}",
                    started_at=t0 + 60.0 * seq,
                    commit=commit,
                    branch=branch,
                    outcome=outcome,
                    reruns=reruns,
                    duration_s=0.01,
                    message=f"assert failure {seq}" if outcome in ("failed", "error") else None,
                )
            )
    return rows


def one_run_per_commit(letters: str) -> list[HistoryRow]:
    return history(*((f"c{i}", letter) for i, letter in enumerate(letters)))


def verdict(*blocks: tuple[str | None, str] | tuple[str | None, str, str | None]) -> FlakyResult:
    return classify("t.py::test", history(*blocks))


class TestStatuses:
    def test_no_rows_is_insufficient_data(self) -> None:
        result = classify("t.py::test", [])
        assert result.status == "insufficient-data"
        assert (result.runs, result.failures, result.score) == (0, 0, 0.0)

    def test_always_passing(self) -> None:
        result = verdict(("a", "PPP"), ("b", "PPPP"))
        assert result.status == "passing"
        assert result.runs == 7
        assert result.failures == 0
        assert result.score == 0.0
        assert result.evidence == ()
        assert result.last_outcome == "passed"

    def test_too_few_runs(self) -> None:
        assert verdict(("a", "PP")).status == "insufficient-data"
        assert verdict(("a", "F")).status == "insufficient-data"
        assert verdict(("a", "PSSSS")).status == "insufficient-data"

    def test_only_skipped_runs(self) -> None:
        result = verdict(("a", "SSXY"))
        assert result.status == "skipped"
        assert result.runs == 0
        assert result.skipped == 4

    def test_always_failing_is_not_flaky(self) -> None:
        result = verdict(("a", "FFF"), ("b", "EFF"), ("c", "G"))
        assert result.status == "failing"
        assert result.failures == result.runs == 7
        assert result.fail_rate == 1.0
        assert result.evidence == ()

    def test_regression_that_stays(self) -> None:
        result = verdict(("a", "PPP"), ("b", "PP"), ("c", "FFF"), ("d", "FF"))
        assert result.status == "regressed"
        assert result.since_commit == "c"
        assert result.evidence == ()
        assert result.flips == 1
        assert result.last_failure == "assert failure 10"

    def test_fix_that_stays(self) -> None:
        result = verdict(("a", "FF"), ("b", "PPPP"))
        assert result.status == "fixed"
        assert result.since_commit == "b"
        assert result.evidence == ()

    def test_broken_for_a_few_commits_then_fixed(self) -> None:
        result = verdict(("a", "PPP"), ("b", "FF"), ("c", "F"), ("d", "FFF"), ("e", "PPPP"))
        assert result.status == "fixed"
        assert result.since_commit == "e"
        assert result.evidence == ()

    def test_broken_twice_with_one_run_per_commit_is_not_flaky(self) -> None:
        result = classify("t", one_run_per_commit("PPPFFPPPPFPPP"))
        assert result.status == "fixed"
        assert result.flips == 4

    def test_skipped_runs_are_no_evidence_either_way(self) -> None:
        result = verdict(("a", "PSPSP"), ("b", "SFSF"), ("c", "XFYF"))
        assert result.status == "regressed"
        assert result.skipped == 6
        assert result.runs == 7

    def test_xfailed_and_xpassed_do_not_make_a_test_flaky(self) -> None:
        assert verdict(("a", "XYXYXYXY")).status == "skipped"
        assert verdict(("a", "PXPYP")).status == "passing"


class TestEvidence:
    def test_pass_on_rerun_is_flaky_even_in_one_run(self) -> None:
        result = verdict(("a", "R"))
        assert result.status == "flaky"
        assert result.evidence == ("rerun",)
        assert result.rerun_passes == 1
        assert result.flaky_commits == ("a",)
        assert result.score == 1.0
        assert result.failures == 0

    def test_failing_through_every_rerun_is_no_evidence(self) -> None:
        result = verdict(("a", "GGG"))
        assert result.status == "failing"
        assert result.evidence == ()

    def test_both_outcomes_on_one_commit(self) -> None:
        result = verdict(("a", "PPP"), ("b", "PFP"), ("c", "PP"))
        assert result.status == "flaky"
        assert result.evidence == ("same-commit",)
        assert result.flaky_commits == ("b",)
        assert result.failures == 1
        assert result.fail_rate == pytest.approx(1 / 8)
        assert result.flips == 2
        # first seen when the commit showed its second outcome, last at the latest flip
        rows = history(("a", "PPP"), ("b", "PFP"), ("c", "PP"))
        assert result.first_seen_flaky == rows[4].started_at
        assert result.last_seen_flaky == rows[5].started_at

    def test_same_commit_in_runs_far_apart(self) -> None:
        result = verdict(("a", "P"), ("b", "P"), ("a", "F"), ("b", "P"))
        assert result.status == "flaky"
        assert result.flaky_commits == ("a",)

    def test_skipped_run_between_the_outcomes_of_one_commit(self) -> None:
        result = verdict(("a", "PPSSF"), ("b", "PP"))
        assert result.evidence == ("same-commit",)

    def test_keeps_flipping_across_commits(self) -> None:
        result = classify("t", one_run_per_commit("PPFPPFPPPFPP"))
        assert result.status == "flaky"
        assert result.evidence == ("intermittent",)
        assert result.flaky_commits == ()
        rows = one_run_per_commit("PPFPPFPPPFPP")
        assert result.first_seen_flaky == rows[9].started_at

    def test_branches_interleaved_are_not_flips(self) -> None:
        # main keeps passing; a feature branch broke the test on every push
        blocks: list[tuple[str | None, str, str | None]] = []
        for i in range(6):
            blocks.append((f"main{i}", "P", "main"))
            blocks.append((f"feat{i}", "F", "feature"))
        result = verdict(*blocks)
        assert result.evidence == ()
        assert result.status == "regressed"  # the latest run (on feature) failed

    def test_without_commits_only_flips_count(self) -> None:
        result = verdict((None, "PFPFPFP"))
        assert result.evidence == ("intermittent",)
        assert result.flaky_commits == ()
        assert verdict((None, "PPPFFFF")).status == "regressed"

    def test_evidence_is_listed_strongest_first(self) -> None:
        result = classify("t", history(("a", "PFR")) + one_run_per_commit("FPFPFP")[0:6])
        assert result.evidence == ("rerun", "same-commit", "intermittent")

    def test_last_failure_message_of_the_latest_failure(self) -> None:
        result = verdict(("a", "PFPFPP"))
        assert result.last_failure == "assert failure 4"


class TestScore:
    def test_alternating_outcomes_score_near_one(self) -> None:
        result = verdict(("a", "PF" * 30))
        assert 0.95 < result.score <= 1.0

    def test_recent_flips_weigh_more(self) -> None:
        old = verdict(("a", "PFPFP" + "P" * 40))
        recent = verdict(("a", "P" * 40 + "PFPFP"))
        assert old.flips == recent.flips == 4
        assert recent.score > 2 * old.score

    def test_more_flips_score_higher(self) -> None:
        few = verdict(("a", "PPPPPPPPPF"), ("a", "P" * 10))
        many = verdict(("a", "PPFPPFPPFP"), ("a", "P" * 10))
        assert many.score > few.score > 0

    def test_params_change_the_half_life(self) -> None:
        rows = history(("a", "PF" + "P" * 30))
        slow = classify("t", rows, FlakyParams(half_life=1000.0))
        fast = classify("t", rows, FlakyParams(half_life=2.0))
        assert slow.score > fast.score
        assert slow.score == pytest.approx(2 / 32, rel=0.05)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [({"half_life": 0.0}, "half_life"), ({"min_episodes": 1}, "min_episodes")],
    )
    def test_bad_params(self, kwargs: dict[str, float], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            FlakyParams(**kwargs)  # type: ignore[arg-type]


class TestFinalStreak:
    """A flaky test that really breaks (or is really fixed) must not stay ``flaky``."""

    def test_flaky_then_broken_for_good_is_regressed(self) -> None:
        blocks = [("a", "PFPPFPPP"), *((f"b{i}", "FF") for i in range(8))]
        result = verdict(*blocks)
        assert result.status == "regressed"
        assert result.since_commit == "b0"
        assert "same-commit" in result.evidence  # the evidence is still reported

    def test_a_short_failing_streak_stays_flaky(self) -> None:
        result = verdict(("a", "PFPPFPPP"), ("b", "FF"))
        assert result.status == "flaky"

    def test_streak_on_a_commit_that_also_passed_stays_flaky(self) -> None:
        result = verdict(("a", "PFPP"), ("b", "P" + "F" * 30))
        assert result.status == "flaky"

    def test_flaky_then_fixed_for_good(self) -> None:
        blocks = [("a", "PFFPFPFFP"), *((f"b{i}", "PPPP") for i in range(10))]
        result = verdict(*blocks)
        assert result.status == "fixed"
        assert result.since_commit == "b0"

    def test_rarely_flaky_test_needs_a_long_clean_streak(self) -> None:
        # one failure in 20 runs: 30 clean passes are no proof of a fix
        blocks = [("a", "P" * 10 + "F" + "P" * 9), *((f"b{i}", "PPP") for i in range(10))]
        assert verdict(*blocks).status == "flaky"

    def test_too_little_before_the_streak(self) -> None:
        blocks = [("a", "R"), *((f"b{i}", "PPPPP") for i in range(20))]
        assert verdict(*blocks).status == "flaky"

    def test_rerun_inside_the_streak_breaks_it(self) -> None:
        blocks = [("a", "PFPFPF"), *((f"b{i}", "PPRP") for i in range(10))]
        assert verdict(*blocks).status == "flaky"


class TestFolding:
    run = RunInfo(run_id="now", started_at=1_800_000_000.0, commit="c9", branch="main")

    def test_fold_appends_this_session(self) -> None:
        rows = history(("c9", "PP"))
        folded = fold_record(rows, TestRecord("t", outcome="failed", message="boom"), self.run, 10)
        assert len(folded) == 3
        assert folded[:2] == rows
        last = folded[-1]
        assert (last.run_id, last.commit, last.outcome, last.message) == (
            "now",
            "c9",
            "failed",
            "boom",
        )
        assert last.run_seq == rows[-1].run_seq + 1
        assert classify("t", folded).evidence == ("same-commit",)

    def test_fold_keeps_the_window(self) -> None:
        rows = history(("a", "PPPPP"))
        folded = fold_record(rows, TestRecord("t"), self.run, 3)
        assert [r.run_id for r in folded] == ["run-4", "run-5", "now"]
        assert fold_record(rows, TestRecord("t"), self.run, 0) == []

    def test_fold_is_a_no_op_when_the_run_is_stored(self) -> None:
        rows = [*history(("a", "PP")), flaky.session_row(TestRecord("t"), self.run, 9)]
        assert fold_record(rows, TestRecord("t", outcome="failed"), self.run, 10) == rows

    def test_fold_session_covers_new_tests(self) -> None:
        folded = fold_session(
            {"old": history(("a", "PPP"))},
            [TestRecord("old", outcome="passed", reruns=1), TestRecord("new")],
            self.run,
            100,
        )
        assert set(folded) == {"old", "new"}
        assert len(folded["old"]) == 4
        assert len(folded["new"]) == 1
        assert classify("old", folded["old"]).evidence == ("rerun",)


class TestSessionEvidence:
    run = RunInfo(run_id="now", started_at=1_800_000_000.0, commit="a", branch="main")

    def test_rerun_pass(self) -> None:
        record = TestRecord("t", outcome="passed", reruns=2)
        assert session_evidence(record, [], self.run) == ("rerun",)

    def test_other_outcome_on_the_same_commit(self) -> None:
        rows = history(("a", "PP"), ("b", "F"))
        assert session_evidence(TestRecord("t", outcome="failed"), rows, self.run) == (
            "same-commit",
        )
        assert session_evidence(TestRecord("t", outcome="passed"), rows, self.run) == ()

    def test_own_run_and_skips_are_ignored(self) -> None:
        rows = [*history(("a", "SX")), flaky.session_row(TestRecord("t"), self.run, 3)]
        assert session_evidence(TestRecord("t", outcome="failed"), rows, self.run) == ()
        skipped = TestRecord("t", outcome="skipped")
        assert session_evidence(skipped, history(("a", "F")), self.run) == ()

    def test_unknown_commit(self) -> None:
        run = RunInfo(run_id="now", started_at=0.0, commit=None)
        rows = history((None, "PP"))
        assert session_evidence(TestRecord("t", outcome="failed"), rows, run) == ()


class TestListing:
    def test_rank_puts_flaky_first_by_score(self) -> None:
        results = list(
            classify_all(
                [
                    ("pass", history(("a", "PPPP"))),
                    ("mild", history(("a", "PPPPPPPF"))),
                    ("wild", history(("a", "PFPFPFPF"))),
                    ("broken", history(("a", "PPP"), ("b", "FF"))),
                ]
            )
        )
        assert [r.nodeid for r in rank(results)] == ["wild", "mild", "broken", "pass"]

    def test_to_dict_is_json(self) -> None:
        data = verdict(("a", "PFPP")).to_dict()
        assert json.loads(json.dumps(data)) == data
        assert {"nodeid", "status", "score", "runs", "failures"} <= set(data)
        assert data["status"] == "flaky"
        assert data["flaky_commits"] == ["a"]
        assert str(data["first_seen_flaky"]).endswith("Z")
        assert data["fail_rate"] == 0.25


# -- properties ------------------------------------------------------------------------------

_commits = st.sampled_from(["a", "b", "c", "d", None])
_rows = st.lists(
    st.tuples(_commits, st.sampled_from(list(_OUTCOME)), st.sampled_from(["main", "dev"])),
    max_size=60,
)


def _build(spec: Sequence[tuple[str | None, str, str]]) -> list[HistoryRow]:
    return history(*((commit, letter, branch) for commit, letter, branch in spec))


@given(_rows)
def test_figures_stay_in_range(spec: list[tuple[str | None, str, str]]) -> None:
    rows = _build(spec)
    result = classify("t", rows)
    assert 0.0 <= result.score <= 1.0
    assert 0.0 <= result.fail_rate <= 1.0
    assert result.runs + result.skipped == len(rows)
    assert 0 <= result.failures <= result.runs
    assert 0 <= result.flips <= max(0, result.runs - 1)
    assert result.rerun_passes <= result.runs - result.failures
    assert result.status in flaky.STATUSES
    assert (result.status == "flaky") <= bool(result.evidence)
    assert (result.first_seen_flaky is None) == (not result.evidence)
    if result.first_seen_flaky is not None:
        assert result.last_seen_flaky is not None
        assert result.first_seen_flaky <= result.last_seen_flaky


@given(_rows, st.data())
def test_no_evidence_runs_change_nothing(
    spec: list[tuple[str | None, str, str]], data: st.DataObject
) -> None:
    with_noise = list(spec)
    for _ in range(data.draw(st.integers(0, 10))):
        at = data.draw(st.integers(0, len(with_noise)))
        noise = data.draw(st.tuples(_commits, st.sampled_from("SXY"), st.just("main")))
        with_noise.insert(at, noise)
    plain, noisy = classify("t", _build(spec)), classify("t", _build(with_noise))
    if plain.runs == 0:  # nothing but noise: "skipped" rather than "insufficient-data"
        assert noisy.status in ("skipped", "insufficient-data")
        noisy = noisy._replace(status=plain.status)
    assert (noisy.status, noisy.runs, noisy.failures, noisy.flips, noisy.evidence) == (
        plain.status,
        plain.runs,
        plain.failures,
        plain.flips,
        plain.evidence,
    )
    assert noisy.score == pytest.approx(plain.score)


@given(_rows)
def test_both_outcomes_on_a_commit_is_always_evidence(
    spec: list[tuple[str | None, str, str]],
) -> None:
    rows = _build(spec)
    result = classify("t", rows)
    by_commit: dict[str, set[bool]] = {}
    for r in rows:
        if r.commit is not None and r.outcome in ("passed", "failed", "error"):
            by_commit.setdefault(r.commit, set()).add(r.outcome == "passed")
    mixed = {c for c, seen in by_commit.items() if len(seen) == 2}
    rerun = {r.commit for r in rows if r.outcome == "passed" and r.reruns and r.commit}
    assert set(result.flaky_commits) == mixed | rerun
    if mixed:
        assert "same-commit" in result.evidence
    if rerun:
        assert "rerun" in result.evidence
    if mixed or rerun:
        assert result.status in ("flaky", "regressed", "fixed")


@given(
    st.lists(st.tuples(st.booleans(), st.integers(1, 4)), min_size=1, max_size=20),
    st.integers(0, 2),
)
def test_outcome_decided_by_the_commit_with_few_changes_is_never_flaky(
    blocks: list[tuple[bool, int]], changes: int
) -> None:
    """Commits in order, each run 1-4 times with one outcome; the outcome changes at most
    twice (a regression, a fix, or a window of breakage): never flaky."""
    switch_at = sorted({len(blocks) * k // (changes + 1) for k in range(1, changes + 1)})
    state = blocks[0][0]
    spec: list[tuple[str | None, str]] = []
    for i, (_, repeat) in enumerate(blocks):
        if i in switch_at:
            state = not state
        spec.append((f"c{i}", ("F" if state else "P") * repeat))
    result = verdict(*spec)
    assert result.evidence == ()
    assert result.status != "flaky"


@given(_rows)
def test_fast_path_agrees_with_the_full_pass(spec: list[tuple[str | None, str, str]]) -> None:
    rows = [r for r in _build(spec) if r.outcome not in ("failed", "error") and not r.reruns]
    fast = classify("t", rows)
    full = flaky._classify_slow("t", rows, DEFAULT_PARAMS) if rows else fast
    assert fast == full


@given(_rows, st.integers(1, 30), st.sampled_from(["passed", "failed", "skipped"]))
@settings(max_examples=50)
def test_fold_record_keeps_window_and_ends_with_the_session(
    spec: list[tuple[str | None, str, str]], window: int, outcome: str
) -> None:
    run = RunInfo(run_id="now", started_at=1.0, commit="a")
    rows = _build(spec)
    folded = fold_record(rows, TestRecord("t", outcome=outcome), run, window)  # type: ignore[arg-type]
    assert len(folded) == min(window, len(rows) + 1)
    assert folded[-1].run_id == "now"
    assert folded[-1].outcome == outcome
    assert folded[:-1] == rows[len(rows) - len(folded) + 1 :]


def test_flaky_count_of_run_counts_the_runs_own_tests() -> None:
    """flaky_rate is a share of one run's tests: a flaky test without a result in that run
    is not one of them."""
    flaky = history(("c1", "PFPFPPFPPFPP"))  # run-1 .. run-12
    assert classify("t::flaky", flaky).is_flaky
    short = flaky[:6]  # the same flips, but no result in run-12
    histories = [("t::flaky", flaky), ("t::gone", short)]
    assert classify("t::gone", short).is_flaky
    assert flaky_count_of_run("run-12", histories) == 1
    assert flaky_count_of_run("run-3", histories) == 2
    assert flaky_count_of_run("run-99", histories) == 0
