"""A small suite to see what pytest-p3monitor records: run `pytest --p3monitor` here."""

import time

import pytest


def test_fast():
    assert sum(range(10)) == 45


@pytest.mark.parametrize("n", [1, 2, 3])
def test_parametrized(n):
    assert n * n >= n


def test_slow():
    time.sleep(0.2)


def test_cpu_bound():
    total = 0
    for i in range(300_000):
        total += i * i
    assert total > 0


def test_memory():
    block = bytearray(30 * 1024 * 1024)  # 30 MiB, shows in the test's peak RSS
    assert len(block) == 30 * 1024 * 1024


@pytest.mark.skip(reason="shows how a skip is recorded")
def test_skipped():
    pass


@pytest.mark.xfail(reason="a known bug, recorded as xfailed")
def test_known_bug():
    assert 1 + 1 == 3


def test_subtests(subtests):
    for i in range(3):
        with subtests.test(i=i):
            assert i < 3
