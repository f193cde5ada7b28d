"""The session's health report: building it (json_report) and showing it (terminal)."""
