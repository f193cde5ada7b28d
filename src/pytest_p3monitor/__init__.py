"""pytest-p3monitor: turn every CI test run into health data."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "ExportWarning",
    "GateWarning",
    "P3MonitorWarning",
    "SamplingWarning",
    "StoreWarning",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The warning classes need pytest; the `p3monitor` command does not, so import lazily.
    if name in __all__:
        from . import warnings

        return getattr(warnings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
