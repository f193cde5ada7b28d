"""pytest-p3monitor: turn every CI test run into health data."""

from __future__ import annotations

from .warnings import (
    ExportWarning,
    GateWarning,
    P3MonitorWarning,
    SamplingWarning,
    StoreWarning,
)

__version__ = "0.1.0"

__all__ = [
    "ExportWarning",
    "GateWarning",
    "P3MonitorWarning",
    "SamplingWarning",
    "StoreWarning",
    "__version__",
]
