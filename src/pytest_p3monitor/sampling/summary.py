"""Pure functions: the sampler's records in, peaks, means and per-test peaks out.

The records are the JSON objects the sampler writes (each with a ``kind``); nothing here
reads a clock or a file, so all of it is tested with made-up records.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Record = Mapping[str, Any]


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value == value else None


def weighted_mean(points: Sequence[tuple[float, float | None]]) -> float | None:
    """Mean of values over time: each (t, value) stands for the interval since the previous t.

    A value of None (no interval yet, e.g. the first CPU sample) counts for nothing; a gap
    left by a late sample weighs as long as it lasted.
    """
    total = 0.0
    weight = 0.0
    previous: float | None = None
    for t, value in points:
        if previous is not None and value is not None and t > previous:
            total += value * (t - previous)
            weight += t - previous
        previous = t
    if weight > 0:
        return total / weight
    values = [v for _, v in points if v is not None]
    return sum(values) / len(values) if values else None


def counter_total(values: Sequence[int | float], baseline: float | None = None) -> float:
    """What a cumulative counter added over the samples, across restarts (counter resets).

    ``baseline`` is the value before the first sample (0 for a container born during the
    session); None starts counting at the first sample.
    """
    total = 0.0
    previous = baseline
    for value in values:
        if previous is not None:
            total += value - previous if value >= previous else value
        previous = value
    return total


def median(values: Sequence[float]) -> float | None:
    """The median, as ``statistics.median`` (which costs ~3 ms to import, for one call)."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return None
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _peak(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _percent(value: float | None, limit: float | None) -> float | None:
    if value is None or not limit:
        return None
    return 100.0 * value / limit


def memory_limit(records: Iterable[Record]) -> float | None:
    """What "memory %" is a percent of: the cgroup's limit when below the host's memory."""
    host = None
    cgroup = None
    for record in records:
        kind = record.get("kind")
        if kind == "meta":
            host = _num(record.get("host_memory_bytes"))
        elif kind == "cgroup":
            limit = _num(record.get("memory_limit_bytes"))
            if limit is not None:
                cgroup = limit
    if cgroup is not None and (host is None or cgroup < host):
        return cgroup
    return host


def process_summary(records: Sequence[Record]) -> dict[str, Any]:
    """``metrics.resource_usage.process`` of the report."""
    procs = sorted((r for r in records if r.get("kind") == "proc"), key=lambda r: r["t"])
    limit = memory_limit(records)
    rss_peak = _peak(_num(r.get("rss_bytes")) for r in procs)
    return {
        "cpu_percent_peak": _peak(_num(r.get("cpu_percent")) for r in procs),
        "cpu_percent_mean": weighted_mean([(r["t"], _num(r.get("cpu_percent"))) for r in procs]),
        "rss_bytes_peak": int(rss_peak) if rss_peak is not None else None,
        "memory_percent_peak": _percent(rss_peak, limit),
        "memory_limit_bytes": int(limit) if limit is not None else None,
        "processes_peak": int(_peak(_num(r.get("processes")) for r in procs) or 0),
        "samples": len(procs),
    }


def cgroup_summary(records: Sequence[Record]) -> dict[str, Any] | None:
    """The cgroup's peaks and means, or None when it was not sampled."""
    rows = sorted((r for r in records if r.get("kind") == "cgroup"), key=lambda r: r["t"])
    if not rows:
        return None
    memory_peak = _peak(_num(r.get("memory_bytes")) for r in rows)
    limit = _num(rows[-1].get("memory_limit_bytes"))
    return {
        "version": rows[-1].get("version"),
        "cpu_percent_peak": _peak(_num(r.get("cpu_percent")) for r in rows),
        "cpu_percent_mean": weighted_mean([(r["t"], _num(r.get("cpu_percent"))) for r in rows]),
        "cpu_limit_cores": _num(rows[-1].get("cpu_limit_cores")),
        "memory_bytes_peak": int(memory_peak) if memory_peak is not None else None,
        "memory_limit_bytes": int(limit) if limit is not None else None,
        "memory_percent_peak": _peak(
            _percent(_num(r.get("memory_bytes")), _num(r.get("memory_limit_bytes"))) for r in rows
        ),
        "samples": len(rows),
    }


def _by_container(records: Iterable[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = {}
    for record in records:
        if record.get("kind") == "container" and record.get("id"):
            groups.setdefault(str(record["id"]), []).append(record)
    for rows in groups.values():
        rows.sort(key=lambda r: r["t"])
    return groups


def container_summaries(records: Sequence[Record], session_start: float) -> list[dict[str, Any]]:
    """``metrics.resource_usage.containers``: one object per container, in order of appearance."""
    summaries = []
    for container_id, rows in _by_container(records).items():
        created = _num(rows[0].get("created"))
        born_inside = created is not None and created >= session_start

        def total(key: str, rows: list[Record] = rows, born_inside: bool = born_inside) -> int:
            values = [float(r.get(key) or 0) for r in rows]
            return int(counter_total(values, 0.0 if born_inside else None))

        memory_peak = _peak(_num(r.get("memory_bytes")) for r in rows)
        summaries.append(
            {
                "id": container_id,
                "name": rows[-1].get("name") or container_id[:12],
                "cpu_percent_peak": _peak(_num(r.get("cpu_percent")) for r in rows),
                "cpu_percent_mean": weighted_mean(
                    [(r["t"], _num(r.get("cpu_percent"))) for r in rows]
                ),
                "memory_bytes_peak": int(memory_peak) if memory_peak is not None else None,
                "memory_limit_bytes": rows[-1].get("memory_limit_bytes"),
                "memory_percent_peak": _peak(
                    _percent(_num(r.get("memory_bytes")), _num(r.get("memory_limit_bytes")))
                    for r in rows
                ),
                "net_rx_bytes": total("net_rx_bytes"),
                "net_tx_bytes": total("net_tx_bytes"),
                "blk_read_bytes": total("blk_read_bytes"),
                "blk_write_bytes": total("blk_write_bytes"),
                "samples": len(rows),
                "first_seen": rows[0]["t"],
                "last_seen": rows[-1]["t"],
            }
        )
    summaries.sort(key=lambda s: s["first_seen"])
    return summaries


def per_test_container_peaks(
    records: Sequence[Record], tests: Iterable[tuple[str, float | None, float | None]]
) -> dict[str, dict[str, float]]:
    """Per test, the peaks of the containers while it ran: {nodeid: {figure: value}}.

    A sample stands for the interval since the container's previous sample (its CPU % is
    the average over it): a test gets the samples whose interval overlaps its start..stop,
    that is those taken while it ran and the first one after it, unless that one is the
    container's very first sample (a container started after the test). A test shorter
    than the interval still gets the sample covering it.

    Figures: ``containers_cpu_percent_peak`` and ``containers_memory_bytes_peak`` (over all
    containers), and per container
    ``container.NAME.cpu_percent_peak`` / ``container.NAME.memory_bytes_peak``.
    """
    groups = [
        (rows[-1].get("name") or cid[:12], [r["t"] for r in rows], rows)
        for cid, rows in _by_container(records).items()
    ]
    result: dict[str, dict[str, float]] = {}
    if not groups:
        return result
    for nodeid, start, stop in tests:
        if start is None or stop is None:
            continue
        figures: dict[str, float] = {}
        for name, times, rows in groups:
            lo = bisect.bisect_left(times, start)
            hi = bisect.bisect_right(times, stop)
            window = rows[lo:hi]
            if 0 < hi < len(rows):
                window.append(rows[hi])
            if not window:
                continue
            cpu = _peak(_num(r.get("cpu_percent")) for r in window)
            memory = _peak(_num(r.get("memory_bytes")) for r in window)
            for figure, value in (("cpu_percent_peak", cpu), ("memory_bytes_peak", memory)):
                if value is None:
                    continue
                figures[f"container.{name}.{figure}"] = value
                overall = f"containers_{figure}"
                figures[overall] = max(figures.get(overall, value), value)
        if figures:
            result[nodeid] = figures
    return result


def disk_summary(records: Sequence[Record]) -> dict[str, Any]:
    """Free space where the tests run and the engine's disk use, at start and end."""
    result: dict[str, Any] = {
        "path": None,
        "total_bytes": None,
        "free_bytes_start": None,
        "free_bytes_end": None,
        "engine_bytes_start": None,
        "engine_bytes_end": None,
    }
    for record in records:
        when = record.get("when")
        if record.get("kind") == "disk" and when in ("start", "end"):
            result["path"] = record.get("path")
            result["total_bytes"] = record.get("total_bytes")
            result[f"free_bytes_{when}"] = record.get("free_bytes")
        elif record.get("kind") == "engine" and when in ("start", "end"):
            result[f"engine_bytes_{when}"] = record.get("disk_bytes")
    return result


def network_summary(records: Sequence[Record]) -> dict[str, Any]:
    """Docker API round trips and TCP connect latency of each probe, at start and end."""
    result: dict[str, Any] = {"docker_api_rtt_ms_start": None, "docker_api_rtt_ms_end": None}
    probes: dict[str, dict[str, Any]] = {}
    for record in records:
        when = record.get("when")
        if when not in ("start", "end"):
            continue
        if record.get("kind") == "engine":
            result[f"docker_api_rtt_ms_{when}"] = record.get("api_rtt_ms")
        elif record.get("kind") == "probe":
            target = str(record.get("target"))
            entry = probes.setdefault(
                target,
                {"target": target, "connect_ms_start": None, "connect_ms_end": None, "error": None},
            )
            entry[f"connect_ms_{when}"] = record.get("connect_ms")
            if record.get("error"):
                entry["error"] = record.get("error")
    result["probes"] = list(probes.values())
    return result


def sampler_summary(records: Sequence[Record], mode: str) -> dict[str, Any]:
    """How well the sampler kept its schedule (lateness of the process samples)."""
    late = [float(r["late_ms"]) for r in records if r.get("kind") == "proc" and "late_ms" in r]
    interval = next((r.get("process_interval") for r in records if r.get("kind") == "meta"), None)
    return {
        "mode": mode,
        "process_interval_s": interval,
        "process_samples": len(late),
        "late_ms_median": median(late),
        "late_ms_max": max(late) if late else None,
    }


def warnings_of(records: Iterable[Record]) -> list[str]:
    """The sampler's warnings, each once, in order."""
    seen: dict[str, None] = {}
    for record in records:
        if record.get("kind") == "warning" and record.get("text"):
            seen.setdefault(str(record["text"]), None)
    return list(seen)
