"""Health reports: the session's (json_report, shown by terminal) and a stored run's
(run_report, shown by text and html for ``p3monitor report``)."""
