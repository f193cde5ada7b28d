"""Flakiness in the session: known-flaky failures, new evidence, quarantine and reruns.

The feature plugin behind ``p3monitor_flaky_window``, ``p3monitor_flaky_branch``,
``p3monitor_quarantine`` and ``p3monitor_rerun_flaky``. The verdicts come from
:mod:`pytest_p3monitor.flaky` (pure functions over the store's history).

A session pays for history only where it needs it. At the end, the store is asked once for
the tests with a failure or a rerun in the window (``Store.failing_histories``; a partial
index holds those results): they are the only tests that can be flaky, so this gives the
session's known-flaky tests (``report["flaky"]``) however long the history is. Then the
tests of this session that failed or were rerun have their own history read (one query
each) and are classified twice: from the store alone (already known flaky?) and with this
session folded in (what the test is now, and which evidence this session added). With
``p3monitor_rerun_flaky`` the flaky tests must be known before they run: they are read at
collection (on the xdist controller, once, and sent to the workers in ``workerinput``).

Quarantine (``p3monitor_quarantine = true``): when every failure of the session is a test
classified flaky before this session (and still flaky with it), the exit status goes from
1 to 0. The failures still run, are stored, shown by pytest, and listed as quarantined. A
failing, regressed or new test is never quarantined.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from .config import boolean, non_negative_int, parse_with, setting
from .flaky import (
    Evidence,
    FlakyResult,
    classify,
    classify_all,
    fold_record,
    rank,
    session_evidence,
)
from .records import FAILING_OUTCOMES, HistoryRow, TestRecord
from .store import StoreError
from .store.sql import stored_nodeid

if TYPE_CHECKING:
    from .session import MonitorSession

__all__ = ["DEFAULT_WINDOW", "WORKERINPUT_KEY", "FlakyPlugin", "SessionVerdict"]

DEFAULT_WINDOW = 100
#: ``workerinput`` key carrying the flaky node ids from the xdist controller to workers.
WORKERINPUT_KEY = "p3monitor_flaky_nodeids"
#: Up to this many tests, their histories are read one query each; beyond, in one scan.
PER_TEST_QUERIES = 300
#: Tests listed by name in each terminal summary line; the rest are counted.
SHOWN = 10
#: What makes a test of the session judged: a failing outcome, or a rerun.
_JUDGED = FAILING_OUTCOMES | {"rerun"}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


class SessionVerdict:
    """One test of this session that failed or was rerun, judged with its history.

    A plain class, not a dataclass: a session imports this module at configure time, where
    a dataclass would cost about 0.75 ms to create.
    """

    __slots__ = ("after", "before", "new_evidence", "quarantined", "record")

    def __init__(
        self,
        record: TestRecord,
        before: FlakyResult,
        after: FlakyResult,
        new_evidence: tuple[Evidence, ...],
        quarantined: bool = False,
    ) -> None:
        self.record = record
        #: from the stored history alone
        self.before = before
        #: with this session's result folded in
        self.after = after
        #: evidence this session added (``rerun``, ``same-commit``)
        self.new_evidence = new_evidence
        self.quarantined = quarantined

    @property
    def failed(self) -> bool:
        return self.record.outcome in FAILING_OUTCOMES

    @property
    def known_flaky(self) -> bool:
        return self.before.status == "flaky"

    def to_dict(self) -> dict[str, Any]:
        data = self.after.to_dict()
        data["known_flaky"] = self.known_flaky
        data["session"] = {
            "outcome": self.record.outcome,
            "reruns": self.record.reruns,
            "new_evidence": list(self.new_evidence),
            "quarantined": self.quarantined,
        }
        return data


class FlakyPlugin:
    """Registered as ``p3monitor-flaky`` when ``--p3monitor`` is on."""

    def __init__(self, config: pytest.Config, monitor: MonitorSession) -> None:
        self.config = config
        self.monitor = monitor
        self.window = parse_with(
            setting(config, "p3monitor_flaky_window"),
            positive_int,
            DEFAULT_WINDOW,
            "a whole number of runs, at least 1",
        )
        self.branch = setting(config, "p3monitor_flaky_branch").value or None
        self.quarantine = parse_with(
            setting(config, "p3monitor_quarantine"), boolean, False, "true or false"
        )
        self.rerun_flaky = parse_with(
            setting(config, "p3monitor_rerun_flaky"),
            non_negative_int,
            0,
            "a whole number of reruns (0: off)",
        )
        self.verdicts: dict[str, SessionVerdict] = {}
        #: the session's records that failed or were rerun, once judged (in their order)
        self.judged: list[TestRecord] | None = None
        #: flaky tests known from history before this session (read for reruns)
        self.known: dict[str, FlakyResult] | None = None
        #: tests given reruns (in this process; on the xdist controller, see ``sent``)
        self.marked: list[str] = []
        self.sent = False
        self.exit_status_changed = False
        self.stopped_early = False  # -x or --maxfail ended the session before every test ran
        self._collection_failed = False
        if self.rerun_flaky and not config.pluginmanager.hasplugin("rerunfailures"):
            monitor.warn(
                f"p3monitor_rerun_flaky = {self.rerun_flaky} needs pytest-rerunfailures, which "
                "is not installed: flaky tests are not rerun. `pip install "
                "pytest-rerunfailures`, or set p3monitor_rerun_flaky = 0."
            )
            self.rerun_flaky = 0

    # -- history -------------------------------------------------------------------------------
    def _histories(self, nodeids: Sequence[str]) -> dict[str, list[HistoryRow]]:
        """The stored history of ``nodeids`` (missing ones have none); {} without a store."""
        store = self.monitor.open_store()
        if store is None or not nodeids:
            return {}
        try:
            if len(nodeids) <= PER_TEST_QUERIES:
                return dict(store.histories(self.window, self.branch, nodeids))
            wanted: dict[str, list[str]] = {}  # as stored -> as asked for
            for nodeid in nodeids:
                wanted.setdefault(stored_nodeid(nodeid), []).append(nodeid)
            return {
                nodeid: rows
                for stored, rows in store.histories(self.window, self.branch)
                for nodeid in wanted.get(stored, ())
            }
        except StoreError as exc:
            self.monitor.store_failed(exc)
            return {}

    def known_flaky(self) -> dict[str, FlakyResult]:
        """Tests classified flaky from the store alone (before this session); read once.

        Only a test with a failure or a rerun in the window can be flaky, so the store is
        asked for those alone (``failing_histories``: a partial index holds them): cheap
        however long the history, and complete.
        """
        if self.known is None:
            self.known = {}
            store = self.monitor.open_store()
            if store is not None:
                try:
                    stream = store.failing_histories(self.window, self.branch)
                    self.known = {r.nodeid: r for r in classify_all(stream) if r.is_flaky}
                except StoreError as exc:
                    self.monitor.store_failed(exc)
        return self.known

    # -- reruns --------------------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: the workers collect, so they get the flaky node ids."""
        if self.rerun_flaky:
            known = self.known_flaky()
            node.workerinput[WORKERINPUT_KEY] = sorted(known)
            self.sent = True

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if not self.rerun_flaky or not items:
            return
        if self.monitor.is_worker:
            workerinput: dict[str, Any] = getattr(config, "workerinput", {})
            flaky_ids: Iterable[str] = workerinput.get(WORKERINPUT_KEY, ())
        else:
            flaky_ids = self.known_flaky()
        flaky_set = set(flaky_ids)
        if not flaky_set:
            return
        # the marker replaces a global --reruns for the test: never give it fewer
        reruns = max(self.rerun_flaky, config.getoption("reruns", None) or 0)
        for item in items:  # the known ids are as stored
            if stored_nodeid(item.nodeid) in flaky_set and item.get_closest_marker("flaky") is None:
                item.add_marker(pytest.mark.flaky(reruns=reruns))
                self.marked.append(item.nodeid)

    # -- the end of the session ----------------------------------------------------------------
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._collection_failed = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Before the monitor builds the report: judge the session, apply the quarantine."""
        if self.monitor.is_worker:
            return
        self.monitor.guarded("classifying flaky tests", self._judge)
        if self.quarantine:
            self._apply_quarantine(session)

    def _judge(self) -> None:
        records = self.monitor.records
        if not records:
            return
        self.known_flaky()
        self.judged = needed = failed_or_rerun(records.values())
        if not needed:
            return
        histories = self._histories([r.nodeid for r in needed])
        run = self.monitor.run
        for record in needed:
            rows = histories.get(record.nodeid, [])
            self.verdicts[record.nodeid] = SessionVerdict(
                record=record,
                before=classify(record.nodeid, rows),
                after=classify(record.nodeid, fold_record(rows, record, run, self.window)),
                new_evidence=session_evidence(record, rows, run),
            )

    def _apply_quarantine(self, session: pytest.Session) -> None:
        failed = [v for v in self.verdicts.values() if v.failed]
        for verdict in failed:
            verdict.quarantined = verdict.known_flaky and verdict.after.status == "flaky"
        failures = sum(1 for r in self.monitor.records.values() if r.outcome in FAILING_OUTCOMES)
        # -x / --maxfail stopped the session: the tests it never ran may be broken.
        self.stopped_early = bool(session.shouldfail or session.shouldstop)
        if (
            failures
            and len(failed) == failures
            and all(v.quarantined for v in failed)
            and not self._collection_failed
            and not self.stopped_early
            and session.exitstatus == pytest.ExitCode.TESTS_FAILED
        ):
            session.exitstatus = pytest.ExitCode.OK
            self.exit_status_changed = True

    # -- the report ----------------------------------------------------------------------------
    def flaky_entries(self) -> list[dict[str, Any]]:
        """``report["flaky"]``: the flaky tests this session knows of, highest score first."""
        by_id: dict[str, dict[str, Any]] = {}
        records = self.monitor.records
        as_stored: dict[str, str] | None = None  # stored id -> session id, made on a miss
        for stored, result in (self.known or {}).items():
            nodeid = stored
            if nodeid not in records:
                if as_stored is None:
                    as_stored = {stored_nodeid(n): n for n in records}
                nodeid = as_stored.get(stored, stored)
            if nodeid not in records or nodeid in self.verdicts:
                continue
            record = records[nodeid]
            data = result.to_dict()
            data["known_flaky"] = True
            data["session"] = {
                "outcome": record.outcome,
                "reruns": record.reruns,
                "new_evidence": [],
                "quarantined": False,
            }
            by_id[nodeid] = data
        for nodeid, verdict in self.verdicts.items():
            if verdict.known_flaky or verdict.after.is_flaky or verdict.new_evidence:
                by_id[nodeid] = verdict.to_dict()
        order = {
            r.nodeid: i
            for i, r in enumerate(
                rank(
                    [v.after for v in self.verdicts.values() if v.after.nodeid in by_id]
                    + [r for n, r in (self.known or {}).items() if n in by_id]
                )
            )
        }
        return sorted(by_id.values(), key=lambda d: order.get(d["nodeid"], len(order)))

    def pytest_p3monitor_measure(self, monitor: MonitorSession, report: dict[str, Any]) -> None:
        reliability = report["metrics"]["reliability"]
        judged = self.judged
        if judged is None:  # not judged (no records then, or judging failed): look at all
            judged = failed_or_rerun(monitor.records.values())
        reliability["flaky_in_session"] = [
            {
                "nodeid": r.nodeid,
                "reruns": r.reruns,
                "known_flaky": (v := self.verdicts.get(r.nodeid)) is not None and v.known_flaky,
            }
            for r in judged
            if r.reruns and r.outcome == "passed"
        ]
        report["flaky"] = self.flaky_entries()
        if self.quarantine:
            report["quarantined"] = [
                v.record.nodeid for v in self.verdicts.values() if v.quarantined
            ]

    # -- the terminal --------------------------------------------------------------------------
    def pytest_p3monitor_terminal_summary(
        self,
        monitor: MonitorSession,
        report: dict[str, Any],
        terminalreporter: pytest.TerminalReporter,
    ) -> None:
        tr = terminalreporter
        verdicts = list(self.verdicts.values())
        known_failed = [v for v in verdicts if v.failed and v.known_flaky]
        if known_failed:
            tr.write_line(
                f"known flaky, failed in this run ({len(known_failed)}): "
                + _names(
                    known_failed,
                    lambda v: (
                        f"score {v.before.score:.2f}, "
                        f"{v.before.failures} failures in {v.before.runs} runs"
                    ),
                ),
                yellow=True,
            )
        new = [v for v in verdicts if v.new_evidence]
        if new:
            tr.write_line(
                f"new flaky evidence ({len(new)}): " + _names(new, _evidence_text),
                yellow=True,
            )
        quarantined = [v for v in verdicts if v.quarantined]
        if quarantined:
            if self.exit_status_changed:
                outcome = "their failures do not fail the session (p3monitor_quarantine)"
            elif self.stopped_early:
                outcome = "the session stopped before its other tests ran, so it still fails"
            else:
                outcome = "other failures still fail the session"
            tr.write_line(
                f"quarantined ({len(quarantined)}): "
                + _names(quarantined, lambda v: "")
                + f" - {outcome}",
                yellow=True,
            )
        marked = len(self.marked)
        if self.sent:  # xdist: the workers marked them; count the ones that ran
            marked = sum(1 for nodeid in self.known or () if nodeid in monitor.records)
        if marked:
            tr.write_line(
                f"rerun up to {self.rerun_flaky}x as known flaky: {marked} test"
                + ("s" if marked != 1 else "")
            )


def failed_or_rerun(records: Collection[TestRecord]) -> list[TestRecord]:
    """The records that failed (``failed``, ``error``) or were rerun, in their order.

    Most sessions have none, which a scan in C of a list of the records' outcomes ("rerun"
    for a rerun test) tells. (A comprehension filtering the records directly costs four
    times as much: under CPython 3.11 a loop whose condition is rarely true is never
    specialized.)
    """
    if _JUDGED.isdisjoint([r.outcome if not r.reruns else "rerun" for r in records]):
        return []
    return [r for r in records if r.outcome in FAILING_OUTCOMES or r.reruns]


def _evidence_text(verdict: SessionVerdict) -> str:
    parts = []
    for kind in verdict.new_evidence:
        if kind == "rerun":
            runs = verdict.record.reruns
            parts.append(f"passed after {runs} rerun{'s' if runs != 1 else ''}")
        else:
            commit = (verdict.after.flaky_commits or ("?",))[-1]
            outcome = "failed" if verdict.failed else "passed"
            parts.append(f"{outcome} on {commit[:12]}, which had the other outcome before")
    return "; ".join(parts)


def _names(verdicts: Sequence[SessionVerdict], detail: Any) -> str:
    shown = []
    for verdict in verdicts[:SHOWN]:
        text = detail(verdict)
        shown.append(f"{verdict.record.nodeid} ({text})" if text else verdict.record.nodeid)
    more = len(verdicts) - SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
