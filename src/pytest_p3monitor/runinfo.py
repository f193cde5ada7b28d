"""Who, where and what a run is: commit, branch and CI details, and the CPUs it may use.

:func:`detect_ci` is a pure function of the environment; :func:`git_commit_branch` is the
fallback that asks git, once, with a short timeout, and :class:`GitLookup` asks it in the
background while the session collects its tests.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

from .records import CIInfo


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def detect_ci(env: Mapping[str, str]) -> tuple[CIInfo, str | None, str | None]:
    """The CI provider's details, commit and branch from its variables (None where unknown)."""
    if env.get("GITHUB_ACTIONS") == "true":
        run_id = env.get("GITHUB_RUN_ID")
        attempt = env.get("GITHUB_RUN_ATTEMPT")
        url = None
        if run_id and env.get("GITHUB_REPOSITORY"):
            server = env.get("GITHUB_SERVER_URL", "https://github.com")
            url = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{run_id}"
            if attempt:
                url += f"/attempts/{attempt}"
        return (
            CIInfo("github-actions", run_id, env.get("GITHUB_JOB"), url),
            env.get("GITHUB_SHA"),
            _first(env, "GITHUB_HEAD_REF", "GITHUB_REF_NAME"),
        )
    if env.get("GITLAB_CI") == "true":
        return (
            CIInfo(
                "gitlab-ci",
                env.get("CI_PIPELINE_ID"),
                env.get("CI_JOB_NAME"),
                _first(env, "CI_JOB_URL", "CI_PIPELINE_URL"),
            ),
            env.get("CI_COMMIT_SHA"),
            _first(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_REF_NAME"),
        )
    if env.get("BUILDKITE") == "true":
        return (
            CIInfo(
                "buildkite",
                _first(env, "BUILDKITE_BUILD_ID", "BUILDKITE_BUILD_NUMBER"),
                _first(env, "BUILDKITE_LABEL", "BUILDKITE_STEP_KEY"),
                env.get("BUILDKITE_BUILD_URL"),
            ),
            env.get("BUILDKITE_COMMIT"),
            env.get("BUILDKITE_BRANCH"),
        )
    if env.get("CIRCLECI") == "true":
        return (
            CIInfo(
                "circleci",
                _first(env, "CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM"),
                env.get("CIRCLE_JOB"),
                env.get("CIRCLE_BUILD_URL"),
            ),
            env.get("CIRCLE_SHA1"),
            env.get("CIRCLE_BRANCH"),
        )
    if env.get("JENKINS_URL"):
        branch = _first(env, "BRANCH_NAME", "GIT_BRANCH")
        if branch and branch.startswith("origin/"):
            branch = branch[len("origin/") :]
        return (
            CIInfo(
                "jenkins",
                _first(env, "BUILD_ID", "BUILD_NUMBER"),
                env.get("JOB_NAME"),
                env.get("BUILD_URL"),
            ),
            env.get("GIT_COMMIT"),
            branch,
        )
    if env.get("CI", "").lower() in ("true", "1"):
        return CIInfo("generic"), None, None
    return CIInfo(), None, None


#: Appended to the commit of a work tree with uncommitted changes to tracked files, as
#: ``git describe --dirty`` does: two runs of one HEAD with different edits are not runs of
#: the same code, and must not count as "both outcomes on one commit" in flakiness.
DIRTY_SUFFIX = "-dirty"


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit_branch(cwd: Path) -> tuple[str | None, str | None]:
    """Ask git for HEAD's commit and branch; (None, None) outside a repository or without git.

    The commit ends in ``-dirty`` when tracked files have uncommitted changes.
    """
    out = _git(cwd, "rev-parse", "HEAD", "--abbrev-ref", "HEAD")
    lines = out.stdout.split() if out is not None else []
    if out is None or out.returncode != 0 or len(lines) != 2:
        return None, None
    commit, branch = lines
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    if status is not None and status.returncode == 0 and status.stdout.strip():
        commit += DIRTY_SUFFIX
    return commit, (None if branch == "HEAD" else branch)


class GitLookup:
    """:func:`git_commit_branch` in a background thread, started when the session is
    configured and read (:meth:`result`) once the tests are collected or the session ends.

    ``git status`` takes milliseconds in a small checkout and can take seconds in a large
    one; the thread spends that time waiting on git, so the session collects its tests
    meanwhile instead of waiting.
    """

    def __init__(self, cwd: Path) -> None:
        self._result: tuple[str | None, str | None] = (None, None)
        self._thread = threading.Thread(
            target=self._run, args=(cwd,), name="p3monitor-git", daemon=True
        )
        self._thread.start()

    def _run(self, cwd: Path) -> None:
        self._result = git_commit_branch(cwd)

    def result(self, timeout: float = 15.0) -> tuple[str | None, str | None]:
        """The commit and branch; (None, None) if git did not answer within ``timeout``
        seconds (each of its two commands has a timeout of its own, 5 s)."""
        self._thread.join(timeout)
        return self._result if not self._thread.is_alive() else (None, None)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
