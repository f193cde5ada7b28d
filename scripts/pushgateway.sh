#!/bin/sh
# Start a Prometheus Pushgateway on a loopback port, in the foreground, for the tests.
#
#   scripts/pushgateway.sh [PORT]        # default port 9091; Ctrl-C (SIGTERM) stops it
#
# The process execs into the gateway, so the caller's PID is the gateway's: the test setup
# starts this script, polls http://127.0.0.1:PORT/-/ready and terminates that PID afterwards.
# Nothing is persisted (no --persistence.file): every start is empty.
# Exit status 127 when the binary is missing (Debian: apt-get install -y prometheus-pushgateway).
set -eu

port="${1:-9091}"
case "$port" in
    '' | *[!0-9]*) echo "pushgateway.sh: PORT must be a number, got '$port'" >&2; exit 2 ;;
esac

for candidate in "${PUSHGATEWAY_BIN:-}" prometheus-pushgateway pushgateway; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
        echo "pushgateway.sh: http://127.0.0.1:$port ($(command -v "$candidate"))" >&2
        exec "$candidate" \
            --web.listen-address="127.0.0.1:$port" \
            --log.level=warn
    fi
done

echo "pushgateway.sh: prometheus-pushgateway not found; install it with" \
    "'apt-get install -y prometheus-pushgateway' or set PUSHGATEWAY_BIN" >&2
exit 127
