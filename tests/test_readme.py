"""The README's set-up commands are the ones CI runs, and the docs name real options."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```\n(.+?)\n```", section, flags=re.S)


def test_exactly_two_setup_commands_each_one_line() -> None:
    commands = setup_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    assert "--p3monitor" in commands[0]
    assert "example" in commands[0]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup_commands()[1] in ci


def test_every_option_in_the_readme_exists(pytestconfig: pytest.Config) -> None:
    text = (ROOT / "README.md").read_text()
    mentioned = set(re.findall(r"--p3monitor[a-z-]*", text))
    known = set()
    for opt in pytestconfig._parser._anonymous.options:  # the groups' options
        known.update(opt.names())
    for group in pytestconfig._parser._groups:
        for opt in group.options:
            known.update(opt.names())
    assert mentioned - known == set()
    options = text.split("## Options", 1)[1].split("\n## ", 1)[0]
    ini_mentioned = set(re.findall(r"`(p3monitor_[a-z_]+)`", options))
    ini_mentioned |= set(re.findall(r"^(p3monitor_[a-z_]+) =", text, flags=re.M))
    ini_known = set(pytestconfig._parser._inidict)
    assert ini_mentioned
    assert ini_mentioned - ini_known == set()
