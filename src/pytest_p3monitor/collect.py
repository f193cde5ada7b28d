"""Fold pytest's test reports into one :class:`TestRecord` per test item.

Each item sends several reports (setup, call, teardown), more with pytest-rerunfailures
(a ``rerun`` report per failed attempt, then a new attempt) and with subtests (one extra
call report per subtest). They all land on the item's single record: reruns and subtest
failures are counted there, never recorded as tests of their own.

This runs on the xdist controller (or the only process), once per report: it is on the
hot path, so it does as little as possible.
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


class RecordBuilder:
    """Keeps the records of one session, in the order tests first reported.

    ``meter``, when set, measures the tests of this process: called at each teardown
    report, it gives the figures of the test since the previous call (the previous test's
    teardown report, or the start of the run loop for the first test), and those land in
    the record and on the report (``FIGURES_ATTR``). One call per test at the teardown
    report, rather than a start and a stop hook of its own around each test, saves two
    hook dispatches and a system call per test.
    """

    def __init__(self) -> None:
        self.records: dict[str, TestRecord] = {}
        self.meter: Callable[[], dict[str, float]] | None = None
        # The item of the previous report, by its location tuple: pytest builds one per
        # item and gives the same object to each of its reports, so the call and teardown
        # reports that follow a setup report find their record without the node id (a
        # property, ``str`` of a structured id since pytest 9.1). Reports that travelled
        # from an xdist worker never match, and a setup report always looks up.
        self._location: object = None
        self._record: TestRecord | None = None

    # The monitor registers this method itself as its pytest_runtest_logreport (no Python
    # call in between on the hot path); tryfirst, so that the test's figures are on its
    # teardown report before other plugins read it there (the JUnit XML properties).
    @pytest.hookimpl(tryfirst=True)
    def add(self, report: Any) -> None:
        """Fold one ``pytest.TestReport`` (or an xdist copy of one) into its record."""
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
            rec = self.records.get(nodeid)
            if rec is None:
                fspath, lineno, _ = location
                line = None if lineno is None else lineno + 1
                # (nodeid, outcome, file, line) positionally: bound faster than keywords
                rec = self.records[nodeid] = TestRecord(nodeid, "passed", fspath, line)
                rec.start = attrs.get("start")
            self._location, self._record = location, rec
        stop = attrs.get("stop")
        if stop is not None:
            rec.stop = stop
        worker = attrs.get("worker_id")
        if worker is not None:
            rec.worker = worker

        if outcome == "rerun":
            rec.reruns += 1
            rec.message = short_message(report)
            return

        new: Outcome
        if when == "call":
            if attrs.get("context") is not None:
                # A subtest: count its failure on the test, keep the test's own timings.
                if outcome == "failed":
                    rec.subtests_failed += 1
                    if rec.message is None:
                        rec.message = short_message(report)
                    if rec.outcome == "passed":
                        rec.outcome = "failed"
                return
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
            elif outcome == "skipped":
                new = "xfailed" if "wasxfail" in attrs else "skipped"
            else:
                new = "error"
                rec.message = short_message(report)
            rec.outcome = new
            rec.subtests_failed = 0
            return
        # teardown: the end of an attempt
        rec.teardown_s = report.duration
        if outcome == "failed" and rec.outcome in _PASSED_LIKE:
            rec.outcome = "error"
            rec.message = short_message(report)
        figures = attrs.get(FIGURES_ATTR)  # measured in an xdist worker
        if figures is None and self.meter is not None:  # measured here
            figures = attrs[FIGURES_ATTR] = self.meter()
        if figures:
            if rec.figures:  # a rerun: the attempts add up (in a copy: the report keeps its own)
                total = dict(rec.figures)
                add_figures(total, figures)
                rec.figures = total
            else:  # the report's dict itself: nothing to copy (and no second dict per test)
                rec.figures = figures
