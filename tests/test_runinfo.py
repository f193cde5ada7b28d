"""Commit, branch and CI details from each CI provider's variables."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from pytest_p3monitor import runinfo
from pytest_p3monitor.records import CIInfo
from pytest_p3monitor.runinfo import GitLookup, detect_ci, git_commit_branch

CASES = [
    (
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SHA": "abc",
            "GITHUB_REF_NAME": "main",
            "GITHUB_RUN_ID": "42",
            "GITHUB_RUN_ATTEMPT": "2",
            "GITHUB_JOB": "test",
            "GITHUB_REPOSITORY": "org/repo",
        },
        CIInfo(
            "github-actions", "42", "test", "https://github.com/org/repo/actions/runs/42/attempts/2"
        ),
        "abc",
        "main",
    ),
    (
        {"GITHUB_ACTIONS": "true", "GITHUB_HEAD_REF": "feature", "GITHUB_REF_NAME": "7/merge"},
        CIInfo("github-actions"),
        None,
        "feature",
    ),
    (
        {
            "GITLAB_CI": "true",
            "CI_COMMIT_SHA": "def",
            "CI_COMMIT_REF_NAME": "dev",
            "CI_PIPELINE_ID": "9",
            "CI_JOB_NAME": "pytest",
            "CI_JOB_URL": "https://gitlab.example/j/1",
        },
        CIInfo("gitlab-ci", "9", "pytest", "https://gitlab.example/j/1"),
        "def",
        "dev",
    ),
    (
        {
            "BUILDKITE": "true",
            "BUILDKITE_COMMIT": "123",
            "BUILDKITE_BRANCH": "b",
            "BUILDKITE_BUILD_ID": "u-1",
            "BUILDKITE_LABEL": ":pytest:",
            "BUILDKITE_BUILD_URL": "https://bk/1",
        },
        CIInfo("buildkite", "u-1", ":pytest:", "https://bk/1"),
        "123",
        "b",
    ),
    (
        {
            "CIRCLECI": "true",
            "CIRCLE_SHA1": "c1",
            "CIRCLE_BRANCH": "cb",
            "CIRCLE_WORKFLOW_ID": "w",
            "CIRCLE_JOB": "j",
            "CIRCLE_BUILD_URL": "https://circle/1",
        },
        CIInfo("circleci", "w", "j", "https://circle/1"),
        "c1",
        "cb",
    ),
    (
        {
            "JENKINS_URL": "https://jenkins/",
            "GIT_COMMIT": "j1",
            "GIT_BRANCH": "origin/release",
            "BUILD_ID": "5",
            "JOB_NAME": "suite",
            "BUILD_URL": "https://jenkins/job/suite/5/",
        },
        CIInfo("jenkins", "5", "suite", "https://jenkins/job/suite/5/"),
        "j1",
        "release",
    ),
    ({"CI": "true"}, CIInfo("generic"), None, None),
    ({}, CIInfo(), None, None),
]


@pytest.mark.parametrize(("env", "ci", "commit", "branch"), CASES)
def test_detect_ci(env: dict[str, str], ci: CIInfo, commit: str, branch: str) -> None:
    assert detect_ci(env) == (ci, commit, branch)


def _git_repo(path: Path) -> tuple[list[str], str]:
    """A repository with one commit on branch ``trunk``: the git command line and HEAD."""
    run = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*run, "init", "-q", "-b", "trunk"], check=True)
    subprocess.run([*run, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(
        [*run, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return run, head


def test_git_fallback(tmp_path: Path) -> None:
    assert git_commit_branch(tmp_path) == (None, None)
    run, head = _git_repo(tmp_path)
    assert git_commit_branch(tmp_path) == (head, "trunk")
    (tmp_path / "untracked.py").write_text("x = 1\n")
    assert git_commit_branch(tmp_path) == (head, "trunk")
    subprocess.run([*run, "checkout", "-q", "--detach"], check=True)
    assert git_commit_branch(tmp_path) == (head, None)
    subprocess.run([*run, "add", "untracked.py"], check=True)
    assert git_commit_branch(tmp_path) == (head + "-dirty", None)


def test_git_lookup_in_the_background(tmp_path: Path) -> None:
    _, head = _git_repo(tmp_path)
    lookup = GitLookup(tmp_path)
    assert lookup.result() == (head, "trunk")
    assert lookup.result() == (head, "trunk")  # asked again: the same answer, no new thread


def test_git_lookup_that_does_not_answer_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    def hanging_git(cwd: Path) -> tuple[str | None, str | None]:
        release.wait(10)
        return "late", "late"

    monkeypatch.setattr(runinfo, "git_commit_branch", hanging_git)
    lookup = GitLookup(tmp_path)
    try:
        assert lookup.result(timeout=0.05) == (None, None)
    finally:
        release.set()


@pytest.mark.parametrize("flag", ["", "--p3monitor-commit=given"])
def test_session_takes_commit_and_branch_from_git(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    for name in ("P3MONITOR_COMMIT", "P3MONITOR_BRANCH", "GITHUB_ACTIONS", "GITLAB_CI",
                 "BUILDKITE", "CIRCLECI", "JENKINS_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    _, head = _git_repo(pytester.path)
    pytester.makepyfile("def test_one():\n    pass\n")
    args = ["--p3monitor", "--p3monitor-json=report.json", "-p", "no:cacheprovider"]
    result = pytester.runpytest(*args, *([flag] if flag else []))
    result.assert_outcomes(passed=1)
    run = json.loads((pytester.path / "report.json").read_text())["run"]
    # The test file is untracked: the checkout is not dirty.
    assert run["commit"] == ("given" if flag else head)
    assert run["branch"] == "trunk"
