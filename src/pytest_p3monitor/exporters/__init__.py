"""Exporters of the finished report: GitHub Actions, JUnit XML properties, OpenMetrics,
the Prometheus Pushgateway, an HTTP endpoint and a Slack-compatible webhook.

Each module is a set of functions over the ``p3monitor-report/1`` dict (see
:mod:`pytest_p3monitor.report.json_report`); :mod:`pytest_p3monitor.export_plugin` wires them
into the session. Heavy libraries (requests, prometheus_client) are imported inside the
functions that use them.
"""
