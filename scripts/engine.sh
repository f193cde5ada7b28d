#!/bin/sh
# Start (or find) a Docker-API engine for the container tests, and print the DOCKER_HOST to use.
#
#   scripts/engine.sh          start podman's Docker-compatible service if nothing answers yet;
#                              prints e.g. DOCKER_HOST=unix:///tmp/p3monitor-engine/podman.sock
#   scripts/engine.sh stop     stop the service this script started
#
# Order: an engine that already answers at $DOCKER_HOST, then /var/run/docker.sock, then our own
# podman service (started once; later calls reuse it). The podman recipe is the one in
# ../shared/notes/container-engine.md: vfs storage, cgroupfs, runc, no registry (a busybox image
# is imported from a rootfs tarball as localhost/busybox:latest).
#
# Needs: podman runc busybox-static (apt-get install -y podman runc busybox-static).
# Exit status: 0 and the DOCKER_HOST line on stdout when an engine answers; 2 when podman is
# missing; 1 when the engine did not come up (the reason on stderr).
set -eu

DIR=${P3MONITOR_ENGINE_DIR:-/tmp/p3monitor-engine}
SOCK="$DIR/podman.sock"
URL="unix://$SOCK"
IMAGE=localhost/busybox:latest

answers() { # $1: a unix socket path
    [ -S "$1" ] && curl -fsS --max-time 3 --unix-socket "$1" http://d/_ping >/dev/null 2>&1
}

podman_() {
    CONTAINERS_CONF="$DIR/containers.conf" podman --storage-driver vfs --root "$DIR/storage" \
        --runroot "$DIR/run" "$@"
}

if [ "${1:-}" = "stop" ]; then
    if [ -f "$DIR/service.pid" ]; then
        pid=$(cat "$DIR/service.pid")
        kill "$pid" 2>/dev/null || true
        rm -f "$DIR/service.pid" "$SOCK"
        echo "stopped podman service $pid" >&2
    fi
    exit 0
fi

case "${DOCKER_HOST:-}" in
unix://*)
    if answers "${DOCKER_HOST#unix://}"; then echo "DOCKER_HOST=$DOCKER_HOST"; exit 0; fi ;;
tcp://* | http://*)
    if curl -fsS --max-time 3 "http://${DOCKER_HOST#*://}/_ping" >/dev/null 2>&1; then
        echo "DOCKER_HOST=$DOCKER_HOST"; exit 0
    fi ;;
esac
if answers /var/run/docker.sock; then echo "DOCKER_HOST=unix:///var/run/docker.sock"; exit 0; fi
if answers "$SOCK"; then echo "DOCKER_HOST=$URL"; exit 0; fi

for tool in podman runc busybox curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "engine.sh: $tool not found; apt-get install -y podman runc busybox-static curl" >&2
        exit 2
    fi
done

mkdir -p "$DIR"
# One starter at a time (pytest-xdist workers may all call this at once).
exec 9>"$DIR/lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if answers "$SOCK"; then echo "DOCKER_HOST=$URL"; exit 0; fi

cat >"$DIR/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:20000", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
EOF

if ! podman_ image exists "$IMAGE" 2>/dev/null; then
    rm -rf "$DIR/rootfs" && mkdir -p "$DIR/rootfs/bin" "$DIR/rootfs/tmp" "$DIR/rootfs/dev/shm"
    cp "$(command -v busybox)" "$DIR/rootfs/bin/busybox"
    for c in sh sleep yes cat head ls dd rm true false echo nc wget; do
        ln -sf busybox "$DIR/rootfs/bin/$c"
    done
    tar -C "$DIR/rootfs" -cf "$DIR/bb.tar" .
    podman_ import --quiet "$DIR/bb.tar" "$IMAGE" >/dev/null
fi

rm -f "$SOCK"
# Started from $DIR, not from the caller's folder: the service outlives the run that started
# it, and conmon (which starts each container from the service's working directory) fails
# with "Failed to get working directory" once a checkout it was started from is deleted.
(cd "$DIR" && CONTAINERS_CONF="$DIR/containers.conf" exec setsid podman --storage-driver vfs \
    --root "$DIR/storage" --runroot "$DIR/run" system service --time 0 "$URL" \
    >"$DIR/service.log" 2>&1 </dev/null 9>&-) &
echo $! >"$DIR/service.pid"

i=0
while ! answers "$SOCK"; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then
        echo "engine.sh: podman service did not answer at $SOCK within 20 s; log:" >&2
        tail -n 20 "$DIR/service.log" >&2 || true
        exit 1
    fi
    sleep 0.2
done
echo "DOCKER_HOST=$URL"
