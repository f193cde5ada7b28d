"""Real servers on loopback for the exporter tests (imported by tests/test_*.py of exports).

* :class:`RecordingServer` - an HTTP server in a thread that records every request and can be
  told to answer 200, fail with 500 (always or the first N times), hang, or be closed so that
  connections are refused.
* :func:`start_pushgateway` - a real ``prometheus-pushgateway`` via ``scripts/pushgateway.sh``;
  skips with a reason when the binary is missing, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import prometheus_client  # noqa: F401 - see below
import pytest
import requests  # noqa: F401 - see below

# pytester's in-process runs restore sys.modules afterwards: a library first imported inside
# one inner session (the exporters import requests and prometheus_client lazily) would be
# half-forgotten in the next one ("You can only merge into CookieJar"). Importing them here,
# in the outer process, keeps one copy for every inner session.

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class RecordingServer:
    """``mode``: "ok" (200), "fail" (500), "hang" (no answer until stopped), "status"
    (answer ``status``). ``fail_first`` makes the first N requests answer 500 whatever the mode.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.mode = "ok"
        self.status = 200
        self.fail_first = 0
        self._release = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with server._lock:
                    server.requests.append(
                        Recorded(method, self.path, dict(self.headers.items()), body)
                    )
                    failing = server.fail_first > 0
                    if failing:
                        server.fail_first -= 1
                if server.mode == "hang" and not failing:
                    server._release.wait(60)
                    return
                status = 500 if failing or server.mode == "fail" else server.status
                if server.mode == "status" and not failing:
                    status = server.status
                payload = b"ok" if status < 400 else b"nope"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def refused_url() -> str:
    """A loopback URL where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: this test must not be skipped)")
    pytest.skip(reason)


@dataclass
class Pushgateway:
    url: str

    def metrics(self) -> list[dict[str, Any]]:
        """GET /api/v1/metrics: one entry per pushed group."""
        with urllib.request.urlopen(f"{self.url}/api/v1/metrics", timeout=5) as response:
            data = json.load(response)
        groups: list[dict[str, Any]] = data["data"]
        return groups

    def group(self, job: str) -> dict[str, Any]:
        for group in self.metrics():
            if group["labels"].get("job") == job:
                return group
        raise AssertionError(f"no group for job {job!r} in the pushgateway")

    def wipe(self) -> None:
        request = urllib.request.Request(f"{self.url}/api/v1/admin/wipe", method="PUT")
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except OSError:  # admin API not enabled: delete the groups we know instead
            for group in self.metrics():
                path = "/".join(f"{k}/{v}" for k, v in group["labels"].items() if k == "job")
                delete = urllib.request.Request(f"{self.url}/metrics/{path}", method="DELETE")
                urllib.request.urlopen(delete, timeout=5).close()


@contextmanager
def start_pushgateway() -> Iterator[Pushgateway]:
    """A real Pushgateway on a free loopback port, stopped afterwards."""
    binary = os.environ.get("PUSHGATEWAY_BIN") or "prometheus-pushgateway"
    if shutil.which(binary) is None and shutil.which("pushgateway") is None:
        _missing(
            "prometheus-pushgateway is not installed "
            "(Debian: apt-get install -y prometheus-pushgateway)"
        )
    port = free_port()
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "pushgateway.sh"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None:
                err = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"scripts/pushgateway.sh exited with {process.returncode}: {err}")
            if time.monotonic() > deadline:
                pytest.fail("the pushgateway did not become ready within 15 s")
            time.sleep(0.1)
        yield Pushgateway(url)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stderr:
            process.stderr.close()
