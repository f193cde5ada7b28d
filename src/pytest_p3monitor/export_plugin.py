"""CI integrations and exports of the finished report.

Registered by :mod:`pytest_p3monitor.plugin` when p3monitor is on. It acts in
``pytest_p3monitor_report`` (the finished report, after the run is stored) and, under
``--junitxml``, in pytest's JUnit XML:

* GitHub Actions (``GITHUB_ACTIONS=true``, ini ``p3monitor_github = auto|true|false``):
  step outputs, job summary, a folded metrics group and annotations;
* ``--p3monitor-openmetrics PATH``: an OpenMetrics file;
* ini ``p3monitor_pushgateway = URL``: a push to a Prometheus Pushgateway;
* ini ``p3monitor_endpoint = URL``: the JSON report POSTed to an HTTP endpoint, kept in
  ``.p3monitor/outbox/endpoint/`` when that fails;
* ini ``p3monitor_webhook = URL``: crossed rules posted to a Slack-compatible webhook.

Every failure here is one :class:`~pytest_p3monitor.ExportWarning`: test outcomes and the
exit status stay as they are. The network exporters run side by side, each bounded by
``p3monitor_export_timeout``, so a dead endpoint delays the session end by that much at most.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from . import outbox
from .config import Setting, boolean, non_negative_int, parse_with, seconds, setting
from .exporters.endpoint import DEFAULT_RETRIES, DEFAULT_TIMEOUT, ConfigError, SendError
from .exporters.redact import redact_obj, redact_text, redact_url, url_secrets
from .exporters.webhook import Severity, parse_severity
from .warnings import ExportWarning

if TYPE_CHECKING:
    from .exporters.figures import Location
    from .session import MonitorSession

# The exporters themselves (GitHub, OpenMetrics, Pushgateway ...) are imported where they
# are used: a session that exports nowhere never loads them.

#: Kinds of the outbox this plugin keeps (``.p3monitor/outbox/<kind>/``).
ENDPOINT_KIND = "endpoint"
WEBHOOK_KIND = "webhook"


def in_github_actions(environ: Mapping[str, str]) -> bool:
    """Whether this process runs in a GitHub Actions job."""
    return environ.get("GITHUB_ACTIONS", "").strip().lower() == "true"


def _github_mode(text: str) -> bool | None:
    if text.strip().lower() == "auto":
        return None
    return boolean(text)


def _job(text: str) -> str:
    value = text.strip()
    if not value or "/" in value:
        raise ValueError("must be a non-empty name without '/'")
    return value


class Outcome(NamedTuple):
    """What one exporter did, for the terminal summary."""

    what: str
    ok: bool
    detail: str


class ExportPlugin:
    """Sends the finished report where CI users look (see the module docstring)."""

    name = "p3monitor-export"

    def __init__(self, config: pytest.Config, monitor: MonitorSession) -> None:
        self.config = config
        self.monitor = monitor
        self.outcomes: list[Outcome] = []
        self._stdout_lines: list[str] = []

        om = setting(config, "p3monitor_openmetrics")
        self.openmetrics_path = self._path(om)
        self.github: bool | None = parse_with(
            setting(config, "p3monitor_github"), _github_mode, None, "auto, true or false"
        )
        self.pushgateway = setting(config, "p3monitor_pushgateway", env="P3MONITOR_PUSHGATEWAY")
        self.push_job: str = parse_with(
            setting(config, "p3monitor_pushgateway_job"), _job, "pytest", "a job name"
        )
        self.endpoint = setting(config, "p3monitor_endpoint", env="P3MONITOR_ENDPOINT")
        self.auth_env = setting(config, "p3monitor_endpoint_auth_env").value
        self.auth_header = setting(config, "p3monitor_endpoint_auth_header").value
        self.retries: int = parse_with(
            setting(config, "p3monitor_endpoint_retries"),
            non_negative_int,
            DEFAULT_RETRIES,
            "a number of retries, e.g. 2",
        )
        self.webhook = setting(config, "p3monitor_webhook", env="P3MONITOR_WEBHOOK")
        self.webhook_severity: Severity = parse_with(
            setting(config, "p3monitor_webhook_severity"),
            parse_severity,
            "critical",
            "critical or warning",
        )
        self.timeout: float = parse_with(
            setting(config, "p3monitor_export_timeout"),
            seconds,
            DEFAULT_TIMEOUT,
            "a number of seconds, e.g. 10",
        )
        self._secrets = [
            *url_secrets(self.pushgateway.value or ""),
            *url_secrets(self.endpoint.value or ""),
            *url_secrets(self.webhook.value or ""),
        ]
        if self.auth_env and os.environ.get(self.auth_env):
            self._secrets.append(os.environ[self.auth_env])
        monitor.secrets.extend(self._secrets)  # kept out of the report and the store too
        #: Registered only when it has somewhere to export to (see ``plugin.FEATURES``).
        self.active = bool(
            self.openmetrics_path is not None
            or self._github_on()
            or self.pushgateway.value
            or self.endpoint.value
            or self.webhook.value
        )

        if not monitor.is_worker:
            from _pytest.junitxml import xml_key

            xml = config.stash.get(xml_key, None)
            if xml is not None:
                from .exporters.junit import JUnitProperties

                config.pluginmanager.register(JUnitProperties(xml), JUnitProperties.name)

    # -- helpers -------------------------------------------------------------------------------
    def _path(self, s: Setting) -> Path | None:
        if s.value is None:
            return None
        path = Path(s.value).expanduser()
        if not path.is_absolute() and s.where.startswith("ini") and self.config.inipath:
            path = self.config.inipath.parent / path
        return path

    def _warn(self, text: str) -> None:
        self.monitor.warn(redact_text(text, self._secrets), ExportWarning)

    def _github_on(self) -> bool:
        return in_github_actions(os.environ) if self.github is None else self.github

    # -- the report ----------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_p3monitor_report(self, monitor: MonitorSession, report: dict[str, Any]) -> None:
        if monitor.is_worker:
            return
        github_on = self._github_on()
        network = self.pushgateway.value or self.endpoint.value or self.webhook.value
        if self.openmetrics_path is None and not github_on and not network:
            return  # nothing to export: not even a walk over the report
        safe = redact_obj(report, self._secrets)
        if self.openmetrics_path is not None:
            self._step("OpenMetrics", lambda: self._openmetrics(safe))
        if github_on:
            self._step("GitHub Actions", lambda: self._github(safe))
        self._network(safe)

    def _step(self, what: str, func: Callable[[], None]) -> None:
        try:
            func()
        except Exception as exc:  # an export must never fail the session
            self._warn(f"{what} export failed: {type(exc).__name__}: {exc}")
            self.outcomes.append(Outcome(what, False, "failed"))

    def _openmetrics(self, report: dict[str, Any]) -> None:
        from .exporters import openmetrics

        if self.openmetrics_path is None:
            return
        try:
            path = openmetrics.write(self.openmetrics_path, report)
        except OSError as exc:
            self._warn(f"could not write the OpenMetrics file {self.openmetrics_path}: {exc}")
            self.outcomes.append(Outcome("OpenMetrics", False, "not written"))
        else:
            self.outcomes.append(Outcome("OpenMetrics", True, str(path)))

    # -- GitHub Actions --------------------------------------------------------------------------
    def _repo_path(self, path: str) -> str:
        """A rootdir-relative path as GitHub wants it: relative to the workspace."""
        absolute = Path(path) if Path(path).is_absolute() else self.config.rootpath / path
        workspace = os.environ.get("GITHUB_WORKSPACE")
        base = Path(workspace) if workspace else self.config.rootpath
        try:
            return absolute.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def _rule_location(self) -> Callable[[str], Location | None]:
        from .exporters import github
        from .exporters.figures import Location

        inipath = self.config.inipath
        text = ""
        if inipath is not None:
            try:
                text = inipath.read_text(encoding="utf-8")
            except OSError:
                text = ""

        def locate(rule: str) -> Location | None:
            if inipath is None:
                return None
            line = github.find_rule_line(text, rule)
            return None if line is None else Location(str(inipath), line)

        return locate

    def _github(self, report: dict[str, Any]) -> None:
        from .exporters import github

        written = []
        for write in (github.write_outputs, github.write_summary):
            try:
                path = write(report)
            except github.GitHubError as exc:
                self._warn(f"GitHub Actions: {exc}")
            else:
                if path is not None:
                    written.append(path.name)
        lines = github.group_lines(report)
        lines += github.annotation_lines(
            report, rule_location=self._rule_location(), path_of=self._repo_path
        )
        if self.config.pluginmanager.get_plugin("terminalreporter") is None:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
        else:
            self._stdout_lines = lines
        self.outcomes.append(Outcome("GitHub Actions", True, ", ".join(written) or "annotations"))

    # -- network -------------------------------------------------------------------------------
    def _network(self, report: dict[str, Any]) -> None:
        jobs: list[tuple[str, Callable[[], Outcome]]] = []
        if self.pushgateway.value:
            jobs.append(("pushgateway", lambda: self._push(report)))
        if self.endpoint.value:
            jobs.append(("endpoint", lambda: self._post_endpoint(report)))
        if self.webhook.value:
            jobs.append(("webhook", lambda: self._post_webhook(report)))
        if not jobs:
            return
        from concurrent.futures import ThreadPoolExecutor

        # Side by side: the session end waits for the slowest, bounded by the timeout.
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="p3monitor-export") as ex:
            futures = [(what, ex.submit(job)) for what, job in jobs]
            for what, future in futures:
                try:
                    outcome = future.result()
                except Exception as exc:  # a bug or a library surprise: still one warning
                    outcome = Outcome(what, False, f"{what} export failed: {exc!r}")
                self.outcomes.append(outcome)
                if not outcome.ok and outcome.detail:
                    self._warn(outcome.detail)

    def _push(self, report: dict[str, Any]) -> Outcome:
        from .exporters import pushgateway

        url = self.pushgateway.value or ""
        try:
            shown = pushgateway.push(url, report, job=self.push_job, timeout=self.timeout)
        except (ConfigError, SendError) as exc:
            return Outcome(
                "Pushgateway",
                False,
                f"metrics not pushed ({self.pushgateway.where}): {exc}; they are in the "
                "results store (`p3monitor export --format openmetrics`)",
            )
        return Outcome("Pushgateway", True, f"{shown} (job {self.push_job})")

    def _post_endpoint(self, report: dict[str, Any]) -> Outcome:
        from .exporters.endpoint import auth_headers, post_json

        url = self.endpoint.value or ""
        shown = redact_url(url)
        try:
            headers = auth_headers(self.auth_env, self.auth_header)
            status = post_json(
                url,
                report,
                headers=headers,
                timeout=self.timeout,
                retries=self.retries,
                secrets=self._secrets,
            )
        except (ConfigError, SendError) as exc:
            kept = self._keep(ENDPOINT_KIND, report, shown)
            return Outcome(
                "endpoint",
                False,
                f"report not sent to the endpoint ({self.endpoint.where}): {exc}; kept in "
                f"{kept}, `p3monitor export --flush` sends it",
            )
        return Outcome("endpoint", True, f"{shown} (HTTP {status})")

    def _post_webhook(self, report: dict[str, Any]) -> Outcome:
        from .exporters.endpoint import post_json
        from .exporters.webhook import alert_message

        message = alert_message(report, min_severity=self.webhook_severity)
        if message is None:
            return Outcome("webhook", True, "no alert to send")
        url = self.webhook.value or ""
        shown = redact_url(url, hide_path=True)
        try:
            post_json(
                url,
                message,
                timeout=self.timeout,
                retries=self.retries,
                secrets=self._secrets,
                what="webhook",
                hide_path=True,
            )
        except (ConfigError, SendError) as exc:
            kept = self._keep(
                WEBHOOK_KIND, {"message": message, "report_run": report["run"]}, shown
            )
            return Outcome(
                "webhook",
                False,
                f"alerts not posted to the webhook ({self.webhook.where}): {exc}; kept in "
                f"{kept}, `p3monitor export --flush` posts it",
            )
        return Outcome("webhook", True, f"{shown} ({message['text'].count(chr(10))} lines)")

    def _keep(self, kind: str, payload: dict[str, Any], target: str) -> Path:
        entry = {
            "kind": kind,
            "target": target,
            "inifile": str(self.config.inipath) if self.config.inipath else None,
            "kept_at": time.time(),
            "payload": payload,
        }
        run = payload.get("run") or payload.get("report_run") or {}
        name = str(run.get("id") or f"{time.time_ns()}") if isinstance(run, dict) else "report"
        return outbox.save(
            kind, name, redact_obj(entry, self._secrets), base=self.monitor.outbox_dir
        )

    # -- the terminal --------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_p3monitor_terminal_summary(
        self,
        monitor: MonitorSession,
        report: dict[str, Any],
        terminalreporter: pytest.TerminalReporter,
    ) -> None:
        for outcome in self.outcomes:
            if outcome.ok:
                terminalreporter.write_line(f"exported to {outcome.what}: {outcome.detail}")
            else:
                terminalreporter.write_line(f"not exported to {outcome.what}", yellow=True)
        if self._stdout_lines:
            # Workflow commands must start their own line on stdout.
            terminalreporter.write("\n")
            for line in self._stdout_lines:
                terminalreporter.write_line(line)
