"""A real Docker-API engine for the container tests (load with ``pytest_plugins``).

``docker_host`` finds an engine that answers (``$DOCKER_HOST``, then
``/var/run/docker.sock``), else starts podman's Docker-compatible service with
``scripts/engine.sh``. Without one it skips with the reason on a developer machine, and
fails under ``CI=true``: CI must run these tests.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE_SCRIPT = ROOT / "scripts" / "engine.sh"
ENGINE_DIR = Path(os.environ.get("P3MONITOR_ENGINE_DIR", "/tmp/p3monitor-engine"))
IMAGE = "localhost/busybox:latest"
#: A label on every container these tests start, unique to this test session.
SESSION_LABEL = f"p3monitor-test={uuid.uuid4().hex[:12]}"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and no Docker-API engine: {reason}", pytrace=False)
    pytest.skip(f"no Docker-API engine: {reason}")


def _answers(url: str) -> bool:
    try:
        import docker

        client = docker.DockerClient(base_url=url, timeout=5)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def docker_host() -> str:
    """The URL of a Docker-API engine that answers (see the module docstring)."""
    candidates = [os.environ.get("DOCKER_HOST", "")]
    if os.path.exists("/var/run/docker.sock"):
        candidates.append("unix:///var/run/docker.sock")
    for url in candidates:
        if url and (not url.startswith("unix://") or os.path.exists(url[7:])) and _answers(url):
            return url
    if shutil.which("sh") is None:  # pragma: no cover
        _unavailable("no /bin/sh to run scripts/engine.sh")
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env["P3MONITOR_ENGINE_DIR"] = str(ENGINE_DIR)
    proc = subprocess.run(
        ["sh", str(ENGINE_SCRIPT)], capture_output=True, text=True, env=env, timeout=180
    )
    if proc.returncode != 0:
        _unavailable(f"scripts/engine.sh exited {proc.returncode}: {proc.stderr.strip()}")
    url = proc.stdout.strip().rpartition("DOCKER_HOST=")[2]
    if not url or not _answers(url):
        _unavailable(f"scripts/engine.sh printed {proc.stdout!r} but nothing answers there")
    return url


@pytest.fixture(scope="session")
def docker_client(docker_host: str) -> Iterator[Any]:
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=30)
    try:
        yield client
    finally:
        for container in client.containers.list(all=True, filters={"label": SESSION_LABEL}):
            with contextlib.suppress(Exception):
                container.remove(force=True)
        client.close()


def _busybox_rootfs() -> bytes:
    busybox = shutil.which("busybox")
    if busybox is None:
        _unavailable("busybox is not installed (apt-get install -y busybox-static)")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for directory in ("bin", "tmp", "dev", "dev/shm"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(busybox), "bin/busybox")
        for command in ("sh", "sleep", "yes", "cat", "head", "ls", "dd", "rm", "true", "false"):
            link = tarfile.TarInfo(f"bin/{command}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return data.getvalue()


@pytest.fixture(scope="session")
def busybox_image(docker_client: Any) -> str:
    """A busybox image, imported from a local rootfs (no registry needed)."""
    import docker

    try:
        docker_client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        docker_client.api.import_image_from_data(
            _busybox_rootfs(), repository=IMAGE.rsplit(":", 1)[0], tag="latest"
        )
    return IMAGE


def container_kwargs(label: str = SESSION_LABEL) -> dict[str, Any]:
    """What ``containers.run`` needs here: ulimits the machine allows, no network, a label."""
    from docker.types import Ulimit

    key, _, value = label.partition("=")
    return {
        "detach": True,
        "network_mode": "none",
        "labels": {key: value, SESSION_LABEL.split("=")[0]: SESSION_LABEL.split("=")[1]},
        "ulimits": [
            Ulimit(name="nofile", soft=1024, hard=20000),
            Ulimit(name="nproc", soft=1024, hard=1024),
        ],
    }


@pytest.fixture
def run_container(docker_client: Any, busybox_image: str) -> Iterator[Callable[..., Any]]:
    """Start a busybox container (``command``, keyword arguments of ``containers.run``)."""
    started: list[Any] = []

    def run(command: list[str], **kwargs: Any) -> Any:
        options = container_kwargs(kwargs.pop("label", SESSION_LABEL))
        options.update(kwargs)
        container = docker_client.containers.run(busybox_image, command, **options)
        started.append(container)
        return container

    yield run
    for container in started:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@pytest.fixture
def healthcheck_now(docker_host: str) -> Callable[[str], None]:
    """Run a container's health check now (see :func:`run_healthcheck`)."""
    return lambda container_id: run_healthcheck(docker_host, container_id)


@pytest.fixture(scope="session")
def session_labels() -> dict[str, str]:
    """The label every container of this test session carries, as {key: value}."""
    key, _, value = SESSION_LABEL.partition("=")
    return {key: value}


def run_healthcheck(docker_host: str, container_id: str) -> None:
    """Run a container's health check now when the engine is our podman service.

    podman runs health checks from systemd timers, which this machine does not have; a
    real Docker daemon runs them itself (then this does nothing).
    """
    if docker_host != f"unix://{ENGINE_DIR}/podman.sock":
        return
    subprocess.run(
        [
            "podman",
            "--storage-driver",
            "vfs",
            "--root",
            str(ENGINE_DIR / "storage"),
            "--runroot",
            str(ENGINE_DIR / "run"),
            "healthcheck",
            "run",
            container_id,
        ],
        env={**os.environ, "CONTAINERS_CONF": str(ENGINE_DIR / "containers.conf")},
        capture_output=True,
        timeout=30,
        check=False,
    )
