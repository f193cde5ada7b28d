"""What a session pays to import the plugin: its modules skip pytest's assertion rewriter."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_p3monitor

PACKAGE = Path(pytest_p3monitor.__file__).parent

CHECK_LOADERS = """
import sys

def pytest_sessionfinish(session):
    for name in ("pytest_p3monitor.plugin", "pytest_p3monitor.session", "pytest_p3monitor.collect"):
        loader = type(sys.modules[name].__loader__).__name__
        print(f"LOADER {name} {loader}")
"""


def test_plugin_modules_have_no_assert() -> None:
    # Rewriting is skipped (plugin._skip_assertion_rewriting) because no module relies on it.
    found = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert found == []


def test_package_modules_are_imported_without_the_rewriter(pytester: pytest.Pytester) -> None:
    # A fresh process, as in CI: the entry point module itself goes through the rewriter
    # (pytest imports it), what it imports afterwards does not.
    pytester.makeconftest(CHECK_LOADERS)
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--p3monitor", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*LOADER pytest_p3monitor.plugin AssertionRewritingHook",
            "*LOADER pytest_p3monitor.session SourceFileLoader",
            "*LOADER pytest_p3monitor.collect SourceFileLoader",
        ]
    )
