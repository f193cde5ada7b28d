"""The pytest entry point: options, then (only with ``--p3monitor``) the monitor.

Kept thin on purpose: without ``--p3monitor`` this module is all that is imported, and it
opens nothing, starts nothing and imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .config import enabled

if TYPE_CHECKING:
    from pluggy import PluginManager

    from .phases import P3Monitor

#: Feature plugins registered next to the session monitor when p3monitor is on:
#: (registration name, "module:Class"). Each is imported only when enabled, and is
#: constructed as ``Class(config, monitor)`` (which validates its settings); one whose
#: ``active`` attribute is false (nothing configured for it) is not registered.
FEATURES: tuple[tuple[str, str], ...] = (
    ("p3monitor-gates", "pytest_p3monitor.gates_plugin:GatesPlugin"),
    ("p3monitor-flaky", "pytest_p3monitor.flaky_plugin:FlakyPlugin"),
    ("p3monitor-resources", "pytest_p3monitor.resources_plugin:ResourcesPlugin"),
    ("p3monitor-retention", "pytest_p3monitor.retention_plugin:RetentionPlugin"),
    ("p3monitor-export", "pytest_p3monitor.export_plugin:ExportPlugin"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("p3monitor", "test-run health monitoring (pytest-p3monitor)")

    def both(
        cli: str,
        ini: str,
        help: str,
        *,
        ini_type: str | None = None,
        default: object = None,
        metavar: str | None = None,
        append: bool = False,
    ) -> None:
        group.addoption(
            cli,
            action="append" if append else "store",
            dest=ini,
            default=None,
            metavar=metavar,
            help=f"{help} (ini: {ini})",
        )
        parser.addini(ini, help, type=ini_type, default=default)  # type: ignore[arg-type]

    group.addoption(
        "--p3monitor",
        action="store_true",
        dest="p3monitor",
        default=None,
        help="record this session's tests, resources and health (ini: p3monitor = true)",
    )
    parser.addini("p3monitor", "enable pytest-p3monitor", type="bool", default=False)

    both(
        "--p3monitor-db",
        "p3monitor_db",
        "results store: a path (SQLite, default .p3monitor/results.db) or postgresql://... "
        "[env P3MONITOR_DB]",
        metavar="URL",
    )
    both(
        "--p3monitor-json",
        "p3monitor_json",
        "write the session's health report (JSON) to PATH",
        metavar="PATH",
    )
    both(
        "--p3monitor-containers",
        "p3monitor_containers",
        "containers to sample: none, all, or Docker filters such as "
        "label=com.docker.compose.project=app (repeatable)",
        ini_type="linelist",
        default=[],
        metavar="FILTER",
        append=True,
    )
    both(
        "--p3monitor-sample-interval",
        "p3monitor_sample_interval",
        "seconds between resource samples",
        metavar="S",
    )
    parser.addini(
        "p3monitor_test_resources",
        "false: no per-test CPU time, peak RSS and bytes read/written (saves a few system "
        "calls per test; the session sampler still runs)",
    )
    parser.addini(
        "p3monitor_io_chars",
        "true: per test, also count every byte passed to read() and write() (read_chars, "
        "write_chars; one more system call per test)",
    )
    both(
        "--p3monitor-fail-on",
        "p3monitor_fail_on",
        "a rule 'METRIC OP VALUE[UNIT]' that fails the session when crossed (repeatable)",
        ini_type="linelist",
        default=[],
        metavar="RULE",
        append=True,
    )
    both(
        "--p3monitor-warn-on",
        "p3monitor_warn_on",
        "a rule 'METRIC OP VALUE[UNIT]' that only warns when crossed (repeatable)",
        ini_type="linelist",
        default=[],
        metavar="RULE",
        append=True,
    )
    parser.addini(
        "p3monitor_cost_per_hour",
        "price of the CI runner per hour (e.g. 0.48): gives the cost_per_build metric",
    )
    parser.addini(
        "p3monitor_history_window",
        "runs of this branch that ci_success_rate, test_failure_rate, anomalies and the "
        "health score look back over (default 20)",
    )
    parser.addini(
        "p3monitor_health_targets",
        "health KPI targets, e.g. 'total_ci_time = 10m' or 'success_rate = 90%'",
        type="linelist",
        default=[],
    )
    parser.addini(
        "p3monitor_health_weights",
        "health component weights, e.g. 'reliability=0.4 performance=0.3 efficiency=0.2 "
        "user_satisfaction=0.1'",
        type="linelist",
        default=[],
    )
    group.addoption(
        "--p3monitor-commit",
        dest="p3monitor_commit",
        metavar="SHA",
        help="commit of this run (default: the CI's variables, else git) [env P3MONITOR_COMMIT]",
    )
    group.addoption(
        "--p3monitor-branch",
        dest="p3monitor_branch",
        metavar="NAME",
        help="branch of this run (default: the CI's variables, else git) [env P3MONITOR_BRANCH]",
    )
    both(
        "--p3monitor-flaky-window",
        "p3monitor_flaky_window",
        "judge flakiness on each test's last N runs (default 100)",
        metavar="N",
    )
    both(
        "--p3monitor-flaky-branch",
        "p3monitor_flaky_branch",
        "judge flakiness on the runs of this branch only (default: every branch)",
        metavar="NAME",
    )
    group.addoption(
        "--p3monitor-quarantine",
        action="store_true",
        dest="p3monitor_quarantine",
        default=None,
        help="failures of tests known to be flaky do not fail the session; they are still "
        "run, stored and listed (ini: p3monitor_quarantine = true)",
    )
    parser.addini(
        "p3monitor_quarantine",
        "failures of tests known to be flaky do not fail the session",
        type="bool",
        default=False,
    )
    both(
        "--p3monitor-rerun-flaky",
        "p3monitor_rerun_flaky",
        "rerun tests known to be flaky up to N times (needs pytest-rerunfailures)",
        metavar="N",
    )
    group.addoption(
        "--p3monitor-metric",
        action="append",
        dest="p3monitor_metric",
        default=None,
        metavar="NAME=SECONDS",
        help="a duration measured by an earlier CI step, e.g. docker_build=42.5 (repeatable) "
        "[env P3MONITOR_METRIC_<NAME>]",
    )
    parser.addini(
        "p3monitor_probes",
        "host:port endpoints whose TCP connect latency is measured at start and end",
        type="linelist",
        default=[],
    )
    parser.addini(
        "p3monitor_retention_days",
        "delete stored runs older than this many days at the end of each session",
    )
    # CI integrations and exports (export_plugin.py)
    both(
        "--p3monitor-openmetrics",
        "p3monitor_openmetrics",
        "write the session's metrics as OpenMetrics text to PATH (e.g. GitLab's metrics report)",
        metavar="PATH",
    )
    for ini, help in (
        ("p3monitor_github", "GitHub Actions outputs, summary, annotations: auto, true or false"),
        ("p3monitor_pushgateway", "Prometheus Pushgateway URL [env P3MONITOR_PUSHGATEWAY]"),
        ("p3monitor_pushgateway_job", "job label of the push to the Pushgateway (default pytest)"),
        ("p3monitor_endpoint", "POST the JSON report to this URL [env P3MONITOR_ENDPOINT]"),
        ("p3monitor_endpoint_auth_env", "environment variable holding the endpoint's token"),
        ("p3monitor_endpoint_auth_header", "header for the token (default Authorization: Bearer)"),
        ("p3monitor_endpoint_retries", "retries of a failed POST (default 2)"),
        ("p3monitor_webhook", "Slack-compatible webhook URL for alerts [env P3MONITOR_WEBHOOK]"),
        ("p3monitor_webhook_severity", "alerts posted to the webhook: critical or warning"),
        ("p3monitor_export_timeout", "seconds the network exports may take (default 10)"),
    ):
        parser.addini(ini, help)


def pytest_addhooks(pluginmanager: PluginManager) -> None:
    _skip_assertion_rewriting(pluginmanager)
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def _skip_assertion_rewriting(pluginmanager: PluginManager) -> None:
    """Let this package's modules import the ordinary way, not through pytest's rewriter.

    pytest rewrites the ``assert`` statements of every module of an installed plugin's
    distribution, which puts each import of them through its own import hook: about two
    million instructions per module, even from its cache. A ``--p3monitor`` session imports
    some forty of them, so that was about 100 million instructions, 25 ms, one sixth of
    what the plugin cost a 5000-test session (callgrind: start-up +183 M marked, +85 M
    not). The package has no ``assert`` for rewriting to explain (its checks raise their
    own errors; ``test_plugin_modules_have_no_assert`` keeps it so).

    pytest has no public way to opt out, so this takes the package's name out of the
    hook's marked names (a private attribute). Only what is imported from here on is
    concerned: this module and the package's ``__init__`` have already been rewritten.
    Should pytest rename the attribute, nothing happens and the modules are rewritten as
    before.
    """
    marked = getattr(getattr(pluginmanager, "rewrite_hook", None), "_must_rewrite", None)
    if isinstance(marked, set) and __package__ in marked:
        marked.discard(__package__)


#: pytest's options that run no test: a session with one is no run to record or judge.
NO_TESTS_RUN = ("collectonly", "setuponly", "setupplan")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not enabled(config) or any(config.getoption(name, False) for name in NO_TESTS_RUN):
        return
    # Imported here so that sessions without --p3monitor never pay for it.
    from .session import MonitorSession

    monitor = MonitorSession(config)
    config.pluginmanager.register(monitor, MonitorSession.name)
    for name, target in FEATURES:
        module_name, _, class_name = target.partition(":")
        module = __import__(module_name, fromlist=[class_name])
        feature = getattr(module, class_name)(config, monitor)
        if getattr(feature, "active", True):
            config.pluginmanager.register(feature, name)


@pytest.fixture(scope="session")
def p3monitor(request: pytest.FixtureRequest) -> P3Monitor:
    """Phases and service start-up times: ``phase(name)``, ``wait_for_container(name)``.

    Works without ``--p3monitor`` too (then it records nowhere).
    """
    from .phases import fixture_value

    return fixture_value(request.config)
