"""Fold pytest's test reports into one :class:`TestRecord` per test item.

Each item sends several reports (setup, call, teardown), more with pytest-rerunfailures
(a ``rerun`` report per failed attempt, then a new attempt) and with subtests (one extra
call report per subtest). They all land on the item's single record: reruns and subtest
failures are counted there, never recorded as tests of their own.

This runs on the xdist controller (or the only process). Receiving a report is on the hot
path (once per report, between pytest's own work): it only keeps the report; folding
happens in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from .records import Outcome, TestRecord

#: The attribute of a teardown report that carries its test's figures (from the meter of
#: the process that ran it): to the xdist controller, and to the JUnit XML properties.
FIGURES_ATTR = "p3monitor"

MESSAGE_MAX = 300

_PASSED_LIKE = frozenset({"passed", "xpassed", "skipped", "xfailed"})


def short_message(report: Any) -> str | None:
    """One line saying why a phase failed, at most ``MESSAGE_MAX`` characters."""
    longrepr = report.longrepr
    if longrepr is None:
        return None
    crash = getattr(longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) if crash is not None else None
    if not text:
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            text = str(longrepr[2])
        else:
            lines = [ln for ln in str(longrepr).splitlines() if ln.strip()]
            text = lines[-1] if lines else ""
    text = " ".join(text.split())
    return text[: MESSAGE_MAX - 1] + "…" if len(text) > MESSAGE_MAX else text


def add_figures(total: dict[str, float], more: Mapping[str, float]) -> None:
    """Add one attempt's figures to the test's (a rerun is another attempt of the same
    test): peaks keep the larger, times and byte counts add up."""
    for name, value in more.items():
        before = total.get(name)
        if before is None:
            total[name] = value
        elif "peak" in name:
            total[name] = max(before, value)
        else:
            total[name] = before + value


#: Reports kept before they are folded (a test sends three). Folded in batches, in a loop
#: of their own, rather than one by one between pytest's own work, the code and data the
#: folding uses stay in the CPU's caches: it took the monitor's cost in a session of 5000
#: trivial tests from 7.0% to 5.9% of bare pytest's CPU time (benchmarks/bench_corun.py).
FOLD_BATCH = 3000


class RecordBuilder:
    """Keeps the records of one session, in the order tests first reported.

    :meth:`add`, the monitor's ``pytest_runtest_logreport``, only keeps each report (and
    measures the test at its teardown report, see ``meter``); the reports are folded into
    records in batches of ``FOLD_BATCH``, and whenever :attr:`records` is read, which
    folds what is left first. The records are the same as when each report is folded as
    it comes (the reports are folded in the order they came).

    ``meter``, when set, measures the tests of this process: called at each teardown
    report, it gives the figures of the test since the previous call (the previous test's
    teardown report, or the start of the run loop for the first test), and those travel
    on the report (``FIGURES_ATTR``) into the record. One call per test at the teardown
    report, rather than a start and a stop hook of its own around each test, saves two
    hook dispatches and a system call per test.
    """

    def __init__(self) -> None:
        self._records: dict[str, TestRecord] = {}
        self.meter: Callable[[], dict[str, float]] | None = None
        self._pending: list[Any] = []
        # The item of the previous report, by its location tuple: pytest builds one per
        # item and gives the same object to each of its reports, so the call and teardown
        # reports that follow a setup report find their record without the node id (a
        # property, ``str`` of a structured id since pytest 9.1). Reports that travelled
        # from an xdist worker never match, and a setup report always looks up.
        self._location: object = None
        self._record: TestRecord | None = None
        # The tests whose last attempt has not ended yet: set up (or rerun), and no call
        # or counted phase since. Left out at :meth:`finish` (see there).
        self._unfinished: set[str] = set()

    @property
    def records(self) -> dict[str, TestRecord]:
        """Node id -> record, every report received so far folded in."""
        if self._pending:
            self._fold_pending()
        return self._records

    # The monitor registers this method itself as its pytest_runtest_logreport (no Python
    # call in between on the hot path); tryfirst, so that the test's figures are on its
    # teardown report before other plugins read it there (the JUnit XML properties).
    @pytest.hookimpl(tryfirst=True)
    def add(self, report: Any) -> None:
        """Receive one ``pytest.TestReport`` (or an xdist copy of one); measure its test
        at its teardown report."""
        pending = self._pending
        pending.append(report)
        if self.meter is not None and report.when == "teardown":
            attrs = report.__dict__
            if FIGURES_ATTR not in attrs:  # else measured in an xdist worker
                attrs[FIGURES_ATTR] = self.meter()
        if len(pending) >= FOLD_BATCH:
            self._fold_pending()

    def finish(self) -> None:
        """The run loop is over: leave out the tests whose last attempt never ended.

        A ``KeyboardInterrupt`` or ``pytest.exit()`` during a test leaves its setup report
        (or a rerun report) without the reports that end the attempt; a test run with
        ``--setup-only`` has no call. pytest counts none of them, and they must not go into
        the history as results. A test whose call reported before the stop is kept.
        """
        records = self.records
        for nodeid in self._unfinished:
            records.pop(nodeid, None)
        self._unfinished.clear()

    def _fold_pending(self) -> None:
        pending, self._pending = self._pending, []
        fold = self._fold
        for report in pending:
            fold(report)

    def _fold(self, report: Any) -> None:
        """Fold one report into its record."""
        # The optional attributes (xdist's worker_id, a subtest's context, the figures of
        # the resource meter, wasxfail ...) are read from the report's __dict__: getattr
        # with a default raises and catches an AttributeError for each one missing, which
        # made this function twice as slow (about 2 us per report, 3 reports per test).
        attrs = report.__dict__
        try:  # a dict lookup each: faster than attribute reads on a report with a __dict__
            when, location, outcome = attrs["when"], attrs["location"], attrs["outcome"]
        except KeyError:  # a report-like object with properties for them
            when, location, outcome = report.when, report.location, report.outcome
        rec = self._record
        if location is not self._location or when == "setup" or rec is None:
            nodeid = report.nodeid
            rec = self._records.get(nodeid)
            if rec is None:
                fspath, lineno, _ = location
                line = None if lineno is None else lineno + 1
                # (nodeid, outcome, file, line) positionally: bound faster than keywords
                rec = self._records[nodeid] = TestRecord(nodeid, "passed", fspath, line)
                rec.start = attrs.get("start") or None  # 0: see below
            elif rec.start is None:  # its first report was a crashed xdist worker's
                rec.start = attrs.get("start") or None
                if rec.line is None and location[1] is not None:
                    rec.line = location[1] + 1
            self._location, self._record = location, rec
        stop = attrs.get("stop")
        if stop:  # 0 (not a time) on the report xdist makes for a test its worker crashed in
            rec.stop = stop
        worker = attrs.get("worker_id")
        if worker is not None:
            rec.worker = worker

        if outcome == "rerun":
            # pytest-rerunfailures: this attempt failed and the test runs again. Every failed
            # phase of the attempt reports a rerun (the call and then the teardown, say);
            # ``rerun`` numbers the attempts from 0, so count attempts, not reports.
            attempt = attrs.get("rerun")
            if not isinstance(attempt, int):  # older versions: one report an attempt
                attempt = rec.reruns
            if attempt >= rec.reruns:  # the attempt's first failure
                rec.reruns = attempt + 1
                rec.message = short_message(report)
            # The attempt's subtests go with it (pytest-rerunfailures drops them too).
            rec.subtests_failed = 0
            self._unfinished.add(rec.nodeid)  # until the next attempt ends
            figures = attrs.get(FIGURES_ATTR)  # a teardown that failed: its attempt's figures
            if figures:
                _add_to_record(rec, figures)
            return

        new: Outcome
        if when == "call":
            if attrs.get("context") is not None:
                # A subtest: count its failure on the test, keep the test's own timings.
                # (With pytest-rerunfailures an attempt's subtests report before its setup.)
                if outcome == "failed":
                    if not rec.subtests_failed:  # the attempt's first: its message says why
                        rec.message = short_message(report)
                    rec.subtests_failed += 1
                    if rec.outcome == "passed":
                        rec.outcome = "failed"
                return
            self._unfinished.discard(rec.nodeid)
            rec.call_s = report.duration
            if outcome == "passed":
                new = "xpassed" if "wasxfail" in attrs else "passed"
            elif outcome == "skipped":
                new = "xfailed" if "wasxfail" in attrs else "skipped"
            else:
                new = "failed"
                if not rec.subtests_failed:  # else the subtest's own message says more
                    rec.message = short_message(report)
            if rec.subtests_failed and new == "passed":
                new = "failed"
            rec.outcome = new
            return
        if when == "setup":
            # A new attempt starts (the first, or one after a rerun): its phases count.
            rec.setup_s, rec.call_s, rec.teardown_s = report.duration, 0.0, 0.0
            if outcome == "passed":
                new = "passed"
                self._unfinished.add(rec.nodeid)  # until its call reports
            else:
                if outcome == "skipped":
                    new = "xfailed" if "wasxfail" in attrs else "skipped"
                else:
                    new = "error"
                    rec.message = short_message(report)
                self._unfinished.discard(rec.nodeid)
            rec.outcome = new
            return
        if when != "teardown":
            # xdist's report for the test its worker crashed in ("???"): pytest counts it
            # as failed.
            if outcome == "failed":
                self._unfinished.discard(rec.nodeid)
                rec.outcome = "failed"
                rec.message = short_message(report)
            return
        # teardown: the end of an attempt
        rec.teardown_s = report.duration
        if outcome == "failed":
            self._unfinished.discard(rec.nodeid)  # an error, which pytest counts
            if rec.outcome in _PASSED_LIKE:
                rec.outcome = "error"
                rec.message = short_message(report)
        figures = attrs.get(FIGURES_ATTR)  # measured here, or in an xdist worker
        if figures:
            _add_to_record(rec, figures)


def _add_to_record(rec: TestRecord, figures: dict[str, float]) -> None:
    """One attempt's figures into its test's record."""
    if rec.figures:  # a rerun: the attempts add up (in a copy: the report keeps its own)
        total = dict(rec.figures)
        add_figures(total, figures)
        rec.figures = total
    else:  # the report's dict itself: nothing to copy (and no second dict per test)
        rec.figures = figures
