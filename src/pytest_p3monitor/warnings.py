"""Warnings issued by pytest-p3monitor. Filter them all with ``P3MonitorWarning``."""

from __future__ import annotations

import pytest


class P3MonitorWarning(pytest.PytestWarning):
    """Base class of every warning pytest-p3monitor issues."""

    __module__ = "pytest_p3monitor"


class StoreWarning(P3MonitorWarning):
    """The results store could not be used; the run was kept in the outbox instead."""

    __module__ = "pytest_p3monitor"


class SamplingWarning(P3MonitorWarning):
    """Resource sampling (process, cgroup, containers) could not measure something."""

    __module__ = "pytest_p3monitor"


class ExportWarning(P3MonitorWarning):
    """A report could not be written or sent (file, CI, endpoint, Pushgateway, webhook)."""

    __module__ = "pytest_p3monitor"


class GateWarning(P3MonitorWarning):
    """A ``p3monitor_warn_on`` rule was crossed."""

    __module__ = "pytest_p3monitor"
