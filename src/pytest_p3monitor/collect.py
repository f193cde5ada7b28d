"""Fold pytest's test reports into one :class:`TestRecord` per test item.

Each item sends several reports (setup, call, teardown), more with pytest-rerunfailures
(a ``rerun`` report per failed attempt, then a new attempt) and with subtests (one extra
call report per subtest). They all land on the item's single record: reruns and subtest
failures are counted there, never recorded as tests of their own.

This runs on the xdist controller (or the only process), once per report: it is on the
hot path, so it does as little as possible.
"""

from __future__ import annotations

from typing import Any

from .records import Outcome, TestRecord

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


class RecordBuilder:
    """Keeps the records of one session, in the order tests first reported."""

    def __init__(self) -> None:
        self.records: dict[str, TestRecord] = {}

    def add(self, report: Any) -> None:
        """Fold one ``pytest.TestReport`` (or an xdist copy of one) into its record."""
        # The optional attributes (xdist's worker_id, a subtest's context, the figures of
        # the resource meter, wasxfail ...) are read from the report's __dict__: getattr
        # with a default raises and catches an AttributeError for each one missing, which
        # made this function twice as slow (about 2 us per report, 3 reports per test).
        attrs = report.__dict__
        nodeid = report.nodeid
        rec = self.records.get(nodeid)
        if rec is None:
            fspath, lineno, _ = report.location
            rec = self.records[nodeid] = TestRecord(
                nodeid=nodeid,
                file=fspath,
                line=None if lineno is None else lineno + 1,
                start=attrs.get("start"),
            )
        when = report.when
        outcome = report.outcome
        stop = attrs.get("stop")
        if stop is not None:
            rec.stop = stop
        worker = attrs.get("worker_id")
        if worker is not None:
            rec.worker = worker

        if when == "call" and attrs.get("context") is not None:
            # A subtest: count its failure on the test, keep the test's own timings.
            if outcome == "failed":
                rec.subtests_failed += 1
                if rec.message is None:
                    rec.message = short_message(report)
                if rec.outcome == "passed":
                    rec.outcome = "failed"
            return

        if outcome == "rerun":
            rec.reruns += 1
            rec.message = short_message(report)
            return

        figures = attrs.get("p3monitor")
        if figures:
            rec.figures.update(figures)

        wasxfail = "wasxfail" in attrs
        new: Outcome
        if when == "setup":
            # A new attempt starts (the first, or one after a rerun): its phases count.
            rec.setup_s, rec.call_s, rec.teardown_s = report.duration, 0.0, 0.0
            if outcome == "passed":
                new = "passed"
            elif outcome == "skipped":
                new = "xfailed" if wasxfail else "skipped"
            else:
                new = "error"
            rec.outcome = new
            rec.subtests_failed = 0
            if outcome == "failed":
                rec.message = short_message(report)
            return
        if when == "call":
            rec.call_s = report.duration
            if outcome == "passed":
                new = "xpassed" if wasxfail else "passed"
            elif outcome == "skipped":
                new = "xfailed" if wasxfail else "skipped"
            else:
                new = "failed"
                if not rec.subtests_failed:  # else the subtest's own message says more
                    rec.message = short_message(report)
            if rec.subtests_failed and new == "passed":
                new = "failed"
            rec.outcome = new
            return
        # teardown
        rec.teardown_s = report.duration
        if outcome == "failed" and rec.outcome in _PASSED_LIKE:
            rec.outcome = "error"
            rec.message = short_message(report)
