"""Reading p3monitor settings: CLI beats environment beats ini, and errors say where from.

Feature plugins read their own settings with :func:`setting` / :func:`setting_list` and
validate them with the parsers here, so that every bad value becomes a
``pytest.UsageError`` naming the option, variable or ini key it came from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import pytest

T = TypeVar("T")


class Setting(NamedTuple):
    """A raw setting value and where it came from (for error messages).

    A named tuple rather than a frozen dataclass: this module is imported by every pytest
    session that has the plugin installed, and a dataclass costs about 1 ms to create.
    """

    value: str | None
    where: str  # e.g. "--p3monitor-db", "P3MONITOR_DB", "ini p3monitor_db", "default"


def _cli_flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def enabled(config: pytest.Config) -> bool:
    if config.getoption("p3monitor", None):
        return True
    try:
        return bool(config.getini("p3monitor"))
    except ValueError:  # pragma: no cover - the ini key is always registered by plugin.py
        return False


def setting(
    config: pytest.Config, dest: str, *, env: str | None = None, ini: bool = True
) -> Setting:
    """The value of one scalar setting: CLI, then ``env``, then the ini key ``dest``."""
    cli_value = config.getoption(dest, None)
    if cli_value is not None and cli_value != []:
        if isinstance(cli_value, list):
            cli_value = cli_value[-1]
        return Setting(str(cli_value), _cli_flag(dest))
    if env is not None:
        env_value = os.environ.get(env)
        if env_value:
            return Setting(env_value, env)
    if ini:
        try:
            ini_value = config.getini(dest)
        except ValueError:
            ini_value = None
        if ini_value not in (None, "", []):
            return Setting(str(ini_value).strip(), f"ini {dest}")
    return Setting(None, "default")


def setting_list(config: pytest.Config, dest: str) -> tuple[list[str], str]:
    """A repeatable setting: the CLI values if any were given, else the ini linelist."""
    cli_values = config.getoption(dest, None)
    if cli_values:
        return [str(v) for v in cli_values], _cli_flag(dest)
    try:
        ini_values = config.getini(dest)
    except ValueError:
        ini_values = []
    return [str(v).strip() for v in ini_values if str(v).strip()], f"ini {dest}"


def parse_with(s: Setting, parse: Callable[[str], T], default: T, expected: str) -> T:
    """Parse a setting's value, turning any ValueError into a UsageError naming its source."""
    if s.value is None:
        return default
    try:
        return parse(s.value)
    except (ValueError, TypeError) as exc:
        detail = f": {exc}" if str(exc) else ""
        raise pytest.UsageError(
            f"p3monitor: {s.where} = {s.value!r} is not valid{detail}; expected {expected}"
        ) from None


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


#: The longest interval or timeout a setting takes: a day (longer ones are typing mistakes,
#: and overflow the clock's arithmetic).
MAX_SECONDS = 86_400.0


def seconds(text: str) -> float:
    """A positive number of seconds, at most :data:`MAX_SECONDS`."""
    value = positive_float(text)
    if value > MAX_SECONDS:
        raise ValueError(f"must be at most {MAX_SECONDS:g} seconds (a day)")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean")
